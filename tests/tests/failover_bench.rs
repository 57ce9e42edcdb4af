//! The failover timeline benchmark (issue 17), on the lab: `cargo xtask bench failover` runs it
//! (it is `#[ignore]`d in the test suite: ~30 minutes). On a 3-node cluster installed by
//! dlll_cias-setup, each fault is injected `CIAS_BENCH_RUNS` times (default 5) on the current
//! master, and the time from the fault to each milestone is measured from the surviving nodes:
//! a survivor holds the master VIP, mfsmaster answers at the VIP, MooseFS is usable (a write
//! and a read) on every surviving node, the router (VM 100) answers SSH. After each run the
//! cluster is healed and waited for until healthy again. The table (median, min, max, the
//! bound and the overhead above it) goes to `CIAS_BENCH_OUT` (default
//! `target/bench/failover.md`).
#![allow(clippy::print_stderr)]

use std::time::{Duration, Instant};

use cias_tests::cluster_probe::{
    holds, installed_lab, master, metalogger_has_copy, mfsmasters, print_logs, MASTER_VIP,
};
use xtask::lab::{Lab, Node};

/// The faults, as the issue names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    PowerOff,
    Partition,
    MfsmasterKilled,
    KeepalivedKilled,
}

impl Fault {
    const ALL: [Fault; 4] =
        [Fault::PowerOff, Fault::Partition, Fault::MfsmasterKilled, Fault::KeepalivedKilled];

    fn name(self) -> &'static str {
        match self {
            Fault::PowerOff => "power-off of the master",
            Fault::Partition => "partition: the master alone, the other two together",
            Fault::MfsmasterKilled => "mfsmaster killed (SIGKILL) on the master",
            Fault::KeepalivedKilled => "keepalived killed (SIGKILL) on the master",
        }
    }

    /// The nodes that take part after the fault (the master stays one for the daemon faults).
    fn survivors(self, lab: &Lab, m: Node) -> Vec<Node> {
        let keep_master = matches!(self, Fault::MfsmasterKilled | Fault::KeepalivedKilled);
        lab.nodes().iter().copied().filter(|&n| keep_master || n != m).collect()
    }

    fn inject(self, lab: &Lab, m: Node) {
        match self {
            Fault::PowerOff => lab.power_off(m).unwrap(),
            Fault::Partition => {
                let others = lab.nodes().iter().copied().filter(|&n| n != m).collect();
                lab.partition(&[vec![m], others]).unwrap()
            }
            Fault::MfsmasterKilled => {
                lab.sh(m, "systemctl kill -s KILL moosefs-master").unwrap();
            }
            Fault::KeepalivedKilled => {
                lab.sh(m, "systemctl kill -s KILL keepalived").unwrap();
            }
        }
    }

    /// Which milestones the fault breaks (the others are not measured): a daemon fault leaves
    /// the router running, and mfsmaster killed leaves the VIP where it is.
    fn breaks(self) -> [bool; 4] {
        match self {
            Fault::PowerOff | Fault::Partition => [true; 4],
            Fault::MfsmasterKilled => [false, true, true, false],
            Fault::KeepalivedKilled => [true, true, true, false],
        }
    }

    fn heal(self, lab: &Lab, m: Node) {
        match self {
            Fault::PowerOff => lab.power_on(m).unwrap(),
            Fault::Partition => lab.heal().unwrap(),
            Fault::MfsmasterKilled | Fault::KeepalivedKilled => {}
        }
    }
}

/// What is measured after each fault.
const MILESTONES: [&str; 4] = [
    "a survivor holds the master VIP",
    "mfsmaster answers at the VIP",
    "MooseFS usable on every survivor",
    "the router answers",
];

fn answers(lab: &Lab, from: Node, address: &str, port: u16) -> bool {
    lab.sh(from, &format!("timeout 1 bash -c 'exec 3<>/dev/tcp/{address}/{port}'")).is_ok()
}

/// A write and a read on MooseFS, only while it is mounted (never on the directory under it).
fn usable(lab: &Lab, node: Node) -> bool {
    lab.sh(
        node,
        "grep -q ' /mnt/mfs fuse' /proc/mounts && timeout 3 sh -c 'date +%s%N > /mnt/mfs/bench-$(hostname) && \
         cat /mnt/mfs/bench-$(hostname) >/dev/null'",
    )
    .is_ok()
}

/// One run: the times from the fault to each milestone it breaks (`None`: not within the
/// limit, or not broken by this fault). Each milestone is polled by its own thread every 0.1 s,
/// so a slow check (a hung mount times out after 3 s) never delays another's time. A milestone
/// counts only once it was seen broken (a check right after the fault may still see the old
/// state); its time is taken when its first good check began.
fn run(lab: &Lab, fault: Fault) -> (Node, [Option<Duration>; 4]) {
    let m = master(lab);
    let survivors = fault.survivors(lab, m);
    let probe = survivors[0];
    let holder = || survivors.iter().any(|&n| holds(lab, n, MASTER_VIP));
    let checks: [&(dyn Fn() -> bool + Sync); 4] = [
        &holder,
        &|| answers(lab, probe, MASTER_VIP, 9421),
        &|| survivors.iter().all(|&n| usable(lab, n)),
        &|| answers(lab, probe, "10.0.0.254", 22),
    ];
    let t0 = Instant::now();
    fault.inject(lab, m);
    let limit = Duration::from_secs(180);
    let times = std::thread::scope(|scope| {
        let threads: Vec<_> = checks
            .iter()
            .zip(fault.breaks())
            .map(|(check, broken_by_fault)| {
                scope.spawn(move || {
                    let mut seen_broken = false;
                    while broken_by_fault && t0.elapsed() < limit {
                        let began = t0.elapsed();
                        match check() {
                            true if seen_broken => return Some(began),
                            ok => seen_broken |= !ok,
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    None
                })
            })
            .collect();
        let times: Vec<Option<Duration>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        [times[0], times[1], times[2], times[3]]
    });
    fault.heal(lab, m);
    (m, times)
}

/// Healthy again: every node up and a member, one VIP holder running the one mfsmaster,
/// MooseFS usable everywhere, the router answering. `None`: not within 5 minutes.
fn wait_healthy(lab: &Lab) -> Option<Duration> {
    let t0 = Instant::now();
    loop {
        let nodes = lab.nodes();
        let holders: Vec<Node> = nodes.iter().copied().filter(|&n| holds(lab, n, MASTER_VIP)).collect();
        let healthy = holders.len() == 1
            && mfsmasters(lab) == holders
            && nodes.iter().all(|&n| usable(lab, n))
            && answers(lab, holders[0], "10.0.0.254", 22)
            && lab
                .sh(holders[0], "pvecm status")
                .is_ok_and(|s| s.contains(&format!("Total votes:      {}", nodes.len())))
            // Redundant again: the next fault could otherwise hit a cluster whose only full
            // metadata copy is the master's own.
            && nodes.iter().all(|&n| metalogger_has_copy(lab, n));
        if healthy {
            return Some(t0.elapsed());
        }
        if t0.elapsed() > Duration::from_secs(300) {
            return None;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Median, min and max of `values` (seconds).
fn stats(values: &[f64]) -> Option<(f64, f64, f64)> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some((*v.get(v.len() / 2)?, *v.first()?, *v.last()?))
}

/// The bound each milestone is measured against, when there is one (seconds).
fn bound(fault: Fault, milestone: usize) -> Option<(f64, &'static str)> {
    let vrrp = 3.0 + 1.0; // 3 adverts of 1 s + the priority skew (under 1 s)
    let fence = 10.0 + 5.0; // fencing.delay_secs + margin_secs: VMs of a lost node wait this long
    let lost = matches!(fault, Fault::PowerOff | Fault::Partition);
    match (milestone, lost) {
        (0, true) => Some((vrrp, "3 x advert + skew")),
        (3, true) => Some((fence, "fence delay + margin")),
        _ => None,
    }
}

#[test]
#[ignore = "a benchmark: cargo xtask bench failover"]
fn failover_timeline() {
    let runs: usize = std::env::var("CIAS_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    let (lab, _down) = installed_lab(3);
    wait_healthy(&lab).expect("the installed cluster is healthy");
    // A run after which the cluster did not heal ends the bench: later runs would measure a
    // broken cluster. Its rows keep the runs done, and the table says why it stopped.
    let mut stopped = None;
    let mut table = String::from(
        "| fault | milestone | median (s) | min (s) | max (s) | bound (s) | overhead of the median (s) |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for fault in Fault::ALL {
        let mut measured: [Vec<f64>; 4] = Default::default();
        let mut missed = [0usize; 4];
        let mut done = 0;
        for i in 0..runs {
            let (m, times) = run(&lab, fault);
            let settle = wait_healthy(&lab);
            done += 1;
            eprintln!(
                "{} (run {}, master {m}): {:?}; healthy again {}",
                fault.name(),
                i + 1,
                times.map(|t| t.map(|d| (d.as_secs_f64() * 10.0).round() / 10.0)),
                settle
                    .map_or("- (not within 5 minutes)".into(), |d| format!("{:.1} s later", d.as_secs_f64()))
            );
            for (k, t) in times.iter().enumerate() {
                match t {
                    Some(d) => measured[k].push(d.as_secs_f64()),
                    None => missed[k] += 1,
                }
            }
            if settle.is_none() {
                // What kept it from healing, for the note that reports the stop.
                print_logs(&lab, lab.nodes());
                stopped = Some(format!(
                    "Stopped after run {} of \"{}\" (master {m}): the cluster was not healthy again 5 minutes \
                     after the fault was healed.",
                    i + 1,
                    fault.name()
                ));
                break;
            }
        }
        for (k, milestone) in MILESTONES.iter().enumerate().filter(|(k, _)| fault.breaks()[*k]) {
            let (median, min, max) = match stats(&measured[k]) {
                Some((a, b, c)) => (format!("{a:.1}"), format!("{b:.1}"), format!("{c:.1}")),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let (bound_text, overhead) = match (bound(fault, k), stats(&measured[k])) {
                (Some((b, why)), Some((med, _, _))) => {
                    (format!("{b:.0} ({why})"), format!("{:+.1}", med - b))
                }
                (Some((b, why)), None) => (format!("{b:.0} ({why})"), "-".into()),
                (None, _) => ("-".into(), "-".into()),
            };
            let missed = if missed[k] > 0 {
                format!(" ({} of {done} runs: not within 180 s)", missed[k])
            } else {
                String::new()
            };
            table.push_str(&format!(
                "| {} | {milestone}{missed} | {median} | {min} | {max} | {bound_text} | {overhead} |\n",
                fault.name()
            ));
        }
        if stopped.is_some() {
            break;
        }
    }
    if let Some(why) = stopped {
        table.push_str(&format!("\n{why}\n"));
    }
    cias_tests::cluster_probe::write_bench_table("failover", &table);
}
