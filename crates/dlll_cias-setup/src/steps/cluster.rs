//! Proxmox: the cluster (created on the first node, joined by the others: success is read
//! from `pvecm status`, never from `pvecm add`'s exit code), the storages and the backup jobs
//! of SPEC section 4.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use cias_core::host::Command;
use cias_core::majority::{self, Takeover};
use cias_core::proxmox::corosync;
use cias_core::proxmox::pvecm::{self, ClusterStatus};
use cias_core::proxmox::pvesh::{self, NodeEntry};
use cias_core::proxmox::pvesm;
use cias_core::settings::Secret;

use crate::ctx::Ctx;
use crate::node::Role;
use crate::ui;

/// `pvecm status` as this node sees it; `None` when it is in no cluster (or corosync is down).
fn status(ctx: &Ctx) -> Result<Option<ClusterStatus>> {
    // Outside a cluster pvecm prints only an error ("Corosync config ... does not exist").
    let out = ctx.local.execute(&pvecm::status_command())?;
    Ok(pvecm::parse_status(&out.stdout).ok())
}

/// Quorate, with this node a member at its own address.
fn member(ctx: &Ctx) -> Result<bool> {
    let ip = ctx.node.ip.to_string();
    Ok(status(ctx)?.is_some_and(|s| s.quorate && s.members.iter().any(|m| m.local && m.address == ip)))
}

/// Sets up the QDevice given at install when this node's join made the cluster two nodes (an
/// even count: Proxmox's `ffsplit`), then says whether the cluster takes over by itself.
pub fn quorum_device(ctx: &mut Ctx) -> Result<()> {
    let Some(votes) = majority::read_votes(ctx.local.as_ref()) else {
        if ctx.dry_run {
            // The cluster this run joins or creates does not exist yet.
            if let Some(host) = ctx.node.qdevice {
                ui::line(&format!(
                    "    would run `pvecm qdevice setup {host}` if the cluster then has two nodes"
                ));
            }
            return Ok(());
        }
        bail!("cannot read the cluster's votes from {}", corosync::CONF);
    };
    match (ctx.node.qdevice, votes.qdevice) {
        (Some(host), None) if votes.nodes == 2 => {
            let setup = Command::from_argv(&["pvecm", "qdevice", "setup", &host.to_string()])
                .timeout(Duration::from_secs(300));
            ctx.local.run(&setup).with_context(|| format!("setting up the QDevice on {host}"))?;
        }
        (Some(host), None) if votes.nodes < 2 => ui::line(&format!(
            "    QDevice {host}: give it to the second node's setup (--qdevice), which sets it up"
        )),
        (Some(host), None) => ui::warn(&format!(
            "QDevice {host} not set up: Proxmox supports one only with an even node count, and this cluster \
             has {} nodes",
            votes.nodes
        )),
        (_, Some(_)) if votes.nodes % 2 == 1 => ui::warn(&format!(
            "the cluster now has {} nodes and a QDevice: Proxmox supports a QDevice with an even node count \
             only; remove it (dlll_cias-nas remove ADDRESS, or pvecm qdevice remove) unless another node \
             joins soon",
            votes.nodes
        )),
        _ => {}
    }
    // Read again: a QDevice just set up counts.
    let takeover = Takeover::read(ctx.local.as_ref()).unwrap_or(Takeover::from_votes(votes));
    tracing::info!("{}", takeover.summary());
    match takeover.advice() {
        Some(advice) => ui::warn(&advice),
        None => ui::line(&format!("    {}", takeover.summary())),
    }
    Ok(())
}

pub fn cluster(ctx: &mut Ctx) -> Result<()> {
    let ip = ctx.node.ip.to_string();
    if member(ctx)? {
        tracing::info!("already a quorate member of the cluster");
        return Ok(());
    }
    let mut said = String::new();
    match ctx.node.role {
        Role::First => {
            ctx.run(&["pvecm", "create", &ctx.settings.cluster_name, "--link0", &ip])?;
        }
        Role::Extension => {
            let master = ctx.master()?;
            let name = master.run(&Command::query_argv(&["uname", "-n"]))?.stdout.trim().to_string();
            let nodes: Vec<NodeEntry> =
                pvesh::parse("pvesh get /nodes", &master.run(&pvesh::get_json("/nodes"))?.stdout)?;
            let fingerprint =
                nodes
                    .iter()
                    .find(|n| n.node == name)
                    .and_then(|n| n.ssl_fingerprint.clone())
                    .with_context(|| format!("the master ({name}) reports no certificate fingerprint"))?;
            let registry = cias_core::registry_file::parse(&crate::steps::master_access::master_query(
                ctx,
                &["cat", "/mnt/mfs/cias/registry.yaml"],
            )?)?;
            let master_ip = registry
                .by_node_name(&name)
                .map(|e| e.ip.to_string())
                .with_context(|| format!("the master ({name}) is not in the address registry"))?;
            let password: Secret = ctx
                .master_root_password
                .clone()
                .context("joining the cluster needs the master's root password (run setup at a terminal or give it in --secrets-file)")?;
            let add = Command::from_argv(&[
                "pvecm",
                "add",
                &master_ip,
                "--fingerprint",
                &fingerprint,
                "--link0",
                &ip,
            ])
            .stdin_secret(&password)
            .timeout(Duration::from_secs(300));
            let out = ctx.local.execute(&add)?;
            said = format!("{}{}", out.stdout, out.stderr);
            tracing::info!("pvecm add said: {}", said.trim());
        }
    }
    ctx.wait_until("this node quorate in the cluster", Duration::from_secs(90), || member(ctx))
        .with_context(|| {
            format!("the node did not become a quorate cluster member; pvecm said: {}", said.trim())
        })?;
    Ok(())
}

pub fn storages(ctx: &mut Ctx) -> Result<()> {
    let existing: Vec<String> =
        pvesm::parse_status(&ctx.query(&["pvesm", "status"])?).into_iter().map(|r| r.id).collect();
    let wanted: [(&str, &str, &str); 2] =
        [("a_mfs", "images,backup", "keep-last=1"), ("mfs-backup", "backup", "keep-last=5")];
    for (id, content, prune) in wanted {
        if existing.iter().any(|e| e == id) {
            continue;
        }
        ctx.run(&[
            "pvesm",
            "add",
            "dir",
            id,
            "--path",
            cias_core::paths::MFS_MOUNT,
            "--content",
            content,
            "--shared",
            "1",
            "--is_mountpoint",
            "yes",
            "--prune-backups",
            prune,
        ])?;
    }
    Ok(())
}

/// The two weekly jobs: the router alone, uncompressed (restored fast, copied locally), and
/// every other VM, compressed as `backups.compress` says.
pub fn backup_jobs(ctx: &mut Ctx) -> Result<()> {
    let compress = ctx.settings.backups.compress.clone();
    let jobs: serde_json::Value =
        serde_json::from_str(&ctx.query(&["pvesh", "get", "/cluster/backup", "--output-format", "json"])?)
            .context("cannot read the backup jobs")?;
    let exists = |id: &str| jobs.as_array().is_some_and(|a| a.iter().any(|j| j["id"] == id));
    let wanted: [(&str, &[&str]); 2] = [
        (
            "cias-router",
            &["--schedule", "mon 02:00", "--vmid", "100", "--storage", "mfs-backup", "--compress", "0"],
        ),
        (
            "cias-vms",
            &[
                "--schedule",
                "sun 02:00",
                "--all",
                "1",
                "--exclude",
                "100",
                "--storage",
                "a_mfs",
                "--compress",
                &compress,
            ],
        ),
    ];
    for (id, options) in wanted {
        if exists(id) {
            continue;
        }
        let mut argv =
            vec!["pvesh", "create", "/cluster/backup", "--id", id, "--mode", "snapshot", "--enabled", "1"];
        argv.extend_from_slice(options);
        ctx.run(&argv)?;
    }
    // pvesh exits 0 on some failures: read the jobs back.
    if !ctx.dry_run {
        let after = ctx.query(&["pvesh", "get", "/cluster/backup", "--output-format", "json"])?;
        if !after.contains("\"cias-router\"") || !after.contains("\"cias-vms\"") {
            bail!("the backup jobs are not in /cluster/backup after creating them: {after}");
        }
    }
    Ok(())
}
