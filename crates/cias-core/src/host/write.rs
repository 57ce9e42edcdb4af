//! Crash-safe file writes: the one way a file on a node is replaced (SPEC section 8).
//!
//! The new content goes to a temporary file in the target's directory (same file system, so
//! the rename is atomic), is synced, optionally checked (a config test on the temporary file),
//! renamed over the target, and the directory is synced so the rename itself survives a power
//! loss. A crash leaves the old file or the new one, never a mix; a failed check leaves the old
//! one. It is still one argv command through a [`Host`]: a dry run records one change, and a
//! secret content travels on stdin only.
//!
//! A write can also be a compare-and-swap ([`Command::if_unchanged`]): under an exclusive
//! `flock` of the target's directory, the file is replaced only while it still holds what the
//! caller read. That is how the address registry is changed by installers running at once.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Command, Host, HostError};
use crate::settings::Secret;

/// Stands for the temporary file in a check's argv, e.g.
/// `["findmnt", "--verify", "--tab-file", NEW_FILE]`.
pub const NEW_FILE: &str = "{new}";

/// The exit status of a compare-and-swap whose file changed since it was read (EX_TEMPFAIL).
pub const CHANGED_STATUS: i32 = 75;

/// The name the script runs under (its `$0`, in `ps` and in its own messages).
const NAME: &str = "dlll-cias-write";

/// Arguments: target, mode, expected content (`=TEXT`, or empty for a plain write), then the
/// check's argv, if any. A killed script can leave a hidden `.NAME.XXXXXX` beside the target,
/// never a half-written target.
const SCRIPT: &str = r#"set -eu
target=$1 mode=$2 expect=$3
shift 3
dir=$(dirname -- "$target")
mkdir -p -- "$dir"
if [ -n "$expect" ]; then
  exec 9<"$dir"
  flock -w 60 9 || { echo "$0: $dir stayed locked by another writer for 60 s" >&2; exit 1; }
  now=$(if [ -e "$target" ]; then cat -- "$target"; fi; echo .)
  [ "$now" = "${expect#=}." ] || { echo "$0: $target changed since it was read" >&2; exit 75; }
fi
tmp=$(mktemp -- "$dir/.${target##*/}.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
cat >"$tmp"
chmod -- "$mode" "$tmp"
if [ $# -gt 0 ]; then
  for a do shift; [ "$a" = '{new}' ] && a=$tmp; set -- "$@" "$a"; done
  "$@" >&2 || { echo "$0: the new $target fails its check (exit $?); the old file is kept" >&2; exit 1; }
fi
sync -- "$tmp"
mv -f -- "$tmp" "$target"
trap - EXIT
sync -- "$dir" 2>/dev/null || true
"#;

/// Positions in a write command's argv: `sh -c SCRIPT NAME target mode expect check...`.
const TARGET: usize = 4;
const MODE: usize = 5;
const EXPECT: usize = 6;
const CHECK: usize = 7;

impl Command {
    /// A command that replaces `path` with `text`, mode `mode` (e.g. `"0644"`), crash-safely,
    /// creating parent directories. A dry run shows the content.
    pub fn write_file(path: &str, text: impl Into<String>, mode: &str) -> Self {
        Self::write(path, mode).stdin_data(text)
    }

    /// Like [`Command::write_file`] for a file holding passwords: the content travels as a
    /// secret (followed by a newline), so a dry run or a log never shows it.
    pub fn write_secret_file(path: &str, text: &Secret, mode: &str) -> Self {
        Self::write(path, mode).stdin_secret(text)
    }

    fn write(path: &str, mode: &str) -> Self {
        Self::new("sh").args(["-c", SCRIPT, NAME, path, mode, ""])
    }

    fn is_write(&self) -> bool {
        self.argv.len() > EXPECT && self.argv[2] == SCRIPT
    }

    /// Runs `check` (an argv in which [`NEW_FILE`] stands for the new content's temporary
    /// file) before the rename: when it fails, the command fails and the old file stays.
    pub fn checked_by(mut self, check: &[&str]) -> Self {
        assert!(self.is_write(), "checked_by is for Command::write_file");
        self.argv.extend(check.iter().map(|a| a.to_string()));
        self
    }

    /// Replaces the file only if it still holds `expected` (a missing file holds ""), checked
    /// under an exclusive lock of its directory; otherwise exits [`CHANGED_STATUS`] and changes
    /// nothing. See [`swap_file`].
    pub fn if_unchanged(mut self, expected: &str) -> Self {
        assert!(self.is_write(), "if_unchanged is for Command::write_file");
        self.argv[EXPECT] = format!("={expected}");
        self
    }

    /// How a write shows in a dry run and in errors, instead of its script.
    pub(super) fn write_label(&self) -> Option<String> {
        if !self.is_write() {
            return None;
        }
        let mut label = format!("write {} (mode {}", self.argv[TARGET], self.argv[MODE]);
        if !self.argv[EXPECT].is_empty() {
            label.push_str(", only if unchanged since read");
        }
        if self.argv.len() > CHECK {
            label.push_str(&format!(", checked by `{}`", super::quote::join(&self.argv[CHECK..])));
        }
        label.push(')');
        Some(label)
    }
}

/// Replaces `path` on `host` with `text` if it still holds `expected` (what the caller read
/// and computed `text` from); `false` when another writer changed it meanwhile, and then
/// nothing was written: read again and retry. The lock is held by one short command, so no
/// stale lock is left behind by a writer that dies.
pub fn swap_file(
    host: &dyn Host,
    path: &str,
    expected: &str,
    text: &str,
    mode: &str,
) -> Result<bool, HostError> {
    let cmd = Command::write_file(path, text, mode).if_unchanged(expected);
    let output = host.execute(&cmd)?;
    match output.code {
        Some(0) => Ok(true),
        Some(CHANGED_STATUS) => Ok(false),
        _ => Err(super::failure(host, &cmd, &output)),
    }
}

/// Replaces `path` on `host` with `text` (mode `mode`, checked by `check` if not empty) unless
/// it already holds exactly that; true when it was written. For files kept in a wanted state by
/// jobs that run again and again: an unchanged file is never rewritten.
pub fn ensure_file(
    host: &dyn Host,
    path: &str,
    text: &str,
    mode: &str,
    check: &[&str],
) -> Result<bool, HostError> {
    let now = host.execute(&Command::query_argv(&["cat", path]))?;
    if now.success() && now.stdout == text {
        return Ok(false);
    }
    let write = Command::write_file(path, text, mode);
    host.run(&if check.is_empty() { write } else { write.checked_by(check) })?;
    Ok(true)
}

/// The same guarantee for a file of this machine written from Rust (journal, secrets, state
/// files; no process to start): a temporary file beside it, created with `mode` from its first
/// byte (a secret is never briefly readable), synced, renamed over `file`, directory synced.
pub fn write_local_file(file: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name =
        file.file_name().ok_or_else(|| std::io::Error::other(format!("{}: no file name", file.display())))?;
    std::fs::create_dir_all(dir)?;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{}.{}-{seq}", name.to_string_lossy(), std::process::id()));
    let written =
        OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).and_then(|mut out| {
            out.write_all(bytes)?;
            out.sync_all()?;
            std::fs::rename(&tmp, file)
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // Best effort, as in the script: some file systems cannot sync a directory.
    let _ = File::open(dir).and_then(|d| d.sync_all());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::host::{DryRunHost, LocalHost};

    fn local() -> LocalHost {
        LocalHost::new("local")
    }

    fn entries(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_the_file_with_its_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/fstab");
        let path = path.to_str().unwrap();
        local().run(&Command::write_file(path, "old\n", "0644")).unwrap();
        local().run(&Command::write_file(path, "it's $(new)\n", "0640")).unwrap();
        assert_eq!(fs::read_to_string(path).unwrap(), "it's $(new)\n");
        assert_eq!(fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(entries(&dir.path().join("sub")), ["fstab"]);
    }

    #[test]
    fn a_failing_check_leaves_the_old_file_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keepalived.conf");
        let path = path.to_str().unwrap();
        fs::write(path, "good\n").unwrap();
        let check = ["grep", "-q", "^good", NEW_FILE];
        let err = local().run(&Command::write_file(path, "bad\n", "0644").checked_by(&check)).unwrap_err();
        assert_eq!(fs::read_to_string(path).unwrap(), "good\n");
        assert_eq!(entries(dir.path()), ["keepalived.conf"], "the temporary file is removed");
        let err = err.to_string();
        assert!(err.contains("fails its check") && err.contains("old file is kept"), "{err}");
        assert!(
            err.contains(&format!("write {path} (mode 0644, checked by `grep -q '^good' '{{new}}'`)")),
            "{err}"
        );
        // The check reads the new content, not the old file.
        local().run(&Command::write_file(path, "good too\n", "0644").checked_by(&check)).unwrap();
        assert_eq!(fs::read_to_string(path).unwrap(), "good too\n");
    }

    #[test]
    fn a_secret_file_is_written_0600_and_a_dry_run_shows_one_change_without_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.yaml");
        let path = path.to_str().unwrap();
        let secret = Secret::new("root_password: pa ss");
        local().run(&Command::write_secret_file(path, &secret, "0600")).unwrap();
        assert_eq!(fs::read_to_string(path).unwrap(), "root_password: pa ss\n");
        assert_eq!(fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600);

        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let dry =
            DryRunHost::new("node1").with_sink(move |h, c| sink.lock().unwrap().push(format!("{h}: {c}")));
        dry.run(&Command::write_secret_file("/data/cias/secrets.yaml", &secret, "0600")).unwrap();
        assert_eq!(dry.recorded().len(), 1);
        assert_eq!(dry.recorded()[0].data(), None);
        assert_eq!(
            *seen.lock().unwrap(),
            ["node1: write /data/cias/secrets.yaml (mode 0600) <<< (secret on stdin)"]
        );
        assert!(!format!("{:?}", dry.recorded()).contains("pa ss"));
    }

    #[test]
    fn a_swap_replaces_only_what_the_caller_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.yaml");
        let path = path.to_str().unwrap();
        assert!(swap_file(&local(), path, "", "entries: [a]\n", "0644").unwrap(), "missing counts as empty");
        // A second writer that read the same old content loses, and writes nothing.
        assert!(!swap_file(&local(), path, "", "entries: [b]\n", "0644").unwrap());
        assert_eq!(fs::read_to_string(path).unwrap(), "entries: [a]\n");
        // Trailing newlines count: "a" plus one newline is not "a" plus two.
        assert!(!swap_file(&local(), path, "entries: [a]\n\n", "x\n", "0644").unwrap());
        assert!(swap_file(&local(), path, "entries: [a]\n", "entries: [a, b]\n", "0644").unwrap());
        assert_eq!(fs::read_to_string(path).unwrap(), "entries: [a, b]\n");
        assert_eq!(entries(dir.path()), ["registry.yaml"]);
    }

    #[test]
    fn a_swap_waits_for_the_directory_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.yaml");
        let path = path.to_str().unwrap().to_string();
        // Another writer holds the lock for a second: the swap waits instead of interleaving.
        let dir_arg = dir.path().to_str().unwrap().to_string();
        let holder = std::thread::spawn(move || {
            local().run(&Command::query_argv(&["flock", &dir_arg, "sleep", "1"])).unwrap();
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        let started = std::time::Instant::now();
        assert!(swap_file(&local(), &path, "", "mine\n", "0644").unwrap());
        assert!(started.elapsed() >= std::time::Duration::from_millis(600), "{:?}", started.elapsed());
        holder.join().unwrap();
    }

    #[test]
    fn concurrent_swaps_from_the_same_read_let_exactly_one_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.yaml");
        fs::write(&path, "base\n").unwrap();
        let wins: Vec<bool> = std::thread::scope(|s| {
            let writers: Vec<_> = (0..6)
                .map(|i| {
                    let path = path.to_str().unwrap();
                    s.spawn(move || {
                        swap_file(&local(), path, "base\n", &format!("base\nw{i}\n"), "0644").unwrap()
                    })
                })
                .collect();
            writers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{wins:?}");
        let winner = wins.iter().position(|w| *w).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), format!("base\nw{winner}\n"));
    }

    #[test]
    fn a_local_file_is_replaced_with_its_mode_and_nothing_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/verdict.json");
        write_local_file(&path, b"{}", 0o600).unwrap();
        write_local_file(&path, b"{\"ok\":true}", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"ok\":true}");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        assert_eq!(entries(&dir.path().join("state")), ["verdict.json"]);
        assert!(write_local_file(&dir.path().join("state/verdict.json/x"), b"", 0o644).is_err());
        assert_eq!(entries(&dir.path().join("state")), ["verdict.json"]);
    }

    #[test]
    fn other_failures_are_errors_naming_the_write() {
        let err = swap_file(&local(), "/proc/version/x", "", "x\n", "0644").unwrap_err().to_string();
        assert!(err.contains("write /proc/version/x (mode 0644, only if unchanged since read)"), "{err}");
    }
}
