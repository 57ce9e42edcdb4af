//! dlll_cias-setup in a real 3-node lab (issue 5, "Done when"): bad input refused with nothing
//! changed, a dry run that changes nothing, node1 installs, node2 extends, node3 is killed
//! mid-way and finishes on the re-run while its pre-formatted disk is left alone, a re-run on a
//! finished node changes nothing; then the cluster is checked piece by piece. Last, with no
//! node left that may be master, the "never master" node3 tells the administrator (issue 6).

#![allow(clippy::print_stderr)]

use std::time::Instant;

use cias_tests::cluster_probe::Down;
use xtask::demo::{self, ANSWERS};
use xtask::lab::{DiskPrep, DiskSpec, Lab, LabConfig, Node};

fn sh(lab: &Lab, node: Node, script: &str) -> String {
    lab.sh(node, script).unwrap_or_else(|e| panic!("{node}: {script}: {e:#}"))
}

fn refused(lab: &Lab, node: Node, extra: &[&str], says: &str) {
    let out = demo::setup(lab, node, extra).unwrap();
    assert!(!out.success(), "setup {extra:?} should fail:\n{}", out.stdout);
    assert!(out.stderr.contains(says), "setup {extra:?}: expected '{says}' in:\n{}", out.stderr);
}

/// Files changed since `marker`, except what running daemons keep writing: /etc/pve and the
/// metalogger's copies (`*_ml.*`, written whenever anything changes on MooseFS).
fn changed_since(lab: &Lab, node: Node, marker: &str) -> String {
    sh(
        lab,
        node,
        &format!(
            "find /etc /data /var/lib/mfs /root/.ssh /mnt -xdev -newer {marker} -not -path '/etc/pve/*' \
         -not -path '/var/lib/mfs/*_ml.*' 2>/dev/null | sort"
        ),
    )
}

fn has_vip(lab: &Lab, node: Node, vip: &str) -> bool {
    lab.is_up(node) && sh(lab, node, "ip -o -4 addr show").contains(&format!(" {vip}/"))
}

#[test]
fn setup_installs_extends_resumes_and_refuses_bad_input() {
    let started = Instant::now();
    let step = |what: &str| eprintln!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
    let node3_disk2 = DiskSpec { node: Node::new(3).unwrap(), disk: 2, prep: DiskPrep::Ext4 };
    let lab = Lab::up(&LabConfig { disks: vec![node3_disk2], ..LabConfig::default() }).unwrap();
    let _down = Down;
    let (n1, n2, n3) = (Node::new(1).unwrap(), Node::new(2).unwrap(), Node::new(3).unwrap());
    demo::install_binaries(&lab).unwrap();
    demo::prepare_first(&lab, n1).unwrap();

    step("bad input is refused and changes nothing");
    sh(&lab, n1, "touch /tmp/before-bad-input");
    refused(&lab, n1, &["--master-ip", "10.9.9.9"], "master_ip");
    refused(&lab, n1, &["--priority", "101"], "101");
    refused(&lab, n1, &["--master", "10.254.9.9"], "does not answer");
    // A missing answer is named; an external address has no default to fall back on.
    for key in ["domain", "master_ip"] {
        let partial = format!("/root/no-{key}.yaml");
        sh(&lab, n1, &format!("grep -v '^{key}:' {ANSWERS} > {partial}"));
        let argv =
            ["dlll_cias-setup", "--answers", &partial, "--secrets-file", demo::SECRETS, "--loop-disks"];
        let out = lab.exec(n1, &argv).unwrap();
        assert!(out.stderr.contains(&format!("missing answer '{key}'")), "{}", out.stderr);
    }
    // Without a terminal, a plan is carried out only with --yes.
    let out = lab
        .exec(n1, &["dlll_cias-setup", "--answers", ANSWERS, "--secrets-file", demo::SECRETS, "--loop-disks"])
        .unwrap();
    assert!(out.stdout.contains("Plan: install the FIRST node"), "the plan is shown:\n{}", out.stdout);
    for address in
        ["192.168.56.101 on eth1", "10.254.0.254 (cias-pve-master)", "192.168.56.104, 192.168.56.105"]
    {
        assert!(out.stdout.contains(address), "the plan shows {address}:\n{}", out.stdout);
    }
    assert!(out.stderr.contains("run with --yes to proceed"), "{}", out.stderr);
    assert_eq!(out.status, 3, "refused: {}", out.stderr);
    // Preflight names what is missing before anything changes.
    sh(&lab, n1, "mv /usr/sbin/dlll_cias-fence /root/");
    refused(&lab, n1, &[], "missing: /usr/sbin/dlll_cias-fence");
    sh(&lab, n1, "mv /root/dlll_cias-fence /usr/sbin/");
    assert_eq!(changed_since(&lab, n1, "/tmp/before-bad-input"), "");

    step("a dry run shows the commands and changes nothing");
    let out = demo::setup(&lab, n1, &["--dry-run"]).unwrap();
    assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
    for expected in
        ["$ pvecm create DLLL-CIAS --link0 10.254.0.1", "$ mkfs.ext4", "$ qmrestore", "|  auto vmbr0"]
    {
        assert!(out.stdout.contains(expected), "dry run lacks '{expected}':\n{}", out.stdout);
    }
    assert_eq!(changed_since(&lab, n1, "/tmp/before-bad-input"), "");

    step("node1 installs the cluster");
    let out = demo::setup(&lab, n1, &[]).unwrap();
    assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("https://192.168.56.102"),
        "the summary names the router web UI:\n{}",
        out.stdout
    );

    step("node2 extends it");
    demo::prepare_extension(&lab, n2, n1, 50).unwrap();
    let out = demo::setup(&lab, n2, &[]).unwrap();
    assert!(out.success(), "{}\n{}", out.stdout, out.stderr);

    step("node3 is killed mid-way, then finishes on the re-run");
    demo::prepare_extension(&lab, n3, n1, 0).unwrap();
    let disk2 = lab.disks(n3).unwrap()[1].clone();
    let uuid_before = sh(&lab, n3, &format!("blkid -p -s UUID -o value {disk2}"));
    // One shell holds the first run, kills it once the disks step is journaled, and waits.
    sh(&lab, n3, &format!(
        "dlll_cias-setup --answers {ANSWERS} --secrets-file {} --loop-disks --yes > /root/first-run.log 2>&1 & pid=$!; \
         for i in $(seq 1 1200); do grep -q disks /data/cias/nodes/node3/setup.journal 2>/dev/null && break; sleep 0.1; done; \
         kill -KILL $pid; wait $pid || true",
        demo::SECRETS
    ));
    let out = demo::setup(&lab, n3, &[]).unwrap();
    assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("finished in an earlier run"), "{}", out.stderr);
    assert_eq!(
        sh(&lab, n3, &format!("blkid -p -s UUID -o value {disk2}")),
        uuid_before,
        "the used disk is untouched"
    );

    step("a re-run on a finished node changes nothing");
    sh(&lab, n2, "touch /tmp/before-rerun");
    let out = demo::setup(&lab, n2, &[]).unwrap();
    assert!(out.success() && out.stdout.contains("Nothing to do"), "{}\n{}", out.stdout, out.stderr);
    assert_eq!(changed_since(&lab, n2, "/tmp/before-rerun"), "");

    step("the cluster, piece by piece");
    let nodes = [n1, n2, n3];
    let holders: Vec<Node> = nodes.iter().copied().filter(|&n| has_vip(&lab, n, "10.254.0.254")).collect();
    assert_eq!(holders, vec![n1], "exactly one node holds the master VIP");
    assert!(has_vip(&lab, n1, "192.168.56.101"), "the master holds the external VIP too");
    for n in nodes {
        let master = sh(&lab, n, "pgrep -x mfsmaster >/dev/null && echo yes || echo no");
        assert_eq!(master.trim(), if n == n1 { "yes" } else { "no" }, "mfsmaster on {n}");
        sh(&lab, n, "pgrep -x mfsmetalogger && pgrep -x mfschunkserver");
        let disks = lab.disks(n).unwrap();
        let hdd = sh(&lab, n, "cat /etc/mfs/mfshdd.cfg");
        let fstab = sh(&lab, n, "cat /etc/fstab");
        for (i, disk) in disks.iter().enumerate() {
            let name = disk.trim_start_matches("/dev/");
            let listed = hdd.lines().any(|l| l.trim() == format!("/data/{name}"));
            let used = n == n3 && i == 1;
            assert_eq!(listed, !used, "{n}: {disk} in mfshdd.cfg:\n{hdd}");
            if !used {
                let uuid = sh(&lab, n, &format!("blkid -p -s UUID -o value {disk}"));
                assert!(
                    fstab.contains(&format!("UUID={} /data/{name}", uuid.trim()).replace(' ', "\t")),
                    "{n}: fstab:\n{fstab}"
                );
            }
        }
        assert!(sh(&lab, n, "cat /proc/mounts").contains(" /mnt/mfs fuse"), "{n}: /mnt/mfs mounted");
        assert!(
            sh(&lab, n, "cat /etc/cron.d/dlll-cias").contains("dlll_cias-backup-zentyal --local-copy"),
            "{n}: cron"
        );
    }
    sh(&lab, n1, "exec 3<>/dev/tcp/127.0.0.1/9425");
    sh(&lab, n3, "echo written-on-node3 > /mnt/mfs/from-node3.txt && sync");
    assert_eq!(sh(&lab, n1, "cat /mnt/mfs/from-node3.txt").trim(), "written-on-node3");
    // moosefs.trash_time_secs, set at the install and inherited by what is created later.
    let trash = sh(&lab, n1, "mfsgettrashtime /mnt/mfs/from-node3.txt");
    assert!(trash.trim_end().ends_with(": 3600"), "{trash}");

    let status = cias_core::proxmox::pvecm::parse_status(&sh(&lab, n1, "pvecm status")).unwrap();
    assert_eq!((status.name.as_str(), status.quorate, status.members.len()), ("DLLL-CIAS", true, 3));

    let storage = sh(&lab, n1, "cat /etc/pve/storage.cfg");
    for (section, fields) in [
        ("dir: a_mfs", ["path /mnt/mfs", "content images,backup", "shared 1", "prune-backups keep-last=1"]),
        ("dir: mfs-backup", ["path /mnt/mfs", "content backup", "shared 1", "prune-backups keep-last=5"]),
    ] {
        let body = section_of(&storage, section);
        for f in fields {
            assert!(body.iter().any(|l| l == f), "{section} lacks '{f}':\n{storage}");
        }
    }
    let jobs = sh(&lab, n1, "cat /etc/pve/jobs.cfg");
    let router_job = section_of(&jobs, "vzdump: cias-router");
    for f in
        ["schedule mon 02:00", "vmid 100", "storage mfs-backup", "mode snapshot", "compress 0", "enabled 1"]
    {
        assert!(router_job.iter().any(|l| l == f), "router job lacks '{f}':\n{jobs}");
    }
    let vm_job = section_of(&jobs, "vzdump: cias-vms");
    for f in [
        "schedule sun 02:00",
        "all 1",
        "exclude 100",
        "storage a_mfs",
        "mode snapshot",
        "compress gzip",
        "enabled 1",
    ] {
        assert!(vm_job.iter().any(|l| l == f), "VM job lacks '{f}':\n{jobs}");
    }

    let vms = sh(&lab, n1, "pvesh get /cluster/resources --type vm --output-format json");
    let vms: Vec<cias_core::proxmox::pvesh::VmResource> = serde_json::from_str(&vms).unwrap();
    assert!(vms.iter().any(|v| v.vmid == 100 && v.node == "node1" && v.status == "running"), "{vms:?}");
    let calls: Vec<String> = sh(&lab, n1, "grep -a '^CALL ' /mnt/mfs/images/100/vm-100-disk-0.raw")
        .lines()
        .map(|l| l.splitn(3, ' ').nth(2).unwrap_or_default().to_string())
        .collect();
    let mask_gw = r#""255.255.255.0","192.168.56.1""#;
    for expected in [
        "change_password.sh []".to_string(),
        format!(r#"setup_ip_proxmox.sh ["192.168.56.102",{mask_gw}]"#),
        format!(r#"setup_ip_nas.sh ["192.168.56.103",{mask_gw}]"#),
        format!(r#"setup_ip_vm.sh ["0","192.168.56.104",{mask_gw}]"#),
        format!(r#"setup_ip_vm.sh ["1","192.168.56.105",{mask_gw}]"#),
        r#"create_user.sh ["labadmin"]"#.to_string(),
    ] {
        assert!(calls.contains(&expected), "router calls lack {expected}: {calls:?}");
    }

    let mails = lab.mail().unwrap();
    for n in ["node1", "node2", "node3"] {
        assert!(
            mails.iter().any(|m| m.header("To").is_some_and(|t| t.contains("admin@lab.example"))
                && m.header("Subject").is_some_and(|s| s.contains(&format!("node {n} installed")))),
            "no completion mail for {n}"
        );
    }

    // Issue 6: a "never master" node never takes the role, also when nobody else can.
    step("no master left: node1 off, node2's keepalived stopped; node3 (priority 0) says so");
    sh(&lab, n2, "systemctl stop keepalived");
    lab.power_off(n1).unwrap();
    let gone = Instant::now();
    let told = |m: &xtask::lab::smtp::Mail| {
        m.header("Subject").is_some_and(|s| s.contains("no master, and node3 will not take the role"))
    };
    // cron looks every minute; the second look without a master tells.
    while !lab.mail().unwrap().iter().any(told) {
        if gone.elapsed().as_secs() > 130 {
            let seen = lab.sh(
                n3,
                "cat /data/cias/nodes/node3/watch.log /run/dlll-cias/no-master.json; \
                                   dlll_cias-watch master; journalctl -u cron --no-pager | tail -5",
            );
            panic!("node3 never told the administrator; it saw: {seen:?}");
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    eprintln!("  told after {:.0}s", gone.elapsed().as_secs_f64());
    let mails = lab.mail().unwrap();
    let report: Vec<_> = mails.iter().filter(|m| told(m)).collect();
    assert_eq!(report.len(), 1, "told once");
    assert!(report[0].body().contains("priority 0"), "{}", report[0].body());
    assert!(!has_vip(&lab, n3, "10.254.0.254"), "node3 never holds the master VIP");
    assert!(
        sh(&lab, n3, "cat /data/cias/nodes/node3/watch.log").contains("does not take the role"),
        "node3's log says so too"
    );
    assert!(!mails.iter().any(|m| m.header("Subject").is_some_and(|s| s.contains("node2 will not"))));
    step("done");
}

/// The indented lines of one section of a Proxmox section-config file.
fn section_of(text: &str, header: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| l.starts_with(char::is_whitespace))
        .map(|l| l.trim().to_string())
        .collect()
}
