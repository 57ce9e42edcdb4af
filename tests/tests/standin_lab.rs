//! The Proxmox stand-in in a real 3-node lab: cluster create/join, quorum that follows the
//! network, VMs that run on one node at a time, recovery of a dead node's VM, the router VM
//! (issue 4, "Done when"), the watchdog that powers a node off (issue 11). Runs as root; one lab
//! shared by the tests of this file.
#![allow(clippy::print_stderr)]

use std::time::{Duration, Instant};

use cias_tests::lab_support::{shared_lab, LabSession};
use xtask::lab::Node;

const TESTS: usize = 5;

fn node(lab: &LabSession, name: &str) -> Node {
    lab.node(name).unwrap()
}

fn run(lab: &LabSession, name: &str, argv: &[&str]) -> xtask::lab::Output {
    lab.exec(node(lab, name), argv).unwrap()
}

fn ok(lab: &LabSession, name: &str, argv: &[&str]) -> String {
    let out = run(lab, name, argv);
    assert!(out.success(), "{name}: {argv:?} exited {}: {}{}", out.status, out.stdout, out.stderr);
    out.stdout
}

fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// node1 creates the cluster, node2 and node3 join (idempotent across tests).
fn cluster(lab: &LabSession) {
    cias_tests::lab_support::standin_cluster(lab, &["node1", "node2", "node3"], "images,backup").unwrap();
}

fn heartbeats(lab: &LabSession, vmid: u32) -> Vec<(String, u64)> {
    let disk = ok(lab, "node1", &["cat", &format!("/etc/pve/.disks/images/{vmid}/vm-{vmid}-disk-0.raw")]);
    disk.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 5 && f[0] == "HB").then(|| (f[2].to_string(), f[3].parse().unwrap()))
        })
        .collect()
}

#[test]
fn cluster_join_vm_uniqueness_and_live_migration() {
    let lab = shared_lab(TESTS);
    cluster(&lab);
    let status = ok(&lab, "node2", &["pvecm", "status"]);
    let parsed = cias_core::proxmox::pvecm::parse_status(&status).unwrap();
    assert_eq!((parsed.name.as_str(), parsed.quorate, parsed.members.len()), ("DLLL-CIAS", true, 3));
    ok(
        &lab,
        "node2",
        &["qm", "create", "201", "--name", "web", "--memory", "1024", "--scsi0", "shared_disks:4"],
    );
    ok(&lab, "node2", &["qm", "start", "201"]);
    for n in ["node1", "node2", "node3"] {
        wait_for(&format!("VM 201 running in {n}'s /cluster/resources"), Duration::from_secs(10), || {
            let json = ok(
                &lab,
                n,
                &["pvesh", "get", "/cluster/resources", "--type", "vm", "--output-format", "json"],
            );
            let vms: Vec<cias_core::proxmox::pvesh::VmResource> = serde_json::from_str(&json).unwrap();
            vms.iter().any(|v| v.vmid == 201 && v.node == "node2" && v.status == "running")
        });
    }
    let out = run(&lab, "node3", &["qm", "create", "201", "--memory", "512"]);
    assert_eq!(out.stderr, "unable to create VM 201 - VM 201 already exists on node 'node2'\n");
    let out = ok(&lab, "node2", &["qm", "migrate", "201", "node3", "--online"]);
    assert!(out.ends_with("TASK OK\n"), "{out}");
    let before = heartbeats(&lab, 201).len();
    wait_for("heartbeats from node3", Duration::from_secs(10), || heartbeats(&lab, 201).len() > before + 1);
    let beats = heartbeats(&lab, 201);
    let first_on_3 = beats.iter().position(|(n, _)| n == "node3").unwrap();
    assert!(beats[first_on_3..].iter().all(|(n, _)| n == "node3"), "never back on node2: {beats:?}");
    assert!(
        beats.windows(2).all(|w| w[1].1 == w[0].1 + 1),
        "the counter continues without gaps or overlap: {beats:?}"
    );
    ok(&lab, "node3", &["qm", "stop", "201"]);
}

#[test]
fn a_partitioned_node_loses_quorum_and_refuses_writes() {
    let lab = shared_lab(TESTS);
    cluster(&lab);
    lab.partition(&[vec![node(&lab, "node1")], vec![node(&lab, "node2"), node(&lab, "node3")]]).unwrap();
    wait_for("node1 not quorate", Duration::from_secs(10), || {
        run(&lab, "node1", &["pvecm", "status"]).status == 2
    });
    let out = run(&lab, "node1", &["qm", "create", "301", "--memory", "512"]);
    assert_eq!(out.stderr, "cluster not ready - no quorum?\n");
    // Like pmxcfs, /etc/pve is read-only without quorum, for any program.
    wait_for("/etc/pve read-only on node1", Duration::from_secs(5), || {
        !run(&lab, "node1", &["touch", "/etc/pve/nodes/node1/probe"]).success()
    });
    assert!(
        run(&lab, "node2", &["touch", "/etc/pve/nodes/node2/probe"]).success(),
        "the quorate side still writes"
    );
    assert!(run(&lab, "node2", &["pvecm", "status"]).success());
    assert!(run(&lab, "node3", &["pvecm", "status"]).success());
    lab.heal().unwrap();
    for n in ["node1", "node2", "node3"] {
        wait_for(&format!("{n} quorate again"), Duration::from_secs(10), || {
            run(&lab, n, &["pvecm", "status"]).success()
        });
    }
    wait_for("/etc/pve writable again on node1", Duration::from_secs(5), || {
        run(&lab, "node1", &["touch", "/etc/pve/nodes/node1/probe"]).success()
    });
}

#[test]
fn a_dead_nodes_vm_is_recovered_from_shared_storage() {
    let lab = shared_lab(TESTS);
    cluster(&lab);
    if !run(&lab, "node3", &["qm", "config", "401"]).success() {
        ok(&lab, "node3", &["qm", "create", "401", "--memory", "512", "--scsi0", "shared_disks:1"]);
    }
    ok(&lab, "node3", &["qm", "start", "401"]);
    std::thread::sleep(Duration::from_secs(2));
    lab.power_off(node(&lab, "node3")).unwrap();
    let at_power_off = heartbeats(&lab, 401).len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(heartbeats(&lab, 401).len(), at_power_off, "a powered-off node runs nothing");
    wait_for("node3 offline", Duration::from_secs(10), || {
        ok(&lab, "node1", &["pvesh", "get", "/cluster/status", "--output-format", "json"])
            .contains(r#""name":"node3","nodeid":3,"online":0"#)
    });
    let resources =
        ok(&lab, "node1", &["pvesh", "get", "/cluster/resources", "--type", "vm", "--output-format", "json"]);
    assert!(resources.contains(r#""node":"node3""#), "the dead node's config stays: {resources}");
    ok(
        &lab,
        "node1",
        &["mv", "/etc/pve/nodes/node3/qemu-server/401.conf", "/etc/pve/nodes/node1/qemu-server/"],
    );
    ok(&lab, "node1", &["qm", "start", "401"]);
    wait_for("heartbeats from node1", Duration::from_secs(10), || {
        heartbeats(&lab, 401).last().is_some_and(|(n, _)| n == "node1")
    });
    let beats = heartbeats(&lab, 401);
    assert!(beats.windows(2).all(|w| w[1].1 == w[0].1 + 1), "same disk, counter continues: {beats:?}");
    ok(&lab, "node1", &["qm", "stop", "401"]);
    lab.power_on(node(&lab, "node3")).unwrap();
}

/// The installer bridges the NICs into vmbr0; do it by hand.
fn bridge(lab: &LabSession, name: &str) {
    let n = node(lab, name);
    let ip = format!("{}/8", n.lan_ip());
    lab.sh(n, &format!("ip link show vmbr0 >/dev/null 2>&1 || {{ ip link add vmbr0 type bridge && ip link set vmbr0 up && ip addr del {ip} dev eth0 && ip link set eth0 master vmbr0 && ip addr add {ip} dev vmbr0; }}")).unwrap();
}

/// Runs `command` on the router as `cias` with `password` (no terminal: SSH_ASKPASS), from
/// node1, feeding `stdin`; the router's host key is pinned in node1's `/tmp/router_known_hosts`
/// on first use and must not change afterwards.
fn router(lab: &LabSession, password: &str, command: &str, stdin: &str) -> xtask::lab::Output {
    let script = format!(
        "printf '#!/bin/sh\\necho %s\\n' '{password}' > /tmp/askpass && chmod 700 /tmp/askpass && \
         printf '{stdin}' | SSH_ASKPASS=/tmp/askpass SSH_ASKPASS_REQUIRE=force setsid ssh -o StrictHostKeyChecking=accept-new \
         -o UserKnownHostsFile=/tmp/router_known_hosts -o PubkeyAuthentication=no -o NumberOfPasswordPrompts=1 cias@10.0.0.254 {command}"
    );
    run(lab, "node1", &["sh", "-c", &script])
}

#[test]
fn the_router_vm_answers_ssh_and_records_script_calls() {
    let lab = shared_lab(TESTS);
    cluster(&lab);
    bridge(&lab, "node2");
    bridge(&lab, "node3");
    ok(&lab, "node1", &["rm", "-f", "/tmp/router_known_hosts"]);
    if !run(&lab, "node2", &["qm", "config", "100"]).success() {
        let create = "qm create 100 --name cias-router --memory 2048 --scsi0 shared_disks:4 --net0 virtio,bridge=vmbr0";
        ok(&lab, "node2", &["sh", "-c", create]);
    }
    ok(&lab, "node2", &["qm", "start", "100"]);
    let out = router(&lab, "dlll@nccu", "setup_ip_vm.sh 0 192.168.56.104 255.255.255.0 192.168.56.1", "");
    assert!(out.success() && out.stdout.contains("OK"), "{}{}", out.stdout, out.stderr);
    let disk = ok(&lab, "node1", &["cat", "/etc/pve/.disks/images/100/vm-100-disk-0.raw"]);
    assert!(
        disk.lines().any(|l| l.starts_with("CALL ")
            && l.ends_with(r#" setup_ip_vm.sh ["0","192.168.56.104","255.255.255.0","192.168.56.1"]"#)),
        "{disk}"
    );
    // The factory password is replaced; the new one (sent on stdin) is the only one that works.
    assert!(router(&lab, "dlll@nccu", "change_password.sh", "n3w-s3cret\\n").success());
    assert!(!router(&lab, "dlll@nccu", "true", "").success(), "the factory password is gone");
    assert!(router(&lab, "n3w-s3cret", "true", "").success());
    let disk = ok(&lab, "node1", &["cat", "/etc/pve/.disks/images/100/vm-100-disk-0.raw"]);
    assert!(!disk.contains("n3w-s3cret"), "only a hash is kept");
    // The router moves to node3 with its address, password, host key and records.
    ok(&lab, "node2", &["qm", "stop", "100"]);
    ok(&lab, "node2", &["qm", "migrate", "100", "node3"]);
    ok(&lab, "node3", &["qm", "start", "100"]);
    let out = router(&lab, "n3w-s3cret", "dev_clean.sh", "");
    assert!(out.success(), "same password and pinned host key after the move: {}", out.stderr);
    let disk = ok(&lab, "node1", &["cat", "/etc/pve/.disks/images/100/vm-100-disk-0.raw"]);
    let calls: Vec<&str> =
        disk.lines().filter(|l| l.starts_with("CALL ")).map(|l| l.split(' ').nth(2).unwrap()).collect();
    assert_eq!(calls, ["setup_ip_vm.sh", "change_password.sh", "dev_clean.sh"]);
    ok(&lab, "node3", &["qm", "stop", "100"]);
}

/// A watchdog client in node3 as a transient unit: `netcat` on the multiplexer's socket, sending
/// what the shell commands `writes` print.
fn watchdog_client(lab: &LabSession, unit: &str, writes: &str) {
    let client = format!("({writes}) | nc -N -U /run/watchdog-mux.sock");
    ok(lab, "node3", &["systemd-run", "--quiet", &format!("--unit={unit}"), "sh", "-c", &client]);
}

#[test]
fn the_watchdog_powers_a_node_off_when_its_client_dies_without_disarming() {
    let lab = shared_lab(TESTS);
    let n3 = node(&lab, "node3");
    // The reset is reboot(2) inside the node: measure that the node is not the machine's PID
    // namespace before ever triggering it.
    let pid1 = xtask::lab::node::pid1(n3).expect("node3 runs");
    let node_ns = std::fs::read_link(format!("/proc/{pid1}/ns/pid")).unwrap();
    let host_ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let inside = ok(&lab, "node3", &["readlink", "/proc/self/ns/pid"]);
    eprintln!(
        "PID namespaces: machine {host_ns:?}, node3's PID 1 (host pid {pid1}) {node_ns:?}, inside {inside:?}"
    );
    assert_ne!(node_ns, host_ns);
    assert_eq!(inside.trim(), node_ns.to_string_lossy());
    assert_eq!(ok(&lab, "node3", &["systemctl", "is-active", "watchdog-mux"]).trim(), "active");

    // Fed, then stopped with the magic 'V': nothing happens.
    watchdog_client(&lab, "wd-clean", "printf '\\0'; sleep 3; printf V");
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        run(&lab, "node3", &["test", "-d", "/run/watchdog-mux.active"]).success(),
        "a client is connected"
    );
    std::thread::sleep(Duration::from_secs(15));
    assert!(lab.is_up(n3), "a disarmed watchdog leaves the node on");
    assert!(!run(&lab, "node3", &["test", "-d", "/run/watchdog-mux.active"]).success(), "no client left");

    // Fed, then killed without 'V': the node is off within the 10 s of the device.
    watchdog_client(&lab, "wd-killed", "printf '\\0'; sleep 600");
    std::thread::sleep(Duration::from_secs(2));
    ok(&lab, "node3", &["systemctl", "kill", "--signal=KILL", "wd-killed"]);
    let killed = Instant::now();
    wait_for("node3 off", Duration::from_secs(15), || !lab.is_up(n3));
    let off = killed.elapsed();
    eprintln!("node3 off {off:.1?} after its watchdog client was killed");
    assert!(off > Duration::from_secs(7), "the device's 10 s run out first: {off:?}");
    let journal = lab.logs(n3, &["-u", "watchdog-mux", "-o", "cat"]).unwrap();
    assert!(journal.contains("client did not stop watchdog - disable watchdog updates"), "{journal}");
    assert!(!lab.driver(&["ping", "-c", "1", "-W", "1", &n3.lan_ip().to_string()]).unwrap().success());
}
