//! The VMs after a takeover: ask `cias_core::takeover::plan` what is safe now, do it, and
//! ask again until nothing waits for a lost node's fence time any more.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cias_core::clock::boot_ms;
use cias_core::fence::LastSeen;
use cias_core::host::{is_mounted, Command, Host};
use cias_core::paths;
use cias_core::state_file::StateFile;
use cias_core::takeover::{self, Action, ClusterView, Inputs, ROUTER_VMID};

use crate::timeline::Timeline;
use crate::Ctx;

/// How long a whole takeover may wait for lost nodes and tasks.
const LIMIT: Duration = Duration::from_secs(15 * 60);
const TASK_LIMIT: Duration = Duration::from_secs(10 * 60);

fn conf_path(node: &str, vmid: u32) -> String {
    format!("/etc/pve/nodes/{node}/qemu-server/{vmid}.conf")
}

/// VMIDs that should run: those the master's VMID map saw running, and those marked onboot.
fn should_run(ctx: &Ctx, view: &ClusterView) -> Result<BTreeSet<u32>> {
    let mut run = BTreeSet::new();
    let map = ctx.host.execute(&Command::query_argv(&["cat", paths::VMID_MAP_FILE]))?;
    if map.success() {
        run.extend(
            takeover::parse_vmid_map(&map.stdout)
                .into_iter()
                .filter(|e| e.status == "running")
                .map(|e| e.vmid),
        );
    }
    for vm in &view.vms {
        let conf = ctx.host.execute(&Command::query_argv(&["cat", &conf_path(&vm.node, vm.vmid)]))?;
        if conf.success() && takeover::onboot(&conf.stdout) {
            run.insert(vm.vmid);
        }
    }
    Ok(run)
}

/// The node `node` as a host: this one, or a peer over SSH.
fn on(ctx: &Ctx, view: &ClusterView, node: &str) -> Result<Arc<dyn Host>> {
    Ok(if node == ctx.node { ctx.host.clone() } else { ctx.peer(node, view)?.host })
}

/// A `qm` task command on the node that owns the VM, in the foreground. `qm` exits 255 when
/// the task failed, with the task's error at the end of its log (stdout). (`pvesh create` for
/// another node's VM is no way: pvesh forwards it over SSH and then cannot decode the task's
/// log it gets back - pve-manager PVE/CLI/pvesh.pm `proxy_handler`.)
fn qm(ctx: &Ctx, view: &ClusterView, node: &str, args: &[&str]) -> Result<()> {
    let mut argv = vec!["qm"];
    argv.extend_from_slice(args);
    let cmd = Command::from_argv(&argv).timeout(TASK_LIMIT);
    let out = on(ctx, view, node)?.execute(&cmd)?;
    if !out.success() {
        let log: Vec<&str> =
            out.stdout.lines().chain(out.stderr.lines()).filter(|l| !l.trim().is_empty()).collect();
        bail!("`{cmd}` on {node} failed: {}", log[log.len().saturating_sub(3)..].join(" / "));
    }
    Ok(())
}

fn start(ctx: &Ctx, view: &ClusterView, vmid: u32, node: &str) -> Result<()> {
    qm(ctx, view, node, &["start", &vmid.to_string()])
}

/// The newest backup archive of `vmid`: the router's local copy first (it is there even when
/// MooseFS is not), else the newest vzdump archive on MooseFS.
fn newest_archive(ctx: &Ctx, vmid: u32) -> Result<String> {
    if vmid == ROUTER_VMID
        && ctx.host.execute(&Command::query_argv(&["test", "-s", paths::ROUTER_LOCAL_COPY]))?.success()
    {
        return Ok(paths::ROUTER_LOCAL_COPY.into());
    }
    let dump = format!("{}/dump", paths::MFS_MOUNT);
    let pattern = format!("vzdump-qemu-{vmid}-*");
    let found =
        ctx.host.execute(&Command::query_argv(&["find", &dump, "-maxdepth", "1", "-name", &pattern]))?;
    let mut archives: Vec<&str> =
        found.stdout.lines().filter(|l| !l.ends_with(".log") && !l.ends_with(".notes")).collect();
    archives.sort();
    archives.last().map(|a| a.to_string()).with_context(|| format!("VM {vmid} has no backup in {dump}"))
}

/// Whether the VM's first disk still exists (on shared storage it survives its node). Only a
/// mounted MooseFS can answer "gone": a missing mount would look the same and send a VM back
/// to last week's backup.
fn disk_exists(ctx: &Ctx, config: &str) -> Result<bool> {
    let Some(volume) = takeover::first_disk(config) else { return Ok(true) };
    let path = ctx.host.execute(&Command::query_argv(&["pvesm", "path", &volume]))?;
    if !path.success() {
        return Ok(false);
    }
    let path = path.stdout.trim();
    if path.starts_with(paths::MFS_MOUNT) && !is_mounted(ctx.host.as_ref(), paths::MFS_MOUNT)? {
        bail!(
            "{} is not mounted, so whether {path} still exists is unknown; nothing restored",
            paths::MFS_MOUNT
        );
    }
    Ok(ctx.host.execute(&Command::query_argv(&["test", "-e", path]))?.success())
}

/// Moves a lost node's VM to `to` (the documented way: rename its config inside /etc/pve,
/// which needs quorum) and starts it; restores from the newest backup when its disk is gone.
fn recover(
    ctx: &Ctx,
    tl: &mut Timeline,
    view: &ClusterView,
    vmid: u32,
    from: &str,
    to: &str,
    run: bool,
) -> Result<()> {
    let config = ctx.host.run(&Command::query_argv(&["cat", &conf_path(from, vmid)]))?.stdout;
    let disk = disk_exists(ctx, &config)?;
    ctx.host.run(&Command::from_argv(&["mv", &conf_path(from, vmid), &conf_path(to, vmid)]))?;
    if !disk {
        if to != ctx.node {
            bail!("the disk of VM {vmid} is gone; restore it on {to} from its newest backup by hand (qmrestore --force)");
        }
        let archive = newest_archive(ctx, vmid)?;
        tl.note(&format!(
            "the disk of VM {vmid} is gone: restoring it from {archive} (data since that backup is lost)"
        ));
        ctx.host.run(
            &Command::from_argv(&["qmrestore", &archive, &vmid.to_string(), "--force", "1"])
                .timeout(TASK_LIMIT),
        )?;
    }
    if run {
        start(ctx, view, vmid, to)?;
    }
    Ok(())
}

/// `qm migrate` on the node that runs the VM (only the owner can start its migration).
fn migrate_here(ctx: &Ctx, view: &ClusterView, vmid: u32, from: &str, online: bool) -> Result<()> {
    let vmid = vmid.to_string();
    let mut args = vec!["migrate", vmid.as_str(), ctx.node.as_str()];
    if online {
        args.push("--online");
    }
    qm(ctx, view, from, &args)
}

fn execute(ctx: &Ctx, tl: &mut Timeline, view: &ClusterView, action: &Action) -> Result<()> {
    match action {
        Action::MigrateHere { vmid, from, online } => migrate_here(ctx, view, *vmid, from, *online),
        Action::Recover { vmid, from, to, start } => recover(ctx, tl, view, *vmid, from, to, *start),
        Action::Start { vmid, node } => start(ctx, view, *vmid, node),
    }
}

/// Brings every VM where the rules say, waiting for lost nodes' fence time as needed.
pub fn reconcile(ctx: &Ctx, tl: &mut Timeline) -> Result<()> {
    let started = Instant::now();
    let first_look = boot_ms();
    let recovery_wait = ctx.settings.fencing.recovery_wait();
    let mut failed: BTreeSet<u32> = BTreeSet::new();
    let mut announced: BTreeSet<String> = BTreeSet::new();
    let mut should = None;
    loop {
        ctx.still_master()?;
        let view = ctx.view()?;
        if !view.quorate {
            bail!("this node lost quorum during the takeover; it stops here (the fence service takes over)");
        }
        let should_run = match &should {
            Some(s) => s,
            None => should.insert(should_run(ctx, &view)?),
        };
        let lost_for = LastSeen::load(&LastSeen::file()).absences(view.lost(), boot_ms(), first_look);
        let inputs = Inputs { me: &ctx.node, lost_for: &lost_for, recovery_wait, should_run };
        let plan = takeover::plan(&view, &inputs);
        let actions: Vec<&Action> = plan.actions.iter().filter(|a| !failed.contains(&vmid_of(a))).collect();
        for (node, left) in &plan.waiting {
            if announced.insert(node.clone()) {
                tl.note(&format!(
                    "{node} is lost: its VMs wait {:.0}s more (fence delay {}s + margin {}s) so it has stopped them itself",
                    left.as_secs_f64(),
                    ctx.settings.fencing.delay_secs,
                    ctx.settings.fencing.margin_secs
                ));
            }
        }
        if actions.is_empty() && plan.waiting.is_empty() {
            break;
        }
        for action in actions {
            if tl.step(&action.to_string(), |tl| execute(ctx, tl, &view, action)).is_err() {
                failed.insert(vmid_of(action));
            }
        }
        if ctx.dry_run {
            break;
        }
        if started.elapsed() > LIMIT {
            bail!("gave up after {}s with VMs still waiting", LIMIT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("VMs not brought back: {}", failed.iter().map(u32::to_string).collect::<Vec<_>>().join(", "))
    }
}

fn vmid_of(action: &Action) -> u32 {
    match action {
        Action::MigrateHere { vmid, .. } | Action::Recover { vmid, .. } | Action::Start { vmid, .. } => *vmid,
    }
}
