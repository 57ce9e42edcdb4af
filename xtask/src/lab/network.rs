//! The lab's networks: a LAN and a WAN bridge inside their own namespace ([`BRIDGE_NETNS`]),
//! one veth pair per interface from there into a node's (or the driver's, or the mail
//! server's) namespace. No namespace has a default route, and the host's own namespace gets
//! nothing at all: every link is created inside the lab's namespaces (`ip -n`).
//!
//! Faults live here too: a cut sets a node's bridge ports down (the node sees carrier loss); a
//! partition keeps links up and drops traffic between groups with nftables on the bridges.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use anyhow::{Context, Result};

use super::addr::*;
use super::run::cmd;

fn ip(netns: &str, args: &[&str]) -> Result<String> {
    let mut argv = vec!["ip", "-n", netns];
    argv.extend_from_slice(args);
    cmd(argv).run()
}

fn add_netns(name: &str) -> Result<()> {
    cmd(["ip", "netns", "add", name]).run()?;
    ip(name, &["link", "set", "lo", "up"])?;
    Ok(())
}

/// Locally administered, fixed MAC addresses: a rebooted server keeps its NIC's MAC, so the
/// peers' ARP caches stay right across a power cycle. `02:ca:5e:<bridge>:<host>:00`.
fn mac(bridge: &str, host: u8) -> String {
    let b = if bridge == LAN_BRIDGE { 1 } else { 2 };
    format!("02:ca:5e:{b:02x}:{host:02x}:00")
}

/// Creates a veth pair: `port` on `bridge` in the bridge namespace, `ifname` (up, with
/// `address` if given) in `netns`; `host` makes its MAC address.
fn plug(
    bridge: &str,
    port: &str,
    netns: &str,
    ifname: &str,
    host: u8,
    address: Option<(Ipv4Addr, u8)>,
) -> Result<()> {
    let mac = mac(bridge, host);
    ip(
        BRIDGE_NETNS,
        &["link", "add", port, "type", "veth", "peer", "name", ifname, "address", &mac, "netns", netns],
    )?;
    ip(BRIDGE_NETNS, &["link", "set", port, "master", bridge, "up"])?;
    if let Some((addr, prefix)) = address {
        ip(netns, &["addr", "add", &format!("{addr}/{prefix}"), "dev", ifname])?;
    }
    ip(netns, &["link", "set", ifname, "up"])?;
    Ok(())
}

const DRIVER_HOST: u8 = 0xfa;
const SMTP_HOST: u8 = 0xfb;
const NAS_HOST: u8 = 0xfc;
const NAS_PORT: &str = "nas-lan";

/// The bridges, the driver namespace, the mail server's and the NAS's namespaces.
pub fn create_fabric() -> Result<()> {
    add_netns(BRIDGE_NETNS)?;
    for bridge in [LAN_BRIDGE, WAN_BRIDGE] {
        ip(BRIDGE_NETNS, &["link", "add", bridge, "type", "bridge"])?;
        ip(BRIDGE_NETNS, &["link", "set", bridge, "up"])?;
    }
    add_netns(DRIVER_NETNS)?;
    plug(LAN_BRIDGE, "drv-lan", DRIVER_NETNS, "lan", DRIVER_HOST, Some((DRIVER_LAN_IP, LAN_PREFIX)))?;
    plug(WAN_BRIDGE, "drv-wan", DRIVER_NETNS, "wan", DRIVER_HOST, Some((DRIVER_WAN_IP, WAN_PREFIX)))?;
    add_netns(SMTP_NETNS)?;
    plug(LAN_BRIDGE, "mail-lan", SMTP_NETNS, "eth0", SMTP_HOST, Some((SMTP_IP, LAN_PREFIX)))?;
    add_netns(NAS_NETNS)?;
    plug(LAN_BRIDGE, NAS_PORT, NAS_NETNS, "eth0", NAS_HOST, Some((NAS_IP, LAN_PREFIX)))?;
    Ok(())
}

/// The node's namespace with `eth0` (LAN, addressed) and `eth1` (WAN, no address), fresh as
/// after a power-on: whatever addresses the node had added (VIPs) are gone.
pub fn create_node(node: Node) -> Result<()> {
    let ns = node.netns();
    let result = (|| {
        add_netns(&ns)?;
        plug(
            LAN_BRIDGE,
            &node.port(LAN_BRIDGE),
            &ns,
            NODE_LAN_IF,
            node.index(),
            Some((node.lan_ip(), LAN_PREFIX)),
        )?;
        plug(WAN_BRIDGE, &node.port(WAN_BRIDGE), &ns, NODE_WAN_IF, node.index(), None)
    })();
    result.with_context(|| format!("{node}: cannot create its network"))
}

/// Unplugs the node (its bridge ports are deleted, with their peers) and removes its
/// namespace. The ports go first and explicitly: the kernel can keep a namespace alive after
/// its last process died and its name is gone (seen after a power-off of an installed node:
/// its veth stayed on the bridge, up, with the VIPs it held answering ARP).
pub fn delete_node(node: Node) -> Result<()> {
    let result = (|| {
        let ports = ip(BRIDGE_NETNS, &["-o", "link", "show"])?;
        for bridge in [LAN_BRIDGE, WAN_BRIDGE] {
            let port = node.port(bridge);
            if ports
                .lines()
                .any(|l| l.split_whitespace().nth(1).is_some_and(|n| n.split('@').next() == Some(&port)))
            {
                ip(BRIDGE_NETNS, &["link", "del", &port])?;
            }
        }
        delete_netns(&node.netns())
    })();
    result.with_context(|| format!("{node}: cannot remove its network"))
}

fn delete_netns(name: &str) -> Result<()> {
    if lab_netns()?.iter().any(|n| n == name) {
        cmd(["ip", "netns", "delete", name]).run()?;
    }
    Ok(())
}

/// Every namespace of the lab that exists now (also after a crash).
pub fn lab_netns() -> Result<Vec<String>> {
    let list = cmd(["ip", "netns", "list"]).run()?;
    Ok(list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(NETNS_PREFIX))
        .map(String::from)
        .collect())
}

/// Removes every lab namespace, and /run/netns when the lab was its only user.
pub fn delete_all() -> Result<()> {
    for ns in lab_netns()? {
        delete_netns(&ns)?;
    }
    if cmd(["ip", "netns", "list"]).run()?.trim().is_empty() {
        // `ip netns add` made /run/netns a mount point; leave the machine as before.
        let _ = cmd(["umount", "/run/netns"]).output();
        let _ = std::fs::remove_dir("/run/netns");
    }
    Ok(())
}

/// Sets both bridge ports of the node down (a cut cable) or up.
pub fn set_links(node: Node, up: bool) -> Result<()> {
    let state = if up { "up" } else { "down" };
    for bridge in [LAN_BRIDGE, WAN_BRIDGE] {
        ip(BRIDGE_NETNS, &["link", "set", &node.port(bridge), state])
            .with_context(|| format!("{node}: cannot set its {bridge} link {state}"))?;
    }
    Ok(())
}

/// Sets the NAS's bridge port down (its cable pulled) or up.
pub fn set_nas_link(up: bool) -> Result<()> {
    let state = if up { "up" } else { "down" };
    ip(BRIDGE_NETNS, &["link", "set", NAS_PORT, state])
        .with_context(|| format!("cannot set the NAS's link {state}"))?;
    Ok(())
}

const NFT_TABLE: &str = "cias_lab_partition";

/// Drops all bridged traffic between nodes of different groups (links stay up). Replaces any
/// earlier partition. The driver and the mail server still reach every node.
pub fn partition(groups: &[Vec<Node>]) -> Result<()> {
    let ports = |group: &[Node]| -> String {
        let names: Vec<String> = group
            .iter()
            .flat_map(|n| [n.port(LAN_BRIDGE), n.port(WAN_BRIDGE)])
            .map(|p| format!("\"{p}\""))
            .collect();
        format!("{{ {} }}", names.join(", "))
    };
    let mut rules = String::new();
    for (i, from) in groups.iter().enumerate() {
        for (j, to) in groups.iter().enumerate() {
            if i != j && !from.is_empty() && !to.is_empty() {
                let _ = writeln!(rules, "    iifname {} oifname {} drop", ports(from), ports(to));
            }
        }
    }
    let ruleset = format!(
        "table bridge {NFT_TABLE} {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n{rules}  }}\n}}\n"
    );
    clear_partition()?;
    load_bridge_table(&ruleset).context("cannot load the partition's nftables rules")
}

pub fn clear_partition() -> Result<()> {
    delete_bridge_table(NFT_TABLE)
}

/// Loads an nftables ruleset into the bridge namespace.
fn load_bridge_table(ruleset: &str) -> Result<()> {
    cmd(["ip", "netns", "exec", BRIDGE_NETNS, "nft", "-f", "-"]).stdin(ruleset).run()?;
    Ok(())
}

/// Deletes the bridge namespace's nftables table `name`, if it is there.
fn delete_bridge_table(name: &str) -> Result<()> {
    let tables = cmd(["ip", "netns", "exec", BRIDGE_NETNS, "nft", "list", "tables"]).run()?;
    if tables.contains(name) {
        cmd(["ip", "netns", "exec", BRIDGE_NETNS, "nft", "delete", "table", "bridge", name]).run()?;
    }
    Ok(())
}

const NFT_UPLINK_TABLE: &str = "cias_lab_uplink";

/// The nodes' uplink target (the lab's outside, the driver's LAN address) stops answering
/// `nodes`' pings; everything else (SSH from the driver, the nodes among themselves) goes on.
/// Replaces any earlier uplink cut; no nodes heals it.
pub fn cut_uplink(nodes: &[Node]) -> Result<()> {
    clear_uplink_cut()?;
    if nodes.is_empty() {
        return Ok(());
    }
    let ports: Vec<String> = nodes.iter().map(|n| format!("\"{}\"", n.port(LAN_BRIDGE))).collect();
    let ruleset = format!(
        "table bridge {NFT_UPLINK_TABLE} {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n    iifname {{ {} }} ip daddr {UPLINK_TARGET} icmp type echo-request drop\n  }}\n}}\n",
        ports.join(", ")
    );
    load_bridge_table(&ruleset).context("cannot load the uplink cut's nftables rules")
}

pub fn clear_uplink_cut() -> Result<()> {
    delete_bridge_table(NFT_UPLINK_TABLE)
}

/// IPv4 addresses configured in `netns`, as (interface, address) pairs.
pub fn addresses(netns: &str) -> Result<Vec<(String, Ipv4Addr)>> {
    let out = ip(netns, &["-o", "-4", "addr", "show"])?;
    Ok(out
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace().skip(1);
            let ifname = words.next()?.to_string();
            let addr = words.nth(1)?.split('/').next()?.parse().ok()?;
            Some((ifname, addr))
        })
        .collect())
}

/// False when `lab cut` has set the node's LAN port down.
pub fn links_up(node: Node) -> Result<bool> {
    let out = ip(BRIDGE_NETNS, &["-o", "link", "show", &node.port(LAN_BRIDGE)])?;
    Ok(out.contains(",UP") || out.contains("<UP"))
}
