//! What the administrator sees: one progress line per step (a spinner on a terminal, plain
//! lines otherwise), the dry run's commands, the plan and the summary. The only module that
//! prints.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::IsTerminal;
use std::time::Duration;

use cias_core::host::Command;
use indicatif::{ProgressBar, ProgressStyle};

pub fn line(text: &str) {
    println!("{text}");
}

pub fn warn(text: &str) {
    eprintln!("warning: {text}");
}

pub fn error(text: &str) {
    eprintln!("error: {text}");
}

/// A step begins: a spinner on a terminal; a plain line otherwise (logs, automation, dry run).
pub fn step_started(label: &str, dry_run: bool) -> Option<ProgressBar> {
    if dry_run || !std::io::stderr().is_terminal() {
        eprintln!("{label} ...");
        return None;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"));
    bar.set_message(label.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}

pub fn step_done(bar: Option<ProgressBar>, label: &str, took: Duration) {
    let text = format!("ok   {label} ({:.1}s)", took.as_secs_f64());
    match bar {
        Some(bar) => bar.finish_with_message(text),
        None => eprintln!("{text}"),
    }
}

pub fn step_failed(bar: Option<ProgressBar>, label: &str) {
    let text = format!("FAIL {label}");
    match bar {
        Some(bar) => bar.abandon_with_message(text),
        None => eprintln!("{text}"),
    }
}

pub fn step_skipped(label: &str) {
    eprintln!("done {label} (finished in an earlier run)");
}

/// Prints a command a dry run would run, and the content of a file it would write.
pub fn dry_run_command(host: &str, cmd: &Command) {
    println!("    [{host}] $ {cmd}");
    if let Some(data) = cmd.data() {
        for l in data.lines() {
            println!("    |  {l}");
        }
    }
}
