//! Runs `cargo test`, passing its output through, and totals the results of every test binary
//! into one closing line (`tests: N passed, M failed, K ignored`), since cargo prints one
//! `test result:` line per binary and the last one is often an empty doc-test run.

use std::io::{BufRead, BufReader};

use anyhow::{bail, Result};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

impl Totals {
    /// Adds the counts of a `test result: ok. 3 passed; 0 failed; 1 ignored; ...` line.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else { return };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(count)) = (words.next(), words.next()) else { continue };
            let Ok(count) = count.parse::<u64>() else { continue };
            match label {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                "ignored" => self.ignored += count,
                _ => {}
            }
        }
    }
}

/// Runs `cargo <args>` with its output shown live; fails if cargo fails.
pub fn cargo_test(args: &[&str]) -> Result<Totals> {
    let reader = duct::cmd("cargo", args).stderr_to_stdout().unchecked().reader()?;
    let mut totals = Totals::default();
    let mut lines = BufReader::new(&reader);
    let mut line = String::new();
    while lines.read_line(&mut line)? > 0 {
        print!("{line}");
        totals.add_line(&line);
        line.clear();
    }
    let status = reader.try_wait()?.map(|o| o.status);
    println!("tests: {} passed, {} failed, {} ignored", totals.passed, totals.failed, totals.ignored);
    match status {
        Some(s) if s.success() => Ok(totals),
        _ => bail!("cargo test failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up_over_binaries() {
        let mut t = Totals::default();
        t.add_line(
            "test result: ok. 61 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 9.5s",
        );
        t.add_line("test result: FAILED. 2 passed; 1 failed; 3 ignored; 0 measured; 0 filtered out");
        t.add_line("running 3 tests");
        assert_eq!(t, Totals { passed: 63, failed: 1, ignored: 3 });
    }
}
