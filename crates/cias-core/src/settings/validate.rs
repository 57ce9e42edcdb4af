//! Cross-field rules of the cluster settings (SPEC section 2).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::ClusterSettings;
use crate::netplan::{node::check_domain, NodeAddress, NodeKind, Vmid, INTERNAL_NETWORK};

/// One broken rule: the dotted field path (`external.router_vm_ips[2]`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

pub(super) fn problems(s: &ClusterSettings) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut report = |field: &str, message: String| out.push(Problem { field: field.into(), message });

    if s.cluster_name.is_empty()
        || s.cluster_name.len() > 15
        || !s.cluster_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        report(
            "cluster_name",
            format!(
                "'{}' must be 1..15 characters of A-Z, a-z, 0-9 and '-' (a Proxmox rule)",
                s.cluster_name
            ),
        );
    }
    if let Err(reason) = check_domain(&s.domain) {
        report("domain", format!("'{}' is not a valid domain: {reason}", s.domain));
    }
    if !looks_like_email(&s.admin_email) {
        report("admin_email", format!("'{}' is not an e-mail address", s.admin_email));
    }

    // External network: every address inside it, usable as a host, and distinct.
    let ext = &s.external;
    if ext.network.prefix_len() > 30 {
        report(
            "external.network",
            format!("{} is too small: it needs room for the gateway and at least 4 addresses", ext.network),
        );
    }
    if ext.network != ext.network.trunc() {
        report(
            "external.network",
            format!("{} has host bits set; did you mean {}?", ext.network, ext.network.trunc()),
        );
    }
    if ext.network.contains(&INTERNAL_NETWORK.network()) || INTERNAL_NETWORK.contains(&ext.network.network())
    {
        report(
            "external.network",
            format!("{} overlaps the internal network {INTERNAL_NETWORK}", ext.network),
        );
    }
    let mut named: Vec<(String, Ipv4Addr)> = vec![
        ("external.gateway".into(), ext.gateway),
        ("external.master_ip".into(), ext.master_ip),
        ("external.router_proxmox_ip".into(), ext.router_proxmox_ip),
        ("external.router_nas_ip".into(), ext.router_nas_ip),
    ];
    named.extend(
        ext.router_vm_ips.iter().enumerate().map(|(i, ip)| (format!("external.router_vm_ips[{i}]"), *ip)),
    );
    for (field, ip) in &named {
        if let Some(why) = host_problem(ext.network, *ip) {
            report(field, format!("{ip} {why}"));
        }
    }
    for (i, (field, ip)) in named.iter().enumerate() {
        if let Some((first, _)) = named[..i].iter().find(|(_, other)| other == ip) {
            report(
                field,
                format!("{ip} is already used by {first}; every external address must be different"),
            );
        }
    }
    if ext.router_vm_ips.is_empty() || ext.router_vm_ips.len() > 251 {
        report(
            "external.router_vm_ips",
            format!(
                "{} VM-management IPs given; there must be 1..251 (one per external index 0..250)",
                ext.router_vm_ips.len()
            ),
        );
    }

    // Internal service addresses: inside 10.0.0.0/8, outside every plan range, distinct.
    for (field, ip) in
        [("internal.router_ip", s.internal.router_ip), ("internal.master_vip", s.internal.master_vip)]
    {
        if let Some(why) = internal_service_problem(ip) {
            report(field, format!("{ip} {why}"));
        }
    }
    if s.internal.router_ip == s.internal.master_vip {
        report("internal.master_vip", format!("{} is also the router's address", s.internal.master_vip));
    }

    for (field, name) in [("interfaces.lan", &s.interfaces.lan), ("interfaces.wan", &s.interfaces.wan)] {
        if let Err(why) = check_interface_name(name) {
            report(field, why);
        }
    }
    if !(1..=255).contains(&s.vrrp.virtual_router_id) {
        report("vrrp.virtual_router_id", format!("{} must be 1..255", s.vrrp.virtual_router_id));
    }
    if !(1..=255).contains(&s.vrrp.advert_int) {
        report("vrrp.advert_int", format!("{} must be 1..255 seconds", s.vrrp.advert_int));
    }

    let exports = s.moosefs.exports_network;
    if !INTERNAL_NETWORK.contains(&exports) {
        report(
            "moosefs.exports_network",
            format!("{exports} must lie inside the internal network {INTERNAL_NETWORK}"),
        );
    } else if ![s.internal.master_vip, Ipv4Addr::new(10, 254, 0, 1), Ipv4Addr::new(10, 254, 5, 254)]
        .iter()
        .all(|ip| exports.contains(ip))
    {
        report("moosefs.exports_network", format!("{exports} must contain the master VIP and the node addresses 10.254.R.N (e.g. 10.254.0.0/16)"));
    }
    if s.moosefs.reconnection_delay_secs == 0 {
        report("moosefs.reconnection_delay_secs", "must be at least 1 second".into());
    }
    if s.smtp.host.is_empty() {
        report("smtp.host", "is empty".into());
    }
    if !looks_like_email(&s.smtp.from) {
        report("smtp.from", format!("'{}' is not an e-mail address", s.smtp.from));
    }
    if !["0", "gzip", "lzo", "zstd"].contains(&s.backups.compress.as_str()) {
        report(
            "backups.compress",
            format!("'{}' is not one of vzdump's: zstd, gzip, lzo, or 0 for none", s.backups.compress),
        );
    }
    if s.backups.local_storage.is_empty() {
        report(
            "backups.local_storage",
            "is empty: name a storage of every node for VM disks (local-lvm)".into(),
        );
    }
    if s.backups.local_copy_max_age_days == 0 {
        report("backups.local_copy_max_age_days", "must be at least 1 day".into());
    }
    if s.alerts.repeat_after_mins == 0 {
        report("alerts.repeat_after_mins", "must be at least 1 minute".into());
    }
    if s.uplink.shutdown_after_mins == 0 {
        report("uplink.shutdown_after_mins", "must be at least 1 minute".into());
    }
    if let Some(bad) = s.uplink.targets.iter().find(|t| t.is_loopback() || t.is_unspecified()) {
        report("uplink.targets", format!("{bad} is on this machine itself: it always answers"));
    }
    if s.fencing.delay_secs < 3 {
        // Below the membership timeout a short network hiccup would stop every VM.
        report(
            "fencing.delay_secs",
            format!("{} is too short: choose at least 3 seconds", s.fencing.delay_secs),
        );
    }
    if s.fencing.margin_secs < 2 {
        report(
            "fencing.margin_secs",
            format!(
                "{} is too short: choose at least 2 seconds (both sides detect a lost node with some lag)",
                s.fencing.margin_secs
            ),
        );
    }
    if !(1..=100).contains(&s.placement.max_memory_percent) {
        report(
            "placement.max_memory_percent",
            format!("{} must be 1..100 (percent of a node's memory)", s.placement.max_memory_percent),
        );
    }
    if s.watch.node_removal_secs == 0 {
        report("watch.node_removal_secs", "must be at least 1 second".into());
    }
    out
}

/// Stricter rules for a cluster being installed (existing clusters keep loading, so their
/// reconcile loop keeps running): an exports network no wider than the nodes' network (wider
/// would let VMs and other devices mount the cluster's storage), and an SMTP host of host-name
/// characters.
pub(super) fn new_cluster_problems(s: &ClusterSettings) -> Vec<Problem> {
    let mut out = problems(s);
    let nodes = NodeKind::Pve.network();
    let exports = s.moosefs.exports_network;
    if !nodes.contains(&exports) {
        out.push(Problem {
            field: "moosefs.exports_network".into(),
            message: format!(
                "{exports} must lie inside the nodes' network {nodes}: only nodes may mount MooseFS"
            ),
        });
    }
    let host = &s.smtp.host;
    if host.len() > 253 || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
        out.push(Problem {
            field: "smtp.host".into(),
            message: format!("'{host}' is not a host name or IPv4 address (A-Z, a-z, 0-9, '.', '-')"),
        });
    }
    out
}

/// An interface name as it may go into a rendered config (keepalived, /etc/network/interfaces):
/// 1..11 characters of A-Z, a-z, 0-9, '.', '_', '-' (keepalived labels a VIP `<name>:vip`, and
/// Linux labels are limited to 15 characters).
pub fn check_interface_name(name: &str) -> Result<(), String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    if name.is_empty() || name.len() > 11 || !name.bytes().all(allowed) || name.starts_with(['-', '.']) {
        return Err(format!(
            "'{name}' is not a usable interface name (1..11 characters of A-Z, a-z, 0-9, '.', '_', '-', not starting with '-' or '.')"
        ));
    }
    Ok(())
}

/// Why `ip` cannot be a host address in `net`, if it cannot.
fn host_problem(net: Ipv4Net, ip: Ipv4Addr) -> Option<String> {
    if !net.contains(&ip) {
        Some(format!("is outside the external network {net}"))
    } else if ip == net.network() || ip == net.broadcast() {
        Some(format!("is the network or broadcast address of {net}"))
    } else {
        None
    }
}

/// Why `ip` cannot be the router's LAN address or the master VIP, if it cannot.
fn internal_service_problem(ip: Ipv4Addr) -> Option<String> {
    let [_, second, _, last] = ip.octets();
    if !INTERNAL_NETWORK.contains(&ip) {
        Some(format!("is outside the internal network {INTERNAL_NETWORK}"))
    } else if last == 0 || last == 255 || ip == INTERNAL_NETWORK.broadcast() {
        Some("cannot be a host address".into())
    } else if Vmid::from_ip(ip).is_ok() {
        Some("is a VM address of the VMID plan (10.X.A.B)".into())
    } else if NodeAddress::from_ip(NodeKind::Pve, ip).is_ok()
        || NodeAddress::from_ip(NodeKind::Nas, ip).is_ok()
    {
        Some("is a node or NAS address of the plan".into())
    } else if second == crate::netplan::DHCP_SECOND_OCTET {
        Some("is inside the DHCP range 10.251.0.0/16".into())
    } else {
        None
    }
}

fn looks_like_email(s: &str) -> bool {
    matches!(s.split_once('@'), Some((user, host)) if !user.is_empty() && !host.is_empty() && !s.contains(char::is_whitespace))
}
