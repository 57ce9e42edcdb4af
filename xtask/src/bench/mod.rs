//! `cargo xtask bench [NAME...]`: the non-lab benchmarks of issue 17, each a section of
//! `docs/benchmarks.md` that the run rewrites (all of them, or only the named ones) with the
//! command that produced it and the machine it ran on.
//!
//! - `placement` (quick): `cias_core::placement::place` at 1,270 nodes x 124,245 VMs, time and
//!   quality (`crates/cias-core/examples/placement_bench.rs`, built optimized).
//! - `startup` (quick): start-up time and peak memory of every shipped binary.
//! - `sweep` (slow, ~10 minutes): the node watch's liveness sweep over 1,270 loopback targets
//!   against parallel-ssh and Ansible's ping, in a throw-away network namespace.
//! - `failover`, `recovery` (lab, run only when named): see [`lab`].
//!
//! `--check` (what CI does, through the test below): the quick ones in a debug build with short
//! runs, no time target, `docs/benchmarks.md` untouched; they only have to complete.
//!
//! A bench that misses its target still writes its section, and the command then fails.

mod doc;
mod lab;
mod placement;
mod startup;
mod sweep;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

/// What can be measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Target {
    /// `cias_core::placement::place` at 1,270 nodes x 124,245 VMs: time (median under 50 ms)
    /// and the highest node memory use against the water-filling bound.
    Placement,
    /// Start-up time (median, max of 20 runs) and peak memory of every `dlll_cias-*` binary.
    Startup,
    /// The node watch's sweep of 1,270 loopback targets beside parallel-ssh and Ansible's ping
    /// (slow: about 10 minutes; installs pssh and ansible-core).
    Sweep,
    /// The lab: fault -> VIPs, mfsmaster, mounts, router; repeated (about 30 minutes).
    Failover,
    /// The lab: the master dies carrying 50 and 200 VMs (about 15 minutes).
    Recovery,
}

impl Target {
    /// What `cargo xtask bench` runs without names, and the order of docs/benchmarks.md (the
    /// lab ones run only when named: they need the lab to themselves).
    pub const ALL: [Target; 3] = [Target::Placement, Target::Startup, Target::Sweep];
    /// The ones CI runs (`--check`).
    pub const QUICK: [Target; 2] = [Target::Placement, Target::Startup];

    fn name(self) -> &'static str {
        match self {
            Target::Placement => "placement",
            Target::Startup => "startup",
            Target::Sweep => "sweep",
            Target::Failover => "failover",
            Target::Recovery => "recovery",
        }
    }

    fn measure(self, mode: Mode) -> Result<Report> {
        match self {
            Target::Placement => placement::run(mode),
            Target::Startup => startup::run(mode),
            Target::Sweep => sweep::run(mode),
            Target::Failover => lab::failover(mode),
            Target::Recovery => lab::recovery(mode),
        }
    }
}

/// A real measurement, or `--check`: debug build, short runs, only completion counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Measure,
    Check,
}

impl Mode {
    /// Cargo's profile flag and the target subdirectory the binaries land in.
    fn profile(self) -> (Option<&'static str>, &'static str) {
        match self {
            Mode::Measure => (Some("--release"), "release"),
            Mode::Check => (None, "debug"),
        }
    }
}

/// What a bench found: its section of docs/benchmarks.md (Markdown, without the heading and
/// the machine, which `doc` adds) and whether it met its target.
#[derive(Debug)]
pub struct Report {
    pub title: &'static str,
    pub body: String,
    /// Why the target was missed, if it was.
    pub missed: Option<String>,
}

/// Runs `targets` (when empty: every bench, or the quick ones for `Check`) and writes their
/// sections unless `mode` is `Check`. `invocation` is how the command was called, for the docs.
pub fn run(targets: &[Target], mode: Mode, invocation: &str) -> Result<ExitCode> {
    let mut targets = match (targets.is_empty(), mode) {
        (false, _) => targets.to_vec(),
        (true, Mode::Measure) => Target::ALL.to_vec(),
        (true, Mode::Check) => Target::QUICK.to_vec(),
    };
    targets.sort();
    targets.dedup();
    let mut missed = Vec::new();
    for target in targets {
        let machine = doc::Machine::read();
        eprintln!("== bench {}{}", target.name(), if mode == Mode::Check { " (check)" } else { "" });
        let report = target.measure(mode).with_context(|| format!("bench {}", target.name()))?;
        println!("{}", report.body);
        if let Some(why) = &report.missed {
            eprintln!("bench {}: target missed - {why}", target.name());
            missed.push(target.name());
        }
        if mode == Mode::Measure {
            let file = doc::update(target.name(), &report, &machine, invocation)?;
            eprintln!("bench {}: section written to {}", target.name(), file.display());
        }
    }
    if missed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("bench: missed the target of {}", missed.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

/// The workspace root (xtask lives in `<root>/xtask`).
fn workspace() -> PathBuf {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    path.canonicalize().unwrap_or(path)
}

/// Where cargo puts what it builds.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace().join("target"))
}

/// Runs cargo with `args` in the workspace, its output shown.
fn cargo(args: &[&str]) -> Result<()> {
    duct::cmd("cargo", args)
        .dir(workspace())
        .run()
        .with_context(|| format!("cargo {} failed", args.join(" ")))?;
    Ok(())
}

/// Median and maximum of `values` (not empty).
fn median_max(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    (values[values.len() / 2], values[values.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CI runs the quick benches to see that they still complete (debug build, short runs);
    /// their times are not checked: the machine is shared.
    #[test]
    fn the_quick_benches_complete() {
        for target in Target::QUICK {
            let report =
                target.measure(Mode::Check).unwrap_or_else(|e| panic!("bench {}: {e:#}", target.name()));
            assert!(
                report.body.contains("| --- |"),
                "bench {} made no table:\n{}",
                target.name(),
                report.body
            );
        }
    }

    #[test]
    fn median_of_an_odd_and_an_even_count() {
        assert_eq!(median_max(&mut [3.0, 1.0, 2.0]), (2.0, 3.0));
        assert_eq!(median_max(&mut [4.0, 1.0, 3.0, 2.0]), (3.0, 4.0));
    }
}
