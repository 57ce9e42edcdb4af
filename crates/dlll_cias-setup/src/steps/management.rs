//! The management directory `/data/cias`: cluster settings, secrets (0600), the address
//! registry, this node's record; and its mirror on MooseFS, `/mnt/mfs/cias`, which is the
//! copy the cluster shares (a new node reads it from the master).

use anyhow::{bail, Context, Result};
use cias_core::host::{address_owner, swap_file, Command, Host};
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

/// How often a claim is made again when other installers changed the registry meanwhile.
const CLAIM_ATTEMPTS: usize = 10;

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
    claim_in(host.as_ref(), &path, first, |registry| {
        claim(ctx, registry)?;
        refuse_duplicate(ctx)
    })
}

/// Reads the registry `path` on `host`, lets `claim` change it and saves it, so that installers
/// claiming at once never get one address: the file is replaced only if it still holds what the
/// claim was computed from (compared and renamed under a lock of its directory on `host`,
/// [`swap_file`]); a loser reads it again and claims anew. Nothing waits on a lock a dead
/// installer left: the lock lives as long as one short command. Only a first node may start
/// a registry (`may_create`); an extension needs the cluster's.
fn claim_in(
    host: &dyn Host,
    path: &str,
    may_create: bool,
    mut claim: impl FnMut(&mut Registry) -> Result<()>,
) -> Result<String> {
    for _ in 0..CLAIM_ATTEMPTS {
        let read = if may_create && !host.execute(&Command::query_argv(&["test", "-f", path]))?.success() {
            String::new()
        } else {
            host.run(&Command::query_argv(&["cat", path]))?.stdout
        };
        let mut registry = parse_registry(&read)?;
        claim(&mut registry)?;
        let text = serde_yaml::to_string(&registry)?;
        if swap_file(host, path, &read, &text, "0644")? {
            return Ok(text);
        }
        tracing::info!(
            "{path} on {} changed since it was read (another installer): claiming again",
            host.name()
        );
    }
    bail!("{path} on {} kept changing under {CLAIM_ATTEMPTS} claims; run dlll_cias-setup again", host.name())
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cias_core::host::LocalHost;

    use super::*;

    /// What `claim` does for node `name` (without the network probe, which takes its time too).
    fn claim_as(name: &str) -> impl FnMut(&mut Registry) -> Result<()> + '_ {
        move |registry| {
            registry.claim_for_node(name, NodeKind::Pve, "master-rack", "b", "lab.example")?;
            std::thread::sleep(Duration::from_millis(300));
            Ok(())
        }
    }

    #[test]
    fn installers_claiming_at_once_get_different_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.yaml");
        let path = path.to_str().unwrap();
        let host = LocalHost::new("master");
        claim_in(&host, path, true, claim_as("node1")).unwrap();
        let names = ["node2", "node3", "node4"];
        std::thread::scope(|s| {
            for name in names {
                let host = &host;
                s.spawn(move || claim_in(host, path, false, claim_as(name)).unwrap());
            }
        });
        let registry = parse_registry(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut ips: Vec<String> = registry.entries.iter().map(|e| e.ip.to_string()).collect();
        assert_eq!(ips.len(), 4, "{registry:?}");
        ips.sort();
        assert_eq!(ips, ["10.254.0.1", "10.254.1.1", "10.254.1.2", "10.254.1.3"]);
        for name in names {
            assert!(registry.by_node_name(name).is_some(), "{name} lost its claim: {registry:?}");
        }
    }

    #[test]
    fn an_extension_needs_the_clusters_registry_and_a_failed_claim_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.yaml");
        let path = path.to_str().unwrap();
        let host = LocalHost::new("master");
        let err = claim_in(&host, path, false, claim_as("node2")).unwrap_err();
        assert!(format!("{err:#}").contains("cat"), "{err:#}");
        claim_in(&host, path, true, claim_as("node1")).unwrap();
        let before = std::fs::read_to_string(path).unwrap();
        let err = claim_in(&host, path, false, |_| bail!("address in use")).unwrap_err();
        assert_eq!(err.to_string(), "address in use");
        assert_eq!(std::fs::read_to_string(path).unwrap(), before);
    }
}
