//! The uplink watch (issue 14, "Done when") in a 3-node lab installed by dlll_cias-setup, each
//! look run through its installed cron line, with `uplink.shutdown_after_mins: 1`. The lab's
//! uplink target (the driver's LAN address) stops answering one node's pings; the rest of its
//! network works. One installed lab, in this order:
//! - a non-master node loses its uplink: one power-off is scheduled (a second look does not
//!   schedule another), a logged-in administrator gets the wall message, the administrator is
//!   mailed; the uplink comes back: cancelled. Lost again and kept: its VM is shut down cleanly
//!   and the node powers off; booted with its uplink back, it says the loss is over.
//! - the master loses its uplink: at the deadline it hands its role and the router to a node
//!   whose uplink answers, stops its VM, and powers off.

#![allow(clippy::print_stderr)]

use std::time::Duration;

use cias_tests::cluster_probe::*;
use xtask::lab::{Lab, Node};

const TIMER: &str = "dlll-cias-uplink-power-off.timer";
const ROUTER: u32 = 100;

fn look(lab: &Lab, node: Node) {
    run_cron_job(lab, node, "dlll_cias-watch uplink");
}

fn timer_active(lab: &Lab, node: Node) -> bool {
    sh(lab, node, &format!("systemctl is-active {TIMER} || true")).trim() == "active"
}

/// The watch's journal of `node` (also while it is off).
fn watch_journal(lab: &Lab, node: Node) -> String {
    lab.logs(node, &["-t", "dlll_cias-watch", "-o", "cat"]).unwrap()
}

/// The status of VM `vmid` as the cluster lists it, seen from `reader`.
fn vm_status(lab: &Lab, reader: Node, vmid: u32) -> String {
    let json = sh(lab, reader, "pvesh get /cluster/resources --type vm --output-format json");
    let vms: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let vm = vms.iter().find(|v| v["vmid"] == vmid).unwrap_or_else(|| panic!("no VM {vmid}: {json}"));
    format!("{} on {}", vm["status"].as_str().unwrap(), vm["node"].as_str().unwrap())
}

fn mails_about(lab: &Lab, node: Node, words: &str) -> usize {
    lab.mail()
        .unwrap()
        .iter()
        .filter(|m| m.header("Subject").is_some_and(|s| s.contains(&node.name()) && s.contains(words)))
        .count()
}

#[test]
fn a_node_without_uplink_powers_off_once_its_vms_are_stopped_unless_the_link_comes_back() {
    let step = stepper();
    let (lab, _down) = installed_lab(3);
    let nodes = lab.nodes().to_vec();
    set_setting(&lab, &nodes, "shutdown_after_mins", "1");
    let master = master(&lab);
    let node = *nodes.iter().find(|&&n| n != master).unwrap();
    step(&format!("{node} (not master) runs VM 3101; an administrator is logged in there"));
    start_vms(&lab, node, master, &[(3101, 64)], "");
    let terminal = std::env::temp_dir().join(format!("cias-uplink-terminal-{node}.log"));
    let _ = std::fs::remove_file(&terminal);
    lab.terminal(node, &["sleep", "300"], &terminal).unwrap();
    std::thread::sleep(Duration::from_secs(2));

    step("a look with the uplink answering changes nothing");
    look(&lab, node);
    assert!(!timer_active(&lab, node));
    assert!(
        watch_journal(&lab, node).contains("uplink: the uplink answers"),
        "{}",
        watch_journal(&lab, node)
    );

    step("uplink cut: one power-off scheduled, the administrator told");
    lab.cut_uplink(&[node]).unwrap();
    look(&lab, node);
    assert!(timer_active(&lab, node), "a power-off is scheduled");
    look(&lab, node);
    let timers = sh(&lab, node, "systemctl list-timers --all --no-legend | grep -c dlll-cias-uplink || true");
    assert_eq!(timers.trim(), "1", "scheduled once");
    let journal = watch_journal(&lab, node);
    assert_eq!(journal.matches("uplink: power-off scheduled at").count(), 1, "{journal}");
    assert!(journal.contains("uplink: no answer for"), "the second look leaves it: {journal}");
    wait_for("the wall message on the administrator's terminal", Duration::from_secs(10), || {
        std::fs::read_to_string(&terminal).unwrap_or_default().contains("has had no uplink since")
    });
    assert_eq!(mails_about(&lab, node, "has no uplink and powers off"), 1);

    step("uplink back before the deadline: cancelled");
    lab.cut_uplink(&[]).unwrap();
    look(&lab, node);
    assert!(!timer_active(&lab, node), "the power-off is cancelled");
    assert!(watch_journal(&lab, node).contains("uplink: power-off cancelled: the uplink answers again"));
    wait_for("the cancel on the administrator's terminal", Duration::from_secs(10), || {
        std::fs::read_to_string(&terminal).unwrap_or_default().contains("is cancelled")
    });
    std::thread::sleep(Duration::from_secs(70));
    assert!(lab.is_up(node), "a cancelled power-off does not happen");
    assert_eq!(vm_status(&lab, master, 3101), format!("running on {node}"));

    step("uplink cut and kept: the VM is shut down, then the node powers off");
    lab.cut_uplink(&[node]).unwrap();
    look(&lab, node);
    wait_for(&format!("{node} powered off"), Duration::from_secs(180), || !lab.is_up(node));
    let journal = watch_journal(&lab, node);
    assert!(journal.contains("VM 3101 shut down"), "{journal}");
    // A power cut leaves a heartbeat last; a clean stop, its DOWN record.
    let last = last_disk_record(&lab, master, 3101);
    assert!(last.starts_with(&format!("DOWN 3101 {node} ")), "{last}");
    assert!(lab.is_up(master), "the other nodes stay up");

    step("booted with its uplink back: the loss is over");
    lab.heal().unwrap();
    lab.power_on(node).unwrap();
    look(&lab, node);
    assert!(!timer_active(&lab, node));
    let journal = watch_journal(&lab, node);
    assert!(journal.contains("uplink: power-off cancelled: the uplink answers again"), "{journal}");

    step("the master loses its uplink: role and router handed over, then it powers off");
    start_vms(&lab, master, node, &[(3102, 64)], "");
    lab.cut_uplink(&[master]).unwrap();
    look(&lab, master);
    assert!(timer_active(&lab, master));
    explained_by(&lab, &nodes, || {
        wait_for(&format!("{master} powered off"), Duration::from_secs(300), || !lab.is_up(master));
    });
    let successor = holders(&lab, MASTER_VIP);
    assert_eq!(successor.len(), 1, "one new master: {successor:?}");
    let successor = successor[0];
    assert_ne!(successor, master);
    assert_eq!(vm_status(&lab, successor, ROUTER), format!("running on {successor}"), "the router moved");
    let last = last_disk_record(&lab, successor, 3102);
    assert!(last.starts_with(&format!("DOWN 3102 {master} ")), "{last}");
    let journal = watch_journal(&lab, master);
    assert!(journal.contains(&format!("handed over to {successor}")), "{journal}");
    assert_eq!(mails_about(&lab, master, "powers off (no uplink)"), 1);
}
