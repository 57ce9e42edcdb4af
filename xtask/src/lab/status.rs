//! `lab status`: per node, whether it runs, the VIPs it holds, its services and its mounts.

use std::fmt;
use std::fs;
use std::net::Ipv4Addr;

use anyhow::Result;

use super::addr::Node;
use super::{network, node, Lab};

#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub node: Node,
    pub up: bool,
    /// Addresses beyond the node's own LAN address (keepalived's VIPs), with their interface.
    pub vips: Vec<(String, Ipv4Addr)>,
    /// Running service units, minus systemd's own plumbing.
    pub services: Vec<String>,
    /// Disk and FUSE mounts inside the node: (mount point, type).
    pub mounts: Vec<(String, String)>,
    /// Links cut by `lab cut`.
    pub cut: bool,
}

impl Lab {
    pub fn status(&self, node: Node) -> Result<NodeStatus> {
        let mut status = NodeStatus {
            node,
            up: false,
            vips: Vec::new(),
            services: Vec::new(),
            mounts: Vec::new(),
            cut: false,
        };
        if network::lab_netns()?.contains(&node.netns()) {
            status.vips = network::addresses(&node.netns())?
                .into_iter()
                .filter(|(_, a)| *a != node.lan_ip() && !a.is_loopback())
                .collect();
            status.cut = !network::links_up(node)?;
        }
        let Some(pid) = node::pid1(node) else {
            return Ok(status);
        };
        status.up = true;
        let units = self.exec(
            node,
            &["systemctl", "list-units", "--type=service", "--state=running", "--no-legend", "--plain"],
        )?;
        status.services = units
            .stdout
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(|u| u.trim_end_matches(".service").to_string())
            .filter(|u| !is_plumbing(u))
            .collect();
        // Read from the host: `stat` on a dead MooseFS mount would hang, /proc does not.
        let mounts = fs::read_to_string(format!("/proc/{pid}/mounts")).unwrap_or_default();
        status.mounts = mounts
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let (source, point, kind) = (*f.first()?, *f.get(1)?, *f.get(2)?);
                let wanted =
                    source.starts_with("/dev/loop") || (kind.starts_with("fuse") && kind != "fusectl");
                wanted.then(|| (point.to_string(), kind.to_string()))
            })
            .collect();
        Ok(status)
    }

    pub fn status_all(&self) -> Result<Vec<NodeStatus>> {
        self.nodes.iter().map(|&n| self.status(n)).collect()
    }
}

fn is_plumbing(unit: &str) -> bool {
    unit.starts_with("systemd-")
        || unit.starts_with("getty@")
        || ["dbus", "console-getty", "user@0"].contains(&unit)
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match (self.up, self.cut) {
            (false, _) => "down",
            (true, true) => "up (cut)",
            (true, false) => "up",
        };
        writeln!(f, "{} {} {state}", self.node, self.node.lan_ip())?;
        let vips: Vec<String> = self.vips.iter().map(|(i, a)| format!("{a} ({i})")).collect();
        let mounts: Vec<String> = self.mounts.iter().map(|(p, k)| format!("{p} ({k})")).collect();
        for (label, items) in [("vips", vips), ("services", self.services.clone()), ("mounts", mounts)] {
            let list = if items.is_empty() { "-".to_string() } else { items.join(" ") };
            writeln!(f, "  {label:<9}{list}")?;
        }
        Ok(())
    }
}
