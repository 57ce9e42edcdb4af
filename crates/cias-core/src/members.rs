//! Reaching the other members of the cluster, as the quorate partition lists them.

use std::sync::Arc;

use crate::host::{holds_address, DryRunHost, Host, HostError, PeerHost};
use crate::proxmox::FormatError;
use crate::takeover::ClusterView;

#[derive(Debug, thiserror::Error)]
pub enum MembersError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("pvesh get /cluster/status lists no address for {0}")]
    NoAddress(String),
}

/// The cluster as `host` sees it (read-only commands: a dry run reads for real too).
pub fn view(host: &dyn Host) -> Result<ClusterView, MembersError> {
    let [status, nodes, vms] = ClusterView::commands();
    let out = |c| -> Result<String, HostError> { Ok(host.run(c)?.stdout) };
    Ok(ClusterView::parse(&out(&status)?, &out(&nodes)?, &out(&vms)?)?)
}

/// [`host_of`] for the steps of a command: an error when the view has no address, and in a
/// dry run a recorder that shows the commands as that node's.
pub fn step_host(
    local: &Arc<dyn Host>,
    view: &ClusterView,
    node: &str,
    dry_run: bool,
) -> Result<Arc<dyn Host>, MembersError> {
    let host = host_of(local, view, node).ok_or_else(|| MembersError::NoAddress(node.into()))?;
    Ok(DryRunHost::printing_if(dry_run, host))
}

/// `node` as a host: `local` itself, or a peer over SSH at its cluster address; `None` when the
/// view has no address for it.
pub fn host_of(local: &Arc<dyn Host>, view: &ClusterView, node: &str) -> Option<Arc<dyn Host>> {
    if node == local.name() {
        return Some(local.clone());
    }
    let ip = view.ip(node)?;
    Some(Arc::new(PeerHost::new(node, ip, local.clone())))
}

/// The online member that holds `vip` (the master VIP): this node first, then each other one
/// asked in turn. `None` when nobody answers holding it (a takeover is under way).
pub fn vip_holder(local: &Arc<dyn Host>, view: &ClusterView, vip: &str) -> Option<String> {
    if holds_address(local.as_ref(), vip).unwrap_or(false) {
        return Some(local.name().to_string());
    }
    view.online()
        .into_iter()
        .filter(|n| *n != local.name())
        .find(|n| host_of(local, view, n).is_some_and(|h| holds_address(h.as_ref(), vip).unwrap_or(false)))
        .map(str::to_string)
}

/// The keepalived priority (installer value, 0 = never master) of every member whose install
/// record is on shared storage; a member without one may not be master.
pub fn priorities(view: &ClusterView) -> std::collections::BTreeMap<String, u8> {
    let shared = std::path::Path::new(crate::paths::SHARED_MANAGEMENT_DIR);
    view.nodes
        .iter()
        .filter_map(|n| Some((n.name.clone(), crate::installed::InstalledNode::priority_from(shared, &n.name)?.value())))
        .collect()
}
