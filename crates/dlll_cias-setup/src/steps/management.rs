//! The management directory `/data/cias`: cluster settings, secrets (0600), the address
//! registry, this node's record; and its mirror on MooseFS, `/mnt/mfs/cias`, which is the
//! copy the cluster shares (a new node reads it from the master).

use anyhow::{bail, Context, Result};
use cias_core::host::{address_owner, Command, Host};
use cias_core::netplan::{NodeKind, Registry};
use cias_core::paths::{MANAGEMENT_DIR, REGISTRY_FILE, SECRETS_FILE, SETTINGS_FILE, SHARED_MANAGEMENT_DIR};
use cias_core::settings::Secret;
use cias_core::{registry_file, shared_files};

use crate::ctx::Ctx;
use crate::node::{node_dir, record_file, Role};

/// Where the router's delivered archive is kept in the management directory.
pub const ROUTER_DIR: &str = "/data/cias/router";

fn file(name: &str) -> String {
    format!("{MANAGEMENT_DIR}/{name}")
}

fn shared(name: &str) -> String {
    format!("{SHARED_MANAGEMENT_DIR}/{name}")
}

/// The newest file in the router directory (the delivered archive, whatever its name).
pub fn newest_router_archive(host: &dyn Host) -> Result<Option<String>> {
    let out = host.execute(&Command::query_argv(&[
        "find",
        ROUTER_DIR,
        "-maxdepth",
        "1",
        "-type",
        "f",
        "-printf",
        "%T@ %p\n",
    ]))?;
    let mut files: Vec<(f64, &str)> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, p)| !p.ends_with(".log") && !p.ends_with(".notes"))
        .filter_map(|(t, p)| Some((t.parse().ok()?, p)))
        .collect();
    files.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(files.last().map(|(_, p)| p.to_string()))
}

/// Claims this node's address in `registry` and records it in the node record.
fn claim(ctx: &mut Ctx, registry: &mut Registry) -> Result<()> {
    let entry = registry.claim_for_node(
        &ctx.node.name,
        NodeKind::Pve,
        &ctx.node.rack,
        &ctx.node.slot,
        &ctx.settings.domain,
    )?;
    ctx.node.ip = entry.ip;
    ctx.node.hostname = entry.hostname;
    Ok(())
}

/// Claims this node's address: from the local registry on the first node, from the shared one
/// on the master when extending; an address another device answers for is refused before
/// anything is written. Returns the registry as saved.
fn claim_address(ctx: &mut Ctx) -> Result<String> {
    let (host, path) = match ctx.node.role {
        Role::First => (ctx.local.clone(), file(REGISTRY_FILE)),
        Role::Extension => {
            (ctx.master.clone().context("no connection to the master")?, shared(REGISTRY_FILE))
        }
    };
    let first = ctx.node.role == Role::First;
    registry_file::update(host.as_ref(), &path, first, |registry| {
        claim(ctx, registry)?;
        refuse_duplicate(ctx)
    })
}

/// Fails when another device already answers for the claimed address on the network this node
/// will use it on (vmbr0 once it exists, else the first NIC that goes into it).
fn refuse_duplicate(ctx: &Ctx) -> Result<()> {
    let interface = if ctx.test(&["ip", "link", "show", "dev", "vmbr0"])? {
        "vmbr0"
    } else {
        ctx.node.nics.first().context("the node record names no NIC")?.as_str()
    };
    let ip = ctx.node.ip.to_string();
    if let Some(mac) = address_owner(ctx.local.as_ref(), interface, &ip)? {
        bail!(
            "address {ip}, the next one of the registry, is already used on the network of {interface} by              the device with MAC {mac}; nothing was changed: free it (or record it in the registry) and              run dlll_cias-setup again"
        );
    }
    Ok(())
}

/// Saves settings, secrets, registry and node record, after claiming the node's address.
pub fn save(ctx: &mut Ctx) -> Result<()> {
    let registry_text = claim_address(ctx)?;
    // 0700: secrets and the node record are nobody else's business.
    ctx.run(&["install", "-d", "-m", "0700", MANAGEMENT_DIR])?;
    if ctx.node.role == Role::Extension {
        ctx.write(&file(REGISTRY_FILE), &registry_text, "0644")?;
    }
    ctx.write(&file(SETTINGS_FILE), &ctx.settings.to_yaml()?, "0644")?;
    ctx.write_secret(&file(SECRETS_FILE), &Secret::new(serde_yaml::to_string(&ctx.secrets)?), "0600")?;
    ctx.write(&record_file(&ctx.node.name).display().to_string(), &ctx.node.to_yaml(), "0644")?;
    if let Some(archive) = ctx.router_archive.clone() {
        // qmrestore takes the archive's type and compression from its vzdump name.
        let given = archive.file_name().context("router archive name")?.to_string_lossy().to_string();
        let name = cias_core::backups::restorable_name(100, &given, cias_core::clock::unix_secs());
        let target = format!("{ROUTER_DIR}/{name}");
        if archive.to_string_lossy() != target {
            ctx.run(&["install", "-D", "-m", "0600", &archive.to_string_lossy(), &target])?;
        }
    }
    tracing::info!("node {} is {} ({})", ctx.node.name, ctx.node.ip, ctx.node.hostname);
    Ok(())
}

/// The first node copies the management directory to MooseFS; a new node takes what the
/// cluster shares (except the router archives and other nodes' directories) and adds its own.
pub fn mirror(ctx: &mut Ctx) -> Result<()> {
    ctx.run(&["install", "-d", "-m", "0700", SHARED_MANAGEMENT_DIR])?;
    match ctx.node.role {
        Role::First => {
            ctx.run(&["cp", "-a", &format!("{MANAGEMENT_DIR}/."), &format!("{SHARED_MANAGEMENT_DIR}/")])?;
            for relative in shared_files::CLUSTER.managed(ctx.local.as_ref())? {
                shared_files::CLUSTER.record(ctx.local.as_ref(), &relative)?;
            }
        }
        Role::Extension => {
            // Only what the cluster's writers recorded (a template planted on MooseFS would be
            // rendered into this node's configs); what this node already has stays.
            for relative in shared_files::CLUSTER.managed(ctx.local.as_ref())? {
                shared_files::CLUSTER.verify(ctx.local.as_ref(), &relative)?;
                ctx.run(&[
                    "sh",
                    "-c",
                    "[ -e \"$2/$3\" ] || install -D -m 0600 \"$1/$3\" \"$2/$3\"",
                    "sh",
                    SHARED_MANAGEMENT_DIR,
                    MANAGEMENT_DIR,
                    &relative,
                ])?;
            }
            publish_node_dir(ctx)?;
        }
    }
    Ok(())
}

/// Copies this node's directory (record, setup log, journal) to the shared mirror.
pub fn publish_node_dir(ctx: &Ctx) -> Result<()> {
    let target = format!("{SHARED_MANAGEMENT_DIR}/nodes/");
    ctx.run(&["install", "-d", "-m", "0700", &target])?;
    ctx.run(&["cp", "-a", &node_dir(&ctx.node.name).display().to_string(), &target])?;
    Ok(())
}
