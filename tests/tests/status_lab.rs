//! `dlll_cias-status` (issue 15, "Done when") on a 3-node lab installed by dlll_cias-setup:
//! healthy and exit 0; a node powered off: degraded, exit 1, the node named; the master's
//! mfsmaster stopped (and kept from restarting): broken, exit 2.

#![allow(clippy::print_stderr)]

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
    let named = problems(&degraded);
    assert!(named.len() == 1 && named[0].starts_with(&format!("{} is ", others[1])), "{named:?}");
    // Until the membership notices, it is "online but did not answer".
    wait_for("the node listed offline", std::time::Duration::from_secs(60), || {
        problems(&status(&lab, master).1) == [format!("{} is offline", others[1])]
    });

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
