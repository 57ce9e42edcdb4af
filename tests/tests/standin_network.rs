//! A lab node as the installer finds it: `ifreload -a` applies `/etc/network/interfaces`
//! (bridge, moved address, idempotent, bonds refused), root logs in over SSH with its password,
//! and the router's factory archive restores and starts with its factory login.
//! Runs as root; one lab shared by the tests of this file.

use cias_tests::lab_support::{shared_lab, LabSession};
use xtask::lab::standin::ROOT_PASSWORD;

const TESTS: usize = 3;

/// The file the installer writes on the first node (`templates/network/interfaces.j2`).
const INTERFACES: &str = "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet manual\n\n\
    auto eth1\niface eth1 inet manual\n\nauto vmbr0\niface vmbr0 inet static\n\taddress 10.254.0.1/8\n\
    \tgateway 10.0.0.254\n\tbridge-ports eth0\n\tbridge-stp off\n\tbridge-fd 0\n\n\
    source /etc/network/interfaces.d/*\n";

fn run(lab: &LabSession, name: &str, argv: &[&str]) -> xtask::lab::Output {
    lab.exec(lab.node(name).unwrap(), argv).unwrap()
}

fn ok(lab: &LabSession, name: &str, argv: &[&str]) -> String {
    let out = run(lab, name, argv);
    assert!(out.success(), "{name}: {argv:?} exited {}: {}{}", out.status, out.stdout, out.stderr);
    out.stdout
}

/// Writes the installer's file on `name` and applies it; returns what `ifreload -a` printed.
fn bridge(lab: &LabSession, name: &str) -> String {
    lab.sh(lab.node(name).unwrap(), &format!("printf '%s' '{INTERFACES}' > /etc/network/interfaces"))
        .unwrap();
    let out = run(lab, name, &["ifreload", "-a"]);
    assert!(out.success(), "ifreload -a exited {}: {}{}", out.status, out.stdout, out.stderr);
    out.stdout + &out.stderr
}

/// Links, IPv4 addresses and routes of a node (no timers or counters).
fn network_state(lab: &LabSession, name: &str) -> String {
    lab.sh(lab.node(name).unwrap(), "ip -o link; ip -4 -br addr; ip route").unwrap()
}

/// SSH from `from` to `target` with a password only (no terminal: SSH_ASKPASS).
fn password_ssh(
    lab: &LabSession,
    from: &str,
    target: &str,
    password: &str,
    command: &str,
) -> xtask::lab::Output {
    let script = format!(
        "printf '#!/bin/sh\\necho %s\\n' '{password}' > /tmp/askpass && chmod 700 /tmp/askpass && \
         SSH_ASKPASS=/tmp/askpass SSH_ASKPASS_REQUIRE=force setsid ssh -o StrictHostKeyChecking=accept-new \
         -o UserKnownHostsFile=/tmp/pw_known_hosts -o PubkeyAuthentication=no -o NumberOfPasswordPrompts=1 \
         {target} {command} </dev/null"
    );
    run(lab, from, &["sh", "-c", &script])
}

#[test]
fn ifreload_bridges_the_lan_nic_idempotently_and_refuses_bonds() {
    let lab = shared_lab(TESTS);
    assert_eq!(ok(&lab, "node1", &["sh", "-c", "command -v ifreload"]), "/usr/sbin/ifreload\n");
    assert_eq!(bridge(&lab, "node1"), "");
    let eth0 = ok(&lab, "node1", &["ip", "-o", "link", "show", "eth0"]);
    assert!(eth0.contains("master vmbr0 state UP"), "{eth0}");
    assert_eq!(ok(&lab, "node1", &["ip", "-4", "-o", "addr", "show", "dev", "eth0"]), "");
    let vmbr0 = ok(&lab, "node1", &["ip", "-4", "-br", "addr", "show", "dev", "vmbr0"]);
    assert!(
        vmbr0.starts_with("vmbr0 ") && vmbr0.contains(" UP ") && vmbr0.ends_with(" 10.254.0.1/8 \n"),
        "{vmbr0}"
    );
    assert_eq!(
        ok(&lab, "node1", &["ip", "route", "show", "default"]),
        "default via 10.0.0.254 dev vmbr0 proto kernel \n"
    );
    // The LAN works through the bridge.
    ok(&lab, "node1", &["ping", "-c", "1", "-W", "2", &lab.node("node2").unwrap().lan_ip().to_string()]);

    let before = network_state(&lab, "node1");
    assert_eq!(bridge(&lab, "node1"), "", "a second run says nothing");
    assert_eq!(network_state(&lab, "node1"), before, "and changes nothing");

    // An untouched node's file describes its network already.
    let before = network_state(&lab, "node2");
    assert_eq!(ok(&lab, "node2", &["ifreload", "-a"]), "");
    assert_eq!(network_state(&lab, "node2"), before);

    let bonded = INTERFACES.replace("bridge-ports eth0", "bridge-ports bond0")
        + "\nauto bond0\niface bond0 inet manual\n\tbond-slaves eth0 eth1\n\tbond-mode active-backup\n";
    lab.sh(lab.node("node2").unwrap(), &format!("printf '%s' '{bonded}' > /tmp/interfaces.bond")).unwrap();
    let out = run(&lab, "node2", &["ifreload", "-a", "-i", "/tmp/interfaces.bond"]);
    assert_eq!(out.status, 1);
    assert!(
        out.stderr.starts_with("error: bond0: cannot create bond: this kernel has no bonding support"),
        "{}",
        out.stderr
    );
    assert_eq!(network_state(&lab, "node2"), before, "a refused file changes nothing");
}

#[test]
fn root_logs_in_with_its_password_and_keys_still_work() {
    let lab = shared_lab(TESTS);
    let node2 = lab.node("node2").unwrap();
    let target = format!("root@{}", node2.lan_ip());
    let out = password_ssh(&lab, "node3", &target, ROOT_PASSWORD, "hostname");
    assert!(out.success() && out.stdout == "node2\n", "{}{}", out.stdout, out.stderr);
    assert!(!password_ssh(&lab, "node3", &target, "wrong", "true").success());
    assert!(lab.ssh(node2, &["true"]).unwrap().success(), "the driver's key");
    ok(&lab, "node3", &["ssh", "-o", "BatchMode=yes", "node2", "true"]);
}

#[test]
fn the_factory_router_archive_restores_starts_and_takes_the_factory_login() {
    let lab = shared_lab(TESTS);
    bridge(&lab, "node1");
    ok(&lab, "node1", &["mkdir", "-p", "/var/lib/vz/dump"]);
    let archive = ok(
        &lab,
        "node1",
        &["/usr/local/lib/pve-standin/pve-standin", "make-router-archive", "/var/lib/vz/dump"],
    );
    let archive = archive.trim_end();
    let name =
        archive.strip_prefix("/var/lib/vz/dump/vzdump-qemu-100-").unwrap_or_else(|| panic!("{archive}"));
    assert!(
        name.len() == "2026_01_05-02_00_00.vma".len()
            && name.ends_with(".vma")
            && name.chars().take(19).all(|c| c.is_ascii_digit() || c == '_' || c == '-'),
        "{archive}"
    );
    if !ok(&lab, "node1", &["pvesm", "status"]).contains("a_mfs") {
        ok(
            &lab,
            "node1",
            &["pvesm", "add", "dir", "a_mfs", "--path", "/mnt/a_mfs", "--content", "images,backup"],
        );
    }
    let out = ok(&lab, "node1", &["qmrestore", archive, "100", "--storage", "a_mfs"]);
    assert!(out.ends_with("TASK OK\n"), "{out}");
    let config = ok(&lab, "node1", &["qm", "config", "100"]);
    for line in [
        "cores: 2",
        "memory: 2048",
        "name: cias-router",
        "net0: virtio=02:CA:5E:FF:01:00,bridge=vmbr0",
        "onboot: 1",
        "scsi0: a_mfs:100/vm-100-disk-0.raw,size=4G",
    ] {
        assert!(config.lines().any(|l| l == line), "{line} in:\n{config}");
    }
    ok(&lab, "node1", &["qm", "start", "100"]);
    let ip_vm = "setup_ip_vm.sh 0 192.168.56.104 255.255.255.0 192.168.56.1";
    let out = password_ssh(&lab, "node1", "cias@10.0.0.254", "dlll@nccu", ip_vm);
    assert!(out.success() && out.stdout.contains("OK"), "{}{}", out.stdout, out.stderr);
    ok(&lab, "node1", &["qm", "stop", "100"]);
}
