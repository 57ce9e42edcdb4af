//! The placement benchmark: `cargo xtask bench placement` runs it optimized. Places 124,245 VMs
//! on 1,270 nodes (the scale) 11 times, fails when the median exceeds 50 ms, and rates
//! the plan: the highest node memory use after placement against the lowest any placement
//! could reach (the water-filling bound, see [`water_level`]).
//!
//! `--check` (CI, `cargo xtask bench --check`): one run, no time target; it only has to finish
//! and place the fleet the same way.
//!
//! Prints a Markdown table on stdout (what `cargo xtask bench` puts in docs/benchmarks.md).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use cias_core::placement::{place, Candidate, Guest};
use std::collections::HashMap;

const NODES: usize = 1_270;
const VMS: u32 = 124_245;
const RUNS: usize = 11;
const TARGET: Duration = Duration::from_millis(50);
const LIMIT_PERCENT: u8 = 90;
const GIB: u64 = 1 << 30;

/// xorshift64: deterministic, so every run and every machine places the same fleet.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Nodes of 128..1024 GiB, 50..70% in use; VMs of 512 MiB..64 GiB, mostly small (1.4 GiB on
/// average: about 80% of the room the nodes have left under the limit, so all of them fit).
fn fleet() -> (Vec<Candidate>, Vec<Guest>) {
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let nodes = (0..NODES)
        .map(|i| {
            let mem_max = (128 + 16 * rng.below(57)) * GIB;
            let percent = 50 + rng.below(21);
            Candidate { name: format!("pve{i:04}"), mem_used: mem_max / 100 * percent, mem_max }
        })
        .collect();
    // Cumulative per-mille weights of 512 MiB, 1, 2, 4, 8, 16, 32 and 64 GiB.
    const WEIGHTS: [u64; 8] = [500, 800, 920, 970, 990, 997, 999, 1000];
    let guests = (0..VMS)
        .map(|i| {
            let draw = rng.below(1000);
            let size = WEIGHTS.iter().position(|&w| draw < w).expect("weights end at 1000");
            Guest { vmid: 1000 + i, mem: (GIB / 2) << size }
        })
        .collect();
    (nodes, guests)
}

/// Peak resident memory of this process (Linux), for the report.
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(format!("{} MiB", kib / 1024))
}

/// The lowest possible highest memory share (0..1) once `extra` bytes are added to `nodes`:
/// the level L where filling every node below L up to L takes exactly `extra` bytes, or the
/// highest share already in use if that is higher (placing never frees memory). Any placement
/// of the same guests, even one that could split a VM over nodes, adds `extra` bytes in all,
/// so some node ends at L or above: no placement does better, and this is a lower bound.
fn water_level(nodes: &[Candidate], extra: u64) -> f64 {
    let share = |c: &Candidate| c.mem_used as f64 / c.mem_max as f64;
    let highest_now = nodes.iter().map(share).fold(0.0, f64::max);
    let room_below = |level: f64| -> f64 {
        nodes.iter().map(|c| (level * c.mem_max as f64 - c.mem_used as f64).max(0.0)).sum()
    };
    let (mut low, mut high) = (0.0_f64, 1.0_f64);
    while room_below(high) < extra as f64 {
        high *= 2.0;
    }
    for _ in 0..100 {
        let mid = (low + high) / 2.0;
        if room_below(mid) >= extra as f64 {
            high = mid;
        } else {
            low = mid;
        }
    }
    high.max(highest_now)
}

/// Memory use after placement.
#[derive(Debug)]
struct After {
    /// Highest, fleet-wide average and lowest share, 0..1.
    highest: f64,
    average: f64,
    lowest: f64,
    /// The node at the highest share: its size, share before, and the VMs it received.
    top_max: u64,
    top_before: f64,
    top_guests: Vec<u64>,
}

fn after(nodes: &[Candidate], guests: &[Guest], plan: &[(u32, Option<String>)]) -> After {
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, c)| (c.name.as_str(), i)).collect();
    let mut used: Vec<u64> = nodes.iter().map(|c| c.mem_used).collect();
    let mut received: Vec<Vec<u64>> = vec![Vec::new(); nodes.len()];
    for (guest, (_, node)) in guests.iter().zip(plan) {
        if let Some(node) = node {
            let i = index[node.as_str()];
            used[i] += guest.mem;
            received[i].push(guest.mem);
        }
    }
    let share = |i: usize| used[i] as f64 / nodes[i].mem_max as f64;
    let top = (0..nodes.len()).max_by(|&a, &b| share(a).total_cmp(&share(b))).expect("nodes");
    let total_max: u64 = nodes.iter().map(|c| c.mem_max).sum();
    After {
        highest: share(top),
        average: used.iter().sum::<u64>() as f64 / total_max as f64,
        lowest: (0..nodes.len()).map(share).fold(f64::MAX, f64::min),
        top_max: nodes[top].mem_max,
        top_before: nodes[top].mem_used as f64 / nodes[top].mem_max as f64,
        top_guests: std::mem::take(&mut received[top]),
    }
}

/// `n` with thousands separators, as the docs write counts.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Memory as the docs write it: GiB, or MiB under 1 GiB.
fn size(bytes: u64) -> String {
    if bytes >= GIB {
        format!("{} GiB", bytes / GIB)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => {
            eprintln!("placement: unknown argument {other:?} (only --check)");
            return ExitCode::from(2);
        }
    };
    let runs = if check { 1 } else { RUNS };
    let (nodes, guests) = fleet();
    let mut times = Vec::with_capacity(runs);
    let mut first = None;
    for _ in 0..runs {
        let start = Instant::now();
        let result = place(&nodes, &guests, LIMIT_PERCENT);
        times.push(start.elapsed());
        if *first.get_or_insert_with(|| result.clone()) != result {
            eprintln!("placement: two runs placed the fleet differently");
            return ExitCode::FAILURE;
        }
    }
    let plan = first.expect("at least one run");
    let placed_mem: u64 =
        guests.iter().zip(&plan).filter(|(_, (_, n))| n.is_some()).map(|(g, _)| g.mem).sum();
    let placed = plan.iter().filter(|(_, node)| node.is_some()).count();
    times.sort();
    let (median, max) = (times[runs / 2], times[runs - 1]);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let after = after(&nodes, &guests, &plan);
    let highest_before = nodes.iter().map(|c| c.mem_used as f64 / c.mem_max as f64).fold(0.0, f64::max);
    let bound = water_level(&nodes, placed_mem);
    let pct = |share: f64| format!("{:.2} %", share * 100.0);
    let biggest = after.top_guests.iter().max().copied().unwrap_or(0);
    let rows = [
        (
            "Fleet",
            format!(
                "{} nodes (128..1024 GiB, 50..70 % in use) x {} VMs (512 MiB..64 GiB), limit {LIMIT_PERCENT} %",
                thousands(NODES),
                thousands(guests.len())
            ),
        ),
        ("Placed", format!("{} ({} fit nowhere under the limit)", thousands(placed), guests.len() - placed)),
        ("Time", format!("median {:.1} ms, max {:.1} ms over {runs} runs (target: median under {} ms{})", ms(median), ms(max), TARGET.as_millis(), if check { "; not checked with --check" } else { "" })),
        ("Peak memory", peak_rss().unwrap_or_else(|| "unknown".into())),
        ("Highest node memory use before", pct(highest_before)),
        ("Highest node memory use after (the plan)", pct(after.highest)),
        ("Lowest possible highest use (water-filling bound)", pct(bound)),
        ("Plan above the bound", format!("{:.2} percentage points", (after.highest - bound) * 100.0)),
        ("Fleet-wide average after (a weaker bound)", pct(after.average)),
        ("Lowest node memory use after", pct(after.lowest)),
        (
            "The node at the highest use",
            format!(
                "{} node, {} before; received {} VM(s), the biggest {}",
                size(after.top_max),
                pct(after.top_before),
                after.top_guests.len(),
                size(biggest)
            ),
        ),
    ];
    println!("| What | Result |\n| --- | --- |");
    for (what, result) in rows {
        println!("| {what} | {result} |");
    }
    if !check && median > TARGET {
        eprintln!("placement: the median is over the {} ms target", TARGET.as_millis());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
