//! Scenario 5 in a real 4-node lab installed by dlll_cias-setup (issue 13, "Done when"): node 4
//! leaves with four VMs of different sizes - they spread over the non-master nodes by RAM and
//! keep writing their heartbeats through the live migration, its MooseFS disks drain without a
//! chunk losing a copy, it leaves the cluster and powers off, the mails go out. Then the master
//! is removed with dlll_cias-remove-node from another node: it answers, so its own escape runs
//! there - the role and the router go to another node first, then the same.

#![allow(clippy::print_stderr)]

use std::time::{Duration, Instant};

use cias_tests::cluster_probe::*;
use xtask::lab::{Lab, Node};

/// node4's VMs, of different sizes (MiB).
const VMS: [(u32, u32); 4] = [(4101, 3072), (4102, 2048), (4103, 1024), (4104, 512)];

/// Runs the escape on `node`, which powers off at its end, and prints its output and time.
fn escape(lab: &Lab, node: Node) {
    let started = Instant::now();
    // The node's own end kills the command with it: its output may be cut, not its effects.
    let out = lab
        .exec(node, &["dlll_cias-escape", "--yes", "--mail", "ops@lab.example"])
        .map(|o| format!("{}{}", o.stdout, o.stderr))
        .unwrap_or_default();
    eprintln!("  escape of {node} took {:.1}s:\n{out}", started.elapsed().as_secs_f64());
    wait_for(&format!("{node} powered off"), Duration::from_secs(30), || !lab.is_up(node));
}

/// The test files on MooseFS with their checksums.
fn checksums(lab: &Lab, node: Node) -> String {
    sh(lab, node, "cd /mnt/mfs/escape-test && sha256sum *")
}

/// `mfscheckfile`'s lines for the test files' chunks that have fewer than their two copies
/// (goal 2); fails when it does not report every file (` chunks with N copies:  COUNT`).
fn undergoal(lab: &Lab, node: Node) -> Vec<String> {
    let report = sh(lab, node, "cd /mnt/mfs/escape-test && mfscheckfile f*");
    let counted = |l: &&str| l.trim_start().starts_with("chunks with ");
    let files = report.lines().filter(|l| l.ends_with(':') && !counted(l)).count();
    assert_eq!(files, 6, "mfscheckfile reports every file:\n{report}");
    let short = |l: &&str| l.contains("with 0 copies") || l.contains("with 1 copy:");
    report.lines().filter(counted).filter(short).map(String::from).collect()
}

#[test]
fn a_node_and_then_the_master_leave_without_losing_anything() {
    let step = stepper();
    let (lab, _down) = installed_lab(4);
    let [n1, n2, n3, n4] = [1, 2, 3, 4].map(|i| Node::new(i).unwrap());
    assert_eq!(master(&lab), n1);
    // A shortened timer: the MooseFS master looks at each chunk once per chunk loop, 300 s by
    // default, 60 s at least (mfsmaster raises anything lower); a disk reads ready for removal
    // only after a loop found every chunk on it safe elsewhere (measured: 323 s with 300).
    for n in [n1, n2, n3, n4] {
        sh(&lab, n, "echo 'CHUNKS_LOOP_MIN_TIME = 60' >> /etc/mfs/mfsmaster.cfg");
    }
    sh(&lab, n1, "systemctl reload moosefs-master");
    step("installed; files on MooseFS, four VMs on node4");
    sh(
        &lab,
        n1,
        "mkdir -p /mnt/mfs/escape-test && for i in 1 2 3 4 5 6; do head -c 8M /dev/urandom > /mnt/mfs/escape-test/f$i; done",
    );
    let sums = checksums(&lab, n1);
    start_vms(&lab, n4, n1, &VMS, "");

    step("a dry run shows the plan and changes nothing");
    let dry = lab.exec(n4, &["dlll_cias-escape", "--dry-run"]).unwrap();
    assert_eq!(dry.status, 0, "{}\n{}", dry.stdout, dry.stderr);
    for expected in ["move VM 4101", "live", "[node4] $ sed -i", "pvecm delnode node4", "systemctl poweroff"]
    {
        assert!(dry.stdout.contains(expected), "the dry run lacks '{expected}':\n{}", dry.stdout);
    }
    assert_eq!(
        sh(&lab, n4, "grep -c '^\\*' /etc/mfs/mfshdd.cfg || true").trim(),
        "0",
        "a dry run marks no disk"
    );
    assert!(members(&lab, n1).contains(&"node4".to_string()));

    step("node4 leaves");
    let before: Vec<usize> = VMS.iter().map(|(vmid, _)| heartbeats(&lab, n1, *vmid).len()).collect();
    escape(&lab, n4);
    let placed: Vec<String> =
        VMS.iter().map(|(vmid, _)| running_on(&lab, n1, *vmid).unwrap_or_default()).collect();
    assert!(placed.iter().all(|n| n == "node2" || n == "node3"), "never onto the master or away: {placed:?}");
    assert!(
        placed.contains(&"node2".into()) && placed.contains(&"node3".into()),
        "spread by RAM: {placed:?}"
    );
    // The biggest and the next biggest go to different nodes (each the least loaded then).
    assert_ne!(placed[0], placed[1], "{placed:?}");
    for ((vmid, _), count) in VMS.iter().zip(before) {
        wait_for(&format!("VM {vmid}'s heartbeats going on"), Duration::from_secs(20), || {
            heartbeats(&lab, n1, *vmid).len() > count + 2
        });
        let runs = never_ran_twice(&lab, n1, *vmid, 2);
        assert!(runs.iter().all(|r| r.0 != "node1"), "VM {vmid}: {runs:?}");
    }
    assert_eq!(members(&lab, n1), ["node1", "node2", "node3"]);
    assert_eq!(checksums(&lab, n2), sums, "every file intact after node4 is off");
    assert_eq!(undergoal(&lab, n2), Vec::<String>::new(), "no chunk short of its copies");
    let registry = sh(&lab, n1, "cat /mnt/mfs/cias/registry.yaml");
    let node4 = registry.split("- ").find(|e| e.contains("node_name: node4")).unwrap_or_default();
    assert!(node4.contains("removed: true"), "node4 retired in the registry:\n{registry}");
    wait_for("the mails to the administrator and to the address given", Duration::from_secs(30), || {
        let mails = lab.mail().unwrap();
        let left = |to: &str| {
            mails.iter().any(|m| {
                m.header("Subject").is_some_and(|s| s.contains("node node4 left the cluster"))
                    && m.header("To").is_some_and(|t| t.contains(to))
            })
        };
        left("admin@lab.example") && left("ops@lab.example")
    });

    step("dlll_cias-remove-node node1 on node3: the master answers, so it leaves by itself");
    let router_before = heartbeats(&lab, n2, 100).len();
    let started = Instant::now();
    let out = lab.exec(n3, &["dlll_cias-remove-node", "--yes", "node1"]).unwrap();
    eprintln!(
        "  removal of node1 took {:.1}s:\n{}{}",
        started.elapsed().as_secs_f64(),
        out.stdout,
        out.stderr
    );
    // Its escape ends in a power-off that cuts the SSH session: success is node1 gone.
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("node1 has left the cluster"), "{}", out.stdout);
    wait_for("node1 powered off", Duration::from_secs(30), || !lab.is_up(n1));
    assert_eq!(master(&lab), n2, "the role went to the highest priority, then the name");
    assert_eq!(mfsmasters(&lab), vec![n2]);
    assert_eq!(running_on(&lab, n2, 100).as_deref(), Some("node2"));
    wait_for("the router's heartbeats going on", Duration::from_secs(20), || {
        heartbeats(&lab, n2, 100).len() > router_before + 2
    });
    never_ran_twice(&lab, n2, 100, 2);
    assert_eq!(members(&lab, n2), ["node2", "node3"]);
    assert_eq!(checksums(&lab, n3), sums, "every file intact after node1 is off");
    assert_eq!(undergoal(&lab, n3), Vec::<String>::new(), "no chunk short of its copies");
}
