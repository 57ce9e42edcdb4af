//! What the scenario commands after the installer need to know about this node: that
//! `dlll_cias-setup` finished here, and what it decided (name, address, priority). Read from
//! the installer's record `/data/cias/nodes/<node>/node.yaml` and its journal.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::journal::Journal;
use crate::paths;
use crate::reconcile::Install;
use crate::vrrp::Priority;

/// The Debian packages a node needs besides Proxmox VE (setup's preflight checks them, the
/// toolkit's package depends on them): keepalived, MooseFS (every role, its mount and its
/// CLI), FUSE for the mount, nftables for the node filter, ping for the uplink watch, arping
/// for the duplicate-address probe.
pub const PACKAGES: &[&str] = &[
    "keepalived",
    "moosefs-master",
    "moosefs-metalogger",
    "moosefs-chunkserver",
    "moosefs-client",
    "moosefs-cgiserv",
    "moosefs-cli",
    "fuse3",
    "nftables",
    "iputils-ping",
    "iputils-arping",
];

/// The installer's last step: a node whose journal has it is installed.
pub const LAST_SETUP_STEP: &str = "report";

#[derive(Debug, Error)]
pub enum InstalledError {
    #[error("this node ({node}) is not installed: {file} does not exist - run dlll_cias-setup first")]
    NotInstalled { node: String, file: PathBuf },
    #[error("the installation of this node ({node}) did not finish (see {journal}) - run dlll_cias-setup again to finish it")]
    Unfinished { node: String, journal: PathBuf },
    #[error("cannot read {file} - {message}")]
    Unreadable { file: PathBuf, message: String },
}

/// The facts of an installed node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstalledNode {
    pub name: String,
    pub ip: Ipv4Addr,
    pub priority: Priority,
}

impl InstalledNode {
    /// Reads the record of `node` under `management_dir`; fails unless setup finished there.
    pub fn load_from(management_dir: &Path, node: &str) -> Result<Self, InstalledError> {
        let dir = management_dir.join("nodes").join(node);
        let file = dir.join("node.yaml");
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(InstalledError::NotInstalled { node: node.into(), file })
            }
            Err(e) => return Err(InstalledError::Unreadable { file, message: e.to_string() }),
        };
        let record: Self = serde_yaml::from_str(&text)
            .map_err(|e| InstalledError::Unreadable { file: file.clone(), message: e.to_string() })?;
        let journal_file = dir.join("setup.journal");
        let journal = Journal::open(&journal_file)
            .map_err(|e| InstalledError::Unreadable { file: journal_file.clone(), message: e.to_string() })?;
        if !journal.is_done(LAST_SETUP_STEP) {
            return Err(InstalledError::Unfinished { node: node.into(), journal: journal_file });
        }
        Ok(record)
    }

    /// The priority `node` was installed with, from its record under `management_dir` (the
    /// copy every node publishes on shared storage is written before setup's last step is
    /// journaled there, so the journal is not asked); `None` without a readable record.
    pub fn priority_from(management_dir: &Path, node: &str) -> Option<Priority> {
        let text = std::fs::read_to_string(management_dir.join("nodes").join(node).join("node.yaml")).ok()?;
        serde_yaml::from_str::<Self>(&text).ok().map(|r| r.priority)
    }

    /// This node's record in the management directory `/data/cias`.
    pub fn load(node: &str) -> Result<Self, InstalledError> {
        Self::load_from(Path::new(paths::MANAGEMENT_DIR), node)
    }
}

/// How far setup got on `node`, as the reconcile loop needs it: finished; the first node's
/// setup running right now (it needs the VIP to bring MooseFS up); or neither: a node whose
/// setup stopped part-way, or an extension still installing, may not hold the role.
pub fn progress(management_dir: &Path, node: &str, setup_running: bool) -> Install {
    match InstalledNode::load_from(management_dir, node) {
        Ok(_) => Install::Finished,
        Err(_) if setup_running && installs_first(management_dir, node) => Install::FirstRunning,
        Err(_) => Install::Unfinished,
    }
}

/// Whether the installer's record says `node` is the cluster's first node.
fn installs_first(management_dir: &Path, node: &str) -> bool {
    let file = management_dir.join("nodes").join(node).join("node.yaml");
    let record =
        std::fs::read_to_string(file).ok().and_then(|t| serde_yaml::from_str::<serde_yaml::Value>(&t).ok());
    record.is_some_and(|r| r.get("role").and_then(|v| v.as_str()) == Some("first"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_finished_install_counts() {
        let dir = tempfile::tempdir().unwrap();
        let err = InstalledNode::load_from(dir.path(), "node2").unwrap_err();
        assert!(err.to_string().contains("not installed"), "{err}");
        let node = dir.path().join("nodes/node2");
        std::fs::create_dir_all(&node).unwrap();
        std::fs::write(
            node.join("node.yaml"),
            "name: node2\nrole: extension\nip: 10.254.1.1\npriority: 0\nrack: r\n",
        )
        .unwrap();
        let mut journal = Journal::open(&node.join("setup.journal")).unwrap();
        journal.mark_done("management").unwrap();
        assert!(matches!(
            InstalledNode::load_from(dir.path(), "node2"),
            Err(InstalledError::Unfinished { .. })
        ));
        assert_eq!(progress(dir.path(), "node2", true), Install::Unfinished, "an extension still installing");
        journal.mark_done(LAST_SETUP_STEP).unwrap();
        assert_eq!(progress(dir.path(), "node2", false), Install::Finished);
        let got = InstalledNode::load_from(dir.path(), "node2").unwrap();
        assert_eq!((got.ip, got.priority.can_be_master()), (Ipv4Addr::new(10, 254, 1, 1), false));
    }

    #[test]
    fn the_first_node_may_hold_the_role_only_while_its_setup_runs() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("nodes/node1");
        std::fs::create_dir_all(&node).unwrap();
        std::fs::write(node.join("node.yaml"), "name: node1\nrole: first\nip: 10.254.0.1\npriority: 50\n")
            .unwrap();
        Journal::open(&node.join("setup.journal")).unwrap().mark_done("keepalived").unwrap();
        assert_eq!(progress(dir.path(), "node1", true), Install::FirstRunning);
        assert_eq!(progress(dir.path(), "node1", false), Install::Unfinished, "its setup stopped part-way");
    }
}
