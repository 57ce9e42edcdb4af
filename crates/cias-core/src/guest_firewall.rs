//! Anti-spoofing for VMs (SPEC section 8): a VM's first NIC may send only from its own MAC
//! and from the address its VMID gives it (section 3), so no VM can claim a node's address or
//! a VIP. This is Proxmox's own VM firewall (pve-firewall): `ipfilter` with the address in
//! ipset `ipfilter-net0`, `macfilter`, and `firewall=1` on the NIC. Proxmox compiles VM rules
//! only while the datacenter firewall is on (`cluster.fw`, `enable: 1`); its policies here
//! accept everything, and each node's host rules are off (`host.fw`, `enable: 0`): the
//! nodes' own filter is dlll-cias' nftables table (see `peers`).
//!
//! [`plan`] is pure: observed files and NICs -> the fixes; [`observe`] and [`apply`] use a
//! [`Host`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::{Ipv4Net, Ipv4Subnets};

use crate::host::{ensure_file, Command, Host, HostError};
use crate::netplan::vmid::ROUTER_VMID;
use crate::netplan::{PlanError, Vmid, DHCP_SECOND_OCTET, INTERNAL_NETWORK};
use crate::settings::ClusterSettings;

/// The datacenter firewall file.
pub const CLUSTER_FILE: &str = "/etc/pve/firewall/cluster.fw";
/// The first line of every file dlll-cias writes (a file without it is the administrator's).
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

/// VM `vmid`'s firewall file: its NIC sends only from its MAC and its plan address (and a
/// temporary DHCP address, which the router hands out before a VM is configured). The router
/// (VMID 100) forwards the internet's traffic to the VMs, so it may send from any address
/// outside the internal network, and inside it only from its own. No `!` (nomatch) entries:
/// pve-firewall lets a NIC's ARP claim every entry of the set, nomatch ones included
/// (`generate_tap_layer2filter`), so the outside is listed as the networks around 10.0.0.0/8.
pub fn vm_text(vmid: u32, settings: &ClusterSettings) -> Result<String, PlanError> {
    let ipset = if vmid == ROUTER_VMID {
        let mut entries = vec![settings.internal.router_ip.to_string()];
        entries.extend(outside(INTERNAL_NETWORK).iter().map(ToString::to_string));
        format!(
            "[IPSET ipfilter-net0] # the router: its own address, nothing else of {INTERNAL_NETWORK}\n{}\n",
            entries.join("\n")
        )
    } else {
        let ip = Vmid::new(u64::from(vmid))?.internal_ip();
        let dhcp = ipnet::Ipv4Net::new(Ipv4Addr::new(10, DHCP_SECOND_OCTET, 0, 0), 16).expect("valid prefix");
        format!("[IPSET ipfilter-net0] # the address of VMID {vmid}, and the DHCP range\n{ip}\n{dhcp}\n")
    };
    Ok(format!(
        "{MARK}\n[OPTIONS]\nenable: 1\nipfilter: 1\nmacfilter: 1\ndhcp: 1\npolicy_in: ACCEPT\npolicy_out: ACCEPT\n\n{ipset}"
    ))
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

/// What the VMs' firewall looks like now: the `.fw` files' texts and each VM's `net0`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub files: BTreeMap<u32, String>,
    pub net0: BTreeMap<u32, String>,
}

/// One change that makes a VM safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Write `/etc/pve/firewall/<vmid>.fw`.
    File { vmid: u32, text: String },
    /// Set `net0` (now with `firewall=1`) of a VM configured on `node`.
    Nic { node: String, vmid: u32, net0: String },
}

impl Fix {
    pub fn vmid(&self) -> u32 {
        match self {
            Fix::File { vmid, .. } | Fix::Nic { vmid, .. } => *vmid,
        }
    }
}

/// The changes that give every VM of `vms` (node, VMID) its firewall; a VM whose VMID is outside
/// the address plan has no address to allow and is returned apart, with the reason.
pub fn plan(
    vms: &[(String, u32)],
    observed: &Observed,
    settings: &ClusterSettings,
) -> (Vec<Fix>, Vec<(u32, PlanError)>) {
    let mut fixes = Vec::new();
    let mut unplanned = Vec::new();
    for (node, vmid) in vms {
        match vm_text(*vmid, settings) {
            Ok(text) if observed.files.get(vmid) != Some(&text) => {
                fixes.push(Fix::File { vmid: *vmid, text })
            }
            Ok(_) => {}
            Err(e) => {
                unplanned.push((*vmid, e));
                continue;
            }
        }
        if let Some(net0) = observed.net0.get(vmid).and_then(|n| net_with_firewall(n)) {
            fixes.push(Fix::Nic { node: node.clone(), vmid: *vmid, net0 });
        }
    }
    (fixes, unplanned)
}

/// Reads every `.fw` file and every VM's `net0` with two commands (the master runs this every
/// minute for every VM of the cluster).
pub fn observe(host: &dyn Host) -> Result<Observed, HostError> {
    let files = host.run(&Command::query_argv(&[
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
    ]));
    let nets = host.run(&Command::query_argv(&[
        "find",
        "/etc/pve/nodes",
        "-path",
        "*/qemu-server/*.conf",
        "-exec",
        "grep",
        "-H",
        "^net0:",
        "{}",
        "+",
    ]));
    Ok(Observed {
        // No firewall directory or no VM with a NIC: nothing to read.
        files: files.map(|o| parse_files(&o.stdout)).unwrap_or_default(),
        net0: nets.map(|o| parse_net0(&o.stdout)).unwrap_or_default(),
    })
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

/// `grep -H '^net0:' CONFIGS...`: the first `net0` of each config (later ones are snapshots').
fn parse_net0(text: &str) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((path, value)) = line.split_once(":net0:") else { continue };
        if let Some(vmid) = vmid_of(path, ".conf") {
            out.entry(vmid).or_insert_with(|| value.trim().to_string());
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
        Fix::Nic { node, vmid, net0 } => host.run(&Command::from_argv(&[
            "pvesh",
            "set",
            &format!("/nodes/{node}/qemu/{vmid}/config"),
            "--net0",
            net0,
        ]))?,
    };
    Ok(())
}

/// Writes a file in /etc/pve unless it already holds `text`; true when written.
pub fn ensure_pve_file(host: &dyn Host, path: &str, text: &str) -> Result<bool, HostError> {
    ensure_file(host, path, text, PVE_FILE_MODE, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClusterSettings {
        ClusterSettings::sample()
    }

    #[test]
    fn a_vm_may_send_from_its_plan_address_and_the_dhcp_range() {
        let text = vm_text(10501, &settings()).unwrap();
        assert!(text.starts_with(MARK), "{text}");
        assert!(text.contains("[OPTIONS]\nenable: 1\nipfilter: 1\nmacfilter: 1\n"), "{text}");
        assert!(text.ends_with("[IPSET ipfilter-net0] # the address of VMID 10501, and the DHCP range\n10.10.5.1\n10.251.0.0/16\n"), "{text}");
    }

    #[test]
    fn the_router_may_forward_the_internet_but_claim_nothing_inside() {
        let text = vm_text(100, &settings()).unwrap();
        assert!(
            text.ends_with("\n10.0.0.254\n0.0.0.0/5\n8.0.0.0/7\n11.0.0.0/8\n12.0.0.0/6\n16.0.0.0/4\n32.0.0.0/3\n64.0.0.0/2\n128.0.0.0/1\n"),
            "{text}"
        );
    }

    #[test]
    fn a_vmid_outside_the_plan_gets_no_file() {
        assert!(vm_text(99, &settings()).is_err());
        assert!(vm_text(1000, &settings()).is_err());
    }

    #[test]
    fn observed_files_and_nics_are_read_back_exactly() {
        let tail = "==> /etc/pve/firewall/101.fw <==\n# a\n[OPTIONS]\n\n==> /etc/pve/firewall/cluster.fw <==\nx\n\n==> /etc/pve/firewall/102.fw <==\n# b\n";
        let files = parse_files(tail);
        assert_eq!(
            files,
            BTreeMap::from([(101, "# a\n[OPTIONS]\n".to_string()), (102, "# b\n".to_string())])
        );
        let grep = "/etc/pve/nodes/n1/qemu-server/101.conf:net0: virtio=BC:24:11:00:01:01,bridge=vmbr0\n\
                    /etc/pve/nodes/n1/qemu-server/101.conf:net0: virtio=BC:24:11:00:01:01,bridge=vmbr1\n";
        assert_eq!(
            parse_net0(grep),
            BTreeMap::from([(101, "virtio=BC:24:11:00:01:01,bridge=vmbr0".to_string())])
        );
    }

    #[test]
    fn only_what_is_missing_is_planned() {
        let settings = settings();
        let vms = vec![("n1".to_string(), 101), ("n2".to_string(), 102), ("n2".to_string(), 1000)];
        let observed = Observed {
            files: BTreeMap::from([(101, vm_text(101, &settings).unwrap())]),
            net0: BTreeMap::from([
                (101, "virtio=BC:24:11:00:01:01,bridge=vmbr0".to_string()),
                (102, "virtio=BC:24:11:00:01:02,bridge=vmbr0,firewall=1".to_string()),
            ]),
        };
        let (fixes, unplanned) = plan(&vms, &observed, &settings);
        assert_eq!(
            fixes,
            [
                Fix::Nic {
                    node: "n1".into(),
                    vmid: 101,
                    net0: "virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1".into()
                },
                Fix::File { vmid: 102, text: vm_text(102, &settings).unwrap() },
            ]
        );
        assert_eq!(unplanned.iter().map(|(v, _)| *v).collect::<Vec<_>>(), [1000]);
        let done = Observed {
            files: BTreeMap::from([
                (101, vm_text(101, &settings).unwrap()),
                (102, vm_text(102, &settings).unwrap()),
            ]),
            net0: BTreeMap::from([(101, "virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1".to_string())]),
        };
        assert_eq!(plan(&vms[..2], &done, &settings), (vec![], vec![]));
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
