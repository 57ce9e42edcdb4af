//! The steps of scenarios 1 (first node) and 2 (extension), in order, and the runner that
//! skips finished ones (journal), shows a progress bar per step and stops at the first failure
//! with what failed and how to continue.

mod cluster;
mod keepalived;
pub mod management;
pub mod master_access;
mod moosefs;
mod report;
mod router;
mod system;
mod trust;

use std::time::Instant;

use anyhow::Result;
use cias_core::journal::Journal;

use crate::ctx::Ctx;
use crate::node::Role;
use crate::ui;

pub struct Step {
    /// Journal key; never rename one (a re-run would redo it).
    pub id: &'static str,
    pub title: &'static str,
    pub run: fn(&mut Ctx) -> Result<()>,
}

const fn step(id: &'static str, title: &'static str, run: fn(&mut Ctx) -> Result<()>) -> Step {
    Step { id, title, run }
}

/// The steps of `role`, in order.
pub fn for_role(role: Role) -> Vec<Step> {
    let first = role == Role::First;
    let mut steps = Vec::new();
    if !first {
        steps.push(step("master-key", "key login to the master", master_access::install_key));
    }
    steps.extend([
        step("management", "management directory /data/cias", management::save),
        step("hosts", "host names in /etc/hosts", system::hosts),
        step("network", "network: NICs bridged into vmbr0", system::network),
        step("node-filter", "node filter: VRRP, MooseFS, corosync from the nodes only", trust::node_filter),
    ]);
    if !first {
        steps.push(step("admission", "the members admit this node's address", trust::admission));
    }
    steps.extend([
        // A node joins the VRRP election only as a quorate cluster member: keepalived tracks
        // the quorum check, which fails on a node in no cluster.
        step("cluster", "Proxmox cluster", cluster::cluster),
        step("quorum-device", "QDevice and automatic takeover", cluster::quorum_device),
        step(
            "guest-firewall",
            "Proxmox VM firewall (VMs keep to their own addresses)",
            trust::guest_firewall,
        ),
        step("fence", "self-fencing service (quorum watch)", keepalived::fence),
        step("keepalived", "keepalived: VIPs and the takeover hook", keepalived::install),
        step("disks", "data disks for MooseFS", moosefs::disks),
        step("moosefs-config", "MooseFS configuration", moosefs::config),
    ]);
    if first {
        steps.push(step("moosefs-master", "MooseFS master", moosefs::master));
    }
    steps.extend([
        step("moosefs-services", "MooseFS metalogger and chunkserver", moosefs::services),
        step("moosefs-mount", "MooseFS mounted at /mnt/mfs", moosefs::mount),
        step("mirror", "management directory mirrored to /mnt/mfs/cias", management::mirror),
    ]);
    if first {
        steps.extend([
            step("storages", "Proxmox storages a_mfs and mfs-backup", cluster::storages),
            step("backup-jobs", "backup jobs", cluster::backup_jobs),
            step("router-restore", "router VM 100 restored and started", router::restore),
            step("router-configure", "router: password, management IPs, admin account", router::configure),
        ]);
    }
    steps.extend([
        step("router-backup", "router backup and local copy (background)", router::backup),
        step("cron", "cron jobs", report::cron),
        step("ssh-login", "root SSH login: key only, password from the nodes' network", trust::ssh_login),
        step("report", "report to the administrator", report::report),
    ]);
    steps
}

/// Runs the steps not yet in the journal. A dry run only reads the journal.
pub fn run(ctx: &mut Ctx, steps: &[Step], journal: &mut Journal) -> Result<()> {
    let total = steps.len();
    for (i, step) in steps.iter().enumerate() {
        let label = format!("[{}/{total}] {}", i + 1, step.title);
        if journal.is_done(step.id) {
            ui::step_skipped(&label);
            continue;
        }
        let bar = ui::step_started(&label, ctx.dry_run);
        tracing::info!(step = step.id, "started: {}", step.title);
        let started = Instant::now();
        match (step.run)(ctx) {
            Ok(()) => {
                let took = started.elapsed();
                tracing::info!(step = step.id, "done in {:.1}s", took.as_secs_f64());
                ctx.timings.push((step.title.to_string(), took));
                ui::step_done(bar, &label, took);
                if !ctx.dry_run {
                    journal.mark_done(step.id)?;
                }
            }
            Err(e) => {
                tracing::error!(step = step.id, "failed: {e:#}");
                ui::step_failed(bar, &label);
                return Err(e.context(format!(
                    "step '{}' failed on node {}; fix the cause and run dlll_cias-setup again: it continues at this step",
                    step.title, ctx.node.name
                )));
            }
        }
    }
    Ok(())
}
