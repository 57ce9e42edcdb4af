//! What makes a scenario resumable and exclusive (SPEC section 7): a journal of the steps that
//! finished, so a re-run continues where the last one stopped and a finished run changes
//! nothing; and a lock, so a second run of the same scenario on the node is refused.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum JournalError {
    #[error(
        "another run holds {file} (pid {pid}); wait for it to finish, or make sure it is gone and run again"
    )]
    Busy { file: PathBuf, pid: String },
    #[error("cannot use {file} - {reason}")]
    Io { file: PathBuf, reason: std::io::Error },
    #[error("{file} is damaged - {message}; move it away to start the scenario from the beginning")]
    Damaged { file: PathBuf, message: String },
}

fn io(file: &Path) -> impl Fn(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io { file: file.to_path_buf(), reason: source }
}

/// Held while a scenario runs; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock at `file` without waiting; refuses when another process holds it.
    pub fn acquire(file: &Path) -> Result<Self, JournalError> {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(io(file))?;
        }
        let mut handle = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(file)
            .map_err(io(file))?;
        match handle.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = handle.read_to_string(&mut pid);
                return Err(JournalError::Busy { file: file.to_path_buf(), pid: pid.trim().to_string() });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(file)(e)),
        }
        handle.set_len(0).map_err(io(file))?;
        handle.seek(SeekFrom::Start(0)).map_err(io(file))?;
        write!(handle, "{}", std::process::id()).map_err(io(file))?;
        Ok(Self { _file: handle })
    }

    /// The pid of the process holding the lock at `file`, without touching the lock (taking
    /// it even for a moment would turn a run starting at that moment away): read from the
    /// kernel's table of file locks, `/proc/locks`.
    pub fn holder(file: &Path) -> Option<u32> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(file).ok()?;
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        holder_in(&locks, meta.dev(), meta.ino())
    }
}

/// The pid of a `flock` in a `/proc/locks` table on the file with device `dev`, inode `ino`.
/// A line: `1: FLOCK  ADVISORY  WRITE 2245 00:1a:3741 0 EOF` (major:minor in hex, inode).
fn holder_in(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) =
        (((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff), (dev & 0xff) | ((dev >> 12) & !0xff));
    let id = format!("{major:02x}:{minor:02x}:{ino}");
    // `->` marks a process waiting for the lock, not holding it.
    locks.lines().filter(|line| !line.contains("->")).find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "FLOCK")?;
        (words.get(at + 4) == Some(&id.as_str())).then(|| words.get(at + 3)?.parse().ok()).flatten()
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub name: String,
    /// Unix time the step finished.
    pub finished_at: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    steps: Vec<StepRecord>,
}

/// The finished steps of one scenario on this node, saved after every step.
#[derive(Debug)]
pub struct Journal {
    file: PathBuf,
    saved: Saved,
}

impl Journal {
    /// Opens the journal at `file` (empty when it does not exist yet).
    pub fn open(file: &Path) -> Result<Self, JournalError> {
        let saved = match std::fs::read_to_string(file) {
            Ok(text) => serde_yaml::from_str(&text)
                .map_err(|e| JournalError::Damaged { file: file.to_path_buf(), message: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
            Err(e) => return Err(io(file)(e)),
        };
        Ok(Self { file: file.to_path_buf(), saved })
    }

    pub fn is_done(&self, step: &str) -> bool {
        self.saved.steps.iter().any(|s| s.name == step)
    }

    pub fn steps(&self) -> &[StepRecord] {
        &self.saved.steps
    }

    /// Records `step` as finished; written atomically, so a crash leaves the old or new file.
    pub fn mark_done(&mut self, step: &str) -> Result<(), JournalError> {
        if self.is_done(step) {
            return Ok(());
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        self.saved.steps.push(StepRecord { name: step.to_string(), finished_at: now });
        let text = serde_yaml::to_string(&self.saved).expect("journal serialises");
        crate::host::write_local_file(&self.file, text.as_bytes(), 0o644).map_err(io(&self.file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_is_refused_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("setup.lock");
        let first = RunLock::acquire(&lock).unwrap();
        let err = RunLock::acquire(&lock).unwrap_err().to_string();
        assert!(err.contains(&format!("(pid {})", std::process::id())), "{err}");
        drop(first);
        RunLock::acquire(&lock).expect("free again once the first run ended");
    }

    #[test]
    fn finished_steps_survive_a_restart_and_are_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("setup.journal");
        let mut journal = Journal::open(&file).unwrap();
        journal.mark_done("keepalived").unwrap();
        journal.mark_done("moosefs").unwrap();
        journal.mark_done("keepalived").unwrap();
        let again = Journal::open(&file).unwrap();
        assert!(again.is_done("keepalived") && again.is_done("moosefs") && !again.is_done("cluster"));
        assert_eq!(again.steps().len(), 2);
    }

    #[test]
    fn a_damaged_journal_is_named_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("setup.journal");
        std::fs::write(&file, "steps: [[[").unwrap();
        let err = Journal::open(&file).unwrap_err().to_string();
        assert!(err.contains("is damaged") && err.contains("move it away"), "{err}");
    }

    #[test]
    fn the_holder_of_a_lock_is_read_without_taking_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("run.lock");
        assert_eq!(RunLock::holder(&file), None, "no file, no holder");
        let lock = RunLock::acquire(&file).unwrap();
        assert_eq!(RunLock::holder(&file), Some(std::process::id()));
        assert_eq!(RunLock::holder(&file), Some(std::process::id()), "looking twice takes nothing");
        drop(lock);
        assert_eq!(RunLock::holder(&file), None);
        let table =
            "1: POSIX  ADVISORY  WRITE 99 08:01:77 0 EOF\n2: FLOCK  ADVISORY  WRITE 2245 fd:01:3741 0 EOF\n";
        assert_eq!(holder_in(table, (0xfd << 8) | 1, 3741), Some(2245));
        assert_eq!(holder_in(table, (0x08 << 8) | 1, 77), None, "a POSIX lock is not a run lock");
    }
}
