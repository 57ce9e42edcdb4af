//! The lab itself (`cargo xtask lab`, issue 3): real nodes, real services, real faults.
//! Needs root. One lab is shared by these tests, one test at a time; a lab that cannot start
//! fails them.
#![allow(clippy::disallowed_methods, clippy::print_stderr)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context, Result};
use cias_tests::lab_support::{shared_lab, wait_for, LabSession};
use xtask::lab::addr::{MASTER_VIP, SMTP_HOSTNAME};
use xtask::lab::{Lab, Node};

/// Every test below takes the shared lab; the last one to finish tears it down.
const TESTS: usize = 5;

fn lab() -> LabSession {
    shared_lab(TESTS)
}

fn node(i: u8) -> Node {
    Node::new(i).expect("valid node")
}

#[test]
fn nodes_boot_with_pinned_ssh_between_them_and_their_own_disks() -> Result<()> {
    let lab = lab();
    assert_eq!(lab.nodes().len(), 3);
    for &from in lab.nodes() {
        for &to in lab.nodes() {
            // Host keys are pinned: StrictHostKeyChecking=yes against the lab's known_hosts.
            let script = format!(
                "ssh -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=5 {to} hostname"
            );
            assert_eq!(lab.sh(from, &script)?.trim(), to.name(), "ssh {from} -> {to}");
        }
        let out = lab.ssh(from, &["hostname"])?;
        assert!(out.success(), "driver -> {from}: {}", out.stderr);
        assert_eq!(out.stdout.trim(), from.name());
    }

    let mut all_disks = BTreeSet::new();
    for &n in lab.nodes() {
        let own: BTreeSet<String> = lab.disks(n)?.into_iter().collect();
        assert_eq!(own.len(), 2, "{n} has two disks");
        all_disks.extend(own.iter().cloned());
        let in_dev: BTreeSet<String> = lab.sh(n, "ls /dev/loop[0-9]*")?.lines().map(String::from).collect();
        assert_eq!(in_dev, own, "{n}'s /dev shows only its own disks");
        let in_lsblk: BTreeSet<String> =
            lab.sh(n, "lsblk -dn -o NAME")?.lines().map(|name| format!("/dev/{}", name.trim())).collect();
        assert_eq!(in_lsblk, own, "{n}'s lsblk shows only its own disks");
        // Disk 2: the MooseFS test formats disk 1 of the shared lab.
        let blank = lab.sh(n, &format!("blkid -p {} || echo blank", lab.disks(n)?[1]))?;
        assert_eq!(blank.trim(), "blank", "{n}'s disks are blank");
    }
    assert_eq!(all_disks.len(), 6, "no disk is shared between nodes");

    // Nothing routes out of the lab, and the machine's own namespace got no lab address.
    let routes = lab.sh(node(1), "ip route")?;
    assert!(!routes.contains("default"), "no default route in a node: {routes}");
    let host = duct::cmd!("ip", "-4", "-o", "addr", "show").read()?;
    assert!(!host.contains(" 10.") && !host.contains("192.168.56."), "host namespace: {host}");
    Ok(())
}

/// The keepalived config of the lab test: one VRRP instance, VIP 10.254.0.254/8 on eth0.
fn keepalived_conf(n: Node, priority: u8) -> String {
    format!(
        "global_defs {{\n  router_id {n}\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 54\n  \
         priority {priority}\n  advert_int 1\n  virtual_ipaddress {{\n    {MASTER_VIP}/8 dev eth0 label eth0:vip\n  }}\n}}\n"
    )
}

/// The nodes holding the master VIP now.
fn vip_holders(lab: &Lab) -> Result<Vec<Node>> {
    let mut holders = Vec::new();
    for &n in lab.nodes() {
        if lab.status(n)?.vips.iter().any(|(_, a)| *a == MASTER_VIP) {
            holders.push(n);
        }
    }
    Ok(holders)
}

/// Waits until exactly one node holds the VIP (and still does a second later).
fn single_master(lab: &Lab, timeout: Duration) -> Result<Node> {
    wait_for("exactly one VIP holder", timeout, || {
        let holders = vip_holders(lab)?;
        if holders.len() != 1 {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_secs(1));
        Ok((vip_holders(lab)? == holders).then_some(holders[0]))
    })
}

#[test]
fn keepalived_elects_one_master_fails_over_on_power_off_and_splits_on_partition() -> Result<()> {
    let lab = lab();
    for (&n, priority) in lab.nodes().iter().zip([150, 100, 50]) {
        lab.sh(
            n,
            &format!(
                "cat > /etc/keepalived/keepalived.conf <<'EOF'\n{}EOF\nsystemctl restart keepalived",
                keepalived_conf(n, priority)
            ),
        )?;
    }
    let master = single_master(&lab, Duration::from_secs(20))?;
    assert_eq!(master, node(1), "the highest priority wins");

    let cut_at = Instant::now();
    lab.power_off(master)?;
    let next = wait_for("another node to take the VIP", Duration::from_secs(10), || {
        Ok(vip_holders(&lab)?.first().copied())
    })?;
    let failover = cut_at.elapsed();
    eprintln!("VIP moved {master} -> {next} in {failover:.1?} after power-off");
    assert_eq!(next, node(2));
    assert!(!lab.status(master)?.up);

    // Back on, node1 preempts (no nopreempt in this config); then split it from the others.
    lab.power_on(master)?;
    let master = single_master(&lab, Duration::from_secs(20))?;
    let others: Vec<Node> = lab.nodes().iter().copied().filter(|&n| n != master).collect();
    lab.partition(&[vec![master], others])?;
    let split_at = Instant::now();
    let holders = wait_for("both sides to claim the VIP", Duration::from_secs(10), || {
        let holders = vip_holders(&lab)?;
        Ok((holders.len() == 2).then_some(holders))
    })?;
    eprintln!("split brain after {:.1?}: {holders:?} hold {MASTER_VIP}", split_at.elapsed());
    assert!(holders.contains(&master));

    lab.heal()?;
    single_master(&lab, Duration::from_secs(15))?;
    for &n in lab.nodes() {
        lab.sh(n, "systemctl stop keepalived && rm /etc/keepalived/keepalived.conf")?;
    }
    Ok(())
}

#[test]
fn moosefs_file_written_on_node1_reads_back_on_node3() -> Result<()> {
    let lab = lab();
    let master = node(1);
    for &n in lab.nodes() {
        let disk = lab.disks(n)?[0].clone();
        let name = disk.trim_start_matches("/dev/");
        let master_ip = master.lan_ip();
        lab.sh(
            n,
            &format!(
                "set -e
                 echo '{master_ip} mfsmaster' >> /etc/hosts
                 mkfs.ext4 -q -F {disk}
                 mkdir -p /data/{name} /mnt/mfs
                 mount {disk} /data/{name}
                 chown mfs:mfs /data/{name}
                 echo /data/{name} > /etc/mfs/mfshdd.cfg
                 echo 'MASTER_HOST = mfsmaster' > /etc/mfs/mfschunkserver.cfg"
            ),
        )
        .with_context(|| format!("preparing {n}"))?;
    }
    lab.sh(
        master,
        "set -e
         echo 'EXPORTS_FILENAME = /etc/mfs/mfsexports.cfg' > /etc/mfs/mfsmaster.cfg
         echo '10.254.0.0/16 / rw,alldirs,maproot=0' > /etc/mfs/mfsexports.cfg
         install -o mfs -g mfs -m 640 /var/lib/mfs/metadata.mfs.empty /var/lib/mfs/metadata.mfs
         systemctl start moosefs-master",
    )?;
    for &n in lab.nodes() {
        lab.sh(n, "systemctl start moosefs-chunkserver")?;
    }
    wait_for("3 chunkservers at the master", Duration::from_secs(30), || {
        let out = lab.exec(master, &["mfscli", "-H", "mfsmaster", "-n", "-SCS", "-s", ";"])?;
        let servers = out.stdout.lines().filter(|l| l.contains("10.254.1.")).count();
        Ok((servers == 3).then_some(()))
    })?;
    for &n in lab.nodes() {
        lab.sh(n, "mfsmount -H mfsmaster /mnt/mfs")?;
    }
    let written = lab.sh(
        node(1),
        "set -e; head -c 3M /dev/urandom > /mnt/mfs/lab-test.bin; sha256sum < /mnt/mfs/lab-test.bin",
    )?;
    let read = lab.sh(node(3), "timeout 30 sha256sum < /mnt/mfs/lab-test.bin")?;
    assert_eq!(read, written, "node3 reads what node1 wrote");
    let mounts = lab.status(node(3))?.mounts;
    assert!(mounts.iter().any(|(p, _)| p == "/mnt/mfs"), "status shows the mount: {mounts:?}");

    // Unmount everywhere before the master stops: a mount without its master blocks `stat`.
    for &n in lab.nodes() {
        lab.sh(n, "umount /mnt/mfs")?;
    }
    for &n in lab.nodes() {
        lab.sh(n, "systemctl stop moosefs-chunkserver moosefs-master && umount /data/*")?;
    }
    Ok(())
}

#[test]
fn mail_from_a_node_reaches_the_smtp_server() -> Result<()> {
    let lab = lab();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let subject = format!("lab test {nanos}");
    // A plain SMTP dialogue over bash's /dev/tcp; every reply must have the expected code.
    let script = format!(
        r#"set -e
exec 3<>/dev/tcp/{SMTP_HOSTNAME}/25
expect() {{ read -r reply <&3; case "$reply" in "$1"*) ;; *) echo "got: $reply" >&2; exit 1;; esac; }}
say() {{ printf '%s\r\n' "$1" >&3; }}
expect 220
say 'HELO node2'; expect 250
say 'MAIL FROM:<root@node2>'; expect 250
say 'RCPT TO:<admin@example.com>'; expect 250
say 'DATA'; expect 354
say 'From: root@node2'; say 'To: admin@example.com'; say 'Subject: {subject}'; say ''
say 'The lab delivers mail.'; say '.'; expect 250
say 'QUIT'; expect 221
"#
    );
    lab.sh(node(2), &script)?;
    let mail = wait_for("the message in the Maildir", Duration::from_secs(5), || {
        Ok(lab.mail()?.into_iter().find(|m| m.header("Subject").as_deref() == Some(&subject)))
    })?;
    assert_eq!(mail.header("X-RcptTo").as_deref(), Some("admin@example.com"));
    assert!(mail.header("X-Peer").unwrap_or_default().contains("10.254.1.2"), "{}", mail.raw);
    assert_eq!(mail.body().trim(), "The lab delivers mail.");
    Ok(())
}

#[test]
fn down_leaves_nothing_behind() -> Result<()> {
    let mut lab = lab();
    // Leave as much as possible running: a mounted disk, a cut link, a powered-off node.
    let disk = lab.disks(node(1))?[1].clone();
    lab.sh(node(1), &format!("mkfs.ext4 -q -F {disk} && mkdir -p /data/x && mount {disk} /data/x"))?;
    lab.cut(node(2))?;
    lab.power_off(node(3))?;

    lab.down()?;
    let left = Lab::leftovers()?;
    ensure!(left.is_empty(), "left behind: {left:?}");
    // Checked again here without the lab's own helpers.
    let netns = duct::cmd!("ip", "netns", "list").read()?;
    ensure!(!netns.contains("cias-lab"), "namespaces: {netns}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    ensure!(!mounts.contains("cias-lab"), "mounts: {mounts}");
    let loops = duct::cmd!("losetup", "--list").read()?;
    ensure!(!loops.contains("/var/lib/cias-lab"), "loop devices: {loops}");
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup")? {
        let cgroup = hierarchy?.path().join("cias-lab");
        ensure!(!cgroup.exists(), "cgroup {} is left", cgroup.display());
    }
    Lab::down().context("a second down")?;
    Ok(())
}
