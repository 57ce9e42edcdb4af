//! Every name and address of the lab, in one place.
//!
//! Nothing here is ever configured in the machine's own network namespace: a 10.x address or
//! route there would capture the machine's DNS traffic (its nameserver is on 10.255.255.53).
//! Lab addresses live only inside the lab's namespaces, which have no route out.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use anyhow::{bail, Context, Result};

/// Most nodes one lab runs (the issue asks for at least 5; interface names stay short).
pub const MAX_NODES: u8 = 9;

/// LAN prefix length: the internal network is 10.0.0.0/8 (SPEC section 2).
pub const LAN_PREFIX: u8 = 8;
/// The master VIP of SPEC section 2, for tests that configure keepalived.
pub const MASTER_VIP: Ipv4Addr = Ipv4Addr::new(10, 254, 0, 254);
/// Driver address on the LAN bridge: tests reach the nodes from here (SSH).
pub const DRIVER_LAN_IP: Ipv4Addr = Ipv4Addr::new(10, 254, 255, 250);
/// What the nodes' uplink check pings in the lab (the outside, as far as the lab goes): the
/// driver's LAN address. `lab uplink-cut` stops it answering a node.
pub const UPLINK_TARGET: Ipv4Addr = DRIVER_LAN_IP;
/// Driver address on the WAN bridge: the external network's gateway `.1` (SPEC section 2).
pub const DRIVER_WAN_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 56, 1);
/// WAN prefix length: the example external network 192.168.56.0/24.
pub const WAN_PREFIX: u8 = 24;
/// The lab's SMTP server (on the LAN, in its own namespace).
pub const SMTP_IP: Ipv4Addr = Ipv4Addr::new(10, 254, 255, 25);
pub const SMTP_PORT: u16 = 25;
/// The lab's NAS (on the LAN, in its own namespace; SPEC section 2's NAS range): it runs the
/// QDevice arbiter.
pub const NAS_IP: Ipv4Addr = Ipv4Addr::new(10, 253, 1, 1);
/// Host names of the lab's helpers, written into every node's /etc/hosts.
pub const SMTP_HOSTNAME: &str = "cias-lab-mail";
pub const DRIVER_HOSTNAME: &str = "cias-lab-driver";

/// Node interfaces: LAN (`eth0`, addressed) and WAN (`eth1`, no address).
pub const NODE_LAN_IF: &str = "eth0";
pub const NODE_WAN_IF: &str = "eth1";

/// Network namespaces (all start with [`NETNS_PREFIX`], which `lab down` relies on).
pub const NETNS_PREFIX: &str = "cias-lab-";
/// Holds the two bridges and the partition filter; no addresses at all.
pub const BRIDGE_NETNS: &str = "cias-lab-net";
pub const DRIVER_NETNS: &str = "cias-lab-driver";
pub const SMTP_NETNS: &str = "cias-lab-mail";
pub const NAS_NETNS: &str = "cias-lab-nas";
pub const LAN_BRIDGE: &str = "lan";
pub const WAN_BRIDGE: &str = "wan";

/// A lab node, `node1`..`node9`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Node(u8);

impl Node {
    pub fn new(index: u8) -> Result<Node> {
        if index == 0 || index > MAX_NODES {
            bail!("node index {index} is outside 1..={MAX_NODES}");
        }
        Ok(Node(index))
    }

    pub fn index(self) -> u8 {
        self.0
    }

    pub fn name(self) -> String {
        format!("node{}", self.0)
    }

    /// LAN address, `10.254.1.N` (rack 1, slot N), as an admin sets it at Proxmox install.
    pub fn lan_ip(self) -> Ipv4Addr {
        Ipv4Addr::new(10, 254, 1, self.0)
    }

    pub fn netns(self) -> String {
        format!("{NETNS_PREFIX}{}", self.name())
    }

    /// The bridge-side end of the node's LAN or WAN veth, e.g. `n1-lan`.
    pub fn port(self, bridge: &str) -> String {
        format!("n{}-{bridge}", self.0)
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node{}", self.0)
    }
}

impl FromStr for Node {
    type Err = anyhow::Error;

    /// Accepts `node2` or `2`.
    fn from_str(s: &str) -> Result<Node> {
        let digits = s.trim().strip_prefix("node").unwrap_or(s.trim());
        let index =
            digits.parse::<u8>().with_context(|| format!("{s:?} is not a node name (node1, node2, ...)"))?;
        Node::new(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_and_addresses() {
        let n: Node = "node3".parse().unwrap();
        assert_eq!(n, "3".parse().unwrap());
        assert_eq!(n.lan_ip().to_string(), "10.254.1.3");
        assert_eq!(n.netns(), "cias-lab-node3");
        assert_eq!(n.port(LAN_BRIDGE), "n3-lan");
        assert!("node0".parse::<Node>().is_err());
        assert!("nodex".parse::<Node>().is_err());
    }
}
