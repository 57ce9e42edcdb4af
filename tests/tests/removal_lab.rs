//! Scenario 6 and the master's node watch in a real 3-node lab installed by dlll_cias-setup
//! (issue 13, "Done when"). One installed lab, in this order: a node cut off for a moment is
//! neither removable by hand nor removed by the watch, and is forgotten once back; a powered-off
//! node carrying three VMs is removed by the watch after its (shortened) timer - the VMs run
//! again on their own disks, the node is gone from the cluster and its address retired; a
//! removal that would leave a minority is not done, and the administrator is told.

#![allow(clippy::print_stderr)]

use std::time::{Duration, Instant};

use cias_tests::cluster_probe::*;
use xtask::lab::{Lab, Node};

/// The watch's removal timer for this test (the default is 30 minutes).
const REMOVE_AFTER_SECS: u64 = 40;
/// node3's VMs, of different sizes (MiB).
const VMS: [(u32, u32); 3] = [(3101, 2048), (3102, 1024), (3103, 512)];

fn watch_nodes(lab: &Lab, master: Node) {
    sh(lab, master, "dlll_cias-watch nodes");
}

fn mail_subjects(lab: &Lab) -> Vec<String> {
    lab.mail().unwrap().iter().filter_map(|m| m.header("Subject")).collect()
}

#[test]
fn dead_nodes_are_removed_and_cut_off_ones_are_not() {
    let step = stepper();
    let (lab, _down) = installed_lab(3);
    let (n1, n2, n3) = (Node::new(1).unwrap(), Node::new(2).unwrap(), Node::new(3).unwrap());
    assert_eq!(master(&lab), n1);
    sh(
        &lab,
        n1,
        &format!("sed -i 's/node_removal_secs: .*/node_removal_secs: {REMOVE_AFTER_SECS}/' /data/cias/cias.yaml && grep -q 'node_removal_secs: {REMOVE_AFTER_SECS}' /data/cias/cias.yaml"),
    );
    watch_nodes(&lab, n1);

    step("node3 cut off for a moment: a removal by hand is refused, the watch only notes it");
    lab.partition(&[vec![n1, n2], vec![n3]]).unwrap();
    wait_for("node1 to see node3 gone", Duration::from_secs(10), || {
        sh(&lab, n1, "pvecm status || true").contains("Total votes:      2")
    });
    let out = lab.exec(n1, &["dlll_cias-remove-node", "--yes", "node3"]).unwrap();
    assert_eq!(out.status, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("outside the quorate partition for"), "{}", out.stderr);
    watch_nodes(&lab, n1);
    wait_for("the first-failure mail", Duration::from_secs(10), || {
        mail_subjects(&lab).iter().any(|s| s.contains("node3") && s.contains("does not answer"))
    });
    std::thread::sleep(Duration::from_secs(5));
    watch_nodes(&lab, n1);
    lab.heal().unwrap();
    wait_for("node3 back in the quorum", Duration::from_secs(30), || {
        lab.exec(n3, &["pvecm", "status"]).map(|o| o.status == 0).unwrap_or(false)
    });
    wait_for("the watch to forget node3", Duration::from_secs(30), || {
        watch_nodes(&lab, n1);
        !sh(&lab, n1, "cat /mnt/mfs/cias/node-watch.json").contains("node3")
    });
    assert!(members(&lab, n1).contains(&"node3".to_string()), "a node cut off for a moment stays a member");
    // Cut off longer than the fence delay, node3 fenced itself (VMs stopped, MooseFS force-
    // unmounted); its loop mounts MooseFS again once quorate, and VMs started there need it.
    wait_for("node3's /mnt/mfs mounted again", Duration::from_secs(60), || {
        lab.sh(n3, "mountpoint -q /mnt/mfs && timeout 2 stat -t /mnt/mfs/cias >/dev/null").is_ok()
    });

    step("three VMs on node3, then node3 powered off");
    start_vms(&lab, n3, n1, &VMS, "--onboot 1");
    let before: Vec<usize> = VMS.iter().map(|(vmid, _)| heartbeats(&lab, n1, *vmid).len()).collect();
    let off = Instant::now();
    lab.power_off(n3).unwrap();
    watch_nodes(&lab, n1);
    let removed = explained_by(&lab, &[n1, n2], || {
        wait_for("the watch to remove node3", Duration::from_secs(REMOVE_AFTER_SECS + 90), || {
            watch_nodes(&lab, n1);
            !members(&lab, n1).contains(&"node3".to_string())
        })
    });
    let removed = off.elapsed().min(removed + Duration::from_secs(1));
    eprintln!(
        "  node3 removed {:.1}s after its power-off (timer {REMOVE_AFTER_SECS}s)",
        removed.as_secs_f64()
    );
    assert!(removed >= Duration::from_secs(REMOVE_AFTER_SECS), "removed before its timer: {removed:?}");
    for ((vmid, _), count) in VMS.iter().zip(before) {
        wait_for(&format!("VM {vmid} running again on node2"), Duration::from_secs(30), || {
            running_on(&lab, n1, *vmid).as_deref() == Some("node2")
        });
        wait_for(&format!("VM {vmid}'s heartbeats going on"), Duration::from_secs(20), || {
            heartbeats(&lab, n1, *vmid).len() > count + 2
        });
        let runs = never_ran_twice(&lab, n1, *vmid, 2);
        assert_eq!(runs.last().map(|r| r.0.as_str()), Some("node2"), "VM {vmid}: {runs:?}");
    }
    let pvecm = sh(&lab, n1, "pvecm status");
    assert!(pvecm.contains("Expected votes:   2"), "the expected votes follow the removal:\n{pvecm}");
    assert!(sh(&lab, n2, "test -e /etc/pve/nodes/node3 && echo left || true").trim().is_empty());
    let registry = sh(&lab, n1, "cat /mnt/mfs/cias/registry.yaml");
    let node3 = registry.split("- ").find(|e| e.contains("node_name: node3")).unwrap_or_default();
    assert!(node3.contains("removed: true"), "node3 retired in the registry:\n{registry}");
    wait_for("the removal mail", Duration::from_secs(30), || {
        mail_subjects(&lab).iter().any(|s| s.contains("node node3 removed from the cluster"))
    });

    step("node2 stops answering: removing it would leave node1 alone - refused, and said");
    sh(&lab, n2, "systemctl stop ssh.service ssh.socket 2>/dev/null || systemctl stop ssh");
    watch_nodes(&lab, n1);
    std::thread::sleep(Duration::from_secs(REMOVE_AFTER_SECS + 2));
    watch_nodes(&lab, n1);
    wait_for("the refusal mail", Duration::from_secs(30), || {
        let subjects = mail_subjects(&lab);
        subjects.iter().any(|s| s.contains("not removing node node2: no majority answers"))
    });
    assert!(members(&lab, n1).contains(&"node2".to_string()), "node2 is still a member");
    sh(&lab, n2, "systemctl start ssh");
    eprintln!("  mails: {:?}", mail_subjects(&lab));
}
