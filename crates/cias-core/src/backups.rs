//! vzdump archives: which files in a dump directory are complete backups, and the newest of a VM.
//!
//! Names follow Proxmox (pve-storage `archive_info`): `vzdump-qemu-VMID-YYYY_MM_DD-HH_MM_SS.vma`
//! with an optional `.gz`, `.lzo` or `.zst`. `qmrestore` reads the compression from that suffix
//! and refuses a name that does not match ("couldn't determine archive info"), so a copy keeps
//! its name. While vzdump writes, the file's last suffix is `.dat` (`.vma.dat`, or `.dat` alone
//! for an uncompressed archive: PVE/VZDump.pm `tmptar`), renamed when the backup is complete;
//! its `.log` and `.notes` sit beside it. None of those is an archive here.

use std::time::Duration;

use crate::host::{Command, Host, HostError};

/// A complete vzdump archive of a VM, by its file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// The path as listed.
    pub path: String,
    pub vmid: u32,
    /// `YYYY_MM_DD-HH_MM_SS`, the node's local time of the backup (sorts by time).
    pub stamp: String,
    /// `gz`, `lzo`, `zst`, or `None` for an uncompressed `.vma`.
    pub compression: Option<String>,
}

impl Archive {
    /// The archive `path` names, if it is a complete vzdump archive of a VM.
    pub fn parse(path: &str) -> Option<Archive> {
        let name = path.rsplit('/').next()?;
        let rest = name.strip_prefix("vzdump-qemu-")?;
        let (vmid, rest) = rest.split_once('-')?;
        let vmid: u32 = vmid.parse().ok().filter(|v| (100..=999_999_999).contains(v))?;
        let (stamp, suffix) = rest.split_once('.')?;
        let well_formed = stamp.len() == 19
            && stamp.char_indices().all(|(i, c)| match i {
                4 | 7 | 13 | 16 => c == '_',
                10 => c == '-',
                _ => c.is_ascii_digit(),
            });
        let compression = match suffix {
            "vma" => None,
            "vma.gz" | "vma.lzo" | "vma.zst" => Some(suffix["vma.".len()..].to_string()),
            _ => return None,
        };
        well_formed.then(|| Archive { path: path.to_string(), vmid, stamp: stamp.to_string(), compression })
    }

    /// The file name alone.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// The command that checks the archive can be read to its end: the decompressor's own test
    /// for a compressed one (its checksums), `vma verify` for a plain one.
    pub fn readable_command(&self, path: &str) -> Command {
        match self.compression.as_deref() {
            Some("gz") => Command::query_argv(&["gzip", "-t", path]),
            Some("lzo") => Command::query_argv(&["lzop", "-t", path]),
            Some(_) => Command::query_argv(&["zstd", "-q", "-t", path]),
            None => Command::query_argv(&["vma", "verify", path]),
        }
        .timeout(Duration::from_secs(3600))
    }
}

/// The name under which a delivered archive `given` (any name) can be restored as VM `vmid`:
/// `given` itself when it is a vzdump name, else `vzdump-qemu-VMID-<taken, UTC>.vma` with the
/// compression suffix `given` ends in (qmrestore reads the name, not the content).
pub fn restorable_name(vmid: u32, given: &str, taken_unix: u64) -> String {
    if Archive::parse(given).is_some_and(|a| a.vmid == vmid) {
        return given.to_string();
    }
    let suffix = ["gz", "lzo", "zst"]
        .into_iter()
        .find(|c| given.ends_with(&format!(".{c}")))
        .map(|c| format!(".{c}"))
        .unwrap_or_default();
    format!("vzdump-qemu-{vmid}-{}.vma{suffix}", utc_stamp(taken_unix))
}

/// `YYYY_MM_DD-HH_MM_SS` of a unix time, in UTC (days to civil date: Howard Hinnant's method).
fn utc_stamp(unix: u64) -> String {
    let (days, secs) = ((unix / 86400) as i64, unix % 86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}_{month:02}_{day:02}-{:02}_{:02}_{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// The newest complete archive of `vmid` among `paths` (names sort by time).
pub fn newest<'a>(vmid: u32, paths: impl IntoIterator<Item = &'a str>) -> Option<Archive> {
    paths
        .into_iter()
        .filter_map(Archive::parse)
        .filter(|a| a.vmid == vmid)
        .max_by(|a, b| a.stamp.cmp(&b.stamp))
}

/// The complete archives of `vmid` in `dir` (not recursive), read within `limit`.
pub fn list(host: &dyn Host, dir: &str, vmid: u32, limit: Duration) -> Result<Vec<Archive>, HostError> {
    let pattern = format!("vzdump-qemu-{vmid}-*");
    let found = host.execute(
        &Command::query_argv(&["find", dir, "-maxdepth", "1", "-type", "f", "-name", &pattern])
            .timeout(limit),
    )?;
    let mut archives: Vec<Archive> = found.stdout.lines().filter_map(Archive::parse).collect();
    archives.sort_by(|a, b| a.stamp.cmp(&b.stamp));
    Ok(archives)
}

/// How old a file is, from its modification time (a copy keeps it: `cp --preserve=timestamps`).
pub fn age(host: &dyn Host, path: &str, now_unix: u64) -> Result<Duration, HostError> {
    let out = host.run(&Command::query_argv(&["stat", "-c", "%Y", path]))?;
    let mtime: u64 = out.stdout.trim().parse().unwrap_or(now_unix);
    Ok(Duration::from_secs(now_unix.saturating_sub(mtime)))
}

/// "3 days 4 hours", "5 hours 2 minutes", "40 minutes": an age for a mail.
pub fn human(age: Duration) -> String {
    let mins = age.as_secs() / 60;
    let (days, hours, mins) = (mins / 1440, mins / 60 % 24, mins % 60);
    let unit = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    match (days, hours) {
        (0, 0) => unit(mins, "minute"),
        (0, _) => format!("{} {}", unit(hours, "hour"), unit(mins, "minute")),
        _ => format!("{} {}", unit(days, "day"), unit(hours, "hour")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_archives_count() {
        let dir = [
            "/mnt/mfs/dump/vzdump-qemu-100-2026_11_30-02_00_04.vma",
            "/mnt/mfs/dump/vzdump-qemu-100-2026_11_30-02_00_04.log",
            "/mnt/mfs/dump/vzdump-qemu-100-2026_12_07-02_00_03.dat", // being written, uncompressed
            "/mnt/mfs/dump/vzdump-qemu-100-2026_12_07-02_00_03.log",
            "/mnt/mfs/dump/vzdump-qemu-100-2026_11_30-02_00_04.vma.notes",
            "/mnt/mfs/dump/vzdump-qemu-1001-2026_12_08-02_00_00.vma.zst",
        ];
        let newest = newest(100, dir).unwrap();
        assert_eq!(newest.file_name(), "vzdump-qemu-100-2026_11_30-02_00_04.vma");
        assert_eq!(newest.compression, None);
        assert_eq!(super::newest(1001, dir).unwrap().compression.as_deref(), Some("zst"));
        // A compressed one being written ends in .vma.dat.
        assert_eq!(super::newest(5, ["vzdump-qemu-5-2026_12_07-02_00_03.vma.dat"]), None);
    }

    #[test]
    fn names_qmrestore_would_refuse_are_no_archives() {
        for name in [
            "zentyal.tar.vma",
            "vzdump-qemu-100-latest.vma",
            "vzdump-qemu-100-2026_12_07-02_00_03.vma.bz2",
            "vzdump-qemu-42-2026_12_07-02_00_03.vma",
            "vzdump-lxc-100-2026_12_07-02_00_03.tar.zst",
        ] {
            assert_eq!(Archive::parse(name), None, "{name}");
        }
    }

    #[test]
    fn the_newest_is_by_time() {
        let a = ["vzdump-qemu-100-2026_12_07-02_00_03.vma.zst", "vzdump-qemu-100-2026_11_30-02_00_04.vma"];
        assert_eq!(newest(100, a).unwrap().stamp, "2026_12_07-02_00_03");
    }

    #[test]
    fn a_delivered_archive_gets_a_name_qmrestore_reads() {
        // 2026-12-05 01:50:07 UTC
        let t = 1_796_435_407;
        assert_eq!(restorable_name(100, "router.vma", t), "vzdump-qemu-100-2026_12_05-01_50_07.vma");
        assert_eq!(
            restorable_name(100, "zentyal-8.0.vma.zst", t),
            "vzdump-qemu-100-2026_12_05-01_50_07.vma.zst"
        );
        let kept = "vzdump-qemu-100-2026_01_05-02_00_00.vma";
        assert_eq!(restorable_name(100, kept, t), kept);
        assert_eq!(utc_stamp(951_782_400), "2000_02_29-00_00_00");
    }

    #[test]
    fn ages_read_as_words() {
        assert_eq!(human(Duration::from_secs(40 * 60)), "40 minutes");
        assert_eq!(human(Duration::from_secs(3600 + 120)), "1 hour 2 minutes");
        assert_eq!(human(Duration::from_secs(3 * 86400 + 4 * 3600 + 59)), "3 days 4 hours");
    }
}
