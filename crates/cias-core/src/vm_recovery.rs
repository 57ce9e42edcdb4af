//! Bringing VMs back on another node: the steps the takeover and the removal of a dead node
//! share (SPEC section 7, "recovering a dead node's VMs"). Shared storage first: the lost
//! node's config is moved to a live node (the documented way, a rename inside /etc/pve that
//! needs quorum) and the VM starts on its own disks; only a disk that is gone sends a VM back
//! to its newest backup.

use std::collections::BTreeSet;
use std::time::Duration;

use thiserror::Error;

use crate::backups::{self, Archive};
use crate::host::{is_mounted, Command, Host, HostError};
use crate::paths;
use crate::takeover::{self, ClusterView};

/// How long one Proxmox task (start, migrate, restore) may take.
pub const TASK_LIMIT: Duration = Duration::from_secs(10 * 60);

/// How long one read of MooseFS may take here. A chunk whose only valid copy was on the lost
/// node blocks its reader until that node returns (measured in the failover bench: `cat` of the
/// VMID map blocked for 3 minutes, until the powered-off master came back), and a recovery must
/// go on without it.
pub const MFS_READ_LIMIT: Duration = Duration::from_secs(10);

/// Why a VM could not be brought back.
#[derive(Debug, Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Host(#[from] HostError),
    /// A `qm` task failed; the last lines of its log say why.
    #[error("`{command}` on {node} failed: {log}")]
    Task { command: String, node: String, log: String },
    #[error("VM {vmid} has no backup in {dir}")]
    NoBackup { vmid: u32, dir: String },
    #[error("{mount} is not mounted, so whether {path} still exists is unknown; nothing restored")]
    Unmounted { mount: String, path: String },
}

/// The VM's config file inside the cluster file system.
pub fn conf_path(node: &str, vmid: u32) -> String {
    format!("/etc/pve/nodes/{node}/qemu-server/{vmid}.conf")
}

/// VMIDs that should run: those the master's VMID map saw running, and those marked onboot.
/// A map that cannot be read in time is done without (the router is started anyway).
pub fn should_run(local: &dyn Host, view: &ClusterView) -> Result<BTreeSet<u32>, RecoveryError> {
    let mut run = BTreeSet::new();
    match local.execute(&Command::query_argv(&["cat", paths::VMID_MAP_FILE]).timeout(MFS_READ_LIMIT)) {
        Ok(map) if map.success() => run.extend(
            takeover::parse_vmid_map(&map.stdout)
                .into_iter()
                .filter(|e| e.status == "running")
                .map(|e| e.vmid),
        ),
        Ok(_) => {} // no map yet: a new cluster
        Err(HostError::Timeout { after, .. }) => tracing::warn!(
            "the VMID map {} gave no answer in {}s (its data may be on a lost node): only VMs marked onboot and \
             the router are started",
            paths::VMID_MAP_FILE,
            after.as_secs()
        ),
        Err(e) => return Err(e.into()),
    }
    for vm in &view.vms {
        let conf = local.execute(&Command::query_argv(&["cat", &conf_path(&vm.node, vm.vmid)]))?;
        if conf.success() && takeover::onboot(&conf.stdout) {
            run.insert(vm.vmid);
        }
    }
    Ok(run)
}

/// A `qm` task command on `owner`, the node that owns the VM, in the foreground. `qm` exits
/// 255 when the task failed, with the task's error at the end of its log (stdout). (`pvesh
/// create` for another node's VM is no way: pvesh forwards it over SSH and then cannot decode
/// the task's log it gets back - pve-manager PVE/CLI/pvesh.pm `proxy_handler`.)
pub fn qm(owner: &dyn Host, args: &[&str]) -> Result<(), RecoveryError> {
    let mut argv = vec!["qm"];
    argv.extend_from_slice(args);
    let cmd = Command::from_argv(&argv).timeout(TASK_LIMIT);
    let out = owner.execute(&cmd)?;
    if !out.success() {
        let log: Vec<&str> =
            out.stdout.lines().chain(out.stderr.lines()).filter(|l| !l.trim().is_empty()).collect();
        return Err(RecoveryError::Task {
            command: cmd.to_string(),
            node: owner.name().to_string(),
            log: log[log.len().saturating_sub(3)..].join(" / "),
        });
    }
    Ok(())
}

/// The newest complete backup of `vmid` as `host` sees it: in its local dump directory (the
/// router's copy, there even when MooseFS is not) or on MooseFS, when mounted and answering.
pub fn newest_archive(host: &dyn Host, vmid: u32) -> Result<Archive, RecoveryError> {
    let mut found = backups::list(host, paths::LOCAL_DUMP_DIR, vmid, MFS_READ_LIMIT)?;
    if is_mounted(host, paths::MFS_MOUNT)? {
        match backups::list(host, paths::SHARED_DUMP_DIR, vmid, MFS_READ_LIMIT) {
            Ok(shared) => found.extend(shared),
            Err(HostError::Timeout { .. }) => {
                tracing::warn!("{} gave no answer in time: only local backups count", paths::SHARED_DUMP_DIR)
            }
            Err(e) => return Err(e.into()),
        }
    }
    found.into_iter().max_by(|a, b| a.stamp.cmp(&b.stamp)).ok_or(RecoveryError::NoBackup {
        vmid,
        dir: format!("{} or {}", paths::LOCAL_DUMP_DIR, paths::SHARED_DUMP_DIR),
    })
}

/// Restores `vmid` on `target` from the newest backup `target` can read; onto `local_storage`
/// when MooseFS is not mounted there (the VM's own storage is then out of reach). Returns
/// what the administrator should know: why, which backup, and how old its data is.
fn restore(target: &dyn Host, vmid: u32, why: &str, local_storage: &str) -> Result<String, RecoveryError> {
    let archive = newest_archive(target, vmid)?;
    let age = backups::age(target, &archive.path, crate::clock::unix_secs())?;
    let id = vmid.to_string();
    let mut argv = vec!["qmrestore", archive.path.as_str(), id.as_str(), "--force", "1"];
    let shared = is_mounted(target, paths::MFS_MOUNT)?;
    if !shared {
        argv.extend(["--storage", local_storage]);
    }
    target.run(&Command::from_argv(&argv).timeout(TASK_LIMIT))?;
    Ok(format!(
        "the disk of VM {vmid} {why}: restored on {} from {}, a backup {} old (data since then is lost){}",
        target.name(),
        archive.path,
        backups::human(age),
        if shared {
            String::new()
        } else {
            format!(", onto {local_storage} because MooseFS is not mounted there")
        }
    ))
}

/// Whether the VM's first disk still exists (on shared storage it survives its node). Only a
/// mounted MooseFS can answer "gone": a missing mount would look the same and send a VM back
/// to last week's backup.
pub fn disk_exists(local: &dyn Host, config: &str) -> Result<bool, RecoveryError> {
    let Some(volume) = takeover::first_disk(config) else { return Ok(true) };
    let path = local.execute(&Command::query_argv(&["pvesm", "path", &volume]))?;
    if !path.success() {
        return Ok(false);
    }
    let path = path.stdout.trim();
    if path.starts_with(paths::MFS_MOUNT) && !is_mounted(local, paths::MFS_MOUNT)? {
        return Err(RecoveryError::Unmounted { mount: paths::MFS_MOUNT.into(), path: path.into() });
    }
    Ok(local.execute(&Command::query_argv(&["test", "-e", path]).timeout(MFS_READ_LIMIT))?.success())
}

/// Moves lost node `from`'s VM to `target` and starts it there when `run`; restores it on
/// `target` from the newest backup `target` can read when its disk is gone (onto
/// `local_storage` while MooseFS is down). `note` hears what the administrator should know (a
/// restore loses data).
pub fn recover(
    local: &dyn Host,
    target: &dyn Host,
    vmid: u32,
    from: &str,
    run: bool,
    local_storage: &str,
    note: &mut dyn FnMut(&str),
) -> Result<(), RecoveryError> {
    let to = target.name();
    let config = local.run(&Command::query_argv(&["cat", &conf_path(from, vmid)]))?.stdout;
    let missing = match disk_exists(local, &config) {
        Ok(true) => None,
        Ok(false) => Some("was gone"),
        // The cluster's network needs its router now: with MooseFS down, the router comes back
        // from its local copy. Any other VM waits for its disk.
        Err(RecoveryError::Unmounted { .. }) if vmid == takeover::ROUTER_VMID => {
            Some("is out of reach while MooseFS is down")
        }
        Err(e) => return Err(e),
    };
    local.run(&Command::from_argv(&["mv", &conf_path(from, vmid), &conf_path(to, vmid)]))?;
    if let Some(why) = missing {
        note(&restore(target, vmid, why, local_storage)?);
    }
    if run {
        qm(target, &["start", &vmid.to_string()])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Output;
    use crate::proxmox::pvesh::VmResource;

    /// A node whose MooseFS read of the VMID map hangs, as when its chunk's only valid copy was
    /// on the lost node.
    #[derive(Debug)]
    struct HungMap;

    impl Host for HungMap {
        fn name(&self) -> &str {
            "node2"
        }

        fn execute(&self, cmd: &Command) -> Result<Output, HostError> {
            let output =
                |stdout: &str| Output { code: Some(0), stdout: stdout.into(), stderr: String::new() };
            match cmd.argv() {
                [cat, file] if cat == "cat" && file == paths::VMID_MAP_FILE => Err(HostError::Timeout {
                    host: "node2".into(),
                    command: cmd.to_string(),
                    after: MFS_READ_LIMIT,
                }),
                [cat, file] if cat == "cat" && file.ends_with("/7.conf") => {
                    Ok(output("memory: 512\nonboot: 1\n"))
                }
                _ => Ok(output("memory: 512\n")),
            }
        }
    }

    fn vm(vmid: u32) -> VmResource {
        serde_json::from_value(serde_json::json!({
            "vmid": vmid, "node": "node1", "status": "unknown", "type": "qemu"
        }))
        .unwrap()
    }

    #[test]
    fn a_hung_vmid_map_leaves_the_onboot_vms() {
        let view = ClusterView { quorate: true, nodes: Vec::new(), vms: vec![vm(7), vm(8)] };
        let run = should_run(&HungMap, &view).expect("a hung map is done without");
        assert_eq!(run.into_iter().collect::<Vec<_>>(), vec![7]);
    }
}
