//! What the lab tests of an installed cluster look at: who holds the VIPs, whose mfsmaster
//! runs, where a VM runs and what its disk says, the writer that proves no record is lost,
//! and a poller that samples the cluster every 0.2 s while faults are injected.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xtask::lab::{Lab, Node};

pub const MASTER_VIP: &str = "10.254.0.254";
pub const EXTERNAL_VIP: &str = "192.168.56.101";

pub fn sh(lab: &Lab, node: Node, script: &str) -> String {
    lab.sh(node, script).unwrap_or_else(|e| panic!("{node}: {script}: {e:#}"))
}

/// Runs the job of the node's installed cron file (`/etc/cron.d/dlll-cias`) whose command
/// contains `job`, as cron does: its command line through `sh`, without a terminal.
pub fn run_cron_job(lab: &Lab, node: Node, job: &str) -> String {
    let cron = sh(lab, node, "cat /etc/cron.d/dlll-cias");
    let line = cron
        .lines()
        .find(|l| !l.starts_with('#') && l.contains(job))
        .unwrap_or_else(|| panic!("no cron line for '{job}' on {node}:\n{cron}"));
    // Fields: minute hour day month weekday user command (tab before the user and the command).
    let command = line.splitn(3, '\t').nth(2).unwrap_or_else(|| panic!("no command in '{line}'"));
    sh(lab, node, &format!("{command} </dev/null 2>&1 | cat"))
}

/// Sets `key` (a leaf name, unique in the file) to `value` in the settings of `nodes`.
pub fn set_setting(lab: &Lab, nodes: &[Node], key: &str, value: &str) {
    for &n in nodes {
        sh(
            lab,
            n,
            &format!("sed -i 's/^\\( *\\){key}: .*/\\1{key}: {value}/' /data/cias/cias.yaml && grep -q '{key}: {value}$' /data/cias/cias.yaml"),
        );
    }
}

/// The node's journal lines of `identifier` (`journalctl -t`), message text only.
pub fn journal(lab: &Lab, node: Node, identifier: &str) -> String {
    sh(lab, node, &format!("journalctl -t {identifier} --no-pager -o cat"))
}

pub fn holds(lab: &Lab, node: Node, ip: &str) -> bool {
    lab.is_up(node)
        && lab.sh(node, "ip -o -4 addr show").map(|a| a.contains(&format!(" {ip}/"))).unwrap_or(false)
}

pub fn holders(lab: &Lab, ip: &str) -> Vec<Node> {
    lab.nodes().iter().copied().filter(|&n| holds(lab, n, ip)).collect()
}

/// Tears the lab down when dropped: at the end of a test that brought up its own lab, passed
/// or failed.
#[derive(Debug)]
pub struct Down;

impl Drop for Down {
    fn drop(&mut self) {
        let _ = Lab::down();
    }
}

/// A fresh lab of `nodes` nodes with the cluster installed by dlll_cias-setup (node1 first, the
/// others extending), and the guard that tears it down.
pub fn installed_lab(nodes: u8) -> (Lab, Down) {
    let lab = Lab::up(&xtask::lab::LabConfig { nodes, ..Default::default() }).unwrap();
    let down = Down;
    xtask::demo::install_cluster(&lab).unwrap();
    (lab, down)
}

/// Prints a test's phases with the time since it started: `[  12.3s] what`.
pub fn stepper() -> impl Fn(&str) {
    let t0 = Instant::now();
    move |what: &str| eprintln!("[{:>6.1}s] {what}", t0.elapsed().as_secs_f64())
}

/// The cluster's configured members, online or not, as `pvesh get /cluster/status` lists them.
pub fn members(lab: &Lab, seen_from: Node) -> Vec<String> {
    let json = sh(lab, seen_from, "pvesh get /cluster/status --output-format json");
    let entries: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    entries
        .iter()
        .filter(|e| e["type"] == "node")
        .filter_map(|e| e["name"].as_str().map(String::from))
        .collect()
}

/// The one node holding the master VIP (fails when none or several do).
pub fn master(lab: &Lab) -> Node {
    let h = holders(lab, MASTER_VIP);
    assert_eq!(h.len(), 1, "exactly one master expected, got {h:?}");
    h[0]
}

/// Polls `check` every 100 ms for up to `limit`; returns when it first held.
pub fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if check() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a wait; when it fails, prints `node`'s takeover and fence logs first.
pub fn explained<T>(lab: &Lab, node: Node, wait: impl FnOnce() -> T + std::panic::UnwindSafe) -> T {
    explained_by(lab, &[node], wait)
}

/// Runs checks; when one fails, prints the takeover and fence logs of `nodes` first.
pub fn explained_by<T>(lab: &Lab, nodes: &[Node], checks: impl FnOnce() -> T + std::panic::UnwindSafe) -> T {
    match std::panic::catch_unwind(checks) {
        Ok(v) => v,
        Err(e) => {
            print_logs(lab, nodes);
            std::panic::resume_unwind(e)
        }
    }
}

/// Prints the takeover and fence logs, and the units behind them, of the `nodes` that are up.
pub fn print_logs(lab: &Lab, nodes: &[Node]) {
    for &node in nodes.iter().filter(|&&n| lab.is_up(n)) {
        let logs = lab
            .sh(
                node,
                &format!(
                    "tail -n 40 /data/cias/nodes/{node}/takeover.log /data/cias/nodes/{node}/fence.log; \
                     journalctl -u keepalived -u moosefs-master -u moosefs-metalogger -u dlll-cias-publish-base --no-pager | tail -n 40; ls -la /var/lib/mfs"
                ),
            )
            .unwrap_or_default();
        eprintln!("--- logs of {node}:\n{logs}");
    }
}

/// Whether systemd counts `node`'s mfsmaster as running (lab nodes share the machine's view of
/// processes, so systemd's word is the node's own).
pub fn master_runs_on(lab: &Lab, node: Node) -> bool {
    lab.is_up(node)
        && lab
            .sh(node, "systemctl is-active moosefs-master || true")
            .is_ok_and(|o| matches!(o.trim(), "active" | "activating" | "deactivating" | "reloading"))
}

/// Whether `node`'s metalogger holds a full metadata copy a master could start from (a node
/// demoted from master starts its metalogger over, and downloads one).
pub fn metalogger_has_copy(lab: &Lab, node: Node) -> bool {
    let copy = "test -n \"$(find /var/lib/mfs -maxdepth 1 -name 'metadata_ml.mfs.back*' -size +0)\"";
    lab.sh(node, copy).is_ok()
}

/// The nodes whose mfsmaster runs.
pub fn mfsmasters(lab: &Lab) -> Vec<Node> {
    lab.nodes().iter().copied().filter(|&n| master_runs_on(lab, n)).collect()
}

/// Where VM `vmid` runs, as a node of the quorate side sees it.
pub fn running_on(lab: &Lab, seen_from: Node, vmid: u32) -> Option<String> {
    let json = lab.sh(seen_from, "pvesh get /cluster/resources --type vm --output-format json").ok()?;
    let vms: Vec<cias_core::proxmox::pvesh::VmResource> = serde_json::from_str(&json).ok()?;
    vms.into_iter().find(|v| v.vmid == vmid && v.status == "running").map(|v| v.node)
}

/// Heartbeat records `(node, unix_ms)` of a VM's disk, in file order.
pub fn heartbeats(lab: &Lab, reader: Node, vmid: u32) -> Vec<(String, u64)> {
    let disk = format!("/mnt/mfs/images/{vmid}/vm-{vmid}-disk-0.raw");
    sh(lab, reader, &format!("grep -a '^HB {vmid} ' {disk} || true"))
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.get(2)?.to_string(), f.get(4)?.parse().ok()?))
        })
        .collect()
}

/// The last record on a VM's disk: `HB ...` (it was running, or lost power) or `DOWN ...`
/// (it was stopped cleanly).
pub fn last_disk_record(lab: &Lab, reader: Node, vmid: u32) -> String {
    let disk = format!("/mnt/mfs/images/{vmid}/vm-{vmid}-disk-0.raw");
    sh(lab, reader, &format!("grep -a -E '^(HB|DOWN) {vmid} ' {disk} | tail -n 1")).trim().to_string()
}

/// The heartbeat proof: the disk holds at least `runs` unbroken runs of records, one node
/// each, each run starting after the previous one ended - two nodes writing at once would
/// interleave. Returns the runs `(node, first ms, last ms)`.
pub fn never_ran_twice(lab: &Lab, reader: Node, vmid: u32, runs: usize) -> Vec<(String, u64, u64)> {
    let beats = heartbeats(lab, reader, vmid);
    assert!(!beats.is_empty(), "VM {vmid} wrote no heartbeat");
    let mut segments: Vec<(String, u64, u64)> = vec![];
    for (node, t) in beats {
        match segments.last_mut() {
            Some((n, _, last)) if *n == node => *last = t,
            _ => segments.push((node, t, t)),
        }
    }
    for w in segments.windows(2) {
        assert!(w[1].1 > w[0].2, "VM {vmid}: {} started before {} stopped: {segments:?}", w[1].0, w[0].0);
    }
    // More runs than moves happen when two backups won the election at once for a moment:
    // the loser's router then migrates to the winner, one run after the other.
    assert!(segments.len() >= runs, "VM {vmid}: runs on its disk {segments:?}");
    segments
}

/// Creates and starts VMs `(VMID, MiB)` on `node` with a 1 GiB disk on MooseFS (`options`:
/// more `qm create` options), and waits until each writes its heartbeats there, as `reader`
/// reads them.
pub fn start_vms(lab: &Lab, node: Node, reader: Node, vms: &[(u32, u32)], options: &str) {
    for (vmid, mem) in vms {
        sh(
            lab,
            node,
            &format!("qm create {vmid} --name app{vmid} --memory {mem} --scsi0 a_mfs:1 {options} && qm start {vmid}"),
        );
    }
    for (vmid, _) in vms {
        wait_for(&format!("VM {vmid} writing on {node}"), Duration::from_secs(20), || {
            heartbeats(lab, reader, *vmid).iter().any(|(n, _)| *n == node.name())
        });
    }
}

/// A writer on `node` appending fsync'd, numbered records to MooseFS every 0.1 s; each
/// record it could sync is listed in its local `/root/acked`. It writes only while MooseFS is
/// mounted (a fenced node's mount is cut, and the directory under it is the local disk).
pub fn start_writer(lab: &Lab, node: Node) {
    sh(
        lab,
        node,
        "systemd-run --unit=cias-writer --quiet sh -c 'i=0; while :; do i=$((i+1)); \
         if grep -q \" /mnt/mfs fuse\" /proc/mounts && echo $i >> /mnt/mfs/writer.log && sync /mnt/mfs/writer.log; \
         then echo $i >> /root/acked; fi; sleep 0.1; done'",
    );
    wait_for("the writer", Duration::from_secs(10), || acked(lab, node) > 3);
}

pub fn acked(lab: &Lab, writer: Node) -> usize {
    lab.sh(writer, "wc -l < /root/acked").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// Waits until the writer on `writer` has acknowledged new records after `before`.
pub fn writer_resumes(lab: &Lab, writer: Node, before: usize) -> Duration {
    wait_for("the writer to resume", Duration::from_secs(30), || acked(lab, writer) > before + 1)
}

/// Every record the writer had fsync'd (listed in its local acknowledgement file) is on MooseFS.
pub fn writer_lost_nothing(lab: &Lab, writer: Node) -> usize {
    let acked: Vec<u64> =
        sh(lab, writer, "cat /root/acked").lines().filter_map(|l| l.trim().parse().ok()).collect();
    let stored: std::collections::BTreeSet<u64> =
        sh(lab, writer, "cat /mnt/mfs/writer.log").lines().filter_map(|l| l.trim().parse().ok()).collect();
    let lost: Vec<&u64> = acked.iter().filter(|n| !stored.contains(n)).collect();
    assert!(lost.is_empty(), "fsync'd records lost: {lost:?}");
    acked.len()
}

/// One look at the whole cluster.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Duration,
    pub vip_holders: Vec<Node>,
    pub masters: Vec<Node>,
}

/// Samples who holds the master VIP and whose mfsmaster runs, every 0.2 s, in the background.
#[derive(Debug)]
pub struct Poller {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Poller {
    pub fn start(lab: &Lab) -> Self {
        let (samples, stop) = (Arc::new(Mutex::new(vec![])), Arc::new(AtomicBool::new(false)));
        let (lab, started) = (lab.clone(), Instant::now());
        let (into, until) = (samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !until.load(Ordering::Relaxed) {
                let look = Instant::now();
                let (mut vip_holders, mut masters) = (vec![], vec![]);
                for &node in lab.nodes().iter().filter(|&&n| lab.is_up(n)) {
                    // One round per node: its addresses and its mfsmaster's state.
                    let out = lab
                        .sh(node, "ip -o -4 addr show; systemctl is-active moosefs-master || true")
                        .unwrap_or_default();
                    if out.contains(&format!(" {MASTER_VIP}/")) {
                        vip_holders.push(node);
                    }
                    if out
                        .lines()
                        .last()
                        .is_some_and(|l| matches!(l.trim(), "active" | "activating" | "deactivating"))
                    {
                        masters.push(node);
                    }
                }
                into.lock().unwrap().push(Sample { at: started.elapsed(), vip_holders, masters });
                std::thread::sleep(Duration::from_millis(200).saturating_sub(look.elapsed()));
            }
        });
        Poller { samples, stop, thread: Some(thread) }
    }

    /// Stops sampling; returns every sample.
    pub fn stop(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}

/// The samples with two mfsmasters, and those with two VIP holders.
pub fn doubles(samples: &[Sample]) -> (Vec<&Sample>, Vec<&Sample>) {
    (
        samples.iter().filter(|s| s.masters.len() > 1).collect(),
        samples.iter().filter(|s| s.vip_holders.len() > 1).collect(),
    )
}

/// A lab benchmark's table, written where `cargo xtask bench` reads it (`CIAS_BENCH_OUT`,
/// else `target/bench/<name>.md`) and shown.
pub fn write_bench_table(name: &str, table: &str) {
    let out = std::env::var("CIAS_BENCH_OUT").unwrap_or_else(|_| format!("target/bench/{name}.md"));
    if let Some(dir) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(&out, table).unwrap();
    eprintln!("{table}\nwritten to {out}");
}
