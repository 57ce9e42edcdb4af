//! `dlll_cias-status` (issue 15, "Done when") on a 3-node lab installed by dlll_cias-setup:
//! healthy and exit 0; a node powered off: degraded, exit 1, the node named, and a file whose
//! goal the two remaining chunkservers cannot meet counted under its goal; the master's
//! mfsmaster stopped (and kept from restarting): broken, exit 2.

#![allow(clippy::print_stderr)]

use std::time::Duration;

use cias_tests::cluster_probe::*;
use xtask::lab::{Lab, Node};

/// `dlll_cias-status --json` on `node`: its exit status and the object it printed.
fn status(lab: &Lab, node: Node) -> (i32, serde_json::Value) {
    let out = sh(lab, node, "dlll_cias-status --json; echo \"exit=$?\"");
    let (json, code) = out.rsplit_once("exit=").unwrap_or_else(|| panic!("no exit status in {out}"));
    let value = serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    (code.trim().parse().unwrap(), value)
}

fn problems(status: &serde_json::Value) -> Vec<String> {
    status["problems"].as_array().unwrap().iter().map(|p| p["what"].as_str().unwrap().to_string()).collect()
}

#[test]
fn the_status_says_healthy_degraded_or_broken_and_names_the_cause() {
    let step = stepper();
    let (lab, _down) = installed_lab(3);
    let master = master(&lab);
    let others: Vec<Node> = lab.nodes().iter().copied().filter(|&n| n != master).collect();
    // The VMID map is the master's every-minute job; don't wait for cron.
    run_cron_job(&lab, master, "dlll_cias-watch vmids");

    step("the installed cluster: healthy");
    let (code, healthy) = status(&lab, others[0]);
    assert_eq!((code, healthy["health"].as_str()), (0, Some("healthy")), "{healthy:#}");
    assert_eq!(healthy["chunks"]["undergoal"], 0, "the master counted its chunks: {healthy:#}");
    let nodes = healthy["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    let holders: Vec<&str> = nodes
        .iter()
        .filter(|n| n["report"]["holds_master_vip"] == true)
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(holders, [master.name().as_str()]);
    let table = sh(&lab, others[0], "dlll_cias-status || true");
    assert!(table.starts_with("DLLL-CIAS cluster: HEALTHY"), "{table}");

    step(&format!("{} powered off: degraded", others[1]));
    lab.power_off(others[1]).unwrap();
    let (code, degraded) = status(&lab, master);
    assert_eq!((code, degraded["health"].as_str()), (1, Some("degraded")), "{degraded:#}");
    // The node (and chunks short of copies, if some had one on its disks), nothing else.
    let short = |p: &String| p.contains("fewer copies than their goal");
    let named = problems(&degraded);
    assert!(named.iter().any(|p| p.starts_with(&format!("{} is ", others[1]))), "{named:?}");
    assert!(named.iter().all(|p| p.starts_with(&format!("{} is ", others[1])) || short(p)), "{named:?}");
    // Until the membership notices, it is "online but did not answer".
    let offline = format!("{} is offline", others[1]);
    wait_for("the node listed offline", Duration::from_secs(60), || {
        let named = problems(&status(&lab, master).1);
        named.contains(&offline) && named.iter().all(|p| *p == offline || short(p))
    });
    // Two chunkservers left: a file whose goal is three copies stays short of one.
    sh(
        &lab,
        master,
        "mkdir -p /mnt/mfs/goal3 && mfssetgoal 3 /mnt/mfs/goal3 && \
         dd if=/dev/urandom of=/mnt/mfs/goal3/f bs=64k count=4 status=none && sync /mnt/mfs/goal3/f",
    );
    let mut last = serde_json::Value::Null;
    let seen = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("the chunk short of its goal named", Duration::from_secs(30), || {
            last = status(&lab, master).1;
            last["health"] == "degraded" && problems(&last).iter().any(short)
        })
    }));
    assert!(seen.is_ok(), "last status: {last:#}");
    assert_eq!(last["chunks"]["undergoal"], 1, "{last:#}");

    step("the master's mfsmaster stopped and kept from restarting: broken");
    // Its loop would restart it within seconds: masked, it cannot, and the node gives the
    // role up (the VIP may be gone as the status looks).
    sh(&lab, master, "systemctl mask --runtime --now moosefs-master");
    let (code, broken) = status(&lab, others[0]);
    sh(&lab, master, "systemctl unmask --runtime moosefs-master");
    assert_eq!((code, broken["health"].as_str()), (2, Some("broken")), "{broken:#}");
    let first = &problems(&broken)[0];
    let expected = [
        format!("{master} holds the master VIP but its mfsmaster does not run: storage is down"),
        "no node holds the master VIP: storage and the router have no master".to_string(),
    ];
    assert!(expected.contains(first), "{broken:#}");
    assert!(broken["problems"][0]["fix"].as_str().unwrap().contains("dlll_cias-switch-to-master"));
}
