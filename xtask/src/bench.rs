//! `cargo xtask bench TARGET`: runs a benchmark as an optimized example binary of the crate it
//! measures (`cargo run --release --example ...`), since xtask itself is built for debugging.
//! The example prints its figures and fails when they miss its target.

use std::process::ExitCode;

use anyhow::Result;

/// What can be measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// `cias_core::placement::place` at 1,270 nodes x 124,245 VMs (median under 50 ms).
    Placement,
}

impl Target {
    /// The package and example that measure this target.
    fn example(self) -> (&'static str, &'static str) {
        match self {
            Target::Placement => ("cias-core", "placement_bench"),
        }
    }
}

/// Runs the benchmark with its output shown live; its exit code becomes ours.
pub fn run(target: Target) -> Result<ExitCode> {
    let (package, example) = target.example();
    let args = ["run", "--quiet", "--release", "--locked", "-p", package, "--example", example];
    let output = duct::cmd("cargo", args).unchecked().run()?;
    Ok(match output.status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}
