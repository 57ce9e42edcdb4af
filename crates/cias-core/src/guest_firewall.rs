//! Anti-spoofing for VMs (SPEC section 8): every NIC of a VM may send only from its own MAC
//! and from the address its VMID gives it (section 3), so no VM can claim a node's address or
//! a VIP. This is Proxmox's own VM firewall (pve-firewall): `ipfilter` with the address in
//! ipset `ipfilter-netN`, `macfilter`, and `firewall=1` on each NIC. Proxmox compiles VM rules
//! only while the datacenter firewall is on (`cluster.fw`, `enable: 1`); its policies here
//! accept everything, and each node's host rules are off (`host.fw`, `enable: 0`): the
//! nodes' own filter is dlll-cias' nftables table (see `peers`).
//!
//! A file without [`MARK`] is the administrator's and is left alone (and reported). QEMU VMs
//! only: the cluster runs no containers.
//!
//! [`plan`] is pure: observed files and NICs -> the fixes; [`observe`] and [`apply`] use a
//! [`Host`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::{Ipv4Net, Ipv4Subnets};

use crate::host::{ensure_file, Command, Host, HostError};
use crate::netplan::vmid::ROUTER_VMID;
use crate::netplan::{Vmid, DHCP_SECOND_OCTET, INTERNAL_NETWORK};
use crate::settings::ClusterSettings;

/// The datacenter firewall file.
pub const CLUSTER_FILE: &str = "/etc/pve/firewall/cluster.fw";
/// The first line of every file dlll-cias writes and keeps up to date.
pub const MARK: &str = "# Written by dlll-cias (SPEC section 8: anti-spoofing); edits are overwritten.";
/// Mode of files in /etc/pve (pmxcfs accepts only its own default on a chmod).
const PVE_FILE_MODE: &str = "0640";

/// The datacenter firewall: on (so VM rules are compiled), accepting everything itself.
pub fn cluster_text() -> String {
    format!("{MARK}\n[OPTIONS]\nenable: 1\npolicy_in: ACCEPT\npolicy_out: ACCEPT\n")
}

/// A node's own Proxmox firewall rules: off (dlll-cias' nftables table filters the node).
pub fn host_file(node: &str) -> String {
    format!("/etc/pve/nodes/{node}/host.fw")
}

pub fn host_text() -> String {
    format!("{MARK}\n[OPTIONS]\nenable: 0\n")
}

pub fn vm_file(vmid: u32) -> String {
    format!("/etc/pve/firewall/{vmid}.fw")
}

/// The addresses VM `vmid` may send from, with why. A VM sends from its plan address (and a
/// temporary DHCP address, which the router hands out before a VM is configured). The router
/// (VMID 100) forwards the internet's traffic to the VMs, so it may send from any address
/// outside the internal network, and inside it only from its own. No `!` (nomatch) entries:
/// pve-firewall lets a NIC's ARP claim every entry of the set, nomatch ones included
/// (`generate_tap_layer2filter`), so the outside is listed as the networks around it. A VMID
/// outside the plan has no address: its set is empty (DHCP only).
fn allowed(vmid: u32, settings: &ClusterSettings) -> (String, Vec<String>) {
    if vmid == ROUTER_VMID {
        let mut entries = vec![settings.internal.router_ip.to_string()];
        entries.extend(outside(INTERNAL_NETWORK).iter().map(ToString::to_string));
        return (format!("the router: its own address, nothing else of {INTERNAL_NETWORK}"), entries);
    }
    match Vmid::new(u64::from(vmid)) {
        Ok(plan) => {
            let dhcp = Ipv4Net::new(Ipv4Addr::new(10, DHCP_SECOND_OCTET, 0, 0), 16).expect("valid prefix");
            (
                format!("the address of VMID {vmid}, and the DHCP range"),
                vec![plan.internal_ip().to_string(), dhcp.to_string()],
            )
        }
        Err(why) => (format!("no address: {why}"), Vec::new()),
    }
}

/// VM `vmid`'s firewall file for its NICs `nets` (`net0`, `net1`, ...; at least `net0`).
pub fn vm_text(vmid: u32, nets: &[String], settings: &ClusterSettings) -> String {
    let (why, entries) = allowed(vmid, settings);
    let mut text = format!(
        "{MARK}\n[OPTIONS]\nenable: 1\nipfilter: 1\nmacfilter: 1\ndhcp: 1\npolicy_in: ACCEPT\npolicy_out: ACCEPT\n"
    );
    let net0 = ["net0".to_string()];
    for net in if nets.is_empty() { &net0[..] } else { nets } {
        text.push_str(&format!("\n[IPSET ipfilter-{net}] # {why}\n"));
        entries.iter().for_each(|e| text.push_str(&format!("{e}\n")));
    }
    text
}

/// The networks that cover every IPv4 address outside `net`.
fn outside(net: Ipv4Net) -> Vec<Ipv4Net> {
    let before = u32::from(net.network())
        .checked_sub(1)
        .map(|end| Ipv4Subnets::new(Ipv4Addr::UNSPECIFIED, end.into(), 0));
    let after = u32::from(net.broadcast())
        .checked_add(1)
        .map(|start| Ipv4Subnets::new(start.into(), Ipv4Addr::BROADCAST, 0));
    before.into_iter().flatten().chain(after.into_iter().flatten()).collect()
}

/// A `netN` value with the firewall flag on (`virtio=MAC,bridge=vmbr0,firewall=1`), or `None`
/// when it already has it.
pub fn net_with_firewall(net: &str) -> Option<String> {
    let mut parts: Vec<String> = net.split(',').map(str::to_string).collect();
    match parts.iter_mut().find(|p| p.starts_with("firewall=")) {
        Some(p) if p == "firewall=1" => None,
        Some(p) => {
            *p = "firewall=1".to_string();
            Some(parts.join(","))
        }
        None => Some(format!("{net},firewall=1")),
    }
}

/// What the VMs' firewall looks like now: the `.fw` files' texts and each VM's NICs
/// (`netN` -> value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub files: BTreeMap<u32, String>,
    pub nics: BTreeMap<u32, BTreeMap<String, String>>,
}

/// One change that makes a VM safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Write `/etc/pve/firewall/<vmid>.fw`.
    File { vmid: u32, text: String },
    /// Set NIC `net` (now with `firewall=1`) of a VM configured on `node`.
    Nic { node: String, vmid: u32, net: String, value: String },
}

impl Fix {
    pub fn vmid(&self) -> u32 {
        match self {
            Fix::File { vmid, .. } | Fix::Nic { vmid, .. } => *vmid,
        }
    }
}

/// What [`plan`] decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub fixes: Vec<Fix>,
    /// VMs whose `.fw` is the administrator's (no [`MARK`]): left alone.
    pub foreign: Vec<u32>,
    /// VMs whose VMID is outside the address plan: they may send from no address.
    pub addressless: Vec<u32>,
}

/// The changes that give every VM of `vms` (node, VMID) its firewall.
pub fn plan(vms: &[(String, u32)], observed: &Observed, settings: &ClusterSettings) -> Plan {
    let mut plan = Plan::default();
    let none = BTreeMap::new();
    for (node, vmid) in vms {
        let nics = observed.nics.get(vmid).unwrap_or(&none);
        match observed.files.get(vmid) {
            Some(text) if !text.starts_with(MARK) => {
                plan.foreign.push(*vmid);
                continue;
            }
            now => {
                let nets: Vec<String> = nics.keys().cloned().collect();
                let text = vm_text(*vmid, &nets, settings);
                if now != Some(&text) {
                    plan.fixes.push(Fix::File { vmid: *vmid, text });
                }
            }
        }
        if *vmid != ROUTER_VMID && Vmid::new(u64::from(*vmid)).is_err() {
            plan.addressless.push(*vmid);
        }
        for (net, value) in nics {
            if let Some(value) = net_with_firewall(value) {
                plan.fixes.push(Fix::Nic { node: node.clone(), vmid: *vmid, net: net.clone(), value });
            }
        }
    }
    plan
}

/// Reads every `.fw` file and every VM's NICs with two commands (the master runs this every
/// minute for every VM of the cluster). What was read counts even when a file vanished
/// meanwhile (a migrating VM's config moves), which makes `find` exit non-zero.
pub fn observe(host: &dyn Host) -> Result<Observed, HostError> {
    let files = host.execute(&Command::query_argv(&[
        "find",
        "/etc/pve/firewall",
        "-maxdepth",
        "1",
        "-name",
        "*.fw",
        "-exec",
        "tail",
        "-v",
        "-n",
        "+1",
        "{}",
        "+",
    ]))?;
    let nets = host.execute(&Command::query_argv(&[
        "find",
        "/etc/pve/nodes",
        "-path",
        "*/qemu-server/*.conf",
        "-exec",
        "grep",
        "-H",
        "-E",
        "^net[0-9]+:",
        "{}",
        "+",
    ]))?;
    Ok(Observed { files: parse_files(&files.stdout), nics: parse_nics(&nets.stdout) })
}

/// The VMID of a path ending in `<vmid>.<ext>`.
fn vmid_of(path: &str, ext: &str) -> Option<u32> {
    path.rsplit('/').next()?.strip_suffix(ext)?.parse().ok()
}

/// `tail -v -n +1 FILES...`: each file after a `==> PATH <==` line, files apart by one blank line.
fn parse_files(text: &str) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    let mut rest = text;
    while let Some(header) = rest.strip_prefix("==> ") {
        let Some((path, body)) = header.split_once(" <==\n") else { break };
        let (content, next) = match body.find("\n==> ") {
            Some(end) => (&body[..end], &body[end + 1..]),
            None => (body, ""),
        };
        if let Some(vmid) = vmid_of(path, ".fw") {
            out.insert(vmid, content.to_string());
        }
        rest = next;
    }
    out
}

/// `grep -H '^netN:' CONFIGS...`: each VM's NICs, from the config itself (the first value of a
/// key; later ones are its snapshots').
fn parse_nics(text: &str) -> BTreeMap<u32, BTreeMap<String, String>> {
    let mut out: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
    for line in text.lines() {
        let Some((path, rest)) = line.split_once(".conf:") else { continue };
        let Some((net, value)) = rest.split_once(':') else { continue };
        if let Some(vmid) = vmid_of(&format!("{path}.conf"), ".conf") {
            out.entry(vmid).or_default().entry(net.to_string()).or_insert_with(|| value.trim().to_string());
        }
    }
    out
}

/// Makes one change (pvesh reaches the VM's node from any node).
pub fn apply(host: &dyn Host, fix: &Fix) -> Result<(), HostError> {
    match fix {
        Fix::File { vmid, text } => {
            host.run(&Command::write_file(&vm_file(*vmid), text.as_str(), PVE_FILE_MODE))?
        }
        Fix::Nic { node, vmid, net, value } => host.run(&Command::from_argv(&[
            "pvesh",
            "set",
            &format!("/nodes/{node}/qemu/{vmid}/config"),
            &format!("--{net}"),
            value,
        ]))?,
    };
    Ok(())
}

/// Writes a file in /etc/pve unless it already holds `text`; true when written.
pub fn ensure_pve_file(host: &dyn Host, path: &str, text: &str) -> Result<bool, HostError> {
    ensure_file(host, path, text, PVE_FILE_MODE, &[])
}

/// The datacenter firewall as found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterFirewall {
    /// Ours, as it should be (`true`: just written).
    Ours(bool),
    /// The administrator's, with `enable: 1`: VM rules are compiled.
    TheirsOn,
    /// The administrator's without `enable: 1`: Proxmox compiles no VM rule, so no VM is held
    /// to its address.
    TheirsOff,
}

/// Writes `cluster.fw` unless the administrator has one; says what is in force.
pub fn ensure_cluster(host: &dyn Host) -> Result<ClusterFirewall, HostError> {
    let now = host.execute(&Command::query_argv(&["cat", CLUSTER_FILE]))?;
    if now.success() && !now.stdout.trim().is_empty() && !now.stdout.starts_with(MARK) {
        let on = now
            .stdout
            .lines()
            .map(str::trim)
            .take_while(|l| !l.starts_with("[RULES]"))
            .any(|l| l == "enable: 1");
        return Ok(if on { ClusterFirewall::TheirsOn } else { ClusterFirewall::TheirsOff });
    }
    Ok(ClusterFirewall::Ours(ensure_pve_file(host, CLUSTER_FILE, &cluster_text())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClusterSettings {
        ClusterSettings::sample()
    }

    fn nets(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn each_nic_of_a_vm_may_send_from_its_plan_address_and_the_dhcp_range() {
        let text = vm_text(10501, &nets(&["net0", "net1"]), &settings());
        assert!(text.starts_with(MARK), "{text}");
        assert!(text.contains("[OPTIONS]\nenable: 1\nipfilter: 1\nmacfilter: 1\n"), "{text}");
        let set = |n| {
            format!("[IPSET ipfilter-{n}] # the address of VMID 10501, and the DHCP range\n10.10.5.1\n10.251.0.0/16\n")
        };
        assert!(text.ends_with(&format!("\n{}\n{}", set("net0"), set("net1"))), "{text}");
        assert_eq!(vm_text(10501, &[], &settings()), vm_text(10501, &nets(&["net0"]), &settings()));
    }

    #[test]
    fn the_router_may_forward_the_internet_but_claim_nothing_inside() {
        let text = vm_text(100, &nets(&["net0"]), &settings());
        assert!(
            text.ends_with("\n10.0.0.254\n0.0.0.0/5\n8.0.0.0/7\n11.0.0.0/8\n12.0.0.0/6\n16.0.0.0/4\n32.0.0.0/3\n64.0.0.0/2\n128.0.0.0/1\n"),
            "{text}"
        );
    }

    #[test]
    fn a_vmid_outside_the_plan_may_send_from_no_address() {
        let text = vm_text(1000, &nets(&["net0"]), &settings());
        assert!(text.ends_with("[IPSET ipfilter-net0] # no address: VMID 1000 is invalid: the last two digits must be 01..99\n"), "{text}");
    }

    #[test]
    fn observed_files_and_nics_are_read_back_exactly() {
        let tail = "==> /etc/pve/firewall/101.fw <==\n# a\n[OPTIONS]\n\n==> /etc/pve/firewall/cluster.fw <==\nx\n\n==> /etc/pve/firewall/102.fw <==\n# b\n";
        assert_eq!(
            parse_files(tail),
            BTreeMap::from([(101, "# a\n[OPTIONS]\n".to_string()), (102, "# b\n".to_string())])
        );
        let grep = "/etc/pve/nodes/n1/qemu-server/101.conf:net0: virtio=BC:24:11:00:01:01,bridge=vmbr0\n\
                    /etc/pve/nodes/n1/qemu-server/101.conf:net1: e1000=BC:24:11:00:01:02,bridge=vmbr1\n\
                    /etc/pve/nodes/n1/qemu-server/101.conf:net0: virtio=BC:24:11:00:01:01,bridge=vmbr9\n";
        assert_eq!(
            parse_nics(grep),
            BTreeMap::from([(
                101,
                BTreeMap::from([
                    ("net0".to_string(), "virtio=BC:24:11:00:01:01,bridge=vmbr0".to_string()),
                    ("net1".to_string(), "e1000=BC:24:11:00:01:02,bridge=vmbr1".to_string()),
                ])
            )])
        );
    }

    #[test]
    fn only_what_is_missing_is_planned_and_the_administrators_files_are_left_alone() {
        let settings = settings();
        let vms: Vec<(String, u32)> = [("n1", 101), ("n2", 102), ("n2", 1000), ("n1", 103)]
            .iter()
            .map(|(n, v)| (n.to_string(), *v))
            .collect();
        let nic = |v: &str| BTreeMap::from([("net0".to_string(), v.to_string())]);
        let observed = Observed {
            files: BTreeMap::from([
                (101, vm_text(101, &nets(&["net0"]), &settings)),
                (103, "[OPTIONS]\nenable: 0\n".to_string()),
            ]),
            nics: BTreeMap::from([
                (101, nic("virtio=BC:24:11:00:01:01,bridge=vmbr0")),
                (102, nic("virtio=BC:24:11:00:01:02,bridge=vmbr0,firewall=1")),
            ]),
        };
        let plan = plan(&vms, &observed, &settings);
        assert_eq!(
            plan.fixes,
            [
                Fix::Nic {
                    node: "n1".into(),
                    vmid: 101,
                    net: "net0".into(),
                    value: "virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1".into()
                },
                Fix::File { vmid: 102, text: vm_text(102, &nets(&["net0"]), &settings) },
                Fix::File { vmid: 1000, text: vm_text(1000, &[], &settings) },
            ]
        );
        assert_eq!(plan.foreign, [103]);
        assert_eq!(plan.addressless, [1000]);
        let done = Observed {
            files: BTreeMap::from([
                (101, vm_text(101, &nets(&["net0"]), &settings)),
                (102, vm_text(102, &nets(&["net0"]), &settings)),
            ]),
            nics: BTreeMap::from([(101, nic("virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1"))]),
        };
        assert_eq!(super::plan(&vms[..2], &done, &settings), Plan::default());
    }

    #[test]
    fn the_firewall_flag_is_added_or_switched_on_once() {
        assert_eq!(
            net_with_firewall("virtio=BC:24:11:00:01:01,bridge=vmbr0").as_deref(),
            Some("virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1")
        );
        assert_eq!(
            net_with_firewall("virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=0,tag=5").as_deref(),
            Some("virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1,tag=5")
        );
        assert_eq!(net_with_firewall("virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1"), None);
    }
}
