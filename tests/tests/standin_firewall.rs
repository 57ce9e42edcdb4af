//! The Proxmox stand-in's VM firewall on real network namespaces: two VMs with `firewall=1` on
//! their NIC and the `.fw` files dlll-cias writes (SPEC section 8) reach each other and the nodes
//! from their own addresses, also after a live migration; claiming a node's address or the
//! master VIP, or sending from another MAC, reaches nothing and poisons no neighbour table;
//! without the VM's `.fw` the same spoof goes through at the service's next round. Runs as root.

use std::time::{Duration, Instant};

use cias_tests::cluster_probe::{stepper, wait_for};
use cias_tests::lab_support::{shared_lab, LabSession};

const MARK: &str = "# Written by dlll-cias (SPEC section 8: anti-spoofing); edits are overwritten.";
const VIP: &str = "10.254.0.254";
/// VM 101's NIC.
const VM_MAC: &str = "bc:24:11:00:01:01";

fn run(lab: &LabSession, node: &str, argv: &[&str]) -> xtask::lab::Output {
    lab.exec(lab.node(node).unwrap(), argv).unwrap()
}

fn ok(lab: &LabSession, node: &str, argv: &[&str]) -> String {
    let out = run(lab, node, argv);
    assert!(out.success(), "{node}: {argv:?} exited {}: {}{}", out.status, out.stdout, out.stderr);
    out.stdout
}

fn sh(lab: &LabSession, node: &str, script: &str) -> String {
    ok(lab, node, &["sh", "-c", script])
}

/// Writes `text` to `path` on `node` (no single quotes in `text`).
fn write(lab: &LabSession, node: &str, path: &str, text: &str) {
    sh(lab, node, &format!("printf '%s' '{text}' > {path}"));
}

/// `argv` inside VM `vmid`'s network namespace on `node`.
fn in_vm(lab: &LabSession, node: &str, vmid: u32, argv: &[&str]) -> xtask::lab::Output {
    let ns = format!("vm{vmid}");
    let mut full = vec!["ip", "netns", "exec", ns.as_str()];
    full.extend_from_slice(argv);
    run(lab, node, &full)
}

fn pings(lab: &LabSession, node: &str, vmid: u32, target: &str) -> bool {
    in_vm(lab, node, vmid, &["ping", "-c", "1", "-W", "1", target]).success()
}

/// `vmid` reaches `target` within 5 s (the first ping may wait for ARP).
fn reaches(lab: &LabSession, node: &str, vmid: u32, target: &str) {
    wait_for(&format!("VM {vmid} on {node} reaching {target}"), Duration::from_secs(5), || {
        pings(lab, node, vmid, target)
    });
}

/// `vmid` reaches neither by ping (two tries) nor, for a node, by TCP on port 22.
fn reaches_nothing(lab: &LabSession, node: &str, vmid: u32, targets: &[&str]) {
    for target in targets {
        assert!(
            !in_vm(lab, node, vmid, &["ping", "-c", "2", "-W", "1", target]).success(),
            "VM {vmid} reached {target}"
        );
        if target.starts_with("10.254.") {
            assert!(
                !in_vm(lab, node, vmid, &["nc", "-z", "-w", "2", target, "22"]).success(),
                "VM {vmid} connected to {target}:22"
            );
        }
    }
}

/// The VM's only IPv4 address becomes `cidr` (what a guest's administrator could do).
fn readdress(lab: &LabSession, node: &str, vmid: u32, cidr: &str) {
    sh(lab, node, &format!("ip -n vm{vmid} addr flush dev eth0 && ip -n vm{vmid} addr add {cidr} dev eth0"));
}

/// The link-layer address `node` has for `ip`, if any.
fn neighbour(lab: &LabSession, node: &str, ip: &str) -> String {
    let out = ok(lab, node, &["ip", "neigh", "show", ip]);
    out.split_whitespace().skip_while(|w| *w != "lladdr").nth(1).unwrap_or_default().to_string()
}

fn mac_of(lab: &LabSession, node: &str, link: &str) -> String {
    let out = ok(lab, node, &["ip", "-br", "link", "show", link]);
    out.split_whitespace().nth(2).unwrap().to_string()
}

/// vmbr0 with the node's LAN address and eth0 as its port, applied by the stand-in's ifreload.
fn bridge(lab: &LabSession, node: &str) {
    let ip = lab.node(node).unwrap().lan_ip();
    write(
        lab,
        node,
        "/etc/network/interfaces",
        &format!(
            "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet manual\n\nauto vmbr0\n\
             iface vmbr0 inet static\n\taddress {ip}/8\n\tbridge-ports eth0\n\tbridge-stp off\n\tbridge-fd 0\n"
        ),
    );
    ok(lab, node, &["ifreload", "-a"]);
}

/// node1 and node2 in a cluster with a shared directory storage (for the live migration).
fn cluster(lab: &LabSession) {
    cias_tests::lab_support::standin_cluster(lab, &["node1", "node2"], "images").unwrap();
}

/// The ipset dlll-cias writes for a VM: its address and the DHCP range.
fn vm_ipset(vmid: u32, ip: &str) -> String {
    format!("[IPSET ipfilter-net0] # the address of VMID {vmid}, and the DHCP range\n{ip}\n10.251.0.0/16\n")
}

/// VM `vmid` on `node` as dlll-cias leaves it: its firewall file, then `firewall=1` on net0.
/// `ipconfig0` gives it an address (cloud-init); the router has its own.
fn secured_vm(lab: &LabSession, node: &str, vmid: u32, mac: &str, ipset: &str, ipconfig0: Option<&str>) {
    write(
        lab,
        node,
        &format!("/etc/pve/firewall/{vmid}.fw"),
        &format!(
            "{MARK}\n[OPTIONS]\nenable: 1\nipfilter: 1\nmacfilter: 1\ndhcp: 1\npolicy_in: ACCEPT\npolicy_out: ACCEPT\n\n{ipset}"
        ),
    );
    let id = vmid.to_string();
    let net0 = format!("virtio={mac},bridge=vmbr0");
    let mut create =
        vec!["qm", "create", &id, "--memory", "512", "--scsi0", "shared_disks:1", "--net0", &net0];
    if let Some(ipconfig) = ipconfig0 {
        create.extend(["--ipconfig0", ipconfig]);
    }
    ok(lab, node, &create);
    ok(lab, node, &["qm", "set", &id, "--net0", &format!("{net0},firewall=1")]);
    assert!(ok(lab, node, &["qm", "config", &id]).contains(&format!("net0: {net0},firewall=1\n")));
    ok(lab, node, &["qm", "start", &id]);
}

#[test]
fn the_vm_firewall_stops_address_and_mac_spoofing() {
    let step = stepper();
    let lab = shared_lab(1);
    step("lab up");
    bridge(&lab, "node1");
    bridge(&lab, "node2");
    cluster(&lab);
    step("cluster of node1 and node2");
    // pmxcfs has no firewall directory until pve-firewall's API first saves a file there.
    ok(&lab, "node1", &["mkdir", "-p", "/etc/pve/firewall"]);
    write(
        &lab,
        "node1",
        "/etc/pve/firewall/cluster.fw",
        &format!("{MARK}\n[OPTIONS]\nenable: 1\npolicy_in: ACCEPT\npolicy_out: ACCEPT\n"),
    );
    for node in ["node1", "node2"] {
        write(
            &lab,
            node,
            &format!("/etc/pve/nodes/{node}/host.fw"),
            &format!("{MARK}\n[OPTIONS]\nenable: 0\n"),
        );
    }
    secured_vm(&lab, "node1", 101, &VM_MAC.to_uppercase(), &vm_ipset(101, "10.0.1.1"), Some("ip=10.0.1.1/8"));
    secured_vm(&lab, "node2", 102, "BC:24:11:00:01:02", &vm_ipset(102, "10.0.1.2"), Some("ip=10.0.1.2/8"));
    // Filtered from the first frame: the rules are in before the NIC joins the bridge.
    assert!(ok(&lab, "node1", &["nft", "list", "table", "bridge", "pve_standin_fw"]).contains("tap101i0-OUT"));
    assert_eq!(ok(&lab, "node1", &["pve-firewall", "status"]), "Status: enabled/running\n");
    step("VMs 101 (node1) and 102 (node2) running");

    reaches(&lab, "node1", 101, "10.0.1.2");
    reaches(&lab, "node1", 101, "10.254.1.2");
    reaches(&lab, "node2", 102, "10.0.1.1");
    step("the VMs reach each other and a node from their own addresses");

    let out = ok(&lab, "node1", &["qm", "migrate", "101", "node2", "--online"]);
    assert!(out.ends_with("TASK OK\n"), "{out}");
    assert!(ok(&lab, "node2", &["nft", "list", "table", "bridge", "pve_standin_fw"]).contains("tap101i0-OUT"));
    reaches(&lab, "node2", 102, "10.0.1.1");
    wait_for("node1 reaching VM 101 on node2", Duration::from_secs(5), || {
        run(&lab, "node1", &["ping", "-c", "1", "-W", "1", "10.0.1.1"]).success()
    });
    step("VM 101 migrated live to node2, reachable at its address");

    // The router forwards the internet's traffic: it may send from any address outside
    // 10.0.0.0/8, and inside it only from its own (the nomatch entry, overridden by the more
    // specific 10.0.0.254). 10.0.1.50 is VM 150's, which does not run: only the filter stops it.
    let router_ipset = "[IPSET ipfilter-net0] # the router: its own address, nothing else of 10.0.0.0/8\n\
                        10.0.0.254\n!10.0.0.0/8\n0.0.0.0/1\n128.0.0.0/1\n";
    secured_vm(&lab, "node1", 100, "02:CA:5E:FF:01:00", router_ipset, None);
    wait_for("the router's SSH from node2", Duration::from_secs(5), || {
        run(&lab, "node2", &["nc", "-z", "-w", "1", "10.0.0.254", "22"]).success()
    });
    sh(
        &lab,
        "node1",
        "ip -n vm100 addr add 10.0.1.50/32 dev eth0 && ip -n vm100 addr add 203.0.113.7/32 dev eth0",
    );
    sh(&lab, "node2", "ip route replace 203.0.113.7/32 dev vmbr0");
    let from = |source: &str| {
        in_vm(&lab, "node1", 100, &["ping", "-c", "1", "-W", "1", "-I", source, "10.254.1.2"]).success()
    };
    wait_for("the router reaching node2 from an outside address", Duration::from_secs(5), || {
        from("203.0.113.7")
    });
    assert!(from("10.0.0.254"));
    assert!(!from("10.0.1.50"), "the router sent from VM 150's address");
    ok(&lab, "node1", &["qm", "stop", "100"]);
    step("the router VM: filtered as its ipset says");

    // VM 101 claims node3's address: nothing answers, node1 keeps node3's MAC for it.
    ok(&lab, "node1", &["ping", "-c", "1", "-W", "2", "10.254.1.3"]);
    let node3_mac = neighbour(&lab, "node1", "10.254.1.3");
    assert_eq!(node3_mac, mac_of(&lab, "node3", "eth0"));
    readdress(&lab, "node2", 101, "10.254.1.3/8");
    reaches_nothing(&lab, "node2", 101, &["10.0.1.2", "10.254.1.1"]);
    in_vm(&lab, "node2", 101, &["arping", "-U", "-c", "2", "-I", "eth0", "10.254.1.3"]);
    in_vm(&lab, "node2", 101, &["arping", "-A", "-c", "2", "-I", "eth0", "10.254.1.3"]);
    assert_eq!(neighbour(&lab, "node1", "10.254.1.3"), node3_mac, "node1's neighbour table is not poisoned");
    step("a node's address: blocked, no ARP poisoning");

    // VM 101 claims the master VIP. Static neighbours on both sides leave ARP out of it: the
    // source address check alone blocks.
    readdress(&lab, "node2", 101, &format!("{VIP}/8"));
    sh(
        &lab,
        "node2",
        &format!("ip -n vm101 neigh replace 10.254.1.1 lladdr {} dev eth0", mac_of(&lab, "node1", "vmbr0")),
    );
    sh(&lab, "node1", &format!("ip neigh replace {VIP} lladdr {VM_MAC} dev vmbr0"));
    reaches_nothing(&lab, "node2", 101, &["10.254.1.1", "10.0.1.2"]);
    step("the master VIP: blocked");

    // Its own address from another MAC: dropped; back to its MAC: through.
    readdress(&lab, "node2", 101, "10.0.1.1/8");
    sh(&lab, "node2", "ip -n vm101 link set eth0 address 02:00:00:00:01:99");
    reaches_nothing(&lab, "node2", 101, &["10.0.1.2", "10.254.1.1"]);
    sh(&lab, "node2", &format!("ip -n vm101 link set eth0 address {VM_MAC}"));
    reaches(&lab, "node2", 101, "10.0.1.2");
    step("a forged source MAC: dropped");

    // Without its firewall file the VM is unfiltered at the service's next round.
    readdress(&lab, "node2", 101, &format!("{VIP}/8"));
    ok(&lab, "node2", &["rm", "/etc/pve/firewall/101.fw"]);
    let removed = Instant::now();
    wait_for("the VIP spoof going through", Duration::from_secs(15), || {
        pings(&lab, "node2", 101, "10.254.1.1")
    });
    let after = removed.elapsed();
    step(&format!("101.fw removed: the VIP spoof reaches node1 after {after:.1?}"));
    assert!(in_vm(&lab, "node2", 101, &["nc", "-z", "-w", "2", "10.254.1.1", "22"]).success());
    readdress(&lab, "node2", 101, "10.254.1.3/8");
    in_vm(&lab, "node2", 101, &["arping", "-U", "-c", "2", "-I", "eth0", "10.254.1.3"]);
    wait_for("node1's entry for node3 poisoned", Duration::from_secs(5), || {
        neighbour(&lab, "node1", "10.254.1.3") == VM_MAC
    });
    step("unfiltered: the ARP claim poisons node1's table (what the firewall stopped)");

    ok(&lab, "node2", &["qm", "stop", "101"]);
    ok(&lab, "node2", &["qm", "stop", "102"]);
    assert!(!run(&lab, "node2", &["ip", "link", "show", "tap101i0"]).success(), "the NIC goes with the VM");
}
