//! How new a node's copy of the MooseFS metadata is (SPEC section 7, MooseFS takeover).
//!
//! A new master starts from the newest metadata it has (`mfsmaster -a`). Its own metalogger
//! can be behind another node's (it was reconnecting, or started over after a split brain),
//! so the takeover compares the copies of the quorate nodes first. A copy is a metadata file
//! (its header, `MFSM 2.0` then the version as 8 bytes big-endian, measured on MooseFS 3.0.117
//! files, is the number of the next change it needs) and changelogs (lines `N: TIMESTAMP|OP`).
//! `mfsmaster -a` applies the changelogs from the metadata's version on, without checking
//! for a hole first: a copy whose changelogs skip changes fails half-way (measured in the
//! lab after repeated failovers: "changelog_ml.0.mfs:506: operation ... error: 3"). So the
//! version a copy can really reach is where the unbroken chain of changes from its
//! metadata file ends, and that is what copies are compared by.

use crate::host::{Command, Host, HostError};

/// MooseFS's data directory (masters and metaloggers alike).
pub const DATA_PATH: &str = "/var/lib/mfs";

/// Whether `name` in [`DATA_PATH`] is one of a master's own files (not the metalogger's, not
/// the shipped `metadata.mfs.empty`).
pub fn is_master_file(name: &str) -> bool {
    name == "metadata.mfs"
        || name == "metadata.crc"
        || name.starts_with("metadata.mfs.back")
        || name == "sessions.mfs"
        || (name.starts_with("changelog.") && name.ends_with(".mfs"))
}

/// Whether `name` in [`DATA_PATH`] is one of the metalogger's files (`*_ml*`).
pub fn is_metalogger_file(name: &str) -> bool {
    name.contains("_ml")
}

/// The names of the files in [`DATA_PATH`] on `host`.
pub fn data_files(host: &dyn Host) -> Result<Vec<String>, HostError> {
    let listing = host.run(&Command::query_argv(&["ls", "-1", DATA_PATH]))?.stdout;
    Ok(listing.lines().map(str::to_string).collect())
}

/// Moves those of `files` (names in [`DATA_PATH`]) that `which` picks into `dir` on `host`:
/// copies a promotion must not take for current are set aside, never deleted.
pub fn move_into(
    host: &dyn Host,
    dir: &str,
    files: &[String],
    which: fn(&str) -> bool,
) -> Result<(), HostError> {
    let paths: Vec<String> = files.iter().filter(|n| which(n)).map(|n| format!("{DATA_PATH}/{n}")).collect();
    if paths.is_empty() {
        return Ok(());
    }
    host.run(&Command::from_argv(&["mkdir", "-p", dir]))?;
    let mut mv = vec!["mv", "-t", dir, "--"];
    mv.extend(paths.iter().map(String::as_str));
    host.run(&Command::from_argv(&mv))?;
    Ok(())
}

/// A read-only command printing what [`parse_newest_version`] reads (`changelog FIRST LAST`
/// per changelog, `metadata VERSION` per metadata file) and what [`master_runs`] reads
/// (`master STATE`, systemd's word for the node's mfsmaster): one round asks a node both.
pub fn newest_version_command() -> Command {
    newest_version_command_in(DATA_PATH)
}

/// [`newest_version_command`] for the files in `dir` (e.g. a copy being fetched).
pub fn newest_version_command_in(dir: &str) -> Command {
    // The last line of a changelog being written may be partial: the higher of the last two.
    let script = format!(
        "printf 'master %s\\n' \"$(systemctl is-active moosefs-master)\"; \
         cd {dir} || exit 0; \
         for f in changelog*.mfs; do [ -s \"$f\" ] && printf 'changelog %s %s\\n' \
         \"$(head -n 1 -- \"$f\" | cut -d: -f1)\" \"$(tail -n 2 -- \"$f\" | cut -d: -f1 | sort -n | tail -n 1)\"; done; \
         for f in metadata*.mfs metadata*.mfs.back; do [ -s \"$f\" ] && \
         printf 'metadata %s\\n' \"$(od -A n -t u8 --endian=big -j 8 -N 8 -- \"$f\")\"; done; true"
    );
    Command::query_argv(&["sh", "-c", &script])
}

/// A read-only command printing systemd's word for the node's mfsmaster (`active`, ...).
pub fn master_state_command() -> Command {
    Command::query_argv(&["systemctl", "is-active", "moosefs-master"])
}

/// Whether systemd's word for the mfsmaster unit means it may serve: anything but `inactive`
/// and `failed` (a starting or stopping master still answers). Nothing readable counts as
/// running: the worse answer.
pub fn master_state_runs(state: &str) -> bool {
    !matches!(state.trim(), "inactive" | "failed")
}

/// Whether the output of [`newest_version_command`] says the node's mfsmaster runs.
pub fn master_runs(text: &str) -> bool {
    text.lines().filter_map(|l| l.strip_prefix("master ")).any(master_state_runs)
}

/// The version a copy reaches (the number of the next change it lacks), from the output of
/// [`newest_version_command`]: from the newest metadata file on, through every changelog
/// that continues the chain without a hole. `None` for a copy no master can start from: one
/// without a metadata file (a metalogger that started over and could not download one yet
/// holds changelogs only: nothing to replay them onto).
pub fn parse_newest_version(text: &str) -> Option<u64> {
    let number = |w: Option<&str>| w.and_then(|w| w.trim().parse::<u64>().ok()).filter(|v| *v > 0);
    let mut next = None;
    let mut changelogs = vec![];
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("metadata") => next = next.max(number(words.next())),
            Some("changelog") => {
                if let (Some(first), Some(last)) = (number(words.next()), number(words.next())) {
                    changelogs.push((first, last));
                }
            }
            _ => {}
        }
    }
    let mut next = next?;
    changelogs.sort_unstable();
    for (first, last) in changelogs {
        if first > next {
            break; // a hole: nothing after it can be applied
        }
        next = next.max(last + 1);
    }
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_and_metalogger_files_are_told_apart() {
        let master = [
            "metadata.mfs",
            "metadata.crc",
            "metadata.mfs.back",
            "metadata.mfs.back.1",
            "changelog.0.mfs",
            "changelog.12.mfs",
            "sessions.mfs",
        ];
        let metalogger = [
            "metadata_ml.mfs",
            "metadata_ml.mfs.back",
            "changelog_ml.0.mfs",
            "changelog_ml_back.0.mfs",
            "sessions_ml.mfs",
        ];
        for name in master {
            assert!(is_master_file(name) && !is_metalogger_file(name), "{name}");
        }
        for name in metalogger {
            assert!(is_metalogger_file(name) && !is_master_file(name), "{name}");
        }
        for other in ["metadata.mfs.empty", "chunkserverid.mfs", "old-master-1", "stats.mfs"] {
            assert!(!is_master_file(other) && !is_metalogger_file(other), "{other}");
        }
    }

    #[test]
    fn a_copy_reaches_as_far_as_its_changelogs_continue_its_metadata() {
        let seen = "changelog 420 425\nchangelog 202 419\nmetadata                    2\nmetadata 300\n";
        assert_eq!(parse_newest_version(seen), Some(426), "from 300 through 419, then 420..425");
        assert_eq!(
            parse_newest_version("metadata 430\nchangelog 202 425\n"),
            Some(430),
            "changelogs already in it"
        );
    }

    #[test]
    fn a_hole_in_the_changelogs_ends_the_copy_there() {
        // The lab's failure: metadata at 300, changelogs from 500 (a metalogger that started over).
        assert_eq!(parse_newest_version("metadata 300\nchangelog 500 506\n"), Some(300));
        assert_eq!(parse_newest_version("metadata 300\nchangelog 290 310\nchangelog 312 320\n"), Some(311));
    }

    #[test]
    fn nothing_readable_is_no_metadata() {
        assert_eq!(parse_newest_version(""), None);
        assert_eq!(parse_newest_version("metadata \ngarbage: x\nchangelog x 2\n"), None);
    }

    #[test]
    fn changelogs_without_a_metadata_file_are_no_copy() {
        assert_eq!(parse_newest_version("changelog 900 950\nmetadata \n"), None);
    }

    #[test]
    fn the_master_line_tells_whether_mfsmaster_runs() {
        let copy = "changelog 2 424\nmetadata 2\n";
        assert!(master_runs(&format!("master active\n{copy}")));
        assert!(master_runs("master deactivating\n"), "a stopping master still serves");
        assert!(!master_runs(&format!("master inactive\n{copy}")));
        assert!(!master_runs("master failed\n"));
        assert!(master_state_runs(""), "no answer: assume it runs");
        assert_eq!(
            parse_newest_version(&format!("master active\n{copy}")),
            Some(425),
            "the line is no version"
        );
    }
}
