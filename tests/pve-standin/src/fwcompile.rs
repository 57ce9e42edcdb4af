//! pve-firewall's VM rules, compiled to one nftables table per node (`table bridge
//! pve_standin_fw`) instead of its iptables, ebtables and ipset rulesets. Only the rules that
//! decide what a VM may send are emulated, in Proxmox's order (`src/PVE/Firewall.pm`):
//!
//! - nothing at all unless `cluster.fw` has `enable: 1` (`compile`; a value above 1 is a
//!   timestamp, on for 60 s, as `parse_clusterfw_option`);
//! - only local VMs whose `<vmid>.fw` has `enable: 1`, only NICs with `firewall=1`
//!   (`compile_iptables_filter`, `compile_ebtables_filter`);
//! - frames from the VM's tap (`tap<vmid>i<N>-OUT`): first what ebtables checks for frames that
//!   are neither IPv4 nor IPv6 (`generate_tap_layer2filter`): the source MAC (`macfilter`,
//!   default on), and for ARP the sender address, which must be one of the entries of ipset
//!   `ipfilter-netN` (every IPv4 entry's network as written, `!` ones too; no check when the
//!   set has none); cluster option `ebtables: 0` turns this part off. Then what iptables checks
//!   (`ruleset_create_vm_chain`, direction OUT): DHCP client packets pass first (udp 68->67,
//!   DHCPv6 546->547) unless `dhcp: 0` (the code adds them by default, although the option's
//!   documented default is 0), then the source MAC, IPv6 router advertisements unless `radv: 1`,
//!   and the source address, which must match ipset `ipfilter-netN` when `ipfilter: 1` or
//!   that ipset exists (`generate_tap_rules_direction`). The IPv6 set always holds the NIC's
//!   link-local address and excludes the rest of fe80::/10 (`compile_ipsets`). An ipset matches
//!   as Linux's hash:net with `nomatch`: the most specific entry containing an address decides.
//!
//! Not emulated: `policy_in`/`policy_out` other than ACCEPT (they need connection tracking,
//! and this kernel has no bridge conntrack, `CONFIG_NF_CONNTRACK_BRIDGE`): such a VM's NICs
//! drop every frame, with an error, rather than pretend; `[RULES]` and security groups
//! (warned about by the parser); the host firewall (warned about unless `host.fw` has
//! `enable: 0`); `ips`, `layer2_protocols` (warned about); log levels; the established-
//! connection shortcut and INVALID drop of `PVEFW-FORWARD`; the smurf filter of traffic to VMs.

use std::fmt::Write;

use crate::fwconf::{FwFile, IpsetEntry, Net};
use crate::nic;
use crate::vmconf::VmConfig;

/// The node's table (family bridge): replaced as a whole, atomically, by `nft -f`.
pub const TABLE: &str = "pve_standin_fw";

/// One local VM: its config and its parsed `<vmid>.fw`, if any.
#[derive(Debug)]
pub struct Vm<'a> {
    pub vmid: u32,
    pub config: &'a VmConfig,
    pub fw: Option<&'a FwFile>,
}

/// What a compile gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// The table, `None` while the firewall is disabled (then the node has no table).
    pub table: Option<String>,
    /// Its digest, also the table's comment: what `nft list` shows of the live table.
    pub digest: Option<String>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

/// The `nft -f` input that replaces the node's table by `table` (or removes it) atomically.
pub fn script(table: Option<&str>) -> String {
    format!("table bridge {TABLE}\ndelete table bridge {TABLE}\n{}", table.unwrap_or_default())
}

/// Whether `cluster.fw` turns the firewall on at `now` (seconds since the epoch).
pub fn enabled(cluster: Option<&FwFile>, now: u64) -> bool {
    let value: u64 = cluster.and_then(|c| c.option("enable")).and_then(|v| v.parse().ok()).unwrap_or(0);
    value == 1 || (value > 1 && now.saturating_sub(value) <= 60)
}

/// Compiles this node's table from the cluster's and the node's files and its local VMs.
pub fn compile(cluster: Option<&FwFile>, host: Option<&FwFile>, vms: &[Vm], now: u64) -> Compiled {
    let mut out = Compiled { table: None, digest: None, warnings: Vec::new(), errors: Vec::new() };
    if !enabled(cluster, now) {
        return out;
    }
    if host.and_then(|h| h.flag("enable")) != Some(false) {
        out.warnings.push(
            "host firewall: not emulated by the Proxmox stand-in (host.fw has no 'enable: 0'); \
             this node's own traffic is not filtered"
                .into(),
        );
    }
    let layer2 = cluster.and_then(|c| c.flag("ebtables")) != Some(false);
    let (mut sets, mut chains, mut from_taps, mut to_taps) =
        (String::new(), String::new(), String::new(), String::new());
    for vm in vms {
        let Some(fw) = vm.fw.filter(|f| f.flag("enable") == Some(true)) else { continue };
        let refusal = refusal(fw);
        for option in ["ips", "layer2_protocols"] {
            if fw.option(option).is_some_and(|v| v != "0") {
                out.warnings.push(format!(
                    "VM {}: option '{option}' is not emulated by the Proxmox stand-in",
                    vm.vmid
                ));
            }
        }
        for (index, net) in nic::nets(vm.config).into_iter().filter(|(_, n)| n.firewall()) {
            let tap = nic::tap(vm.vmid, index);
            let _ = writeln!(from_taps, "\t\tiifname \"{tap}\" jump {tap}-OUT");
            let _ = writeln!(chains, "\tchain {tap}-OUT {{");
            if let Some(reason) = &refusal {
                out.errors.push(format!("VM {}: {reason}: net{index} drops every frame", vm.vmid));
                let _ = writeln!(chains, "\t\tdrop\n\t}}");
                let _ = writeln!(to_taps, "\t\toifname \"{tap}\" drop");
                continue;
            }
            let rules = out_rules(vm.vmid, index, &net, fw, layer2, &mut sets, &mut out.warnings);
            for rule in rules {
                let _ = writeln!(chains, "\t\t{rule}");
            }
            let _ = writeln!(chains, "\t}}");
        }
    }
    let mut body = sets;
    let _ = write!(body, "\tchain prerouting {{\n\t\ttype filter hook prerouting priority filter; policy accept;\n{from_taps}\t}}\n");
    if !to_taps.is_empty() {
        let _ = write!(body, "\tchain postrouting {{\n\t\ttype filter hook postrouting priority filter; policy accept;\n{to_taps}\t}}\n");
    }
    body += &chains;
    let digest = format!("{:016x}", fnv1a(body.as_bytes()));
    out.table = Some(format!("table bridge {TABLE} {{\n\tcomment \"{digest}\"\n{body}}}\n"));
    out.digest = Some(digest);
    out
}

/// Why a VM's firewall cannot be emulated (policies that need connection tracking).
fn refusal(fw: &FwFile) -> Option<String> {
    for (option, default) in [("policy_in", "DROP"), ("policy_out", "ACCEPT")] {
        let policy = fw.option(option).unwrap_or(default);
        if policy != "ACCEPT" {
            return Some(format!(
                "{option} {policy} is not supported by the Proxmox stand-in (it needs bridge connection \
                 tracking, which this kernel lacks); only ACCEPT is"
            ));
        }
    }
    None
}

/// The rules of chain `tap<vmid>i<index>-OUT`; adds the ipsets they use to `sets`.
fn out_rules(
    vmid: u32,
    index: u32,
    net: &nic::Net,
    fw: &FwFile,
    layer2: bool,
    sets: &mut String,
    warnings: &mut Vec<String>,
) -> Vec<String> {
    let netid = format!("net{index}");
    let mac = net.mac.as_deref().map(str::to_ascii_lowercase);
    if mac.is_none() {
        warnings.push(format!("VM {vmid}: {netid} has no MAC address: its MAC filter is left out"));
    }
    let macfilter = fw.flag("macfilter") != Some(false);
    let dhcp = fw.flag("dhcp") != Some(false);
    let ipset = fw.ipsets.get(&format!("ipfilter-{netid}"));
    let mut rules = Vec::new();
    if layer2 {
        if let (true, Some(mac)) = (macfilter, &mac) {
            rules.push(format!("ether type != {{ ip, ip6 }} ether saddr != {mac} drop"));
        }
        match arp_senders(ipset.map(Vec::as_slice).unwrap_or_default()) {
            Ok(senders) if senders.is_empty() => {}
            Ok(senders) => rules.push(format!("arp saddr ip != {{ {} }} drop", elements(&senders, false))),
            Err(e) => warnings.push(format!("VM {vmid}: {netid}: no layer-2 filter ({e}), as pve-firewall")),
        }
    }
    if dhcp {
        rules.push("ether type ip meta l4proto udp udp sport 68 udp dport 67 accept".into());
        rules.push("ether type ip6 meta l4proto udp udp sport 546 udp dport 547 accept".into());
    }
    if let (true, Some(mac)) = (macfilter, &mac) {
        rules.push(format!("ether type {{ ip, ip6 }} ether saddr != {mac} drop"));
    }
    if fw.flag("radv") != Some(true) {
        rules.push("ether type ip6 icmpv6 type nd-router-advert drop".into());
    }
    if fw.flag("ipfilter") == Some(true) || ipset.is_some() {
        let entries = ipset.map(Vec::as_slice).unwrap_or_default();
        let (v4, mut v6): (Vec<&IpsetEntry>, Vec<&IpsetEntry>) =
            entries.iter().filter(|e| e.net.is_some()).partition(|e| e.net.is_some_and(|n| !n.v6));
        // The NIC's own link-local address, and no other (compile_ipsets' device_ips).
        let link_local = mac.as_deref().and_then(link_local);
        let implicit: Vec<IpsetEntry> = [(link_local, false), (Net::parse("fe80::/10"), true)]
            .into_iter()
            .filter_map(|(net, nomatch)| {
                Some(IpsetEntry { cidr: String::new(), nomatch, net: Some(net?), error: None })
            })
            .collect();
        v6.extend(implicit.iter());
        for (family, kind, entries, version) in
            [("ip", "ipv4_addr", v4, "v4"), ("ip6", "ipv6_addr", v6, "v6")]
        {
            let name = format!("PVEFW-{vmid}-ipfilter-{netid}-{version}");
            let ranges = matching(&entries);
            let _ = writeln!(sets, "\tset {name} {{\n\t\ttype {kind}\n\t\tflags interval");
            if !ranges.is_empty() {
                let _ = writeln!(sets, "\t\telements = {{ {} }}", elements(&ranges, version == "v6"));
            }
            let _ = writeln!(sets, "\t}}");
            rules.push(format!("ether type {family} {family} saddr != @{name} drop"));
        }
    }
    rules
}

/// The ARP senders allowed: every IPv4 entry's network as written, `nomatch` or not, errors or
/// not; an entry that is not an address (an alias) makes pve-firewall give up the NIC's whole
/// layer-2 filter (`compile_ebtables_filter` dies in its eval).
fn arp_senders(entries: &[IpsetEntry]) -> Result<Vec<(u128, u128)>, String> {
    let mut ranges = Vec::new();
    for entry in entries {
        let net = Net::parse(&entry.cidr)
            .ok_or_else(|| format!("ipset entry '{}' is not an address", entry.cidr))?;
        if !net.v6 {
            ranges = union(ranges, net.range());
        }
    }
    Ok(ranges)
}

/// The addresses an ipset matches, as sorted disjoint ranges: for each address the most
/// specific entry containing it decides, a `nomatch` entry excluding it (Linux hash:net).
pub fn matching(entries: &[&IpsetEntry]) -> Vec<(u128, u128)> {
    let mut nets: Vec<(Net, bool)> = entries.iter().filter_map(|e| Some((e.net?, e.nomatch))).collect();
    // Less specific first: a later, more specific entry overrides it where they overlap.
    nets.sort_by_key(|(net, _)| net.prefix);
    nets.into_iter().fold(Vec::new(), |ranges, (net, nomatch)| {
        if nomatch {
            subtract(ranges, net.range())
        } else {
            union(ranges, net.range())
        }
    })
}

fn union(ranges: Vec<(u128, u128)>, (lo, hi): (u128, u128)) -> Vec<(u128, u128)> {
    let mut all = ranges;
    all.push((lo, hi));
    all.sort_unstable();
    let mut merged: Vec<(u128, u128)> = Vec::new();
    for (a, b) in all {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

fn subtract(ranges: Vec<(u128, u128)>, (lo, hi): (u128, u128)) -> Vec<(u128, u128)> {
    let mut out = Vec::new();
    for (a, b) in ranges {
        if b < lo || a > hi {
            out.push((a, b));
            continue;
        }
        if a < lo {
            out.push((a, lo - 1));
        }
        if b > hi {
            out.push((hi + 1, b));
        }
    }
    out
}

/// nft set elements: an address, a prefix when a range is one, else `first-last`.
fn elements(ranges: &[(u128, u128)], v6: bool) -> String {
    let addr = |a: u128| {
        if v6 {
            std::net::Ipv6Addr::from(a).to_string()
        } else {
            std::net::Ipv4Addr::from(u32::try_from(a).unwrap_or(u32::MAX)).to_string()
        }
    };
    let bits = if v6 { 128 } else { 32 };
    ranges
        .iter()
        .map(|&(a, b)| {
            let size = b - a;
            if size == 0 {
                addr(a)
            } else if size.checked_add(1).is_some_and(|n| n.is_power_of_two() && a % n == 0) {
                format!("{}/{}", addr(a), bits - (size + 1).trailing_zeros())
            } else if size == u128::MAX || (!v6 && size == u128::from(u32::MAX)) {
                format!("{}/0", addr(a))
            } else {
                format!("{}-{}", addr(a), addr(b))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The link-local address a MAC gives (`mac_to_linklocal`, modified EUI-64).
fn link_local(mac: &str) -> Option<Net> {
    let b: Vec<u8> = mac.split(':').map(|x| u8::from_str_radix(x, 16).ok()).collect::<Option<_>>()?;
    let [b0, b1, b2, b3, b4, b5] = b.as_slice() else { return None };
    let id = u64::from_be_bytes([b0 ^ 0x02, *b1, *b2, 0xff, 0xfe, *b3, *b4, *b5]);
    Some(Net { v6: true, addr: (0xfe80u128 << 112) | u128::from(id), prefix: 128 })
}

/// FNV-1a, 64 bits: a digest that stays the same across builds.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fwconf::{parse, Kind};

    const MARK: &str = "# Written by dlll-cias (SPEC section 8: anti-spoofing); edits are overwritten.\n";
    const CLUSTER: &str = "[OPTIONS]\nenable: 1\npolicy_in: ACCEPT\npolicy_out: ACCEPT\n";
    const HOST: &str = "[OPTIONS]\nenable: 0\n";
    const VM_OPTIONS: &str =
        "[OPTIONS]\nenable: 1\nipfilter: 1\nmacfilter: 1\ndhcp: 1\npolicy_in: ACCEPT\npolicy_out: ACCEPT\n\n";

    fn fw(kind: Kind, text: &str) -> FwFile {
        parse("test.fw", text, kind, None).unwrap()
    }

    fn vm_config(nets: &[(&str, &str)]) -> VmConfig {
        nets.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn entries(lines: &[&str]) -> Vec<IpsetEntry> {
        let text = format!("[IPSET test]\n{}\n", lines.join("\n"));
        fw(Kind::Vm, &text).ipsets.remove("test").unwrap()
    }

    fn matched(lines: &[&str]) -> String {
        let entries = entries(lines);
        elements(&matching(&entries.iter().collect::<Vec<_>>()), false)
    }

    #[test]
    fn the_most_specific_ipset_entry_decides_in_any_order() {
        // The router's set: its own address, nothing else of 10.0.0.0/8, the rest of the world.
        let router = ["10.0.0.254", "!10.0.0.0/8", "0.0.0.0/1", "128.0.0.0/1"];
        assert_eq!(matched(&router), "0.0.0.0-9.255.255.255, 10.0.0.254, 11.0.0.0-255.255.255.255");
        let mut reversed = router;
        reversed.reverse();
        assert_eq!(matched(&reversed), matched(&router));
        // Nested three deep: in, out, in again.
        assert_eq!(
            matched(&["10.1.2.0/24", "!10.1.0.0/16", "10.0.0.0/8"]),
            "10.0.0.0/16, 10.1.2.0/24, 10.2.0.0-10.255.255.255"
        );
        // nomatch alone matches nothing; errors are skipped; overlaps merge.
        assert_eq!(matched(&["!10.0.0.0/8"]), "");
        assert_eq!(matched(&["10.0.1.1", "0.0.0.0/0", "10.0.1.0/24", "10.0.1.128/25"]), "10.0.1.0/24");
        assert_eq!(matched(&["10.0.1.1", "10.0.1.2", "10.0.1.3"]), "10.0.1.1-10.0.1.3");
    }

    fn product_vm(ipset: &str) -> FwFile {
        fw(Kind::Vm, &format!("{MARK}{VM_OPTIONS}[IPSET ipfilter-net0] # dlll-cias\n{ipset}"))
    }

    #[test]
    fn the_files_dlll_cias_writes_compile_to_the_anti_spoofing_table() {
        let (cluster, host) =
            (fw(Kind::Cluster, &format!("{MARK}{CLUSTER}")), fw(Kind::Host, &format!("{MARK}{HOST}")));
        let vm101 = product_vm("10.0.1.1\n10.251.0.0/16\n");
        let router = product_vm("10.0.0.254\n!10.0.0.0/8\n0.0.0.0/1\n128.0.0.0/1\n");
        let config101 =
            vm_config(&[("net0", "virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1"), ("memory", "512")]);
        let config100 = vm_config(&[("net0", "virtio=02:CA:5E:FF:01:00,bridge=vmbr0,firewall=1")]);
        let vms = [
            Vm { vmid: 100, config: &config100, fw: Some(&router) },
            Vm { vmid: 101, config: &config101, fw: Some(&vm101) },
        ];
        let compiled = compile(Some(&cluster), Some(&host), &vms, 0);
        assert_eq!((compiled.warnings.len(), compiled.errors.len()), (0, 0), "{compiled:#?}");
        assert_eq!(compiled.table.unwrap(), EXPECTED, "the table");
        assert_eq!(compiled.digest.as_deref(), Some("862e94f6240a6a5c"));
    }

    /// Reviewed by hand, and loaded with `nft -f` (tests/firewall.rs does that on every run).
    const EXPECTED: &str = r#"table bridge pve_standin_fw {
	comment "862e94f6240a6a5c"
	set PVEFW-100-ipfilter-net0-v4 {
		type ipv4_addr
		flags interval
		elements = { 0.0.0.0-9.255.255.255, 10.0.0.254, 11.0.0.0-255.255.255.255 }
	}
	set PVEFW-100-ipfilter-net0-v6 {
		type ipv6_addr
		flags interval
		elements = { fe80::ca:5eff:feff:100 }
	}
	set PVEFW-101-ipfilter-net0-v4 {
		type ipv4_addr
		flags interval
		elements = { 10.0.1.1, 10.251.0.0/16 }
	}
	set PVEFW-101-ipfilter-net0-v6 {
		type ipv6_addr
		flags interval
		elements = { fe80::be24:11ff:fe00:101 }
	}
	chain prerouting {
		type filter hook prerouting priority filter; policy accept;
		iifname "tap100i0" jump tap100i0-OUT
		iifname "tap101i0" jump tap101i0-OUT
	}
	chain tap100i0-OUT {
		ether type != { ip, ip6 } ether saddr != 02:ca:5e:ff:01:00 drop
		arp saddr ip != { 0.0.0.0/0 } drop
		ether type ip meta l4proto udp udp sport 68 udp dport 67 accept
		ether type ip6 meta l4proto udp udp sport 546 udp dport 547 accept
		ether type { ip, ip6 } ether saddr != 02:ca:5e:ff:01:00 drop
		ether type ip6 icmpv6 type nd-router-advert drop
		ether type ip ip saddr != @PVEFW-100-ipfilter-net0-v4 drop
		ether type ip6 ip6 saddr != @PVEFW-100-ipfilter-net0-v6 drop
	}
	chain tap101i0-OUT {
		ether type != { ip, ip6 } ether saddr != bc:24:11:00:01:01 drop
		arp saddr ip != { 10.0.1.1, 10.251.0.0/16 } drop
		ether type ip meta l4proto udp udp sport 68 udp dport 67 accept
		ether type ip6 meta l4proto udp udp sport 546 udp dport 547 accept
		ether type { ip, ip6 } ether saddr != bc:24:11:00:01:01 drop
		ether type ip6 icmpv6 type nd-router-advert drop
		ether type ip ip saddr != @PVEFW-101-ipfilter-net0-v4 drop
		ether type ip6 ip6 saddr != @PVEFW-101-ipfilter-net0-v6 drop
	}
}
"#;

    #[test]
    fn nothing_is_compiled_while_the_cluster_firewall_is_off() {
        let vm = product_vm("10.0.1.1\n");
        let config = vm_config(&[("net0", "virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1")]);
        let vms = [Vm { vmid: 101, config: &config, fw: Some(&vm) }];
        for cluster in [None, Some("[OPTIONS]\nenable: 0\n"), Some("[OPTIONS]\npolicy_in: DROP\n")] {
            let cluster = cluster.map(|t| fw(Kind::Cluster, t));
            assert_eq!(compile(cluster.as_ref(), None, &vms, 0).table, None);
        }
        // A timestamp turns it on for 60 s (the GUI's "enable with rollback").
        let cluster = fw(Kind::Cluster, "[OPTIONS]\nenable: 1700000000\n");
        assert!(compile(Some(&cluster), None, &vms, 1_700_000_060).table.is_some());
        assert!(compile(Some(&cluster), None, &vms, 1_700_000_061).table.is_none());
    }

    #[test]
    fn only_enabled_vms_and_nics_with_the_firewall_flag_are_filtered() {
        let cluster = fw(Kind::Cluster, CLUSTER);
        let flagged = vm_config(&[("net0", "virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1")]);
        let unflagged = vm_config(&[("net0", "virtio=BC:24:11:00:01:01,bridge=vmbr0")]);
        let off = fw(Kind::Vm, "[OPTIONS]\nenable: 0\npolicy_in: ACCEPT\n[IPSET ipfilter-net0]\n10.0.1.1\n");
        let on = product_vm("10.0.1.1\n");
        for vms in [
            [Vm { vmid: 101, config: &flagged, fw: None }],
            [Vm { vmid: 101, config: &flagged, fw: Some(&off) }],
            [Vm { vmid: 101, config: &unflagged, fw: Some(&on) }],
        ] {
            let table = compile(Some(&cluster), None, &vms, 0).table.unwrap();
            assert!(!table.contains("tap101i0"), "{table}");
        }
    }

    #[test]
    fn an_ipset_filters_without_the_ipfilter_option_and_an_empty_one_drops_all() {
        // pve-firewall's test/test-vm-ipfilter1 (100.fw with policy_in ACCEPT added, the VM's
        // NICs of its fwtester.pl): net0 may send from its two addresses, net1 from any, net2
        // (empty set) from none.
        let vm = fw(
            Kind::Vm,
            "[options]\n\nenable: 1\npolicy_in: ACCEPT\n\n[ipset ipfilter-net0]\n1.2.3.4\n1.2.3.5\n\n\
             [ipset ipfilter-net2] # empty, allow nothing\n\n[rules]\n\nIN ACCEPT -p tcp -dport 80",
        );
        let config = vm_config(&[
            ("net0", "e1000=0E:0B:38:B8:B3:21,bridge=vmbr0,firewall=1"),
            ("net1", "e1000=0E:0B:38:B9:B4:21,bridge=vmbr1,firewall=1"),
            ("net2", "e1000=0E:0B:38:BA:B4:21,bridge=vmbr2,firewall=1"),
        ]);
        let compiled = compile(
            Some(&fw(Kind::Cluster, CLUSTER)),
            None,
            &[Vm { vmid: 100, config: &config, fw: Some(&vm) }],
            0,
        );
        let table = compiled.table.unwrap();
        assert!(table.contains("\tset PVEFW-100-ipfilter-net0-v4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 1.2.3.4/31 }\n"), "{table}");
        assert!(table.contains("\t\tarp saddr ip != { 1.2.3.4/31 } drop\n"), "{table}");
        assert!(
            table.contains(
                "\tset PVEFW-100-ipfilter-net2-v4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t}\n"
            ),
            "{table}"
        );
        assert!(table.contains("ether type ip ip saddr != @PVEFW-100-ipfilter-net2-v4 drop"), "{table}");
        assert!(!table.contains("net1-v4"), "{table}");
        assert!(
            table.contains("iifname \"tap100i1\" jump tap100i1-OUT"),
            "net1 still has its MAC filter: {table}"
        );
        assert_eq!(compiled.errors, Vec::<String>::new());
    }

    #[test]
    fn policies_that_need_conntrack_are_refused_and_the_nic_drops_everything() {
        let config = vm_config(&[("net0", "virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1")]);
        // No policy_in: Proxmox's default is DROP.
        let vm = fw(Kind::Vm, "[OPTIONS]\nenable: 1\n[IPSET ipfilter-net0]\n10.0.1.1\n");
        let compiled = compile(
            Some(&fw(Kind::Cluster, CLUSTER)),
            None,
            &[Vm { vmid: 101, config: &config, fw: Some(&vm) }],
            0,
        );
        assert_eq!(
            compiled.errors,
            ["VM 101: policy_in DROP is not supported by the Proxmox stand-in (it needs bridge connection \
              tracking, which this kernel lacks); only ACCEPT is: net0 drops every frame"]
        );
        let table = compiled.table.unwrap();
        assert!(table.contains("\tchain tap101i0-OUT {\n\t\tdrop\n\t}\n"), "{table}");
        assert!(table.contains("\t\toifname \"tap101i0\" drop\n"), "{table}");
        // The host firewall is not emulated: said unless host.fw turns it off.
        assert_eq!(compiled.warnings.len(), 1, "{:?}", compiled.warnings);
        assert!(compiled.warnings[0].starts_with("host firewall: not emulated"));
    }

    #[test]
    fn options_change_the_out_chain_as_in_pve_firewall() {
        let config = vm_config(&[("net0", "virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1")]);
        let vm = fw(Kind::Vm, "[OPTIONS]\nenable: 1\npolicy_in: ACCEPT\nmacfilter: 0\ndhcp: 0\nradv: 1\n");
        let cluster = fw(Kind::Cluster, "[OPTIONS]\nenable: 1\nebtables: 0\n");
        let table = compile(Some(&cluster), None, &[Vm { vmid: 101, config: &config, fw: Some(&vm) }], 0)
            .table
            .unwrap();
        assert!(table.contains("\tchain tap101i0-OUT {\n\t}\n"), "nothing left to check: {table}");
        // ipfilter on, no ipset: an empty IPv4 set, the IPv6 one with the link-local address.
        let vm = fw(Kind::Vm, "[OPTIONS]\nenable: 1\npolicy_in: ACCEPT\nipfilter: 1\n");
        let table = compile(Some(&cluster), None, &[Vm { vmid: 101, config: &config, fw: Some(&vm) }], 0)
            .table
            .unwrap();
        assert!(
            table.contains("PVEFW-101-ipfilter-net0-v4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t}"),
            "{table}"
        );
        assert!(table.contains("elements = { fe80::be24:11ff:fe00:101 }"), "{table}");
        assert!(!table.contains("arp saddr"), "no ipset, no ARP check: {table}");
    }
}
