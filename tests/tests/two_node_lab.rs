//! Two-node clusters (issue 16): with a QDevice on the lab's NAS (the stand-in's qnetd
//! arbiter), a master's power-off is taken over and the NAS's power-off changes nothing;
//! without one, setup says automatic takeover is off, and a master's power-off leaves the
//! survivor running (no self-fence) until the administrator does what every mail says.

#![allow(clippy::print_stderr)]

use std::time::Duration;

use cias_tests::cluster_probe::*;
use xtask::demo;
use xtask::lab::{nas, Lab, LabConfig, Node};

const VM: u32 = 2101;
const OFF: &str = "Automatic takeover is OFF";

fn pvecm_status(lab: &Lab, node: Node) -> String {
    sh(lab, node, "pvecm status || true")
}

fn status_json(lab: &Lab, node: Node) -> serde_json::Value {
    let out = lab.exec(node, &["dlll_cias-status", "--json"]).unwrap();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("status --json: {e}\n{}", out.stdout))
}

fn mails_with(lab: &Lab, needle: &str) -> Vec<String> {
    lab.mail().unwrap().into_iter().map(|m| m.body()).filter(|b| b.contains(needle)).collect()
}

fn other(lab: &Lab, node: Node) -> Node {
    *lab.nodes().iter().find(|&&n| n != node).unwrap()
}

#[test]
fn two_node_clusters() {
    let step = stepper();
    step("two nodes with a QDevice on the NAS");
    with_qdevice(&step);
    step("two nodes without a QDevice");
    without_qdevice(&step);
}

fn with_qdevice(step: &impl Fn(&str)) {
    let (lab, _down) = installed_lab(2);
    let m = master(&lab);
    let backup = other(&lab, m);
    for node in [m, backup] {
        let status = pvecm_status(&lab, node);
        for line in [
            "Flags:            Quorate Qdevice ",
            "Total votes:      3",
            "0x00000000          1            Qdevice",
        ] {
            assert!(status.contains(line), "{node}'s pvecm status lacks '{line}':\n{status}");
        }
    }
    assert_eq!(status_json(&lab, backup)["automatic_takeover"], true);
    start_vms(&lab, backup, backup, &[(VM, 256)], "");
    step("router management from the non-master node");
    router_management(&lab, backup);
    step("the NAS registered: its storage on every node, the QDevice already on it");
    let added = nas_cmd(
        &lab,
        backup,
        &["add", &nas::address(), "--rack", "master-rack", "--slot", "nas", "--qdevice"],
        0,
    );
    assert!(added.contains("QDevice: already on this NAS"), "{added}");
    for node in [m, backup] {
        assert_eq!(storage_status(&lab, node).as_deref(), Some("active"), "the NAS's storage on {node}");
    }
    let again = nas_cmd(&lab, backup, &["add", &nas::address(), "--rack", "master-rack", "--slot", "nas"], 0);
    assert!(again.contains("already there"), "{again}");

    step("the NAS is powered off: nothing changes");
    nas::power_off().unwrap();
    wait_for("the QDevice's votes lost", Duration::from_secs(15), || {
        pvecm_status(&lab, backup).contains("Qdevice (votes 1)")
    });
    assert_eq!(storage_status(&lab, m).as_deref(), Some("inactive"), "the NAS's storage while it is off");
    let json = status_json(&lab, backup);
    assert_eq!(json["qdevice_voting"], false, "{json}");
    assert!(json["problems"].to_string().contains("the QDevice does not vote"), "{json}");
    for _ in 0..15 {
        assert_eq!(holders(&lab, MASTER_VIP), vec![m], "the master keeps the VIP");
        assert_eq!(mfsmasters(&lab), vec![m], "one mfsmaster, on the master");
        for node in [m, backup] {
            let status = pvecm_status(&lab, node);
            assert!(status.contains("Quorate:          Yes"), "{node} stays quorate:\n{status}");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(running_on(&lab, backup, 100).as_deref(), Some(m.name().as_str()), "the router stays");
    assert_eq!(running_on(&lab, backup, VM).as_deref(), Some(backup.name().as_str()), "the VM stays");
    nas::power_on().unwrap();
    wait_for("the QDevice voting again", Duration::from_secs(15), || {
        pvecm_status(&lab, backup).contains("Total votes:      3")
    });

    step("the master is powered off: the other node takes over, the router with it");
    lab.power_off(m).unwrap();
    explained(&lab, backup, || {
        wait_for("the survivor holding the VIP", Duration::from_secs(30), || holds(&lab, backup, MASTER_VIP));
        wait_for("the survivor's mfsmaster", Duration::from_secs(30), || master_runs_on(&lab, backup));
        wait_for("the router running on the survivor", Duration::from_secs(120), || {
            running_on(&lab, backup, 100).as_deref() == Some(backup.name().as_str())
        });
    });
    let status = pvecm_status(&lab, backup);
    assert!(status.contains("Total votes:      2") && status.contains("Quorate:          Yes"), "{status}");
    assert_eq!(running_on(&lab, backup, VM).as_deref(), Some(backup.name().as_str()), "the VM kept running");
    let show = router(&lab, backup, &["show"]);
    assert!(
        show.contains("forward 192.168.56.106:10180 -> 10.2.1.1:80"),
        "the forwards moved with the router:\n{show}"
    );
    assert!(
        mails_with(&lab, OFF).iter().all(|b| b.contains("until the cluster has a second node")),
        "a mail of this cluster with a QDevice says its takeover is off"
    );
}

/// The toolkit's `binary ARGS` on `node`, which must exit with `code`.
fn toolkit(lab: &Lab, node: Node, binary: &str, args: &[&str], code: i32) -> xtask::lab::Output {
    let mut argv = vec![binary];
    argv.extend_from_slice(args);
    let out = lab.exec(node, &argv).unwrap();
    assert_eq!(out.status, code, "{binary} {args:?}:\n{}\n{}", out.stdout, out.stderr);
    out
}

/// `dlll_cias-nas ARGS` on `node`, which must exit with `code`; its stdout and stderr.
fn nas_cmd(lab: &Lab, node: Node, args: &[&str], code: i32) -> String {
    let out = toolkit(lab, node, "dlll_cias-nas", args, code);
    format!("{}{}", out.stdout, out.stderr)
}

/// The lab NAS's storage in `pvesm status` on `node`: active, inactive, or not listed.
fn storage_status(lab: &Lab, node: Node) -> Option<String> {
    let status = sh(lab, node, "pvesm status 2>/dev/null");
    cias_core::proxmox::pvesm::parse_status(&status)
        .into_iter()
        .find(|r| r.id == nas::HOSTNAME)
        .map(|r| r.status)
}

/// `dlll_cias-router ARGS` on `node`, which must succeed; its stdout.
fn router(lab: &Lab, node: Node, args: &[&str]) -> String {
    toolkit(lab, node, "dlll_cias-router", args, 0).stdout
}

/// The router's script calls as its disk records them (`CALL <ms> <script> <json args>`).
fn router_calls(lab: &Lab, reader: Node) -> Vec<String> {
    sh(lab, reader, "grep -a '^CALL ' /mnt/mfs/images/100/vm-100-disk-0.raw || true")
        .lines()
        .map(|l| l.splitn(3, ' ').nth(2).unwrap_or_default().to_string())
        .collect()
}

fn router_management(lab: &Lab, node: Node) {
    let before = router_calls(lab, node).len();
    let added = router(lab, node, &["add-ip", "192.168.56.106"]);
    assert!(added.contains("router: set VM-management IP 2: 192.168.56.106"), "{added}");
    for n in lab.nodes() {
        sh(lab, *n, "grep -q '192.168.56.106' /data/cias/cias.yaml");
    }
    let forwarded = router(lab, node, &["forward", "2101"]);
    assert_eq!(forwarded.matches("router: forward ").count(), 4, "{forwarded}");
    let calls = router_calls(lab, node)[before..].to_vec();
    assert_eq!(
        calls,
        [
            r#"setup_ip_vm.sh ["2","192.168.56.106","255.255.255.0","192.168.56.1"]"#,
            r#"setup_port_forward.sh ["192.168.56.106","10180","10.2.1.1","80"]"#,
            r#"setup_port_forward.sh ["192.168.56.106","10143","10.2.1.1","443"]"#,
            r#"setup_port_forward.sh ["192.168.56.106","10122","10.2.1.1","22"]"#,
            r#"setup_port_forward.sh ["192.168.56.106","10189","10.2.1.1","3389"]"#,
        ]
    );
    step_again(lab, node, &["add-ip", "192.168.56.106"]);
    step_again(lab, node, &["forward", "2101"]);
    let dry = router(lab, node, &["forward", "2101", "--port", "10:8080", "--dry-run"]);
    assert!(dry.contains("setup_port_forward.sh 192.168.56.106 10110 10.2.1.1 8080"), "{dry}");
    let removed = router(lab, node, &["forward", "2101", "--service", "ssh", "--remove"]);
    assert!(removed.contains("router: remove the forward 192.168.56.106:10122 -> 10.2.1.1:22"), "{removed}");
    let show = router(lab, node, &["show"]);
    assert!(show.contains("VM-management IP 2: 192.168.56.106") && !show.contains(":10122 "), "{show}");
    assert_eq!(show.matches("forward ").count(), 3, "{show}");
    for (args, code) in [
        (&["remove-ip", "192.168.56.105"][..], 3),
        (&["remove-ip", "192.168.56.106"][..], 3),
        (&["add-ip", "10.0.0.5"][..], 2),
        (&["forward", "100"][..], 2),
        (&["forward", "2101", "--port", "100:80"][..], 2),
    ] {
        toolkit(lab, node, "dlll_cias-router", args, code);
    }
    router(lab, node, &["add-ip", "192.168.56.107"]);
    let gone = router(lab, node, &["remove-ip", "192.168.56.107"]);
    assert!(gone.contains("router: remove VM-management IP 3 (192.168.56.107)"), "{gone}");
    for n in lab.nodes() {
        assert!(!sh(lab, *n, "cat /data/cias/cias.yaml").contains("192.168.56.107"), "{n} still lists it");
    }
}

/// A second run of the same command changes nothing on the router.
fn step_again(lab: &Lab, node: Node, args: &[&str]) {
    let before = router_calls(lab, node).len();
    let again = router(lab, node, args);
    assert!(again.contains("nothing to change"), "{args:?} again:\n{again}");
    assert_eq!(router_calls(lab, node).len(), before, "{args:?} again called the router");
}

fn without_qdevice(step: &impl Fn(&str)) {
    let lab = Lab::up(&LabConfig { nodes: 2, ..Default::default() }).unwrap();
    let _down = Down;
    let (n1, n2) = (Node::new(1).unwrap(), Node::new(2).unwrap());
    demo::install_binaries(&lab).unwrap();
    demo::prepare_first(&lab, n1).unwrap();
    let first = demo::setup(&lab, n1, &[]).unwrap();
    assert_eq!(first.status, 0, "{}\n{}", first.stdout, first.stderr);
    demo::prepare_extension(&lab, n2, n1, 50).unwrap();
    let second = demo::setup(&lab, n2, &[]).unwrap();
    assert_eq!(second.status, 0, "{}\n{}", second.stdout, second.stderr);
    assert!(second.stderr.contains(OFF), "setup did not say takeover is off:\n{}", second.stderr);
    assert!(
        second.stderr.contains("after this join the cluster has two nodes and no QDevice"),
        "the plan did not warn:\n{}",
        second.stderr
    );
    assert!(second.stdout.contains("Automatic takeover: OFF (2 nodes, no QDevice"), "{}", second.stdout);
    let installed = mails_with(&lab, OFF);
    assert!(
        installed.iter().any(|b| b.contains("node2") && b.contains("pvecm expected 1")),
        "the install mail says so"
    );
    step("a NAS added and removed; refusals");
    let ip = nas::address();
    let args = ["add", ip.as_str(), "--rack", "master-rack", "--slot", "nas"];
    let silent = nas_cmd(&lab, n2, &["add", "10.253.1.2", "--rack", "master-rack", "--slot", "x"], 3);
    assert!(silent.contains("the NAS at 10.253.1.2 does not answer"), "{silent}");
    nas_cmd(&lab, n2, &["add", "10.254.1.9", "--rack", "master-rack", "--slot", "x"], 2);
    nas_cmd(&lab, n2, &args, 0);
    for node in [n1, n2] {
        assert_eq!(storage_status(&lab, node).as_deref(), Some("active"), "the NAS's storage on {node}");
    }
    let removed = nas_cmd(&lab, n1, &["remove", &ip], 0);
    assert!(removed.contains("retired"), "{removed}");
    for node in [n1, n2] {
        assert_eq!(storage_status(&lab, node), None, "the NAS's storage is gone on {node}");
    }
    let reused = nas_cmd(&lab, n2, &args, 3);
    assert!(reused.contains("never reused"), "{reused}");
    assert!(nas_cmd(&lab, n2, &["list"], 0).contains("removed"));

    let json = status_json(&lab, n2);
    assert_eq!(json["automatic_takeover"], false);
    assert_eq!(json["health"], "degraded", "{json}");
    assert_eq!(master(&lab), n1);
    start_vms(&lab, n2, n2, &[(VM, 256)], "");

    step("the master is powered off: the survivor fences nothing and takes nothing");
    lab.power_off(n1).unwrap();
    // Past the fence delay (10 s) with a margin: a node that fenced would have stopped its VM
    // and, with the watchdog starved, been reset.
    std::thread::sleep(Duration::from_secs(25));
    assert!(lab.is_up(n2), "the survivor was reset");
    assert!(!holds(&lab, n2, MASTER_VIP), "the survivor took the role without a majority");
    let vms = sh(&lab, n2, "qm list");
    assert!(
        vms.lines().any(|l| l.contains(" 2101 ") && l.contains(" running ")),
        "the survivor's VM was stopped:\n{vms}"
    );
    let fence_log = sh(&lab, n2, "cat /data/cias/nodes/node2/fence.log");
    assert!(!fence_log.contains("stop every VM"), "the survivor fenced itself:\n{fence_log}");

    step("the administrator makes the survivor master, as the mails say");
    sh(&lab, n2, "pvecm expected 1");
    let switch = lab.exec(n2, &["dlll_cias-switch-to-master"]).unwrap();
    explained(&lab, n2, || {
        assert_eq!(switch.status, 0, "{}\n{}", switch.stdout, switch.stderr);
        wait_for("the survivor holding the VIP", Duration::from_secs(30), || holds(&lab, n2, MASTER_VIP));
        wait_for("the router running on the survivor", Duration::from_secs(120), || {
            running_on(&lab, n2, 100).as_deref() == Some("node2")
        });
    });
    assert!(master_runs_on(&lab, n2));
    assert!(
        mails_with(&lab, OFF).iter().any(|b| !installed.contains(b)),
        "the switch's mail does not say takeover is off"
    );
}
