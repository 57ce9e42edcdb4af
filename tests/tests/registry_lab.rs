//! The address registry in a real 3-node lab (issue 11): node1 installs the cluster; node2's
//! next address answers on the network already, so its setup refuses with nothing changed;
//! then node2 and node3 extend the cluster at the same moment and get different addresses.
//!
//! Both extends read the registry while node1 holds its directory's lock, so both claim the
//! same address and meet at the compare-and-swap: the race is certain, not left to timing.

#![allow(clippy::print_stderr)]

use std::time::Instant;

use cias_tests::lab_support::shared_lab;
use xtask::demo;
use xtask::lab::{Lab, Node};

const REGISTRY: &str = "/mnt/mfs/cias/registry.yaml";
const RETRY: &str = "changed since it was read (another writer): changing it again";

fn sh(lab: &Lab, node: Node, script: &str) -> String {
    lab.sh(node, script).unwrap_or_else(|e| panic!("{node}: {script}: {e:#}"))
}

/// The address the shared registry gives node `name` (its YAML entry's `ip`).
fn registered(registry: &str, name: &str) -> String {
    registry
        .split("\n- ")
        .find(|entry| entry.lines().any(|l| l.trim() == format!("node_name: {name}")))
        .and_then(|entry| entry.lines().find_map(|l| l.trim().strip_prefix("ip: ")))
        .unwrap_or_else(|| panic!("{name} not in the registry:\n{registry}"))
        .to_string()
}

#[test]
fn extends_at_the_same_time_get_different_addresses_and_a_used_address_is_refused() {
    let started = Instant::now();
    let step = |what: &str| eprintln!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
    let lab = shared_lab(1);
    let (n1, n2, n3) = (Node::new(1).unwrap(), Node::new(2).unwrap(), Node::new(3).unwrap());
    demo::install_binaries(&lab).unwrap();
    demo::prepare_first(&lab, n1).unwrap();

    step("node1 installs the cluster");
    let out = demo::setup(&lab, n1, &[]).unwrap();
    assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
    // New nodes boot on temporary addresses outside the plan (the lab's 10.254.1.N are the
    // very addresses the registry hands out next). Deleted first: deleting a primary address
    // takes the secondaries of its subnet along.
    for (n, temporary) in [(n2, "10.254.9.2"), (n3, "10.254.9.3")] {
        sh(
            &lab,
            n,
            &format!("ip addr del 10.254.1.{}/8 dev eth0 && ip addr add {temporary}/8 dev eth0", n.index()),
        );
    }

    step("node2's next address is in use on the network: refused, nothing changed");
    sh(&lab, n1, "ip addr add 10.254.1.1/8 dev vmbr0");
    let mac = sh(&lab, n1, "ip -br link show dev vmbr0 | awk '{print $3}'").trim().to_uppercase();
    let registry_before = sh(&lab, n1, &format!("cat {REGISTRY}"));
    demo::prepare_extension(&lab, n2, n1, 50).unwrap();
    let out = demo::setup(&lab, n2, &[]).unwrap();
    assert!(!out.success(), "setup must refuse a used address:\n{}", out.stdout);
    assert!(
        out.stderr.contains("address 10.254.1.1, the next one of the registry, is already used")
            && out.stderr.contains(&mac),
        "the error names the address and who has it:\n{}",
        out.stderr
    );
    assert_eq!(sh(&lab, n1, &format!("cat {REGISTRY}")), registry_before, "the registry is unchanged");
    assert_eq!(sh(&lab, n2, "test -e /data/cias/registry.yaml && echo yes || echo no").trim(), "no");
    sh(&lab, n1, "ip addr del 10.254.1.1/8 dev vmbr0");

    step("node2 and node3 extend at the same moment");
    demo::prepare_extension(&lab, n3, n1, 50).unwrap();
    // Held for 20 s: both extends read the registry and claim from the same content meanwhile.
    sh(&lab, n1, "setsid flock /mnt/mfs/cias sleep 20 </dev/null >/dev/null 2>&1 & sleep 0.5");
    let outs = std::thread::scope(|s| {
        let lab = &lab;
        [n2, n3].map(|n| s.spawn(move || demo::setup(lab, n, &[]).unwrap())).map(|r| r.join().unwrap())
    });
    for (n, out) in [n2, n3].iter().zip(&outs) {
        assert!(out.success(), "{n}:\n{}\n{}", out.stdout, out.stderr);
    }
    step("both installed");

    let registry = sh(&lab, n1, &format!("cat {REGISTRY}"));
    let (ip2, ip3) = (registered(&registry, "node2"), registered(&registry, "node3"));
    assert_ne!(ip2, ip3, "one address for two nodes:\n{registry}");
    let mut ips = [ip2.clone(), ip3.clone()];
    ips.sort();
    assert_eq!(ips, ["10.254.1.1", "10.254.1.2"], "{registry}");
    for (n, ip) in [(n2, &ip2), (n3, &ip3)] {
        assert!(sh(&lab, n, "ip -o -4 addr show dev vmbr0").contains(&format!(" {ip}/")), "{n} has {ip}");
        // Its own copy is the registry as it saved it (the shared one is the cluster's).
        assert_eq!(registered(&sh(&lab, n, "cat /data/cias/registry.yaml"), &n.to_string()), *ip);
    }
    let retried: Vec<Node> = [n2, n3]
        .into_iter()
        .filter(|&n| sh(&lab, n, &format!("cat /data/cias/nodes/{n}/setup.log")).contains(RETRY))
        .collect();
    assert_eq!(retried.len(), 1, "exactly one extend lost the race and claimed again: {retried:?}");
    let status = cias_core::proxmox::pvecm::parse_status(&sh(&lab, n1, "pvecm status")).unwrap();
    assert_eq!((status.quorate, status.members.len()), (true, 3));
    step("done");
}
