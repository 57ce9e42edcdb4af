//! How new a node's copy of the MooseFS metadata is (SPEC section 7, MooseFS takeover).
//!
//! A new master starts from the newest metadata it has (`mfsmaster -a`). Its own metalogger
//! can be behind another node's (it was reconnecting, or started over after a split brain),
//! so the takeover compares the copies of the quorate nodes first. The version of a copy is
//! the highest of: the change numbers that start the lines of the changelogs
//! (`N: TIMESTAMP|OPERATION`) and the version in the metadata files' header (`MFSM 2.0`, then
//! the version as 8 bytes big-endian; measured on MooseFS 3.0.117 files).

use crate::host::Command;

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

/// A read-only command printing what [`parse_newest_version`] reads (the last lines of every
/// changelog and one `metadata VERSION` line per metadata file) and what [`master_runs`]
/// reads (`master STATE`, systemd's word for the node's mfsmaster): one round asks a node both.
pub fn newest_version_command() -> Command {
    let script = format!(
        "printf 'master %s\\n' \"$(systemctl is-active moosefs-master)\"; \
         cd {DATA_PATH} || exit 0; \
         for f in changelog*.mfs; do [ -s \"$f\" ] && tail -n 2 -- \"$f\"; done; \
         for f in metadata*.mfs metadata*.mfs.back; do [ -s \"$f\" ] && \
         printf 'metadata %s\\n' \"$(od -A n -t u8 --endian=big -j 8 -N 8 -- \"$f\")\"; done; true"
    );
    Command::query_argv(&["sh", "-c", &script])
}

/// Whether the output of [`newest_version_command`] says the node's mfsmaster runs (or is
/// starting or stopping): anything but systemd's `inactive` and `failed`.
pub fn master_runs(text: &str) -> bool {
    text.lines()
        .filter_map(|l| l.strip_prefix("master "))
        .any(|state| !matches!(state.trim(), "inactive" | "failed"))
}

/// The newest version in the output of [`newest_version_command`]; `None` for a copy no
/// master can start from: without a metadata file (a metalogger that started over and could
/// not download one yet holds changelogs only), changelogs are nothing to replay onto.
pub fn parse_newest_version(text: &str) -> Option<u64> {
    let mut base = false;
    let newest = text
        .lines()
        .filter_map(|line| {
            let (number, is_base) = match line.strip_prefix("metadata ") {
                Some(rest) => (rest.trim(), true),
                None => (line.split_once(": ")?.0, false),
            };
            let version = number.parse::<u64>().ok().filter(|v| *v > 0)?;
            base |= is_base;
            Some(version)
        })
        .max();
    newest.filter(|_| base)
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
    fn the_newest_of_changelog_lines_and_metadata_headers() {
        let seen = "424: 1796120678|LENGTH(39,0,1)\n425: 1796120678|WRI\n\
                    202: 1796120674|ACCESS(2)\nmetadata                    2\nmetadata 430\n";
        assert_eq!(parse_newest_version(seen), Some(430));
        assert_eq!(parse_newest_version("424: 1796120678|LENGTH(39,0,1)\nmetadata 2\n"), Some(424));
    }

    #[test]
    fn nothing_readable_is_no_metadata() {
        assert_eq!(parse_newest_version(""), None);
        assert_eq!(parse_newest_version("metadata \ngarbage: x\n"), None);
    }

    #[test]
    fn changelogs_without_a_metadata_file_are_no_copy() {
        assert_eq!(parse_newest_version("900: 1796120678|ACCESS(2)\nmetadata \n"), None);
    }

    #[test]
    fn the_master_line_tells_whether_mfsmaster_runs() {
        let copy = "424: 1796120678|LENGTH(39,0,1)\nmetadata 2\n";
        assert!(master_runs(&format!("master active\n{copy}")));
        assert!(master_runs("master deactivating\n"), "a stopping master still serves");
        assert!(!master_runs(&format!("master inactive\n{copy}")));
        assert!(!master_runs("master failed\n"));
        assert_eq!(
            parse_newest_version(&format!("master active\n{copy}")),
            Some(424),
            "the line is no version"
        );
    }
}
