//! The lab benchmarks: the failover timeline and the mass recovery, each an ignored test of
//! the `cias-tests` crate (`tests/tests/failover_bench.rs`, `recovery_bench.rs`) that needs a
//! lab of its own (root, ~30 and ~15 minutes). The test writes its table; this adds it to the
//! docs. `CIAS_BENCH_RUNS` (failover, default 5) and `CIAS_BENCH_VMS` (recovery, default
//! "50,200") are passed through.

use anyhow::{bail, Context, Result};

use super::{target_dir, workspace, Mode, Report};

/// Runs the ignored test `test` of cias-tests and reads the table it wrote.
fn run_test(test: &str, mode: Mode) -> Result<String> {
    if mode == Mode::Check {
        bail!("{test} runs on the lab only for real (no --check)");
    }
    let out = target_dir().join("bench").join(format!("{test}.md"));
    let _ = std::fs::remove_file(&out);
    let args = ["test", "--locked", "-p", "cias-tests", "--test", test, "--", "--ignored", "--nocapture"];
    duct::cmd("cargo", args)
        .dir(workspace())
        .env("CIAS_BENCH_OUT", &out)
        .run()
        .with_context(|| format!("the lab benchmark {test} failed"))?;
    let table = std::fs::read_to_string(&out)
        .with_context(|| format!("{test} wrote no table at {}", out.display()))?;
    // The sizes it ran with belong beside its numbers (the docs' command line has no environment).
    let settings: Vec<String> = ["CIAS_BENCH_RUNS", "CIAS_BENCH_VMS"]
        .iter()
        .filter_map(|var| std::env::var(var).ok().map(|value| format!("`{var}={value}`")))
        .collect();
    Ok(if settings.is_empty() { table } else { format!("Run with {}.\n\n{table}", settings.join(", ")) })
}

pub fn failover(mode: Mode) -> Result<Report> {
    let table = run_test("failover_bench", mode)?;
    Ok(Report {
        title: "Failover timeline (lab, 3 nodes)",
        body: format!(
            "Each fault is injected on the current master of a 3-node lab cluster installed by \
             dlll_cias-setup, then healed until the cluster is healthy again; times are from the \
             fault, measured from the surviving nodes every ~0.1-0.5 s. Bounds: VRRP takes 3 \
             adverts (1 s each) plus the priority skew; a lost node's VMs (the router) may start \
             only after the fence delay + margin (15 s).\n\n{table}"
        ),
        missed: None,
    })
}

pub fn recovery(mode: Mode) -> Result<Report> {
    let table = run_test("recovery_bench", mode)?;
    Ok(Report {
        title: "Mass recovery (lab, 3 nodes)",
        body: format!(
            "The master carries N stand-in VMs (32 MiB each, disks on MooseFS) and is powered off; \
             times are after the fence bound (15 s after the power-off). Anchor: Proxmox HA's \
             CRM recovers services one manager round (10 s) at a time.\n\n{table}"
        ),
        missed: None,
    })
}
