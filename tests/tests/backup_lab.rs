//! Backups and recovery from them (issue 14, "Done when") in a 3-node lab installed by
//! dlll_cias-setup. One installed lab, in this order:
//! - the installed backup jobs back up the router and a VM; `dlll_cias-backup-zentyal`, run
//!   through its installed cron line on every node, copies the newest complete router archive
//!   (not the newer one vzdump is still writing) under its vzdump name, checked, and removes
//!   the old-style copy;
//! - the master carrying that VM is powered off and the VM's disk deleted meanwhile: the
//!   takeover restores it from its backup on the other, non-master node, and the mail names
//!   the backup's age;
//! - MooseFS stopped on every surviving node and the master (running the router) powered off:
//!   the takeover restores the router from its local copy onto local storage, and it runs.

#![allow(clippy::print_stderr)]

use std::time::Duration;

use cias_tests::cluster_probe::*;
use xtask::lab::{Lab, Node};

/// A VM of the master, with its disk on MooseFS and `onboot` set.
const VM: u32 = 2101;
const ROUTER: u32 = 100;

/// Runs the installed backup job `id` (`pvesh get /cluster/backup`) on `node` as Proxmox's
/// scheduler would: vzdump with the job's options.
fn run_backup_job(lab: &Lab, node: Node, id: &str) {
    let jobs: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&sh(lab, node, "pvesh get /cluster/backup --output-format json")).unwrap();
    let job = jobs.iter().find(|j| j["id"] == id).unwrap_or_else(|| panic!("no backup job {id}: {jobs:?}"));
    let mut argv = vec!["vzdump".to_string()];
    for (key, value) in job {
        let value = value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
        match key.as_str() {
            "vmid" => argv.insert(1, value),
            "id" | "type" | "schedule" | "enabled" | "prune-backups" | "next-run" => {}
            _ => argv.extend([format!("--{key}"), value]),
        }
    }
    sh(lab, node, &argv.join(" "));
}

/// The bodies of the mails whose subject names `node` as the new master.
fn takeover_mails(lab: &Lab, node: Node) -> Vec<String> {
    lab.mail()
        .unwrap()
        .iter()
        .filter(|m| {
            m.header("Subject").is_some_and(|s| s.contains(&format!("{node} is")) && s.contains("master"))
        })
        .map(|m| m.body())
        .collect()
}

#[test]
fn backups_are_copied_checked_and_restored_where_placement_says() {
    let step = stepper();
    let (lab, _down) = installed_lab(3);
    let m = master(&lab);
    let others: Vec<Node> = lab.nodes().iter().copied().filter(|&n| n != m).collect();
    // The stand-in's nodes have no LVM: their `local` directory storage takes VM disks.
    set_setting(&lab, lab.nodes(), "local_storage", "local");

    step("a VM on the master; the installed jobs back it and the router up");
    start_vms(&lab, m, others[0], &[(VM, 256)], "--onboot 1");
    run_backup_job(&lab, m, "cias-router");
    run_backup_job(&lab, m, "cias-vms");
    let dump = sh(&lab, m, "ls /mnt/mfs/dump");
    // The newest: setup made one at the install too.
    let router_archive = dump
        .lines()
        .filter(|f| f.starts_with("vzdump-qemu-100-") && f.ends_with(".vma"))
        .max()
        .unwrap_or_else(|| panic!("no router archive:\n{dump}"))
        .to_string();
    assert!(dump.lines().any(|f| f.starts_with("vzdump-qemu-2101-") && f.ends_with(".vma.gz")), "{dump}");
    // A newer backup vzdump is still writing (uncompressed: its name ends in .dat).
    sh(&lab, m, "echo partial > /mnt/mfs/dump/vzdump-qemu-100-2099_01_01-00_00_00.dat");

    step("dlll_cias-backup-zentyal through its cron line on every node");
    let legacy = "/var/lib/vz/dump/zentyal.tar.vma";
    sh(&lab, others[1], &format!("mkdir -p /var/lib/vz/dump && echo old > {legacy}"));
    for &n in lab.nodes() {
        run_cron_job(&lab, n, "dlll_cias-backup-zentyal");
        let local = sh(&lab, n, "ls -A /var/lib/vz/dump");
        assert_eq!(
            local.trim(),
            router_archive,
            "{n}: the local copy, under its vzdump name, and nothing else"
        );
        let sums = sh(
            &lab,
            n,
            &format!(
                "sha256sum /mnt/mfs/dump/{router_archive} /var/lib/vz/dump/{router_archive} | cut -d' ' -f1"
            ),
        );
        let sums: Vec<&str> = sums.lines().collect();
        assert_eq!(sums[0], sums[1], "{n}: the copy is the archive");
        let journal = journal(&lab, n, "dlll_cias-backup-zentyal");
        assert!(journal.contains(&format!("copied to /var/lib/vz/dump/{router_archive}")), "{n}: {journal}");
    }
    run_cron_job(&lab, m, "dlll_cias-backup-zentyal");
    assert!(
        journal(&lab, m, "dlll_cias-backup-zentyal").contains("is here already"),
        "a second run copies nothing"
    );

    step(&format!("{m} (master, VM {VM}) powered off; the VM's disk is deleted meanwhile"));
    // A longer margin leaves time to delete the disk once MooseFS is back.
    set_setting(&lab, lab.nodes(), "margin_secs", "60");
    lab.power_off(m).unwrap();
    wait_for("a new master", Duration::from_secs(20), || others.iter().any(|&n| holds(&lab, n, MASTER_VIP)));
    let next = master(&lab);
    let other = *others.iter().find(|&&n| n != next).unwrap();
    wait_for("MooseFS back", Duration::from_secs(40), || {
        let disk = format!("/mnt/mfs/images/{VM}/vm-{VM}-disk-0.raw");
        lab.sh(
            next,
            &format!("grep -q ' /mnt/mfs fuse' /proc/mounts && timeout 3 rm {disk} && ! test -e {disk}"),
        )
        .is_ok()
    });
    let restored = explained(&lab, next, || {
        // (Until then the powered-off node's VMs are listed as it last saw them.)
        wait_for(&format!("VM {VM} running again"), Duration::from_secs(150), || {
            running_on(&lab, next, VM).is_some_and(|n| n != m.name())
        })
    });
    eprintln!("  VM {VM} ran again {:.1}s after the disk was deleted", restored.as_secs_f64());
    assert_eq!(
        running_on(&lab, next, VM).as_deref(),
        Some(other.name().as_str()),
        "placed on the non-master node"
    );
    wait_for("the takeover mail", Duration::from_secs(30), || {
        takeover_mails(&lab, next).iter().any(|b| b.contains("takeover finished after"))
    });
    let mail = takeover_mails(&lab, next).join("\n---\n");
    let expected =
        format!("the disk of VM {VM} was gone: restored on {other} from /mnt/mfs/dump/vzdump-qemu-{VM}-");
    assert!(mail.contains(&expected) && mail.contains(" old (data since then is lost)"), "{mail}");

    step(&format!("{m} back; MooseFS stopped on every node but the master {next}, then {next} powered off"));
    set_setting(&lab, &others, "margin_secs", "5");
    lab.power_on(m).unwrap();
    wait_for("three votes again", Duration::from_secs(60), || {
        sh(&lab, next, "pvecm status || true").contains("Total votes:      3")
    });
    set_setting(&lab, &[m], "margin_secs", "5");
    assert_eq!(running_on(&lab, next, ROUTER).as_deref(), Some(next.name().as_str()));
    let survivors = [m, other];
    for &n in &survivors {
        sh(
            &lab,
            n,
            "units='moosefs-master moosefs-metalogger moosefs-chunkserver mnt-mfs.mount'; \
             systemctl mask --runtime $units && systemctl stop moosefs-master moosefs-metalogger moosefs-chunkserver; \
             umount -l /mnt/mfs; ! grep -q ' /mnt/mfs fuse' /proc/mounts",
        );
    }
    lab.power_off(next).unwrap();
    wait_for("a survivor takes the role", Duration::from_secs(20), || {
        survivors.iter().any(|&n| holds(&lab, n, MASTER_VIP))
    });
    let last = *survivors.iter().find(|&&n| holds(&lab, n, MASTER_VIP)).unwrap();
    explained(&lab, last, || {
        wait_for("the router running from its local copy", Duration::from_secs(90), || {
            running_on(&lab, last, ROUTER).as_deref() == Some(last.name().as_str())
        })
    });
    let config = sh(&lab, last, &format!("cat /etc/pve/nodes/{last}/qemu-server/{ROUTER}.conf"));
    assert!(
        config.contains(&format!("local:{ROUTER}/")),
        "the router's disk is on local storage now:\n{config}"
    );
    wait_for("the takeover mail", Duration::from_secs(30), || {
        takeover_mails(&lab, last).iter().any(|b| b.contains("the disk of VM 100 is out of reach"))
    });
    let mail = takeover_mails(&lab, last).join("\n---\n");
    let expected = format!(
        "the disk of VM 100 is out of reach while MooseFS is down: restored on {last} from \
         /var/lib/vz/dump/{router_archive}, a backup "
    );
    assert!(mail.contains(&expected), "{mail}");
    assert!(mail.contains("onto local because MooseFS is not mounted there"), "{mail}");
    step("done");
}
