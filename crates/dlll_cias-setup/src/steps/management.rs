//! The management directory `/data/cias`: cluster settings, secrets (0600), the address
//! registry, this node's record; and its mirror on MooseFS, `/mnt/mfs/cias`, which is the
//! copy the cluster shares (a new node reads it from the master).

use anyhow::{Context, Result};
use cias_core::host::{Command, Host};
use cias_core::netplan::{NodeKind, Registry};
use cias_core::paths::{MANAGEMENT_DIR, REGISTRY_FILE, SECRETS_FILE, SETTINGS_FILE, SHARED_MANAGEMENT_DIR};
use cias_core::settings::Secret;

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

/// Reads the registry text (empty when the file does not exist yet).
pub fn parse_registry(text: &str) -> Result<Registry> {
    if text.trim().is_empty() {
        return Ok(Registry::default());
    }
    serde_yaml::from_str(text).context("the address registry is damaged")
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

/// Saves settings, secrets, registry and node record (claiming the address: from the local
/// registry on the first node, from the shared one through the master when extending).
pub fn save(ctx: &mut Ctx) -> Result<()> {
    // 0700: secrets and the node record are nobody else's business.
    ctx.run(&["install", "-d", "-m", "0700", MANAGEMENT_DIR])?;
    let mut registry = match ctx.node.role {
        Role::First => {
            let text = if ctx.test(&["test", "-f", &file(REGISTRY_FILE)])? {
                ctx.query(&["cat", &file(REGISTRY_FILE)])?
            } else {
                String::new()
            };
            parse_registry(&text)?
        }
        Role::Extension => parse_registry(&crate::steps::master_access::master_query(
            ctx,
            &["cat", &shared(REGISTRY_FILE)],
        )?)?,
    };
    claim(ctx, &mut registry)?;
    let registry_text = serde_yaml::to_string(&registry)?;
    if ctx.node.role == Role::Extension {
        // The shared registry is the one every later installer reads.
        crate::steps::master_access::master_write(ctx, &shared(REGISTRY_FILE), &registry_text, "0644")?;
    }
    ctx.write(&file(REGISTRY_FILE), &registry_text, "0644")?;
    ctx.write(&file(SETTINGS_FILE), &ctx.settings.to_yaml()?, "0644")?;
    ctx.write_secret(&file(SECRETS_FILE), &Secret::new(serde_yaml::to_string(&ctx.secrets)?))?;
    ctx.write(&record_file(&ctx.node.name).display().to_string(), &ctx.node.to_yaml(), "0644")?;
    if let Some(archive) = ctx.router_archive.clone() {
        let target =
            format!("{ROUTER_DIR}/{}", archive.file_name().context("router archive name")?.to_string_lossy());
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
        }
        Role::Extension => {
            let take_shared = format!(
                "find {SHARED_MANAGEMENT_DIR} -mindepth 1 -maxdepth 1 ! -name router ! -name nodes \
                 -exec cp -a -n {{}} {MANAGEMENT_DIR}/ \\;"
            );
            ctx.run(&["sh", "-c", &take_shared])?;
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
