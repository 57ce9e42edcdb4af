//! Logs an administrator reads after the fact: every line timestamped, appended to a file in
//! the management directory and copied to stderr (the journal, under systemd or keepalived).

use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::fmt::writer::MakeWriterExt;

/// Sends this process's `tracing` events to `file` (appended, created with its directory) and
/// to stderr. Call once, at start.
pub fn to_file_and_stderr(file: &Path) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let log = std::fs::OpenOptions::new().create(true).append(true).open(file)?;
    tracing_subscriber::fmt()
        .with_writer(Mutex::new(log).and(std::io::stderr))
        .with_ansi(false)
        .with_target(false)
        .init();
    Ok(())
}
