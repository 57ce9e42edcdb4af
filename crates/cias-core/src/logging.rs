//! Logs an administrator reads after the fact. Every binary calls [`start`] first:
//! - at a terminal, its events are printed on stderr;
//! - without one (cron, keepalived's hook, a systemd service), they go to the journal under
//!   the binary's name, so `journalctl -t dlll_cias-watch` shows each run (stderr when there
//!   is no journal);
//! - once the command knows what it is doing, [`also_to_file`] appends them to its log in the
//!   management directory too (`/data/cias/nodes/NODE/*.log`).
//!
//! The level is INFO, or what `-v`/`-q` ([`Verbosity`]) or `RUST_LOG` say.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// Events with this target are recorded (journal, log file) but not printed at a terminal:
/// what the command already printed in its own words there.
pub const RECORD_ONLY: &str = "cias::record_only";
/// Events with this target stay out of the log file: a job's outcome on every run (the
/// journal keeps those; the file keeps what changed).
pub const NOT_IN_FILE: &str = "cias::not_in_file";

/// `-v` (more, repeatable) and `-q` (less) for every binary's command line.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct Verbosity {
    /// Log more: -v debug, -vv trace (RUST_LOG, when set, decides instead).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log less: -q warnings and errors only, -qq errors only.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    pub quiet: u8,
}

impl Verbosity {
    fn level(self) -> LevelFilter {
        match (self.verbose, self.quiet) {
            (0, 0) => LevelFilter::INFO,
            (1, _) => LevelFilter::DEBUG,
            (2.., _) => LevelFilter::TRACE,
            (_, 1) => LevelFilter::WARN,
            (_, _) => LevelFilter::ERROR,
        }
    }
}

/// Where a command's events are shown besides the journal and its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    /// Printed on stderr when it is a terminal.
    Echo,
    /// Never printed: the command draws its own screen (the installer).
    Silent,
}

/// Sends this process's `tracing` events where [`the module`](self) says, under `identifier`
/// (the binary's name). Call once, first; later calls change nothing.
pub fn start(identifier: &'static str, verbosity: Verbosity, terminal: Terminal) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info")),
        _ => EnvFilter::default().add_directive(verbosity.level().into()),
    };
    let file = tracing_subscriber::fmt::layer()
        .with_writer(LogFile)
        .with_ansi(false)
        .with_target(false)
        .with_filter(filter_fn(|meta| meta.target() != NOT_IN_FILE));
    let at_terminal = std::io::stderr().is_terminal();
    let echo = (at_terminal && terminal == Terminal::Echo).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .without_time()
            .with_filter(filter_fn(|meta| meta.target() != RECORD_ONLY))
    });
    let journal = (!at_terminal).then(|| tracing_journald::layer().ok()).flatten();
    // No journal socket (a container without journald): stderr is all there is.
    let fallback = (!at_terminal && journal.is_none()).then(|| {
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false).with_target(false)
    });
    let journal = journal.map(|j| j.with_syslog_identifier(identifier.to_string()));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(file)
        .with(echo)
        .with(journal)
        .with(fallback)
        .try_init();
}

/// From now on, events are also appended to `file` (created with its directory).
pub fn also_to_file(file: &Path) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let log = std::fs::OpenOptions::new().create(true).append(true).open(file)?;
    *log_file().lock().unwrap_or_else(|e| e.into_inner()) = Some(log);
    Ok(())
}

fn log_file() -> &'static Mutex<Option<std::fs::File>> {
    static FILE: OnceLock<Mutex<Option<std::fs::File>>> = OnceLock::new();
    FILE.get_or_init(|| Mutex::new(None))
}

/// The writer of the file layer: the file [`also_to_file`] opened, or nothing before it.
struct LogFile;

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match log_file().lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(file) => file.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogFile;

    fn make_writer(&'a self) -> Self::Writer {
        LogFile
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_flags_set_the_level() {
        let v = |verbose, quiet| Verbosity { verbose, quiet }.level();
        assert_eq!(v(0, 0), LevelFilter::INFO);
        assert_eq!(v(1, 0), LevelFilter::DEBUG);
        assert_eq!(v(3, 0), LevelFilter::TRACE);
        assert_eq!(v(0, 1), LevelFilter::WARN);
        assert_eq!(v(0, 2), LevelFilter::ERROR);
    }
}
