//! Bringing VMs back on another node: the steps the takeover and the removal of a dead node
//! share (SPEC section 7, "recovering a dead node's VMs"). Shared storage first: the lost
//! node's config is moved to a live node (the documented way, a rename inside /etc/pve that
//! needs quorum) and the VM starts on its own disks; only a disk that is gone sends a VM back
//! to its newest backup.

use std::collections::BTreeSet;
use std::time::Duration;

use thiserror::Error;

use crate::host::{is_mounted, Command, Host, HostError};
use crate::paths;
use crate::takeover::{self, ClusterView, ROUTER_VMID};

/// How long one Proxmox task (start, migrate, restore) may take.
pub const TASK_LIMIT: Duration = Duration::from_secs(10 * 60);

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
    #[error("the disk of VM {vmid} is gone; restore it on {node} from its newest backup by hand (qmrestore --force)")]
    RestoreElsewhere { vmid: u32, node: String },
}

/// The VM's config file inside the cluster file system.
pub fn conf_path(node: &str, vmid: u32) -> String {
    format!("/etc/pve/nodes/{node}/qemu-server/{vmid}.conf")
}

/// VMIDs that should run: those the master's VMID map saw running, and those marked onboot.
pub fn should_run(local: &dyn Host, view: &ClusterView) -> Result<BTreeSet<u32>, RecoveryError> {
    let mut run = BTreeSet::new();
    let map = local.execute(&Command::query_argv(&["cat", paths::VMID_MAP_FILE]))?;
    if map.success() {
        run.extend(
            takeover::parse_vmid_map(&map.stdout)
                .into_iter()
                .filter(|e| e.status == "running")
                .map(|e| e.vmid),
        );
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

/// The newest backup archive of `vmid`: the router's local copy first (it is there even when
/// MooseFS is not), else the newest vzdump archive on MooseFS.
pub fn newest_archive(local: &dyn Host, vmid: u32) -> Result<String, RecoveryError> {
    if vmid == ROUTER_VMID
        && local.execute(&Command::query_argv(&["test", "-s", paths::ROUTER_LOCAL_COPY]))?.success()
    {
        return Ok(paths::ROUTER_LOCAL_COPY.into());
    }
    let dump = format!("{}/dump", paths::MFS_MOUNT);
    let pattern = format!("vzdump-qemu-{vmid}-*");
    let found = local.execute(&Command::query_argv(&["find", &dump, "-maxdepth", "1", "-name", &pattern]))?;
    let mut archives: Vec<&str> =
        found.stdout.lines().filter(|l| !l.ends_with(".log") && !l.ends_with(".notes")).collect();
    archives.sort();
    archives.last().map(|a| a.to_string()).ok_or(RecoveryError::NoBackup { vmid, dir: dump })
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
    Ok(local.execute(&Command::query_argv(&["test", "-e", path]))?.success())
}

/// Moves lost node `from`'s VM to `target` and starts it there when `run`; restores it from
/// its newest backup when its disk is gone (only when `target` is `local`, where the archive
/// is read). `note` hears what the administrator should know (a restore loses data).
pub fn recover(
    local: &dyn Host,
    target: &dyn Host,
    vmid: u32,
    from: &str,
    run: bool,
    note: &mut dyn FnMut(&str),
) -> Result<(), RecoveryError> {
    let to = target.name();
    let config = local.run(&Command::query_argv(&["cat", &conf_path(from, vmid)]))?.stdout;
    let disk = disk_exists(local, &config)?;
    local.run(&Command::from_argv(&["mv", &conf_path(from, vmid), &conf_path(to, vmid)]))?;
    if !disk {
        if to != local.name() {
            return Err(RecoveryError::RestoreElsewhere { vmid, node: to.into() });
        }
        let archive = newest_archive(local, vmid)?;
        note(&format!(
            "the disk of VM {vmid} is gone: restoring it from {archive} (data since that backup is lost)"
        ));
        local.run(
            &Command::from_argv(&["qmrestore", &archive, &vmid.to_string(), "--force", "1"])
                .timeout(TASK_LIMIT),
        )?;
    }
    if run {
        qm(target, &["start", &vmid.to_string()])?;
    }
    Ok(())
}
