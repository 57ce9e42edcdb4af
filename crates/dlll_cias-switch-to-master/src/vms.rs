//! The VMs after a takeover: ask `cias_core::takeover::plan` what is safe now, do it, and
//! ask again until nothing waits for a lost node's fence time any more.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use cias_core::clock::boot_ms;
use cias_core::fence::LastSeen;
use cias_core::host::Host;
use cias_core::state_file::StateFile;
use cias_core::takeover::{self, Action, ClusterView, Inputs};
use cias_core::vm_recovery;

use crate::Ctx;
use cias_core::timeline::Timeline;

/// How long a whole takeover may wait for lost nodes and tasks.
const LIMIT: Duration = Duration::from_secs(15 * 60);
/// A VM whose recovery or start failed is tried this many times in all, `RETRY_AFTER` apart:
/// right after a master change its disk may stall while MooseFS still counts on a chunkserver
/// cut off with the lost node (measured in the failover bench, a 1 | 2 partition: the router's
/// start failed once, and a writer on MooseFS stalled 19 s).
const ATTEMPTS: u32 = 3;
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// The node `node` as a host: this one, or a peer over SSH.
fn on(ctx: &Ctx, view: &ClusterView, node: &str) -> Result<Arc<dyn Host>> {
    Ok(if node == ctx.node { ctx.host.clone() } else { ctx.peer(node, view)?.host })
}

fn start(ctx: &Ctx, view: &ClusterView, vmid: u32, node: &str) -> Result<()> {
    Ok(vm_recovery::qm(on(ctx, view, node)?.as_ref(), &["start", &vmid.to_string()])?)
}

fn recover(
    ctx: &Ctx,
    tl: &mut Timeline,
    view: &ClusterView,
    vmid: u32,
    from: &str,
    to: &str,
    run: bool,
) -> Result<()> {
    let target = on(ctx, view, to)?;
    let local_storage = &ctx.settings.backups.local_storage;
    Ok(vm_recovery::recover(ctx.host.as_ref(), target.as_ref(), vmid, from, run, local_storage, &mut |n| {
        tl.note(n)
    })?)
}

/// `qm migrate` on the node that runs the VM (only the owner can start its migration).
fn migrate_here(ctx: &Ctx, view: &ClusterView, vmid: u32, from: &str, online: bool) -> Result<()> {
    let vmid = vmid.to_string();
    let mut args = vec!["migrate", vmid.as_str(), ctx.node.as_str()];
    if online {
        args.push("--online");
    }
    Ok(vm_recovery::qm(on(ctx, view, from)?.as_ref(), &args)?)
}

fn execute(ctx: &Ctx, tl: &mut Timeline, view: &ClusterView, action: &Action) -> Result<()> {
    let done = match action {
        Action::MigrateHere { vmid, from, online } => migrate_here(ctx, view, *vmid, from, *online),
        Action::Recover { vmid, from, to, start } => recover(ctx, tl, view, *vmid, from, to, *start),
        Action::Start { vmid, node } => start(ctx, view, *vmid, node),
        Action::Unplaced { .. } => bail!("{action}"),
    };
    // A start reported failed (its disk stalled past qm's timeout) must not come up later
    // beside the retry, which may run elsewhere: the VM is stopped there first.
    let started_on = match action {
        Action::Start { vmid, node } | Action::Recover { vmid, to: node, start: true, .. } => {
            Some((vmid, node))
        }
        _ => None,
    };
    // (Not one that failed because the VM already runs: that one is fine as it is.)
    let start_failed = done.as_ref().is_err_and(|e| !format!("{e:#}").contains("already running"));
    if let (true, Some((vmid, node))) = (start_failed, started_on) {
        let stopped =
            on(ctx, view, node).and_then(|h| Ok(vm_recovery::qm(h.as_ref(), &["stop", &vmid.to_string()])?));
        tl.note(&match stopped {
            Ok(()) => format!("VM {vmid} stopped on {node} after its failed start (it is tried again)"),
            Err(e) => format!("VM {vmid} could not be stopped on {node} after its failed start - {e:#}"),
        });
    }
    done
}

/// Brings every VM where the rules say, waiting for lost nodes' fence time as needed.
pub fn reconcile(ctx: &Ctx, tl: &mut Timeline) -> Result<()> {
    let started = Instant::now();
    let first_look = boot_ms();
    let recovery_wait = ctx.settings.fencing.recovery_wait();
    // VMs whose last try failed: how many tries so far, and when the last one ended.
    let mut failed: BTreeMap<u32, (u32, Instant)> = BTreeMap::new();
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
            None => should.insert(vm_recovery::should_run(ctx.host.as_ref(), &view)?),
        };
        let lost_for = LastSeen::load(&LastSeen::file()).absences(view.lost(), boot_ms(), first_look);
        let inputs = Inputs {
            me: &ctx.node,
            lost_for: &lost_for,
            recovery_wait,
            should_run,
            memory_limit_percent: ctx.settings.placement.max_memory_percent,
        };
        let plan = takeover::plan(&view, &inputs);
        let retry_later = |a: &Action| {
            failed
                .get(&vmid_of(a))
                .is_some_and(|(tries, at)| *tries >= ATTEMPTS || at.elapsed() < RETRY_AFTER)
        };
        let retries_due =
            plan.actions.iter().any(|a| failed.get(&vmid_of(a)).is_some_and(|(tries, _)| *tries < ATTEMPTS));
        let actions: Vec<&Action> = plan.actions.iter().filter(|a| !retry_later(a)).collect();
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
        if actions.is_empty() && plan.waiting.is_empty() && !retries_due {
            break;
        }
        for action in actions {
            let vmid = vmid_of(action);
            if tl.step(&action.to_string(), |tl| execute(ctx, tl, &view, action)).is_ok() {
                failed.remove(&vmid);
            } else {
                let tries = failed.get(&vmid).map_or(0, |(tries, _)| *tries) + 1;
                failed.insert(vmid, (tries, Instant::now()));
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
        bail!("VMs not brought back: {}", failed.keys().map(u32::to_string).collect::<Vec<_>>().join(", "))
    }
}

fn vmid_of(action: &Action) -> u32 {
    match action {
        Action::MigrateHere { vmid, .. }
        | Action::Recover { vmid, .. }
        | Action::Start { vmid, .. }
        | Action::Unplaced { vmid, .. } => *vmid,
    }
}
