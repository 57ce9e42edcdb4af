//! The cluster file system (`/etc/pve`, shared by every lab node) and this node's view of the
//! cluster: membership from the heartbeat service, quorum by corosync's votequorum rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{Failure, Result};

/// A member is online when its heartbeat is younger than this.
pub const HEARTBEAT_TIMEOUT_MS: u64 = 3000;
/// The UDP port of the heartbeat service (corosync's).
pub const HEARTBEAT_PORT: u16 = 5405;

/// Where this process finds its state, and which node it is.
#[derive(Debug, Clone)]
pub struct Env {
    /// The cluster file system, `/etc/pve`.
    pub root: PathBuf,
    /// Node-local runtime state, `/run/pve-standin` (gone after a power cycle).
    pub run: PathBuf,
    /// This node's name: the hostname up to its first dot, as Proxmox's `nodename()`.
    pub node: String,
    /// Pid files of running VMs, where Proxmox keeps them (`/var/run/qemu-server`).
    pub pids: PathBuf,
    /// The ssh client for node-to-node calls (`PVE_STANDIN_SSH`; the format tests use a fake).
    pub ssh: String,
}

impl Env {
    pub fn from_process() -> Self {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let short = hostname.trim().split('.').next().unwrap_or("localhost").to_string();
        Self {
            root: PathBuf::from(var("PVE_STANDIN_ROOT", "/etc/pve")),
            run: PathBuf::from(var("PVE_STANDIN_RUN", "/run/pve-standin")),
            node: std::env::var("PVE_STANDIN_NODE").unwrap_or(short),
            pids: PathBuf::from(var("PVE_STANDIN_PIDS", "/run/qemu-server")),
            ssh: var("PVE_STANDIN_SSH", "ssh"),
        }
    }

    fn state(&self) -> PathBuf {
        self.root.join(".standin")
    }

    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.root.join("nodes").join(node)
    }

    pub fn qemu_dir(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("qemu-server")
    }

    /// The cluster configuration, or `None` when no cluster was created.
    pub fn cluster(&self) -> Result<Option<ClusterConfig>> {
        read_json(&self.state().join("cluster.json"))
    }

    pub fn save_cluster(&self, config: &ClusterConfig) -> Result<()> {
        // pmxcfs gives every member its directories.
        for node in &config.nodes {
            std::fs::create_dir_all(self.qemu_dir(&node.name))?;
            std::fs::create_dir_all(self.node_dir(&node.name).join("lxc"))?;
        }
        write_json(&self.state().join("cluster.json"), config)?;
        std::fs::write(self.root.join("corosync.conf"), config.corosync_conf())?;
        Ok(())
    }

    /// The cluster this node belongs to (a node not in the nodelist is standalone).
    pub fn my_cluster(&self) -> Result<Option<ClusterConfig>> {
        Ok(self.cluster()?.filter(|c| c.member(&self.node).is_some()))
    }

    /// The node's certificate fingerprint (made on first use, like `pve-ssl.pem`).
    pub fn fingerprint(&self, node: &str) -> Result<String> {
        let file = self.node_dir(node).join("pve-ssl.fingerprint");
        if let Ok(fp) = std::fs::read_to_string(&file) {
            return Ok(fp.trim().to_string());
        }
        std::fs::create_dir_all(self.node_dir(node))?;
        let mut bytes = [0u8; 32];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
        let fp = bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
        std::fs::write(&file, &fp)?;
        Ok(fp)
    }

    /// Membership as the heartbeat service last saw it.
    pub fn membership(&self) -> Membership {
        read_json(&self.run.join("membership.json")).ok().flatten().unwrap_or_default()
    }

    pub fn save_membership(&self, membership: &Membership) -> Result<()> {
        write_json(&self.run.join("membership.json"), membership)
    }

    /// Runtime expected votes set by `pvecm expected` (node-local, lost at reboot).
    pub fn expected_override(&self) -> Option<u32> {
        std::fs::read_to_string(self.run.join("expected")).ok()?.trim().parse().ok()
    }

    pub fn set_expected_override(&self, votes: u32) -> Result<()> {
        std::fs::create_dir_all(&self.run)?;
        std::fs::write(self.run.join("expected"), votes.to_string())?;
        Ok(())
    }

    /// This node's quorum view.
    pub fn quorum(&self) -> Result<Quorum> {
        let Some(cluster) = self.my_cluster()? else { return Ok(Quorum::standalone(&self.node)) };
        let membership = self.membership();
        let now = now_ms();
        let online = cluster.online(&self.node, &membership.heard, now);
        let qdevice_votes = cluster.qdevice.as_ref().map_or(0, |q| q.votes);
        let qdevice_voting = qdevice_votes > 0
            && membership.qdevice_vote.is_some_and(|v| {
                let mut partition = online.clone();
                partition.sort();
                fresh(v.at, now) && v.partition == partition
            });
        let node_votes: u32 =
            cluster.nodes.iter().filter(|n| online.contains(&n.name)).map(|n| n.votes).sum();
        let total_votes = node_votes + if qdevice_voting { qdevice_votes } else { 0 };
        let configured: u32 = cluster.nodes.iter().map(|n| n.votes).sum::<u32>() + qdevice_votes;
        let expected = self.expected_override().unwrap_or(configured);
        Ok(Quorum { online, expected_votes: expected, total_votes, qdevice_voting })
    }

    /// Every write to the cluster file system goes through here: pmxcfs refuses without quorum.
    pub fn require_quorum(&self) -> Result<()> {
        if self.quorum()?.quorate() {
            Ok(())
        } else {
            Err(Failure::die("cluster not ready - no quorum?"))
        }
    }

    /// Nodes the cluster knows (this node alone when standalone).
    pub fn known_nodes(&self) -> Result<Vec<String>> {
        Ok(match self.my_cluster()? {
            Some(c) => c.nodes.iter().map(|n| n.name.clone()).collect(),
            None => vec![self.node.clone()],
        })
    }
}

/// What the heartbeat service last saw.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Membership {
    /// Member name -> last heard (ms).
    pub heard: BTreeMap<String, u64>,
    /// The QDevice arbiter's last vote for this node's partition.
    #[serde(default)]
    pub qdevice_vote: Option<QVote>,
}

/// A QDevice vote: asked for at `at` (ms) for `partition`. Like votequorum, which ties the
/// QDevice's vote to a membership, it counts only while the node's partition is that one,
/// and only as long as a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QVote {
    pub at: u64,
    pub partition: Vec<String>,
}

/// Whether something heard at `t` still counts at `now`.
fn fresh(t: u64, now: u64) -> bool {
    now.saturating_sub(t) < HEARTBEAT_TIMEOUT_MS
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    pub name: String,
    pub config_version: u32,
    pub nodes: Vec<ClusterNode>,
    /// The QDevice (`pvecm qdevice setup`), when there is one.
    #[serde(default)]
    pub qdevice: Option<QDevice>,
}

/// corosync's `quorum.device` section: a qnetd server that gives one partition its votes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QDevice {
    pub host: String,
    pub algorithm: String,
    pub votes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNode {
    pub name: String,
    pub nodeid: u32,
    pub ip: String,
    pub votes: u32,
}

impl ClusterConfig {
    pub fn member(&self, name: &str) -> Option<&ClusterNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The members `me` shares a partition with (itself included), from what it heard.
    pub fn online(&self, me: &str, heard: &BTreeMap<String, u64>, now: u64) -> Vec<String> {
        let heard_lately = |name: &str| heard.get(name).is_some_and(|t| fresh(*t, now));
        self.nodes.iter().filter(|n| n.name == me || heard_lately(&n.name)).map(|n| n.name.clone()).collect()
    }

    /// corosync.conf as `pvecm create`/`addnode` write it (votequorum, no two_node).
    pub fn corosync_conf(&self) -> String {
        let mut out = String::from("logging {\n  debug: off\n  to_syslog: yes\n}\n\nnodelist {\n");
        for n in &self.nodes {
            out += &format!(
                "  node {{\n    name: {}\n    nodeid: {}\n    quorum_votes: {}\n    ring0_addr: {}\n  }}\n",
                n.name, n.nodeid, n.votes, n.ip
            );
        }
        out += &format!(
            "}}\n\nquorum {{\n{}  provider: corosync_votequorum\n}}\n\ntotem {{\n  cluster_name: {}\n  config_version: {}\n  interface {{\n    linknumber: 0\n  }}\n  ip_version: ipv4-6\n  link_mode: passive\n  secauth: on\n  version: 2\n}}\n",
            self.qdevice.as_ref().map(QDevice::section).unwrap_or_default(),
            self.name,
            self.config_version
        );
        out
    }
}

impl QDevice {
    /// The `device` section inside `quorum`, as `pvecm qdevice setup` writes it.
    fn section(&self) -> String {
        format!(
            "  device {{\n    model: net\n    net {{\n      algorithm: {}\n      host: {}\n      tls: on\n    }}\n    votes: {}\n  }}\n",
            self.algorithm, self.host, self.votes
        )
    }
}

/// What votequorum says on this node.
#[derive(Debug, Clone)]
pub struct Quorum {
    pub online: Vec<String>,
    pub expected_votes: u32,
    pub total_votes: u32,
    /// The QDevice gives this partition its votes now.
    pub qdevice_voting: bool,
}

impl Quorum {
    fn standalone(node: &str) -> Self {
        Self { online: vec![node.to_string()], expected_votes: 1, total_votes: 1, qdevice_voting: false }
    }

    /// Votes needed: a strict majority of the expected votes.
    pub fn needed(&self) -> u32 {
        self.expected_votes / 2 + 1
    }

    pub fn quorate(&self) -> bool {
        self.total_votes >= self.needed()
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text).map_err(|e| Failure::die(format!("{}: {e}", path.display())))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes atomically (rename), so readers on other nodes never see half a file.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec(value).map_err(anyhow::Error::from)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
