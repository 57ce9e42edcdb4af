//! `bench startup`: how long each shipped binary (`crates/dlll_cias-*`, release build) takes
//! from spawn to exit for a cheap real invocation, and its peak resident memory. They run from
//! cron and keepalived every minute (the fence check every few seconds), so this is their cost.
//!
//! Time: spawn to exit measured here, 2 warm-up runs then 20 (median, max). Peak memory:
//! `ru_maxrss` of the child as wait4 returns it, read through GNU time (`/usr/bin/time -f %M`,
//! Debian package `time`, installed when missing): xtask itself has no unsafe code to call
//! wait4. The highest of 5 runs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::{median_max, Mode, Report};

/// The shipped binaries: every crate `crates/dlll_cias-*` (each builds one binary of its name).
fn binaries() -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(super::workspace().join("crates"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("dlll_cias-"))
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("no crates/dlll_cias-* found");
    }
    Ok(names)
}

/// What is run: `--version` of each, and the invocations that run here without a cluster.
fn invocations(binaries: &[String]) -> Vec<(String, Vec<&'static str>)> {
    let mut list: Vec<(String, Vec<&'static str>)> =
        binaries.iter().map(|b| (b.clone(), vec!["--version"])).collect();
    let extra: [(&str, &[&'static str]); 3] = [
        // keepalived's vrrp_script: reads /run/dlll-cias/reconcile.json (absent here: exit 1,
        // as on a node whose loop has not written its verdict).
        ("dlll_cias-fence", &["check"]),
        ("dlll_cias-vmid-map", &["10501"]),
        ("dlll_cias-vmid-map", &["--list"]),
    ];
    for (bin, args) in extra {
        if binaries.iter().any(|b| b == bin) {
            list.push((bin.to_string(), args.to_vec()));
        }
    }
    list
}

/// One run: seconds from spawn to exit, and the exit code.
fn timed(bin: &Path, args: &[&str]) -> Result<(f64, i32)> {
    let start = Instant::now();
    let status = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    Ok((start.elapsed().as_secs_f64(), status.code().unwrap_or(-1)))
}

/// Peak resident memory (KiB) of one run, from GNU time.
fn peak_kib(bin: &Path, args: &[&str], out: &Path) -> Result<u64> {
    let mut argv =
        vec!["-f".into(), "%M".into(), "-o".into(), out.display().to_string(), bin.display().to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    duct::cmd("/usr/bin/time", &argv).stdout_null().stderr_null().unchecked().run()?;
    let text = std::fs::read_to_string(out)?;
    text.lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("GNU time wrote {text:?}"))
}

pub fn run(mode: Mode) -> Result<Report> {
    xtask::prereqs::ensure_packages(&["time"])?;
    let binaries = binaries()?;
    let (profile, dir) = mode.profile();
    let mut args = vec!["build", "--quiet", "--locked", "--bins"];
    args.extend(profile);
    for b in &binaries {
        args.extend(["-p", b.as_str()]);
    }
    super::cargo(&args)?;
    let dir = super::target_dir().join(dir);
    let (warmups, runs, rss_runs) = if mode == Mode::Check { (1, 3, 1) } else { (2, 20, 5) };
    let rss_file = std::env::temp_dir().join(format!("cias-bench-rss-{}", std::process::id()));
    let mut rows = String::from(
        "| Binary | Invocation | Exit | Median | Max | Peak RSS | Binary size |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for (bin, args) in invocations(&binaries) {
        let path = dir.join(&bin);
        for _ in 0..warmups {
            timed(&path, &args)?;
        }
        let mut times = Vec::with_capacity(runs);
        let mut codes = Vec::new();
        for _ in 0..runs {
            let (secs, code) = timed(&path, &args)?;
            times.push(secs * 1000.0);
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
        if args == ["--version"] && codes != [0] {
            bail!("{bin} --version exited {codes:?}");
        }
        let mut peak = 0;
        for _ in 0..rss_runs {
            peak = peak.max(peak_kib(&path, &args, &rss_file)?);
        }
        let (median, max) = median_max(&mut times);
        let size = std::fs::metadata(&path)?.len() as f64 / 1024.0 / 1024.0;
        let codes: Vec<String> = codes.iter().map(i32::to_string).collect();
        rows += &format!(
            "| {bin} | `{}` | {} | {median:.2} ms | {max:.2} ms | {:.1} MiB | {size:.1} MiB |\n",
            args.join(" "),
            codes.join(", "),
            peak as f64 / 1024.0,
        );
    }
    let _ = std::fs::remove_file(&rss_file);
    let build = match mode {
        Mode::Measure => "release",
        Mode::Check => "debug (`--check`: times not representative)",
    };
    let body = format!(
        "Every `crates/dlll_cias-*` binary, {build} build, run {runs} times after {warmups} warm-up runs\n\
         (time from spawn to exit, output to /dev/null); peak RSS is `ru_maxrss` from wait4, read\n\
         through GNU time `/usr/bin/time -f %M`, the highest of {rss_runs} runs.\n\n\
         {rows}\n\
         `dlll_cias-fence check` is what keepalived runs every few seconds; here no reconcile loop\n\
         runs, so it reads an absent verdict and exits 1, the path of a node whose loop has not\n\
         written one. `dlll_cias-vmid-map --list` prints all 124,245 VMIDs. The cron jobs of\n\
         `dlll_cias-watch` (`vmids`, `master`, `nodes`, `peers`) are not measured: they start by\n\
         reading /data/cias/cias.yaml and asking Proxmox (`pvesh`), so they need a cluster node.\n"
    );
    Ok(Report { title: "Start-up time and peak memory of each binary", body, missed: None })
}
