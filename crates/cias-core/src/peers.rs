//! The cluster's nodes, as the filters that trust only them know them (SPEC section 8):
//! keepalived sends and accepts adverts only to and from the other nodes (unicast peers), and
//! each node's nftables table (`inet dlll_cias`) lets only them speak VRRP, MooseFS and
//! corosync to it. Both follow the address registry: every node rewrites them when a node
//! joins or leaves ([`apply_filter`], [`apply_keepalived`], run by `dlll_cias-watch peers`).

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::host::{ensure_file, Command, Host, HostError, NEW_FILE};
use crate::netplan::{NodeKind, Registry};
use crate::paths;
use crate::settings::ClusterSettings;
use crate::templates::contexts::{KeepalivedContext, KeepalivedMode, NeverMasterError};
use crate::templates::{TemplateError, Templates};
use crate::vrrp::Priority;

/// The node filter's nftables file and the unit that loads it at boot.
pub const FILTER_FILE: &str = "/etc/dlll-cias/firewall.nft";
pub const FILTER_UNIT: &str = "dlll-cias-firewall.service";
const FILTER_UNIT_FILE: &str = "/etc/systemd/system/dlll-cias-firewall.service";
/// keepalived's active file, and the two kept in the node directory (the manual switch
/// activates the second).
pub const KEEPALIVED_FILE: &str = "/etc/keepalived/keepalived.conf";

/// The command that brings a node's filters in line with the registry; `all`: every online
/// member's (run on a member after a node joined or left; each member's cron job does it
/// within a minute anyway).
/// `unicast`: convert a multicast keepalived too (see [`KeepalivedChange::Multicast`]).
pub fn refresh_command(all: bool, unicast: bool) -> Command {
    let watch = format!("{}/dlll_cias-watch", paths::BIN_DIR);
    let mut argv = vec![watch.as_str(), "peers"];
    argv.extend([(all, "--all"), (unicast, "--unicast")].iter().filter(|(on, _)| *on).map(|(_, flag)| *flag));
    Command::from_argv(&argv)
}

/// Runs [`refresh_command`] for all on `member` after a node left; a failure is noted, not fatal
/// (the members' cron jobs catch up within a minute).
pub fn follow_registry(member: &dyn Host, tl: &mut crate::timeline::Timeline) {
    match member.run(&refresh_command(true, false)) {
        Ok(_) => tl.note("every member's keepalived peers and node filter follow the registry"),
        Err(e) => tl.note(&format!(
            "the members' filters were not all updated ({e}); their cron job does it within a minute"
        )),
    }
}

/// This node's address and the other nodes' (active registry entries), sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peers {
    pub own: Ipv4Addr,
    pub others: Vec<Ipv4Addr>,
}

#[derive(Debug, thiserror::Error)]
pub enum PeersError {
    #[error("node {0} is not in the address registry: it is not (or no longer) a member")]
    NotRegistered(String),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    NeverMaster(#[from] NeverMasterError),
}

/// The unicast peer of a node alone in its cluster: an address of the nodes' network the plan
/// never hands out (only `10.254.0.1` of `10.254.0.x` is a node's). keepalived 2.2.7 re-enters
/// BACKUP when a reload switches an instance between multicast and unicast, but keeps MASTER
/// when only the peers change (measured); so a lone node is unicast from the start, and the
/// first node to join is a mere peer change. Its adverts to this address reach nobody.
pub const LONE_PEER: Ipv4Addr = Ipv4Addr::new(10, 254, 0, 2);

impl Peers {
    /// keepalived's unicast peers: the other nodes, or [`LONE_PEER`].
    pub fn unicast(&self) -> Vec<Ipv4Addr> {
        if self.others.is_empty() {
            vec![LONE_PEER]
        } else {
            self.others.clone()
        }
    }

    /// From the registry: `node`'s own entry and every other node still in the cluster.
    pub fn from_registry(registry: &Registry, node: &str) -> Result<Self, PeersError> {
        let active: Vec<_> = registry.active(NodeKind::Pve).collect();
        let own = active
            .iter()
            .find(|e| e.node_name.as_deref() == Some(node))
            .map(|e| e.ip)
            .ok_or_else(|| PeersError::NotRegistered(node.to_string()))?;
        let mut others: Vec<Ipv4Addr> = active.iter().map(|e| e.ip).filter(|ip| *ip != own).collect();
        others.sort_unstable();
        Ok(Self { own, others })
    }
}

/// What the node filter template needs.
#[derive(Debug, Clone, Serialize)]
pub struct FilterContext {
    pub node_name: String,
    pub filter_file: &'static str,
    pub filter_unit: &'static str,
    /// Every node's address and the master VIP.
    pub nodes: Vec<String>,
    /// Who may open SSH from inside the internal network: the nodes' network and the router.
    pub ssh_from: Vec<String>,
    pub internal_network: String,
}

impl FilterContext {
    pub fn new(settings: &ClusterSettings, node: &str, peers: &Peers) -> Self {
        let mut nodes: Vec<Ipv4Addr> = peers.others.clone();
        nodes.extend([peers.own, settings.internal.master_vip]);
        nodes.sort_unstable();
        nodes.dedup();
        Self {
            node_name: node.to_string(),
            filter_file: FILTER_FILE,
            filter_unit: FILTER_UNIT,
            nodes: nodes.iter().map(ToString::to_string).collect(),
            ssh_from: vec![NodeKind::Pve.network().to_string(), settings.internal.router_ip.to_string()],
            internal_network: crate::netplan::INTERNAL_NETWORK.to_string(),
        }
    }
}

fn replace(host: &dyn Host, path: &str, text: &str, check: &[&str]) -> Result<bool, HostError> {
    ensure_file(host, path, text, "0644", check)
}

/// Installs the node filter for `peers` and loads it (now and at every boot); true when the
/// rules changed. A file nft refuses never replaces the loaded one.
pub fn apply_filter(
    host: &dyn Host,
    templates: &Templates,
    settings: &ClusterSettings,
    node: &str,
    peers: &Peers,
) -> Result<bool, PeersError> {
    let context = FilterContext::new(settings, node, peers);
    let unit = templates.render("systemd/dlll-cias-firewall.service.j2", &context)?;
    let rules = templates.render("nftables/dlll-cias.nft.j2", &context)?;
    if replace(host, FILTER_UNIT_FILE, &unit, &[])? {
        host.run(&Command::from_argv(&["systemctl", "daemon-reload"]))?;
    }
    let changed = replace(host, FILTER_FILE, &rules, &["nft", "-c", "-f", NEW_FILE])?;
    host.run(&Command::from_argv(&["systemctl", "enable", "--quiet", FILTER_UNIT]))?;
    // `restart`, not `start`: a oneshot that ran once stays "active" and would not load a change.
    if changed
        || !host.execute(&Command::query_argv(&["nft", "list", "table", "inet", "dlll_cias"]))?.success()
    {
        host.run(&Command::from_argv(&["systemctl", "restart", FILTER_UNIT]))?;
    }
    Ok(changed)
}

/// The keepalived files of `node` for `peers`: the normal one and, for a node that may be
/// master, the manual-switch one.
pub fn keepalived_files(
    templates: &Templates,
    settings: &ClusterSettings,
    node: &str,
    priority: Priority,
    peers: &Peers,
) -> Result<(String, Option<String>), PeersError> {
    let render = |mode| -> Result<String, PeersError> {
        let context = KeepalivedContext::new(settings, node, priority, mode, peers)?;
        Ok(templates.render("keepalived/keepalived.conf.j2", &context)?)
    };
    let switch = if priority.can_be_master() { Some(render(KeepalivedMode::ManualSwitch)?) } else { None };
    Ok((render(KeepalivedMode::Normal)?, switch))
}

/// Where the node directory keeps keepalived's normal and manual-switch files.
pub fn kept_keepalived_file(node: &str, switch: bool) -> String {
    let name = if switch { "keepalived-switch.conf" } else { "keepalived.conf" };
    paths::node_dir(node).join(name).display().to_string()
}

/// Whether keepalived runs on `node`'s manual-switch file (a switch under way, or one that was
/// killed midway).
pub fn switch_file_active(host: &dyn Host, node: &str) -> Result<bool, HostError> {
    let read = |path: &str| -> Result<Option<String>, HostError> {
        let out = host.execute(&Command::query_argv(&["cat", path]))?;
        Ok((out.success() && !out.stdout.is_empty()).then_some(out.stdout))
    };
    Ok(
        matches!((read(&kept_keepalived_file(node, true))?, read(KEEPALIVED_FILE)?), (Some(a), Some(b)) if a == b),
    )
}

/// What [`apply_keepalived`] did with the active file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepalivedChange {
    Unchanged,
    /// Rewritten (and keepalived reloaded if it runs).
    Applied,
    /// Left alone: a manual switch runs on it.
    Switching,
    /// Left alone: it advertises by multicast (installed before unicast peers existed), and a
    /// reload from multicast to unicast restarts the election, demoting the master: the
    /// administrator converts every node at a chosen moment (`dlll_cias-watch peers --unicast`).
    Multicast,
}

/// Rewrites keepalived's files for `peers` and reloads a running keepalived (a reload that only
/// changes peers keeps the instance's MASTER or BACKUP state, measured). The kept files are
/// always rewritten; the active one as [`KeepalivedChange`] says (`to_unicast`: convert a
/// multicast one too).
pub fn apply_keepalived(
    host: &dyn Host,
    templates: &Templates,
    settings: &ClusterSettings,
    node: &str,
    priority: Priority,
    peers: &Peers,
    to_unicast: bool,
) -> Result<KeepalivedChange, PeersError> {
    let (normal, switch) = keepalived_files(templates, settings, node, priority, peers)?;
    let switching = switch_file_active(host, node)?;
    replace(host, &kept_keepalived_file(node, false), &normal, &[])?;
    if let Some(switch) = &switch {
        replace(host, &kept_keepalived_file(node, true), switch, &[])?;
    }
    if switching {
        return Ok(KeepalivedChange::Switching);
    }
    let active = host.execute(&Command::query_argv(&["cat", KEEPALIVED_FILE]))?.stdout;
    if active.contains("vrrp_instance") && !active.contains("unicast_peer") && !to_unicast {
        return Ok(KeepalivedChange::Multicast);
    }
    let test = ["keepalived", "-e", "--config-test", "--use-file", NEW_FILE];
    if !replace(host, KEEPALIVED_FILE, &normal, &test)? {
        return Ok(KeepalivedChange::Unchanged);
    }
    let running = host.execute(&Command::query_argv(&["systemctl", "is-active", "--quiet", "keepalived"]))?;
    if running.success() {
        host.run(&Command::from_argv(&["systemctl", "reload", "keepalived"]))?;
    }
    Ok(KeepalivedChange::Applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let mut r = Registry::default();
        for name in ["pve1", "pve2", "pve3"] {
            r.claim_for_node(name, NodeKind::Pve, "rack", "a", "example.com").unwrap();
        }
        r.retire("10.254.1.1").unwrap();
        r
    }

    #[test]
    fn peers_are_the_other_active_nodes() {
        let peers = Peers::from_registry(&registry(), "pve3").unwrap();
        assert_eq!(peers.own, Ipv4Addr::new(10, 254, 1, 2));
        assert_eq!(peers.others, [Ipv4Addr::new(10, 254, 0, 1)]);
        let err = Peers::from_registry(&registry(), "pve2").unwrap_err();
        assert_eq!(
            err.to_string(),
            "node pve2 is not in the address registry: it is not (or no longer) a member"
        );
    }

    #[test]
    fn the_filter_trusts_the_nodes_and_the_vip_only() {
        let peers = Peers::from_registry(&registry(), "pve3").unwrap();
        let context = FilterContext::new(&ClusterSettings::sample(), "pve3", &peers);
        let text = Templates::shipped().render("nftables/dlll-cias.nft.j2", &context).unwrap();
        assert!(text.contains("elements = { 10.254.0.1, 10.254.0.254, 10.254.1.2 }"), "{text}");
        assert!(text.contains("elements = { 10.254.0.0/16, 10.0.0.254 }"), "{text}");
        assert!(text.contains("ip protocol 112 ip saddr != @nodes drop"), "{text}");
    }

    #[test]
    fn keepalived_speaks_unicast_to_the_other_nodes_and_to_nobody_alone() {
        let settings = ClusterSettings::sample();
        let peers = Peers::from_registry(&registry(), "pve3").unwrap();
        let priority = Priority::new(50).unwrap();
        let (normal, switch) =
            keepalived_files(&Templates::shipped(), &settings, "pve3", priority, &peers).unwrap();
        for text in [&normal, switch.as_ref().unwrap()] {
            assert!(
                text.contains("    unicast_src_ip 10.254.1.2\n    unicast_peer {\n        10.254.0.1\n    }\n    check_unicast_src\n"),
                "{text}"
            );
        }
        let alone = Peers { own: Ipv4Addr::new(10, 254, 0, 1), others: vec![] };
        let (normal, _) =
            keepalived_files(&Templates::shipped(), &settings, "pve1", priority, &alone).unwrap();
        assert!(normal.contains("    unicast_peer {\n        10.254.0.2\n    }\n"), "{normal}");
    }
}
