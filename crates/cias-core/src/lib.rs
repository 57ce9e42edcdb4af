//! The dlll-cias core library: everything the `dlll_cias-*` binaries share.
//!
//! - [`netplan`]: the address plan (VMIDs, VM addresses, port forwards, node addresses,
//!   hostnames, the registry that never reuses an address). Pure functions.
//! - [`settings`]: the cluster settings file and the separate secrets file, validated.
//! - [`disks`]: which disks are formatted for MooseFS and which are refused, and why.
//! - [`router`]: the router's VM-management IPs and port forwards, through its scripts.
//! - [`majority`]: whether the cluster heals by itself (a majority survives a node's loss).
//! - [`reconcile`]: the per-node loop's decisions: self-fencing, the master's invariants.
//! - [`guest_firewall`]: Proxmox firewall files that keep each VM on its own address.
//! - [`fence`]: when each node was last seen in the quorate partition.
//! - [`clock`]: the boot clock fencing counts on, and the wall clock for names.
//! - [`watchdog`]: the client of Proxmox's `watchdog-mux` that backs the self-fence.
//! - [`host`]: the only place that starts processes, locally, over SSH or as a dry run.
//! - [`installed`]: whether, and how, `dlll_cias-setup` installed this node.
//! - [`journal`]: the finished-steps journal and the run lock that make scenarios resumable.
//! - [`logging`]: timestamped logs in the management directory and the journal.
//! - [`templates`]: keepalived, MooseFS and cron files rendered from `templates/`.
//! - [`vrrp`]: the installer priority and how it becomes keepalived's.
//! - [`proxmox`]: argv builders and pure parsers for pvecm, pvesh, qm and task output.
//! - [`notify`]: mail to the administrator.
//! - [`takeover`]: what a new master does with the VMs, and when it is safe to.
//! - [`placement`]: which node each VM goes to when VMs must move (escape, removal, takeover).
//! - [`peers`]: the other nodes, for keepalived's unicast peers and each node's nftables filter.
//! - [`shared_files`]: files on MooseFS used only while they match what their writer recorded.
//! - [`paths`]: where things live on a node.
//!
//! This crate never prints and never exits: it returns typed errors and lets the binaries
//! decide how to tell the administrator.

/// The toolkit's version and the git commit it was built from, as every `--version` prints it.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("CIAS_COMMIT"), ")");

pub mod clock;
pub mod docs;
pub mod exit;
pub mod fence;
pub mod host;
pub mod installed;
pub mod journal;
pub mod logging;
pub mod netplan;
pub mod paths;
pub mod placement;
pub mod reconcile;
#[cfg(test)]
mod scenario_log;
pub mod settings;
pub mod state_file;
pub mod vrrp;

/// Declares modules that reach other nodes (SSH) or mail: only with the "cluster" feature
/// (without it the crate is what `dlll_cias-vmid-map` needs).
macro_rules! cluster_modules {
    ($($name:ident),* $(,)?) => { $( #[cfg(feature = "cluster")] pub mod $name; )* };
}

cluster_modules!(
    backups,
    chunkservers,
    disks,
    escape,
    guest_firewall,
    handover,
    health,
    majority,
    master_watch,
    members,
    mfs_metadata,
    node_watch,
    notify,
    peers,
    proxmox,
    registry_file,
    router,
    shared_files,
    takeover,
    templates,
    timeline,
    uplink,
    vm_recovery,
    watchdog,
);
