//! Which disks a node gives to MooseFS (SPEC section 7: formatting is the most dangerous step).
//!
//! A disk is formatted without asking only when it is blank: no partition table, no file
//! system / RAID / LVM signature, nothing mounted, not read-only, not the disk Proxmox is
//! installed on. Anything else is refused with its reason; a refused disk can be approved
//! per device (`--wipe /dev/sdX`), except the system disk and a disk in use, which never can.
//! The facts come from `lsblk --json` ([`lsblk_command`], [`parse_lsblk`]), and every disk that
//! looks blank there is probed once more with `blkid -p` ([`probe_command`], [`apply_probe`]):
//! lsblk takes FSTYPE and PTTYPE from the udev database, which a container lacks and which is
//! stale right after a mkfs that udev did not see (measured in the lab: an ext4 disk listed
//! with `"fstype": null`).
//!
//! Loop devices are files on some other disk, so a production node never formats one; the lab,
//! whose data disks are loop devices, says so explicitly ([`LoopDevices::AreDisks`]).

use serde::Deserialize;
use thiserror::Error;

use crate::host::Command;
use crate::paths;

/// `lsblk` with the columns the plan needs (read-only).
pub fn lsblk_command() -> Command {
    Command::query_argv(&[
        "lsblk",
        "--json",
        "--bytes",
        "--output",
        "NAME,PATH,TYPE,SIZE,RO,FSTYPE,PTTYPE,MOUNTPOINTS",
    ])
}

#[derive(Debug, Clone, Deserialize)]
struct Lsblk {
    blockdevices: Vec<Device>,
}

#[derive(Debug, Clone, Deserialize)]
struct Device {
    name: String,
    path: String,
    #[serde(rename = "type")]
    kind: String,
    size: u64,
    ro: bool,
    fstype: Option<String>,
    pttype: Option<String>,
    #[serde(default)]
    mountpoints: Vec<Option<String>>,
    #[serde(default)]
    children: Vec<Device>,
}

impl Device {
    /// Mount points of this device and everything on it.
    fn all_mounts(&self) -> Vec<String> {
        let mut mounts: Vec<String> = self.mountpoints.iter().flatten().cloned().collect();
        for child in &self.children {
            mounts.extend(child.all_mounts());
        }
        mounts
    }
}

/// A whole disk and what the plan does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub path: String,
    pub name: String,
    pub size: u64,
    pub verdict: Verdict,
}

impl Disk {
    /// Where the disk is mounted for MooseFS: `/data/<name>`.
    pub fn mount_point(&self) -> String {
        format!("{}/{}", paths::DATA_DISK_ROOT, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Blank: formatted without asking.
    Format,
    /// Holds something; formatted only when the administrator names it with `--wipe`.
    NeedsWipe(String),
    /// Approved with `--wipe`: its content will be destroyed.
    Wipe(String),
    /// Never formatted.
    Never(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    #[error("cannot read the disk list - {0}")]
    Lsblk(String),
    #[error("--wipe {device}: {reason}")]
    WipeRefused { device: String, reason: String },
    #[error("--wipe {0}: no such disk (see the disk plan for the disks of this node)")]
    UnknownDevice(String),
}

/// Whether loop devices may be data disks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopDevices {
    /// Production: a loop device is never formatted.
    Refused,
    /// Test labs whose disks are loop devices on sparse files.
    AreDisks,
}

/// Parses `lsblk --json` output into the node's disks and their verdicts.
pub fn parse_lsblk(json: &str, loops: LoopDevices) -> Result<Vec<Disk>, PlanError> {
    let lsblk: Lsblk = serde_json::from_str(json).map_err(|e| PlanError::Lsblk(e.to_string()))?;
    Ok(lsblk
        .blockdevices
        .iter()
        .filter(|d| d.kind == "disk" || d.kind == "loop")
        .map(|d| {
            let verdict = if d.kind == "loop" && loops == LoopDevices::Refused {
                Verdict::Never("it is a loop device (a file on another disk), not a disk".into())
            } else {
                verdict(d)
            };
            Disk { path: d.path.clone(), name: d.name.clone(), size: d.size, verdict }
        })
        .collect())
}

fn verdict(d: &Device) -> Verdict {
    let mounts = d.all_mounts();
    if mounts.iter().any(|m| m == "/" || m == "/boot" || m == "/boot/efi" || m == "[SWAP]") {
        return Verdict::Never("the system is installed on it".into());
    }
    if let Some(why) = held(d) {
        return Verdict::Never(why);
    }
    if d.size == 0 {
        return Verdict::Never("it has no media (size 0)".into());
    }
    if d.ro {
        return Verdict::Never("it is read-only".into());
    }
    if !mounts.is_empty() {
        return Verdict::Never(format!("it is in use (mounted at {})", mounts.join(", ")));
    }
    if let Some(pt) = &d.pttype {
        return Verdict::NeedsWipe(format!("it has a {pt} partition table"));
    }
    match d.fstype.as_deref() {
        Some("linux_raid_member") => Verdict::NeedsWipe("it is a RAID member".into()),
        Some("LVM2_member") => Verdict::NeedsWipe("it is an LVM physical volume".into()),
        Some(fs) => Verdict::NeedsWipe(format!("it holds a {fs} file system")),
        None if !d.children.is_empty() => Verdict::NeedsWipe("it has partitions".into()),
        None => Verdict::Format,
    }
}

/// Why a disk is in use by something mount points do not show: a ZFS pool (Proxmox's ZFS root
/// never appears as a mounted block device) or active LVM, RAID or encryption on it.
fn held(d: &Device) -> Option<String> {
    let mut members = vec![d];
    members.extend(d.children.iter());
    if members.iter().any(|m| m.fstype.as_deref() == Some("zfs_member")) {
        return Some("it belongs to a ZFS pool (Proxmox may run from it); free it by hand first".into());
    }
    let active = members
        .iter()
        .flat_map(|m| m.children.iter())
        .find(|c| c.kind == "lvm" || c.kind.starts_with("raid") || c.kind == "crypt" || c.kind == "dm");
    active.map(|c| format!("it is in use by {} ({}); free it by hand first", c.name, c.kind))
}

/// `blkid -p` on one device: reads its superblocks and partition table directly, no cache.
/// Exit 0 with `TYPE=` / `PTTYPE=` lines when it finds something, 2 when it finds nothing.
pub fn probe_command(device: &str) -> Command {
    Command::query_argv(&["blkid", "-p", "-o", "export", device])
}

/// Corrects a disk that lsblk saw as blank with the result of [`probe_command`] on it: any
/// signature found, or a probe that could not read the disk, means it is not blank.
pub fn apply_probe(disk: &mut Disk, exit_code: Option<i32>, export: &str) {
    if disk.verdict != Verdict::Format {
        return;
    }
    let field = |key: &str| {
        export.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('='))).map(str::to_string)
    };
    disk.verdict = match (exit_code, field("PTTYPE"), field("TYPE")) {
        (Some(0), Some(pt), _) => Verdict::NeedsWipe(format!("it has a {pt} partition table")),
        (Some(0), None, Some(fs)) => Verdict::NeedsWipe(format!("blkid finds {fs} on it")),
        (Some(0), None, None) => Verdict::NeedsWipe("blkid found a signature on it".into()),
        (Some(2), ..) => Verdict::Format,
        _ => Verdict::NeedsWipe("blkid -p could not probe it".into()),
    };
}

/// Applies the administrator's `--wipe` approvals: each must name a disk that needs one.
pub fn approve(disks: &mut [Disk], wipe: &[String]) -> Result<(), PlanError> {
    for device in wipe {
        let disk = disks
            .iter_mut()
            .find(|d| &d.path == device || &d.name == device)
            .ok_or_else(|| PlanError::UnknownDevice(device.clone()))?;
        disk.verdict = match &disk.verdict {
            Verdict::NeedsWipe(why) => Verdict::Wipe(why.clone()),
            Verdict::Wipe(why) => Verdict::Wipe(why.clone()),
            Verdict::Format => Verdict::Format,
            Verdict::Never(why) => {
                return Err(PlanError::WipeRefused { device: device.clone(), reason: why.clone() })
            }
        };
    }
    Ok(())
}

/// The disks that will be formatted (blank ones and approved wipes).
pub fn to_format(disks: &[Disk]) -> impl Iterator<Item = &Disk> {
    disks.iter().filter(|d| matches!(d.verdict, Verdict::Format | Verdict::Wipe(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Vec<Disk> {
        parse_lsblk(include_str!("../testdata/lsblk/proxmox-node.json"), LoopDevices::AreDisks).unwrap()
    }

    fn verdict_of<'a>(disks: &'a [Disk], name: &str) -> &'a Verdict {
        &disks.iter().find(|d| d.name == name).unwrap().verdict
    }

    #[test]
    fn a_disk_lsblk_calls_blank_is_refused_when_blkid_finds_a_signature() {
        let blank =
            || Disk { path: "/dev/sdb".into(), name: "sdb".into(), size: 1 << 30, verdict: Verdict::Format };
        let mut ext4 = blank();
        apply_probe(&mut ext4, Some(0), "DEVNAME=/dev/sdb\nUUID=1234\nBLOCK_SIZE=4096\nTYPE=ext4\n");
        assert_eq!(ext4.verdict, Verdict::NeedsWipe("blkid finds ext4 on it".into()));
        let mut gpt = blank();
        apply_probe(&mut gpt, Some(0), "DEVNAME=/dev/sdb\nPTUUID=ab\nPTTYPE=gpt\n");
        assert_eq!(gpt.verdict, Verdict::NeedsWipe("it has a gpt partition table".into()));
        let mut empty = blank();
        apply_probe(&mut empty, Some(2), "");
        assert_eq!(empty.verdict, Verdict::Format);
        let mut unreadable = blank();
        apply_probe(&mut unreadable, Some(4), "");
        assert!(matches!(unreadable.verdict, Verdict::NeedsWipe(_)));
    }

    #[test]
    fn only_blank_disks_are_formatted_without_asking() {
        let disks = node();
        let names: Vec<&str> = to_format(&disks).map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["sdb", "loop3"]);
        assert_eq!(disks.iter().find(|d| d.name == "sdb").unwrap().mount_point(), "/data/sdb");
    }

    #[test]
    fn every_refusal_says_why() {
        let disks = node();
        assert_eq!(verdict_of(&disks, "sda"), &Verdict::Never("the system is installed on it".into()));
        assert_eq!(verdict_of(&disks, "sdc"), &Verdict::NeedsWipe("it holds a ext4 file system".into()));
        assert_eq!(verdict_of(&disks, "sdd"), &Verdict::NeedsWipe("it has a gpt partition table".into()));
        assert_eq!(verdict_of(&disks, "sde"), &Verdict::Never("it is in use (mounted at /data/sde)".into()));
        assert_eq!(verdict_of(&disks, "sdf"), &Verdict::NeedsWipe("it is a RAID member".into()));
        assert_eq!(verdict_of(&disks, "sdg"), &Verdict::Never("it has no media (size 0)".into()));
        assert!(disks.iter().all(|d| d.name != "sr0"), "optical drives are not disks");
    }

    #[test]
    fn loop_devices_are_never_formatted_on_a_production_node() {
        let disks =
            parse_lsblk(include_str!("../testdata/lsblk/proxmox-node.json"), LoopDevices::Refused).unwrap();
        assert_eq!(
            verdict_of(&disks, "loop3"),
            &Verdict::Never("it is a loop device (a file on another disk), not a disk".into())
        );
        assert_eq!(to_format(&disks).map(|d| d.name.as_str()).collect::<Vec<_>>(), ["sdb"]);
    }

    #[test]
    fn disks_in_use_without_a_mount_are_never_formatted() {
        let disks = node();
        assert_eq!(
            verdict_of(&disks, "sdh"),
            &Verdict::Never(
                "it belongs to a ZFS pool (Proxmox may run from it); free it by hand first".into()
            )
        );
        assert_eq!(
            verdict_of(&disks, "sdi"),
            &Verdict::Never("it is in use by pve-data (lvm); free it by hand first".into())
        );
        assert!(approve(&mut node(), &["sdh".into()]).is_err());
    }

    #[test]
    fn wipe_approves_only_what_may_be_wiped() {
        let mut disks = node();
        approve(&mut disks, &["/dev/sdc".into(), "sdd".into()]).unwrap();
        let names: Vec<&str> = to_format(&disks).map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["sdb", "sdc", "sdd", "loop3"]);
        let err = approve(&mut node(), &["/dev/sda".into()]).unwrap_err();
        assert_eq!(err.to_string(), "--wipe /dev/sda: the system is installed on it");
        let err = approve(&mut node(), &["/dev/sde".into()]).unwrap_err();
        assert_eq!(err.to_string(), "--wipe /dev/sde: it is in use (mounted at /data/sde)");
        let err = approve(&mut node(), &["/dev/sdz".into()]).unwrap_err();
        assert!(err.to_string().starts_with("--wipe /dev/sdz: no such disk"));
    }

    #[test]
    fn a_real_machine_with_the_system_on_a_whole_disk() {
        let disks =
            parse_lsblk(include_str!("../testdata/lsblk/ci-machine.json"), LoopDevices::Refused).unwrap();
        assert_eq!(to_format(&disks).count(), 0, "{disks:?}");
        assert_eq!(verdict_of(&disks, "vda"), &Verdict::Never("the system is installed on it".into()));
    }
}
