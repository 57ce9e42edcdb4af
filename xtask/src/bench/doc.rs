//! `docs/benchmarks.md`: one section per bench between `<!-- bench:NAME -->` markers, so a run
//! of one bench replaces its own section and leaves the others as they were measured.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::{Report, Target};

const HEADER: &str = "# Benchmarks\n\n\
Written by `cargo xtask bench` (placement, startup, sweep) and `cargo xtask bench NAME` (its\n\
own section): generated text, not edited by hand. Each section names the command that produced it,\n\
the machine it ran on (read from /proc at the time) and when. How each bench measures:\n\
`xtask/src/bench/`. Sections of other benches in this file (the lab's) are kept as they are.\n";

/// The machine a bench ran on, as /proc tells it.
#[derive(Debug, Clone)]
pub struct Machine {
    cpu: String,
    cores: usize,
    ram_gib: f64,
    kernel: String,
    /// /proc/loadavg when the bench started (the machine may be shared).
    load: String,
    /// When the bench started (UTC).
    started: String,
}

impl Machine {
    pub fn read() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim()))
            .unwrap_or("unknown")
            .to_string();
        let cores = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
        let kib: f64 = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let load = read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        Self {
            cpu,
            cores,
            ram_gib: kib / 1024.0 / 1024.0,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            load,
            started: duct::cmd!("date", "-u", "+%Y-%m-%d %H:%M UTC")
                .read()
                .unwrap_or_else(|_| "unknown".into()),
        }
    }

    fn line(&self) -> String {
        format!(
            "{}, {} cores, {:.1} GiB RAM, Linux {}; load average when it started: {}",
            self.cpu, self.cores, self.ram_gib, self.kernel, self.load
        )
    }
}

fn file() -> PathBuf {
    super::workspace().join("docs/benchmarks.md")
}

fn markers(name: &str) -> (String, String) {
    (format!("<!-- bench:{name} -->"), format!("<!-- /bench:{name} -->"))
}

/// The section `name` of `text`, markers included, if it is there.
fn section<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let (open, close) = markers(name);
    let start = text.find(&open)?;
    let end = start + text[start..].find(&close)? + close.len();
    Some(&text[start..end])
}

/// The names of the sections in `text`, in order.
fn names(text: &str) -> Vec<&str> {
    text.match_indices("<!-- bench:")
        .filter_map(|(i, m)| text[i + m.len()..].split_once(" -->").map(|(n, _)| n))
        .collect()
}

/// `text` (the current file) with section `name` replaced by `new` (markers included); the
/// sections come in the order of [`Target::ALL`], a section never run says how to run it;
/// sections of other benches (the lab's, say) follow as they were.
fn replace(text: &str, name: &str, new: &str) -> String {
    let mut out = String::from(HEADER);
    for target in Target::ALL {
        let n = target.name();
        let (open, close) = markers(n);
        let body = if n == name {
            new.to_string()
        } else {
            section(text, n).map(str::to_string).unwrap_or_else(|| {
                format!("{open}\n## {n}\n\nNot run yet: `cargo xtask bench {n}`.\n{close}")
            })
        };
        out.push('\n');
        out.push_str(&body);
        out.push('\n');
    }
    let mut others: Vec<&str> =
        names(text).into_iter().filter(|n| !Target::ALL.iter().any(|t| t.name() == *n)).collect();
    // A bench outside ALL (the lab's) run for the first time is added after them.
    if !Target::ALL.iter().any(|t| t.name() == name) && !others.contains(&name) {
        others.push(name);
    }
    for other in others {
        let kept = if other == name { Some(new) } else { section(text, other) };
        if let Some(kept) = kept {
            out.push('\n');
            out.push_str(kept);
            out.push('\n');
        }
    }
    out
}

/// Writes `report` as the section of bench `name`.
pub fn update(name: &str, report: &Report, machine: &Machine, invocation: &str) -> Result<PathBuf> {
    let (open, close) = markers(name);
    let verdict = match &report.missed {
        None => String::new(),
        Some(why) => format!("\n**Target missed:** {why}\n"),
    };
    let new = format!(
        "{open}\n## {}\n\nCommand: `{invocation}`  \nMachine: {}  \nStarted: {}\n\n{}\n{verdict}{close}",
        report.title,
        machine.line(),
        machine.started,
        report.body.trim_end(),
    );
    let path = file();
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::create_dir_all(path.parent().expect("docs/ has a parent"))?;
    std::fs::write(&path, replace(&old, name, &new))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_section_is_replaced_and_the_others_kept_in_order() {
        let first = replace("", "startup", "<!-- bench:startup -->\nA\n<!-- /bench:startup -->");
        assert!(first.contains("Not run yet: `cargo xtask bench placement`"));
        let second = replace(&first, "placement", "<!-- bench:placement -->\nB\n<!-- /bench:placement -->");
        let third = replace(&second, "startup", "<!-- bench:startup -->\nC\n<!-- /bench:startup -->");
        assert!(third.starts_with(HEADER));
        let (b, c) = (third.find("\nB\n").unwrap(), third.find("\nC\n").unwrap());
        assert!(b < c, "placement comes before startup:\n{third}");
        assert!(!third.contains("\nA\n"));
        assert!(third.contains("Not run yet: `cargo xtask bench sweep`"));
        assert_eq!(replace(&third, "startup", section(&third, "startup").unwrap()), third);
    }

    #[test]
    fn sections_of_other_benches_are_kept_after_these() {
        let lab = "<!-- bench:failover -->\n## failover\nD\n<!-- /bench:failover -->";
        let text =
            replace(&format!("{HEADER}\n{lab}\n"), "sweep", "<!-- bench:sweep -->\nE\n<!-- /bench:sweep -->");
        assert_eq!(names(&text), ["placement", "startup", "sweep", "failover"]);
        assert!(text.contains(lab));
        assert_eq!(replace(&text, "sweep", section(&text, "sweep").unwrap()), text);
    }
}
