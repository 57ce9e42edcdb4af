//! `dlll_cias-watch peers`: this node's filters follow the address registry (SPEC section 8):
//! keepalived's unicast peers and the nftables set of the nodes allowed to speak VRRP, MooseFS
//! and corosync here (`cias_core::peers`). With `--all`, every other member does the same, over
//! SSH: what a node that joins or leaves asks of the cluster.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use cias_core::guest_firewall;
use cias_core::host::{ensure_file, holds_address, is_mounted, Host};
use cias_core::installed::InstalledNode;
use cias_core::journal::{JournalError, RunLock};
use cias_core::peers::{self, KeepalivedChange, Peers};
use cias_core::settings::ClusterSettings;
use cias_core::templates::Templates;
use cias_core::{members, paths};
use cias_core::{registry_file, shared_files};

/// The cluster's registry as its last writer recorded it, also kept as this node's copy; `None`
/// while MooseFS is not mounted. A node never narrows its filters from its own, older copy: that
/// copy may lack nodes that joined since, and dropping their corosync traffic would keep this
/// node out of the quorum for good.
fn registry_text(host: &dyn Host) -> Result<Option<String>> {
    if !is_mounted(host, paths::MFS_MOUNT)? {
        return Ok(None);
    }
    let text = registry_file::read_shared_if(host, registry_file::SHARED)?;
    let local = format!("{}/{}", paths::MANAGEMENT_DIR, paths::REGISTRY_FILE);
    ensure_file(host, &local, &text, "0644", &[])?;
    Ok(Some(text))
}

/// On the master of a cluster installed before shared files were recorded: records them once.
fn adopt_on_master(host: &dyn Host, settings: &ClusterSettings) -> Result<()> {
    if !is_mounted(host, paths::MFS_MOUNT)?
        || !holds_address(host, &settings.internal.master_vip.to_string())?
    {
        return Ok(());
    }
    let adopted = shared_files::CLUSTER.adopt_unrecorded(host)?;
    if !adopted.is_empty() {
        tracing::warn!(
            "no shared file had a SHA-256 record (a cluster installed before this version): recorded {} as they are",
            adopted.join(", ")
        );
    }
    Ok(())
}

/// Brings this node's filters in line with the registry; logs what changed.
fn here(host: &dyn Host, settings: &ClusterSettings, node: &str, to_unicast: bool) -> Result<&'static str> {
    let management = Path::new(paths::MANAGEMENT_DIR);
    let Some(priority) = InstalledNode::priority_from(management, node) else {
        return Ok("this node is not installed yet: its setup writes the filters itself");
    };
    // Its own Proxmox host rules stay off: this node's filter is ours.
    guest_firewall::ensure_pve_file(host, &guest_firewall::host_file(node), &guest_firewall::host_text())?;
    let Some(registry) = registry_text(host)? else {
        return Ok("MooseFS is not mounted: the filters stay as they are until it is");
    };
    let peers = Peers::from_registry(&registry_file::parse(&registry)?, node)?;
    let templates = Templates::with_overrides(&management.join(paths::TEMPLATE_OVERRIDE_DIR));
    let others = peers.others.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let filter_changed = peers::apply_filter(host, &templates, settings, node, &peers)?;
    if filter_changed {
        tracing::info!("node filter: the cluster's nodes are now {} and {others}", peers.own);
    }
    if RunLock::holder(Path::new(paths::TAKEOVER_LOCK)).is_some() {
        return Ok("a takeover is under way: it sets keepalived's peers itself");
    }
    match peers::apply_keepalived(host, &templates, settings, node, priority, &peers, to_unicast)? {
        KeepalivedChange::Applied => tracing::info!("keepalived: unicast peers are now [{others}] (reloaded)"),
        KeepalivedChange::Multicast => tracing::warn!(
            "keepalived still advertises by multicast (installed before unicast peers): convert every node at a quiet \
             moment with `dlll_cias-watch peers --unicast` (the election restarts)"
        ),
        KeepalivedChange::Unchanged if !filter_changed => return Ok("the filters match the registry"),
        KeepalivedChange::Unchanged | KeepalivedChange::Switching => {}
    }
    Ok("the filters follow the registry again")
}

pub fn run(local: &Arc<dyn Host>, node: &str, all: bool, to_unicast: bool) -> Result<String> {
    // One at a time, the next waiting for the run under way (a node that joins needs every
    // member's answer); a run blocked on a hung MooseFS mount makes the others give up after a
    // minute instead of piling up.
    let file = Path::new(paths::STATE_DIR).join("watch-peers.lock");
    let asked = std::time::Instant::now();
    let _lock = loop {
        match RunLock::acquire(&file) {
            Err(JournalError::Busy { .. }) if asked.elapsed() < std::time::Duration::from_secs(60) => {
                std::thread::sleep(std::time::Duration::from_millis(200))
            }
            lock => break lock?,
        }
    };
    cias_core::logging::also_to_file(&paths::node_dir(node).join("watch.log"))?;
    let settings = ClusterSettings::load(&paths::default_settings_file())?;
    adopt_on_master(local.as_ref(), &settings)?;
    let outcome = here(local.as_ref(), &settings, node, to_unicast)?;
    if !all {
        return Ok(outcome.into());
    }
    let view = members::view(local.as_ref())?;
    let mut failed = Vec::new();
    for member in view.online().into_iter().filter(|m| *m != node) {
        let command = peers::refresh_command(false, to_unicast);
        let outcome = members::host_of(local, &view, member)
            .with_context(|| format!("no address for {member}"))
            .and_then(|h| Ok(h.run(&command)?));
        if let Err(e) = outcome {
            tracing::error!("{member}: {e:#}");
            failed.push(member.to_string());
        }
    }
    if !failed.is_empty() {
        bail!(
            "the filters of {} could not be brought up to date (their cron job tries again every minute)",
            failed.join(", ")
        );
    }
    Ok(format!("{outcome}; every other online member followed too"))
}
