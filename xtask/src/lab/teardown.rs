//! `lab down`: finds what a lab left on the machine from the machine itself (cgroups,
//! namespaces, mount table, loop devices), not from a record, so it also cleans up after a
//! crash, and is a no-op on a clean machine.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::cgroup::{self, Group};
use super::layout::{MOUNT_SOURCE, NSPAWN_RUN_DIR, STATE_DIR};
use super::run::cmd;
use super::{disks, network};

pub fn run() -> Result<()> {
    // Processes first: nothing may hold a mount, a device or a namespace afterwards.
    for group in Group::all()? {
        group.remove()?;
    }
    cgroup::remove_lab_root()?;
    network::delete_all()?;
    for mount in lab_mounts()? {
        cmd(["umount", &mount]).run().with_context(|| format!("cannot unmount {mount}"))?;
    }
    let _ = fs::remove_dir(NSPAWN_RUN_DIR);
    disks::detach_all()?;
    // Never delete through a mount point.
    let mounts = lab_mounts()?;
    if !mounts.is_empty() {
        bail!("still mounted, not deleting {STATE_DIR}: {mounts:?}");
    }
    if Path::new(STATE_DIR).exists() {
        fs::remove_dir_all(STATE_DIR).with_context(|| format!("cannot remove {STATE_DIR}"))?;
    }
    let left = leftovers()?;
    if !left.is_empty() {
        bail!("lab down left these behind: {left:?}");
    }
    Ok(())
}

/// Mount points the lab made, deepest first: anything under the state directory, the node
/// overlays and the tmpfs for nspawn (all mounted with a `cias-lab` source).
fn lab_mounts() -> Result<Vec<String>> {
    let table = fs::read_to_string("/proc/self/mountinfo")?;
    let mut mounts: Vec<String> = table
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let point = *fields.get(4)?;
            let sep = fields.iter().position(|f| *f == "-")?;
            let source = *fields.get(sep + 2)?;
            let ours = point.starts_with(STATE_DIR) || source.starts_with(MOUNT_SOURCE);
            ours.then(|| point.to_string())
        })
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    mounts.dedup();
    Ok(mounts)
}

/// Everything of a lab still on the machine, described; empty when clean.
pub fn leftovers() -> Result<Vec<String>> {
    let mut left = Vec::new();
    left.extend(network::lab_netns()?.into_iter().map(|n| format!("netns {n}")));
    left.extend(lab_mounts()?.into_iter().map(|m| format!("mount {m}")));
    left.extend(disks::left()?.into_iter().map(|d| format!("loop device {d}")));
    left.extend(cgroup::lab_cgroups_left().into_iter().map(|p| format!("cgroup {}", p.display())));
    left.extend(processes_inside()?.into_iter().map(|p| format!("process {p}")));
    if Path::new(STATE_DIR).exists() {
        left.push(format!("directory {STATE_DIR}"));
    }
    Ok(left)
}

/// Processes whose root directory is inside the lab (a node's processes, wherever they are).
fn processes_inside() -> Result<Vec<u32>> {
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(root) = fs::read_link(entry.path().join("root")) {
            if root.starts_with(STATE_DIR) {
                pids.push(pid);
            }
        }
    }
    Ok(pids)
}
