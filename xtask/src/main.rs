#![allow(clippy::disallowed_methods, clippy::print_stdout, clippy::print_stderr)]

mod bench;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "dlll-cias developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install the test prerequisites (Debian packages) and run the whole test suite.
    Test {
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// The main job on the lab: a fresh 3-node lab, node1 installs the cluster with
    /// dlll_cias-setup, the other nodes extend it; prints where to look.
    Demo {
        /// Number of lab nodes (the first installs, the others extend).
        #[arg(long, default_value_t = 3)]
        nodes: u8,
    },
    /// The Debian package target/dist/dlll-cias_VERSION_ARCH.deb (release build; `--check`:
    /// from a debug build, only checking what it holds, as CI does).
    Dist {
        #[arg(long)]
        check: bool,
    },
    /// Man pages and shell completions of every binary, from their clap definitions, into
    /// dist/ (`--check`: fail when dist/ is not current, as CI does).
    Docs {
        #[arg(long)]
        check: bool,
    },
    /// The multi-node test lab: `cargo xtask lab up`, `status`, `power-off node1`, `down`, ...
    Lab(xtask::lab::cli::LabArgs),
    /// Benchmarks, built optimized; each rewrites its section of docs/benchmarks.md:
    /// `cargo xtask bench` (all), `cargo xtask bench placement startup` (the quick ones).
    Bench {
        /// The benchmarks to run (all of them when none is named).
        #[arg(value_enum)]
        targets: Vec<bench::Target>,
        /// Only check that they complete (debug build, short runs, no time target,
        /// docs/benchmarks.md untouched); without names: the quick ones, as CI does.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.task {
        Task::Test { cargo_args } => test(&cargo_args).map(|()| ExitCode::SUCCESS),
        Task::Demo { nodes } => xtask::demo::run(nodes).map(|()| ExitCode::SUCCESS),
        Task::Dist { check } => xtask::dist::run(check).map(|_| ExitCode::SUCCESS),
        Task::Docs { check } => xtask::docs::run(check).map(|()| ExitCode::SUCCESS),
        Task::Lab(args) => xtask::lab::cli::run(args),
        Task::Bench { targets, check } => {
            let mode = if check { bench::Mode::Check } else { bench::Mode::Measure };
            let invocation = std::iter::once("cargo xtask".to_string())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>();
            bench::run(&targets, mode, &invocation.join(" "))
        }
    }
}

fn test(extra: &[String]) -> Result<()> {
    xtask::prereqs::ensure_packages(xtask::prereqs::TEST_PACKAGES)?;
    // The lab tests (tests/tests/lab.rs) boot the lab themselves; they need its packages.
    xtask::prereqs::ensure_packages(xtask::prereqs::LAB_PACKAGES)?;
    let mut args = vec!["test", "--workspace", "--locked"];
    args.extend(extra.iter().map(String::as_str));
    xtask::testrun::cargo_test(&args)?;
    Ok(())
}
