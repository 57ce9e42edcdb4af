//! Where the lab keeps things on the host. Everything but the rootfs cache lives under
//! [`STATE_DIR`], which `lab down` deletes.

use std::path::{Path, PathBuf};

use super::addr::Node;

/// The running lab: node overlays, disk images, keys, mail, shared directories.
pub const STATE_DIR: &str = "/var/lib/cias-lab";
/// Built root filesystems, kept across labs (keyed on their package list).
pub const CACHE_DIR: &str = "/var/cache/dlll-cias-lab";
/// nspawn keeps per-container state here; /run is not a tmpfs on these hosts, so the lab
/// mounts one (and unmounts it on `down`).
pub const NSPAWN_RUN_DIR: &str = "/run/systemd/nspawn";
/// Source name of every mount the lab makes on the host, so `down` finds them after a crash.
pub const MOUNT_SOURCE: &str = "cias-lab";

/// Shared cluster directory: one host directory bind-mounted into every node at
/// [`SHARED_PVE_NODE_PATH`]: the Proxmox stand-in's cluster file system, `/etc/pve`.
pub fn shared_pve_dir() -> PathBuf {
    Path::new(STATE_DIR).join("shared/pve")
}
pub const SHARED_PVE_NODE_PATH: &str = "/etc/pve";

pub fn nodes_dir() -> PathBuf {
    Path::new(STATE_DIR).join("nodes")
}

pub fn node_dir(node: Node) -> PathBuf {
    nodes_dir().join(node.name())
}

/// The node's root as the host sees it (overlay of the shared rootfs and the node's upper dir).
pub fn node_root(node: Node) -> PathBuf {
    node_dir(node).join("merged")
}

/// nspawn's own output (boot messages, errors), one file per node.
pub fn node_console_log(node: Node) -> PathBuf {
    node_dir(node).join("console.log")
}

pub fn ssh_dir() -> PathBuf {
    Path::new(STATE_DIR).join("ssh")
}

/// The driver's private key (root on every node accepts it).
pub fn driver_key() -> PathBuf {
    ssh_dir().join("id_ed25519")
}

/// Host keys of every node, under their names and LAN addresses.
pub fn known_hosts() -> PathBuf {
    ssh_dir().join("known_hosts")
}

/// Maildir of the SMTP server (messages land in `new/`).
pub fn maildir() -> PathBuf {
    Path::new(STATE_DIR).join("mail")
}

pub fn smtp_log() -> PathBuf {
    Path::new(STATE_DIR).join("smtp.log")
}

/// Joins an absolute path inside a node onto the node's root on the host.
pub fn in_node(node: Node, path: &str) -> PathBuf {
    node_root(node).join(path.trim_start_matches('/'))
}
