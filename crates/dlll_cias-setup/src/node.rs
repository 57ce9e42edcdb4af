//! What the installer decided for this node, saved as `/data/cias/nodes/<node>/node.yaml` by
//! the first step, so a re-run continues with the same decisions without asking again.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use cias_core::paths;
use serde::{Deserialize, Serialize};

/// Install the first node (scenario 1) or extend a running cluster (scenario 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    First,
    Extension,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeRecord {
    /// The Proxmox node name: the host name up to its first dot, as Proxmox derives it.
    pub name: String,
    pub role: Role,
    /// Rack and slot, as given at install (parts of the plan's host name).
    pub rack: String,
    pub slot: String,
    /// The plan's host name (`pve.<rack>.<slot>.<R>-<N>.<domain>`), an alias in /etc/hosts.
    pub hostname: String,
    /// The node's address on vmbr0, from the cluster registry.
    pub ip: Ipv4Addr,
    /// keepalived priority 0..100 (0 = never master).
    pub priority: u8,
    /// NICs bridged into vmbr0.
    pub nics: Vec<String>,
    /// Disks formatted for MooseFS (`/dev/...`); `wiped` ones were approved with `--wipe`.
    pub disks: Vec<PlannedDisk>,
    /// First node: the administrator account created on the router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_admin_user: Option<String>,
    /// The QDevice host given at install (set up when this node makes the cluster two nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qdevice: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedDisk {
    pub device: String,
    pub name: String,
    #[serde(default)]
    pub wiped: bool,
}

impl PlannedDisk {
    /// Where MooseFS keeps its chunks on it: `/data/<name>`.
    pub fn mount_point(&self) -> String {
        format!("{}/{}", paths::DATA_DISK_ROOT, self.name)
    }

    /// The file system label that marks a disk as formatted by us (ext4: 16 chars, xfs: 12).
    pub fn label(&self) -> String {
        let label = format!("cias-{}", self.name);
        label.chars().take(12).collect()
    }
}

/// This node's own directory in the management directory (mirrored to MooseFS, so every
/// node's record and setup log can be read from any node).
pub fn node_dir(node: &str) -> PathBuf {
    paths::node_dir(node)
}

pub fn record_file(node: &str) -> PathBuf {
    node_dir(node).join("node.yaml")
}

impl NodeRecord {
    /// The saved record of an earlier (possibly interrupted) run, if there is one.
    pub fn load(node: &str) -> Result<Option<Self>> {
        let file = record_file(node);
        match std::fs::read_to_string(&file) {
            Ok(text) => Ok(Some(
                serde_yaml::from_str(&text).with_context(|| format!("{} is damaged", file.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
        }
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("node record serialises")
    }
}
