//! Master takeover and self-fencing in a real 3-node lab installed by dlll_cias-setup
//! (issue 6, "Done when"). One installed lab serves every phase, in this order: concurrent
//! takeover calls run once; bad input changes nothing; a manual switch to node 3 that holds
//! while node 1 restarts, and one back; a real split brain (partition of the
//! master) fences the old master and the majority takes over; the master is powered off and
//! another node takes over; with two of three nodes off the survivor refuses.
//! A writer on node 3 appends fsync'd numbered records to MooseFS the whole time; a VM runs on
//! node 2; the router runs on the master. Each phase prints its measured timeline.

#![allow(clippy::print_stderr)]

use std::time::{Duration, Instant};

use cias_tests::cluster_probe::*;
use xtask::lab::{Lab, Node};

const VM: u32 = 2101;

/// Scenario 4 from `old` to `to`, checked; returns the measured timeline as a line.
fn manual_switch(lab: &Lab, to: Node, old: Node) -> String {
    let writer = Node::new(3).unwrap();
    let before = acked(lab, writer);
    let beats_before = heartbeats(lab, to, 100).len();
    let started = Instant::now();
    let out = lab.exec(to, &["dlll_cias-switch-to-master"]).unwrap();
    let switched = started.elapsed();
    assert_eq!(out.status, 0, "the switch to {to} failed:\n{}\n{}", out.stdout, out.stderr);
    assert_eq!(master(lab), to, "{to} is master");
    assert!(holds(lab, to, EXTERNAL_VIP), "{to} holds the external VIP");
    assert_eq!(running_on(lab, to, 100).as_deref(), Some(to.name().as_str()), "the router runs on {to}");
    for expected in [
        format!("final MooseFS metadata handed over by {old}: done"),
        "VRRP election won".into(),
        "normal keepalived configuration restored".into(),
        format!("migrate VM 100 live from {old}: done"),
    ] {
        assert!(out.stdout.contains(&expected), "the switch's timeline lacks '{expected}':\n{}", out.stdout);
    }
    assert!(!out.stdout.contains("recover VM"), "nothing was recovered:\n{}", out.stdout);
    let name = to.name();
    sh(lab, to, &format!("cmp /etc/keepalived/keepalived.conf /data/cias/nodes/{name}/keepalived.conf"));
    let log = sh(lab, to, &format!("cat /data/cias/nodes/{name}/takeover.log"));
    assert!(
        log.contains("a takeover is already running"),
        "keepalived's notify on {to} ran during the switch:\n{log}"
    );
    writer_resumes(lab, writer, before);
    let resumed = started.elapsed();
    // The router's disk: one run of beats on the old node, then one on the new node.
    wait_for("the router's heartbeat from its new node", Duration::from_secs(10), || {
        heartbeats(lab, to, 100).last().is_some_and(|(n, _)| *n == name)
    });
    never_ran_twice(lab, to, 100, 2);
    assert!(heartbeats(lab, to, 100).len() > beats_before);
    writer_lost_nothing(lab, writer);
    let again = lab.exec(to, &["dlll_cias-switch-to-master"]).unwrap();
    assert_eq!(again.status, 0, "{}", again.stderr);
    assert!(again.stdout.contains("already is the master: nothing to do"), "{}", again.stdout);
    for ip in [MASTER_VIP, EXTERNAL_VIP] {
        assert_eq!(holders(lab, ip), vec![to], "{ip} held once");
    }
    assert_eq!(mfsmasters(lab), vec![to], "one mfsmaster, on the new master");
    format!(
        "manual switch {old} -> {to} (s): done in {:.1}; writer going again by {:.1}; its timeline:\n{}",
        switched.as_secs_f64(),
        resumed.as_secs_f64(),
        out.stdout
    )
}

#[test]
fn takeover_fences_recovers_and_refuses_without_quorum() {
    let step = stepper();
    let (lab, _down) = installed_lab(3);
    let (n1, n2, n3) = (Node::new(1).unwrap(), Node::new(2).unwrap(), Node::new(3).unwrap());
    step("installed; a VM on node2, the writer on node3");
    sh(
        &lab,
        n2,
        &format!("qm create {VM} --name app --memory 512 --scsi0 a_mfs:1 --onboot 1 && qm start {VM}"),
    );
    start_writer(&lab, n3);
    assert_eq!(master(&lab), n1);
    assert_eq!(running_on(&lab, n1, 100).as_deref(), Some("node1"));
    // The master's VMID map, as its cron job writes it every minute. A VM's state reaches the
    // other nodes with the next status broadcast (pmxcfs's, and the stand-in's every 0.5 s).
    wait_for("the VMID map to show VM 2101 running on node2", Duration::from_secs(10), || {
        sh(&lab, n1, "dlll_cias-watch vmids && grep -c '^2101 node2 running' /mnt/mfs/cias/pve_master_vmid.conf || true")
            .trim()
            == "1"
    });

    step("two takeover calls at the same moment run once");
    sh(
        &lab,
        n1,
        "cp /data/cias/nodes/node1/takeover.log /root/before.log 2>/dev/null || touch /root/before.log",
    );
    sh(
        &lab,
        n1,
        "dlll_cias-switch-to-master --from-keepalived & dlll_cias-switch-to-master --from-keepalived & wait",
    );
    let log = sh(&lab, n1, "diff /root/before.log /data/cias/nodes/node1/takeover.log | grep '^>' || true");
    assert_eq!(log.matches("keepalived notify_master on node1").count(), 1, "one takeover ran:\n{log}");
    assert_eq!(log.matches("a takeover is already running").count(), 1, "the other one did nothing:\n{log}");

    step("bad input: a corrupt settings file, an uninstalled node");
    sh(&lab, n1, "sed 's/^domain:/domian:/' /data/cias/cias.yaml > /root/corrupt.yaml");
    let marker = "touch /root/marker && sleep 1";
    sh(&lab, n1, marker);
    let out = lab.exec(n1, &["dlll_cias-switch-to-master", "--config", "/root/corrupt.yaml"]).unwrap();
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(out.stderr.contains("/root/corrupt.yaml:") && out.stderr.contains("domian"), "{}", out.stderr);
    let out = lab
        .exec(n1, &["unshare", "--uts", "sh", "-c", "hostname node9 && dlll_cias-switch-to-master"])
        .unwrap();
    assert_eq!(out.status, 2, "{}", out.stderr);
    assert!(out.stderr.contains("not installed"), "{}", out.stderr);
    let changed = sh(&lab, n1, "find /data/cias /etc/keepalived /var/lib/mfs -newer /root/marker -not -name 'metadata*' -not -name 'changelog*' | sort");
    assert_eq!(changed.trim(), "", "bad input changed files");

    step("a dry run of the manual switch to node3 shows the handover and changes nothing");
    let dry = lab.exec(n3, &["dlll_cias-switch-to-master", "--dry-run"]).unwrap();
    assert_eq!(dry.status, 0, "{}\n{}", dry.stdout, dry.stderr);
    for expected in [
        "[node1] $ systemctl stop moosefs-master",
        "root@10.254.0.1:/var/lib/mfs/metadata.mfs /var/lib/mfs/metadata.mfs",
        "[node3] $ install -m 0644 /data/cias/nodes/node3/keepalived-switch.conf /etc/keepalived/keepalived.conf",
        "[node3] $ systemctl reload keepalived",
        "[node3] $ install -m 0644 /data/cias/nodes/node3/keepalived.conf /etc/keepalived/keepalived.conf",
        "[node3] $ systemctl start moosefs-master",
        "[node1] $ qm migrate 100 node3 --online",
    ] {
        assert!(dry.stdout.contains(expected), "the dry run lacks '{expected}':\n{}", dry.stdout);
    }
    assert_eq!(master(&lab), n1, "a dry run moves nothing");
    sh(&lab, n1, &format!("exec 3<>/dev/tcp/{MASTER_VIP}/9421"));
    sh(&lab, n3, "cmp /etc/keepalived/keepalived.conf /data/cias/nodes/node3/keepalived.conf");

    step("manual switch to node3");
    let node3_was = manual_switch(&lab, n3, n1);
    eprintln!("  {node3_was}");
    step("node1 (priority 80) restarts: node3 (priority 50) stays master");
    lab.power_off(n1).unwrap();
    lab.power_on(n1).unwrap();
    wait_for("node1's keepalived running again", Duration::from_secs(30), || {
        sh(&lab, n1, "systemctl is-active keepalived || true").trim() == "active"
    });
    // A returning BACKUP that heard no advert would win after ~3.6 s; give it twice that.
    std::thread::sleep(Duration::from_secs(8));
    for ip in [MASTER_VIP, EXTERNAL_VIP] {
        assert_eq!(holders(&lab, ip), vec![n3], "{ip} after node1 restarted");
    }
    writer_lost_nothing(&lab, n3);
    step("manual switch back to node1");
    let node1_was = manual_switch(&lab, n1, n3);
    eprintln!("  {node1_was}");

    step("split brain: node1 (master) cut off from node2 and node3, links up");
    let before = acked(&lab, n3);
    let cut = Instant::now();
    lab.partition(&[vec![n1], vec![n2, n3]]).unwrap();
    let at = |_: Duration| cut.elapsed();
    let dropped =
        at(wait_for("node1 to drop its VIPs", Duration::from_secs(20), || !holds(&lab, n1, MASTER_VIP)));
    let fenced_master = at(wait_for("node1 to stop its mfsmaster", Duration::from_secs(20), || {
        sh(&lab, n1, "pgrep -x mfsmaster || true").trim().is_empty()
    }));
    let taken = at(wait_for("node2 or node3 to take the VIPs", Duration::from_secs(20), || {
        holds(&lab, n2, MASTER_VIP) || holds(&lab, n3, MASTER_VIP)
    }));
    let new = if holds(&lab, n2, MASTER_VIP) { n2 } else { n3 };
    assert!(holds(&lab, new, EXTERNAL_VIP), "{new} holds the external VIP too");
    let resumed = at(writer_resumes(&lab, n3, before));
    let vms_stopped = at(wait_for("node1 to stop its VMs (fence delay)", Duration::from_secs(40), || {
        // node1's own pid file names its router process (lab nodes share one pid namespace).
        sh(&lab, n1, "kill -0 $(cat /run/qemu-server/100.pid) 2>/dev/null && echo up || true")
            .trim()
            .is_empty()
    }));
    let router_back = at(explained(&lab, new, || {
        wait_for("the router on the new master", Duration::from_secs(60), || {
            running_on(&lab, new, 100).as_deref() == Some(new.name().as_str())
        })
    }));
    eprintln!(
        "  timeline after the partition (s): node1 dropped its VIPs {:.1}, stopped its mfsmaster {:.1}; \
         {new} holds the VIPs {:.1}; writer resumed {:.1}; node1 stopped its VMs {:.1}; router runs on {new} {:.1}",
        dropped.as_secs_f64(),
        fenced_master.as_secs_f64(),
        taken.as_secs_f64(),
        resumed.as_secs_f64(),
        vms_stopped.as_secs_f64(),
        router_back.as_secs_f64()
    );
    assert!(
        dropped < Duration::from_secs(10) && fenced_master < Duration::from_secs(10),
        "node1 fenced itself too slowly"
    );
    // As after a power-off (below): the new master answers once node1 has surely stopped its
    // own, and the writer's mount needs a while more, longer when a copy of the chunk it
    // writes is on node1's chunkserver, cut off with it (measured: 19.0-19.3 s).
    eprintln!(
        "  the writer's mount meanwhile:\n{}",
        sh(&lab, n3, "journalctl -t mfsmount --no-pager -n 8 -o cat")
    );
    assert!(resumed < Duration::from_secs(25), "the writer stalled {resumed:?}");
    never_ran_twice(&lab, new, 100, 2);
    lab.heal().unwrap();
    wait_for("node1 back in the quorum", Duration::from_secs(20), || {
        lab.exec(n1, &["pvecm", "status"]).map(|o| o.status == 0).unwrap_or(false)
    });
    // Fenced, node1 force-unmounted MooseFS and set its master's files and its metalogger's
    // aside (a later promotion here takes a peer's copy); back in the quorum it mounts again.
    explained(&lab, n1, || {
        wait_for("node1's /mnt/mfs mounted again", Duration::from_secs(45), || {
            sh(&lab, n1, "cat /proc/mounts").contains(" /mnt/mfs fuse")
        })
    });
    assert!(sh(&lab, n1, "ls /var/lib/mfs").contains("old-master-"), "node1's master files set aside");
    wait_for("node1's keepalived a BACKUP again (after FAULT)", Duration::from_secs(20), || {
        sh(&lab, n1, "journalctl -u keepalived --no-pager -o cat | grep 'Entering' | tail -n 1")
            .contains("BACKUP")
    });
    for ip in [MASTER_VIP, EXTERNAL_VIP] {
        assert_eq!(holders(&lab, ip).len(), 1, "{ip} is held by {:?} after heal", holders(&lab, ip));
    }
    // Lab nodes share one pid namespace, so the proof is in the disks: after the heal node1
    // never wrote to the router's disk again.
    never_ran_twice(&lab, new, 100, 2);
    assert_eq!(running_on(&lab, new, 100).as_deref(), Some(new.name().as_str()));
    assert_eq!(master(&lab), new, "node1 came back as a BACKUP and did not take the role back");
    assert_eq!(mfsmasters(&lab), vec![new], "one mfsmaster, on the master");
    assert_eq!(running_on(&lab, new, VM).as_deref(), Some("node2"), "the VM of node2 was never touched");
    writer_lost_nothing(&lab, n3);

    step(&format!("power-off of the master {new}"));
    let before = acked(&lab, n3);
    let off = Instant::now();
    lab.power_off(new).unwrap();
    let survivors: Vec<Node> = [n1, n2, n3].into_iter().filter(|&n| n != new).collect();
    let at = |_: Duration| off.elapsed();
    let vip_time = at(wait_for("a survivor to hold both VIPs", Duration::from_secs(20), || {
        survivors.iter().any(|&n| holds(&lab, n, MASTER_VIP) && holds(&lab, n, EXTERNAL_VIP))
    }));
    let next = *survivors.iter().find(|&&n| holds(&lab, n, MASTER_VIP)).unwrap();
    let mfs_time = at(explained(&lab, next, || {
        wait_for("the new mfsmaster", Duration::from_secs(20), || {
            lab.sh(next, &format!("exec 3<>/dev/tcp/{MASTER_VIP}/9421")).is_ok()
        })
    }));
    let resumed =
        survivors.contains(&n3).then(|| at(explained(&lab, next, || writer_resumes(&lab, n3, before))));
    let router_time = at(explained_by(&lab, &survivors, || {
        wait_for("the router on the new master", Duration::from_secs(60), || {
            running_on(&lab, next, 100).as_deref() == Some(next.name().as_str())
        })
    }));
    eprintln!(
        "  timeline after the power-off (s): {next} holds both VIPs {:.1}; mfsmaster answers {:.1}; writer resumed {}; \
         router runs on {next} {:.1}",
        vip_time.as_secs_f64(),
        mfs_time.as_secs_f64(),
        resumed.map(|d| format!("{:.1}", d.as_secs_f64())).unwrap_or_else(|| "-".into()),
        router_time.as_secs_f64()
    );
    assert!(vip_time < Duration::from_secs(6), "VIPs moved after {vip_time:?}");
    // A powered-off node cannot say its mfsmaster stopped: the new master waits until it has
    // been out of the quorum (noticed after the 3 s heartbeat timeout) for MASTER_FENCE_BOUND.
    let bound =
        Duration::from_secs(3) + cias_core::reconcile::MASTER_FENCE_BOUND + Duration::from_millis(1500);
    assert!(mfs_time < bound, "mfsmaster answered {mfs_time:?} after the power-off (bound {bound:?})");
    if let Some(resumed) = resumed {
        // The writer's mount comes back a while after the master answers: measured 1-10 s
        // (19.0 s after the power-off in one run, when its clients had been refused at the
        // VIP for 6 s while the new master waited for the fence bound).
        assert!(resumed < Duration::from_secs(25), "the writer stalled {resumed:?}");
    }
    never_ran_twice(&lab, next, 100, 3);
    assert_eq!(mfsmasters(&lab), vec![next], "one mfsmaster, on the new master");
    if new == n2 {
        explained(&lab, next, || {
            wait_for("the VM of the dead node recovered", Duration::from_secs(60), || {
                running_on(&lab, next, VM).is_some()
            })
        });
        never_ran_twice(&lab, next, VM, 2);
    }
    if survivors.contains(&n3) {
        let n = writer_lost_nothing(&lab, n3);
        eprintln!("  writer: all {n} fsync'd records present");
    }
    let takeover_mails = || -> Vec<String> {
        lab.mail()
            .unwrap()
            .iter()
            .filter(|m| m.header("Subject").is_some_and(|s| s.contains(&format!("{next} is the new master"))))
            .map(|m| m.body())
            .collect()
    };
    // The mail goes out when the takeover ends, a moment after the router runs.
    wait_for("the takeover mail", Duration::from_secs(30), || {
        takeover_mails().iter().any(|b| b.contains("recover VM 100"))
    });
    let bodies = takeover_mails();
    let report = bodies
        .iter()
        .find(|b| b.contains("recover VM 100"))
        .unwrap_or_else(|| panic!("no takeover mail from {next} with the router's recovery: {bodies:?}"));
    // "is lost: its VMs wait" shows only when the VMs still had to wait once the VMID map
    // could be read: after the master's fence bound the mounts sometimes come back later than
    // the recovery wait (measured: 16.6 s), and the VMs are recovered at once.
    for expected in ["MooseFS master promoted", "recover VM 100", "done in", "takeover finished after"] {
        assert!(report.contains(expected), "the mail lacks '{expected}':\n{report}");
    }
    // node1's metalogger started over after the split brain; its reconcile loop had it download
    // a full copy again, so node1 may promote from its own copy or from a newer peer's.
    eprintln!("  the administrator's mail:\n{report}");

    step(&format!("{next}'s journal holds the takeover hook's timeline and each cron job's last run"));
    let hook = journal(&lab, next, "dlll_cias-switch-to-master");
    for expected in ["keepalived notify_master", "MooseFS master promoted", "takeover finished after"] {
        assert!(
            hook.contains(expected),
            "journalctl -t dlll_cias-switch-to-master lacks '{expected}':\n{hook}"
        );
    }
    // The jobs of every minute have run since the takeover; the 5-minute one is run as cron would.
    run_cron_job(&lab, next, "dlll_cias-watch nodes");
    let watch = journal(&lab, next, "dlll_cias-watch");
    for job in ["vmids: ", "peers: ", "master: this node may be master", "nodes: ", " members answered"] {
        assert!(watch.contains(job), "journalctl -t dlll_cias-watch lacks '{job}':\n{watch}");
    }

    step("two of three nodes off: the survivor refuses");
    let last = *survivors.iter().find(|&&n| n != next).unwrap();
    lab.power_off(next).unwrap();
    wait_for("the survivor to lose quorum", Duration::from_secs(20), || {
        lab.exec(last, &["pvecm", "status"]).map(|o| o.status == 2).unwrap_or(false)
    });
    std::thread::sleep(Duration::from_secs(6));
    assert!(!holds(&lab, last, MASTER_VIP), "{last} must not become master without quorum");
    let out = lab.exec(last, &["dlll_cias-switch-to-master"]).unwrap();
    assert_eq!(out.status, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("not in the quorate partition"), "{}", out.stderr);
    assert!(sh(&lab, last, "pgrep -x mfsmaster || true").trim().is_empty(), "no mfsmaster on {last}");
    let told = lab.mail().unwrap().iter().any(|m| {
        m.header("Subject").is_some_and(|s| s.contains(&format!("{last} refused to become master")))
            && m.body().contains("not in the quorate partition")
    });
    assert!(told, "the administrator is told why");
    step("done");
}
