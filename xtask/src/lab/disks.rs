//! Two blank disks per node: sparse files under the node's directory, attached to loop
//! devices, bind-mounted into that node only (as `/dev/loopN`). The node also gets its own
//! `/sys/block` listing just those two, so `lsblk` inside shows only its own disks.
//! Real disks are never touched: everything here works on the lab's own image files.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};

use super::addr::Node;
use super::layout::{node_dir, STATE_DIR};
use super::run::cmd;

pub const DISKS_PER_NODE: u8 = 2;

/// What a disk holds when the node first boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskPrep {
    /// All zeros, as a new disk.
    Blank,
    /// An ext4 file system (a used disk that setup must refuse to format).
    Ext4,
    /// A GPT partition table with one partition (ditto). Partitions are not scanned, so no
    /// `loopNp1` device appears: tools see the table on the disk itself.
    Gpt,
}

/// `node1:2=ext4` gives node1's second disk an ext4 file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpec {
    pub node: Node,
    /// 1 or 2.
    pub disk: u8,
    pub prep: DiskPrep,
}

impl FromStr for DiskSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<DiskSpec> {
        let parse = || -> Option<(Node, u8, &str)> {
            let (place, prep) = s.split_once('=')?;
            let (node, disk) = place.split_once(':')?;
            Some((node.parse().ok()?, disk.parse().ok()?, prep))
        };
        let Some((node, disk, prep)) = parse() else {
            bail!("{s:?} is not NODE:DISK=PREP (e.g. node1:2=ext4)");
        };
        if disk == 0 || disk > DISKS_PER_NODE {
            bail!("{s:?}: a node has disks 1..={DISKS_PER_NODE}");
        }
        let prep = match prep {
            "blank" => DiskPrep::Blank,
            "ext4" => DiskPrep::Ext4,
            "gpt" => DiskPrep::Gpt,
            _ => bail!("{s:?}: PREP is blank, ext4 or gpt"),
        };
        Ok(DiskSpec { node, disk, prep })
    }
}

fn image(node: Node, disk: u8) -> PathBuf {
    node_dir(node).join(format!("disk{disk}.img"))
}

/// Creates the node's disk images and attaches them; returns the loop devices.
pub fn create(node: Node, size_mib: u64, specs: &[DiskSpec]) -> Result<Vec<String>> {
    let mut devices = Vec::new();
    for disk in 1..=DISKS_PER_NODE {
        let path = image(node, disk);
        let file =
            fs::File::create(&path).with_context(|| format!("{node}: cannot create {}", path.display()))?;
        file.set_len(size_mib * 1024 * 1024)?;
        drop(file);
        let prep =
            specs.iter().find(|s| s.node == node && s.disk == disk).map_or(DiskPrep::Blank, |s| s.prep);
        prepare(&path, prep).with_context(|| format!("{node}: preparing disk {disk}"))?;
        let file_arg = path.display().to_string();
        let dev = cmd(["losetup", "--find", "--show", &file_arg])
            .run()
            .with_context(|| format!("{node}: cannot attach disk {disk}"))?;
        devices.push(dev.trim().to_string());
    }
    write_sysfs_view(node, &devices)?;
    Ok(devices)
}

/// Writes straight into the image file (a regular file of the lab), never into a device.
fn prepare(image: &Path, prep: DiskPrep) -> Result<()> {
    let file = image.display().to_string();
    match prep {
        DiskPrep::Blank => {}
        DiskPrep::Ext4 => {
            cmd(["mkfs.ext4", "-q", "-F", &file]).run()?;
        }
        DiskPrep::Gpt => {
            cmd(["sfdisk", "--quiet", &file]).stdin("label: gpt\n,,L\n").run()?;
        }
    }
    Ok(())
}

/// The loop devices now attached to the node's images (after `up`, across power cycles).
pub fn devices(node: Node) -> Result<Vec<String>> {
    Ok(attached()?
        .into_iter()
        .filter(|(_, file)| file.starts_with(node_dir(node)))
        .map(|(dev, _)| dev)
        .collect())
}

/// Host directory bind-mounted over the node's `/sys/block`.
pub fn sysfs_view(node: Node) -> PathBuf {
    node_dir(node).join("sys-block")
}

fn write_sysfs_view(node: Node, devices: &[String]) -> Result<()> {
    let dir = sysfs_view(node);
    fs::create_dir_all(&dir)?;
    for dev in devices {
        let name = dev.trim_start_matches("/dev/");
        // Relative, so it resolves inside the node's /sys.
        symlink(format!("../devices/virtual/block/{name}"), dir.join(name))?;
    }
    Ok(())
}

/// Every loop device backed by a file of the lab, as (device, backing file).
fn attached() -> Result<Vec<(String, PathBuf)>> {
    let out = cmd(["losetup", "--list", "--noheadings", "--raw", "-O", "NAME,BACK-FILE"]).run()?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(dev, file)| (dev.to_string(), PathBuf::from(file.trim())))
        .filter(|(_, file)| file.starts_with(STATE_DIR))
        .collect())
}

/// Detaches every loop device of the lab (after a crash too).
pub fn detach_all() -> Result<()> {
    for (dev, _) in attached()? {
        cmd(["losetup", "--detach", &dev]).run().with_context(|| format!("cannot detach {dev}"))?;
    }
    Ok(())
}

/// Loop devices of the lab still attached (for `down`'s self-check).
pub fn left() -> Result<Vec<String>> {
    Ok(attached()?.into_iter().map(|(dev, _)| dev).collect())
}
