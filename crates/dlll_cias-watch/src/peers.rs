//! `dlll_cias-watch peers`: this node's filters follow the address registry (SPEC section 8):
//! keepalived's unicast peers and the nftables set of the nodes allowed to speak VRRP, MooseFS
//! and corosync here (`cias_core::peers`). With `--all`, every other member does the same, over
//! SSH: what a node that joins or leaves asks of the cluster.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use cias_core::host::{is_mounted, Command, Host};
use cias_core::installed::InstalledNode;
use cias_core::peers::{self, Peers};
use cias_core::registry_file;
use cias_core::settings::ClusterSettings;
use cias_core::templates::Templates;
use cias_core::{members, paths};

/// The cluster's registry: the shared copy while MooseFS is mounted (only as its last writer
/// recorded it), else this node's own.
fn registry_text(host: &dyn Host) -> Result<String> {
    let path = if is_mounted(host, paths::MFS_MOUNT)? {
        registry_file::SHARED.to_string()
    } else {
        format!("{}/{}", paths::MANAGEMENT_DIR, paths::REGISTRY_FILE)
    };
    Ok(registry_file::read_shared_if(host, &path)?)
}

/// Brings this node's filters in line with the registry; logs what changed.
fn here(host: &dyn Host, node: &str) -> Result<()> {
    let settings = ClusterSettings::load(&paths::default_settings_file())?;
    let management = Path::new(paths::MANAGEMENT_DIR);
    let Some(priority) = InstalledNode::priority_from(management, node) else {
        return Ok(()); // not installed (yet): its setup writes the files itself
    };
    let peers = Peers::from_registry(&registry_file::parse(&registry_text(host)?)?, node)?;
    let templates = Templates::with_overrides(&management.join(paths::TEMPLATE_OVERRIDE_DIR));
    let others = peers.others.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    if peers::apply_filter(host, &templates, &settings, node, &peers)? {
        tracing::info!("node filter: the cluster's nodes are now {} and {others}", peers.own);
    }
    if peers::apply_keepalived(host, &templates, &settings, node, priority, &peers)? {
        tracing::info!("keepalived: unicast peers are now [{others}] (reloaded)");
    }
    Ok(())
}

pub fn run(local: &Arc<dyn Host>, node: &str, all: bool) -> Result<()> {
    cias_core::logging::to_file_and_stderr(&paths::node_dir(node).join("watch.log"))?;
    here(local.as_ref(), node)?;
    if !all {
        return Ok(());
    }
    let view = members::view(local.as_ref())?;
    let mut failed = Vec::new();
    for member in view.online().into_iter().filter(|m| *m != node) {
        let command = Command::from_argv(&[&format!("{}/dlll_cias-watch", paths::BIN_DIR), "peers"]);
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
    Ok(())
}
