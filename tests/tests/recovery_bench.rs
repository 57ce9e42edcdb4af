//! The mass recovery benchmark (issue 17), on the lab: `cargo xtask bench recovery` runs it (it
//! is `#[ignore]`d in the test suite). On a 3-node cluster installed by dlll_cias-setup, the
//! master carries N stand-in VMs (32 MiB each, disks on MooseFS) besides the router, and is
//! powered off. Measured from the survivors: when the first and the last of the N runs again,
//! against the fence bound (a lost node's VMs may start only once it has been gone for
//! `fencing.delay_secs` + `margin_secs`, 15 s), and how many `qm start` ran at once (sampled
//! every 0.5 s). Sizes from `CIAS_BENCH_VMS` (default "50,200"); the table goes to
//! `CIAS_BENCH_OUT` (default `target/bench/recovery.md`).
#![allow(clippy::print_stderr)]

use std::time::{Duration, Instant};

use cias_core::netplan::Vmid;
use cias_core::proxmox::pvesh::{self, VmResource};
use cias_tests::cluster_probe::{installed_lab, master, sh};
use xtask::lab::{Lab, Node};

/// The fence bound of the lab's settings: fencing.delay_secs + margin_secs.
const FENCE_BOUND: Duration = Duration::from_secs(15);

/// How many of `vmids` run on `on`, as `from` sees the cluster (`None` while it cannot tell).
fn running(lab: &Lab, from: Node, vmids: &[u32], on: &[Node]) -> Option<usize> {
    let json = lab.sh(from, "pvesh get /cluster/resources --type vm --output-format json").ok()?;
    let vms: Vec<VmResource> = pvesh::parse("pvesh get /cluster/resources", &json).ok()?;
    let here = |v: &VmResource| on.iter().any(|n| n.name() == v.node);
    Some(vms.iter().filter(|v| v.status == "running" && vmids.contains(&v.vmid) && here(v)).count())
}

/// `qm start` processes on `nodes` right now (`[q]`: not the asking shell itself).
fn starts_in_flight(lab: &Lab, nodes: &[Node]) -> usize {
    nodes
        .iter()
        .map(|&n| {
            lab.sh(n, "pgrep -c -f '[q]m start' || true")
                .ok()
                .and_then(|o| o.trim().parse().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// One size: (first running, last running, peak starts in flight), from the power-off.
fn recover(count: usize) -> (Option<Duration>, Option<Duration>, usize) {
    let (lab, _down) = installed_lab(3);
    let m = master(&lab);
    let vmids: Vec<u32> = Vmid::all().take(count).map(Vmid::number).collect();
    let list = vmids.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ");
    sh(
        &lab,
        m,
        &format!("for v in {list}; do qm create $v --name bench$v --memory 32 --scsi0 a_mfs:1 && qm start $v || exit 1; done"),
    );
    let survivors: Vec<Node> = lab.nodes().iter().copied().filter(|&n| n != m).collect();
    let probe = survivors[0];
    let t = Instant::now();
    while running(&lab, probe, &vmids, &[m]) != Some(count) {
        assert!(t.elapsed() < Duration::from_secs(120), "the {count} VMs did not all run on {m}");
        std::thread::sleep(Duration::from_millis(500));
    }
    // The new master starts what the VMID map says ran (the master's cron writes it each minute).
    sh(&lab, m, "dlll_cias-watch vmids");
    let off = Instant::now();
    lab.power_off(m).unwrap();
    let (mut first, mut last, mut peak) = (None, None, 0);
    while off.elapsed() < Duration::from_secs(900) && last.is_none() {
        peak = peak.max(starts_in_flight(&lab, &survivors));
        // Only VMs on a survivor count: the view shows the dead node's as running a while.
        match running(&lab, probe, &vmids, &survivors) {
            Some(n) if n > 0 && first.is_none() => first = Some(off.elapsed()),
            Some(n) if n == count => last = Some(off.elapsed()),
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("{count} VMs: first {first:?}, last {last:?}, peak starts in flight {peak}");
    (first, last, peak)
}

#[test]
#[ignore = "a benchmark: cargo xtask bench recovery"]
fn mass_recovery() {
    let sizes: Vec<usize> = std::env::var("CIAS_BENCH_VMS")
        .unwrap_or_else(|_| "50,200".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut table = String::from(
        "| VMs on the lost master | first runs again after the fence bound (s) | last runs again after the fence bound (s) | VMs per second | peak `qm start` in flight |\n\
         |---|---|---|---|---|\n",
    );
    let after = |d: Option<Duration>| match d {
        Some(d) => format!("{:.1}", d.as_secs_f64() - FENCE_BOUND.as_secs_f64()),
        None => "not within 900 s".into(),
    };
    for count in sizes {
        let (first, last, peak) = recover(count);
        let rate = match (first, last) {
            (Some(a), Some(b)) if b > a => format!("{:.1}", count as f64 / (b - a).as_secs_f64()),
            _ => "-".into(),
        };
        table.push_str(&format!("| {count} | {} | {} | {rate} | {peak} |\n", after(first), after(last)));
    }
    cias_tests::cluster_probe::write_bench_table("recovery", &table);
}
