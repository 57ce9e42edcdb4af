//! VM NICs. A VM's `netN: <model>=<MAC>,bridge=<bridge>[,firewall=1]` (qemu-server's
//! `PVE/QemuServer/Network.pm` format) is, while the VM runs, a veth pair: `tap<vmid>i<N>` on
//! the bridge, the name qemu-server gives a VM's tap device (pve-firewall's rules match it), and
//! `eth<N>` with the MAC inside the VM's network namespace **`vm<vmid>`**. The guest's address on
//! `eth<N>` comes from `ipconfigN: ip=<cidr>[,gw=<ip>][,ip6=<cidr>][,gw6=<ip>]` (cloud-init;
//! `dhcp` or none: no address); tests change it with `ip -n vm<vmid> ...` inside the node.
//!
//! Namespace names are node-local: a lab node has its own `/run/netns` (measured: node1 and
//! node2 each held a `vm100` at once), so VMs on different nodes never clash, and a migrating
//! VM is unplugged on the source before it is plugged on the target. A VM that died without
//! cleanup (its node powered off) may leave its namespace or tap behind: plugging removes them
//! first.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use crate::cluster::Env;
use crate::vmconf::VmConfig;
use crate::{firewall, Failure, Result};

/// qemu-server's NIC models (each is also the key that carries the MAC: `virtio=<MAC>`).
const MODELS: &[&str] = &[
    "e1000",
    "e1000-82540em",
    "e1000-82544gc",
    "e1000-82545em",
    "e1000e",
    "i82551",
    "i82557b",
    "i82559er",
    "ne2k_isa",
    "ne2k_pci",
    "pcnet",
    "rtl8139",
    "virtio",
    "vmxnet3",
];
/// The other keys of the format (booleans are stored as 0/1).
const KEYS: &[&str] =
    &["bridge", "queues", "rate", "tag", "trunks", "firewall", "link_down", "mtu", "host-tunnel"];
const BOOLEANS: &[&str] = &["firewall", "link_down", "host-tunnel"];
/// Proxmox's default `mac_prefix` (datacenter.cfg) for generated MACs.
const MAC_PREFIX: [u8; 3] = [0xBC, 0x24, 0x11];

/// One `netN` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Net {
    pub model: String,
    pub mac: Option<String>,
    /// Every other key (`bridge`, `firewall`, `tag`, ...).
    pub props: BTreeMap<String, String>,
}

impl Net {
    pub fn bridge(&self) -> Option<&str> {
        self.props.get("bridge").map(String::as_str)
    }

    pub fn firewall(&self) -> bool {
        self.props.get("firewall").is_some_and(|v| v == "1")
    }
}

/// Parses a `netN` value (`parse_net`): `model[=MAC]` or `model=..,macaddr=..`, then `key=value`s.
pub fn parse_net(value: &str) -> std::result::Result<Net, String> {
    let (mut model, mut mac, mut props) = (None, None, BTreeMap::new());
    for part in value.split(',') {
        let (key, val) = match part.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (part, None),
        };
        if MODELS.contains(&key) {
            model = Some(key.to_string());
            mac = val.map(str::to_string).or(mac);
        } else if key == "model" && val.is_some_and(|v| MODELS.contains(&v)) {
            model = val.map(str::to_string);
        } else if key == "macaddr" && val.is_some() {
            mac = val.map(str::to_string);
        } else if let Some(val) = val.filter(|_| KEYS.contains(&key)) {
            let val = if BOOLEANS.contains(&key) {
                boolean(val).ok_or(format!("{key}: type check ('boolean') failed - got '{val}'"))?
            } else {
                val.to_string()
            };
            props.insert(key.to_string(), val);
        } else {
            return Err(format!("invalid format - unknown or incomplete key '{part}'"));
        }
    }
    if let Some(mac) = &mac {
        check_mac(mac)?;
    }
    let model = model.ok_or("invalid format - property 'model' is missing")?;
    Ok(Net { model, mac, props })
}

fn boolean(value: &str) -> Option<String> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Some("1".into()),
        "0" | "off" | "no" | "false" => Some("0".into()),
        _ => None,
    }
}

/// A unicast MAC address (`pve-mac-addr`).
fn check_mac(mac: &str) -> std::result::Result<(), String> {
    let bytes: Vec<Option<u8>> =
        mac.split(':').map(|b| (b.len() == 2).then(|| u8::from_str_radix(b, 16).ok()).flatten()).collect();
    match bytes.as_slice() {
        [Some(first), rest @ ..] if rest.len() == 5 && rest.iter().all(Option::is_some) && first & 1 == 0 => {
            Ok(())
        }
        _ => Err(format!("macaddr: value does not look like a valid unicast MAC address - got '{mac}'")),
    }
}

/// Prints a `netN` value as qemu-server writes it: `model=MAC` first, the rest sorted by key.
pub fn print_net(net: &Net) -> String {
    let mut out = match &net.mac {
        Some(mac) => format!("{}={mac}", net.model),
        None => net.model.clone(),
    };
    for (key, value) in &net.props {
        out += &format!(",{key}={value}");
    }
    out
}

/// What `qm create`/`qm set` store for a `netN` value: normalized, with a generated MAC when
/// it has none (qemu-server's `add_random_macs`).
pub fn with_mac(value: &str) -> std::result::Result<String, String> {
    let mut net = parse_net(value)?;
    if net.mac.is_none() {
        net.mac = Some(random_mac());
    }
    Ok(print_net(&net))
}

fn random_mac() -> String {
    let mut bytes = [0u8; 3];
    let _ =
        std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    MAC_PREFIX.iter().chain(&bytes).map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// The VM's NICs by index, in config order (`net0`, `net1`, `net10`, `net2`, ... as Perl sorts).
pub fn nets(config: &VmConfig) -> Vec<(u32, Net)> {
    config
        .iter()
        .filter_map(|(key, value)| Some((key.strip_prefix("net")?.parse().ok()?, parse_net(value).ok()?)))
        .collect()
}

/// The VM's network namespace in its node.
pub fn netns(vmid: u32) -> String {
    format!("vm{vmid}")
}

/// The host side of NIC `index`.
pub fn tap(vmid: u32, index: u32) -> String {
    format!("tap{vmid}i{index}")
}

fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output()?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Failure::die(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())))
    }
}

/// Fails as qemu-server does when a NIC's bridge is missing on this node. (Asked through `ip`:
/// `/sys/class/net` may show another network namespace inside a container.)
pub fn require_bridges(config: &VmConfig) -> Result<()> {
    for (_, net) in nets(config) {
        if let Some(bridge) = net.bridge() {
            if ip(&["link", "show", bridge]).is_err() {
                return Err(Failure::die(format!("bridge '{bridge}' does not exist")));
            }
        }
    }
    Ok(())
}

/// `ipconfigN`'s (address, gateway) pairs: IPv4 first, then IPv6; `dhcp`/`auto` give none.
fn guest_addresses(config: &VmConfig, index: u32) -> Vec<(String, Option<String>)> {
    let Some(value) = config.get(&format!("ipconfig{index}")) else { return Vec::new() };
    let props: BTreeMap<&str, &str> = value.split(',').filter_map(|p| p.split_once('=')).collect();
    [("ip", "gw"), ("ip6", "gw6")]
        .iter()
        .filter_map(|(ip, gw)| {
            let cidr = props.get(ip).filter(|c| c.contains('/'))?;
            Some((cidr.to_string(), props.get(gw).map(|g| g.to_string())))
        })
        .collect()
}

/// Plugs the VM's NICs: the firewall's rules first (when its service runs), so no frame ever
/// passes unfiltered, then each veth pair, its MAC, the guest's addresses and routes.
pub fn plug(env: &Env, vmid: u32, config: &VmConfig) -> Result<()> {
    unplug(vmid);
    let nets: Vec<(u32, Net)> = nets(config).into_iter().filter(|(_, n)| n.bridge().is_some()).collect();
    if nets.is_empty() {
        return Ok(());
    }
    // Errors are the service's to log: its next round applies the rules again.
    let _ = firewall::update_if_running(env);
    let ns = netns(vmid);
    ip(&["netns", "add", &ns])?;
    ip(&["-n", &ns, "link", "set", "lo", "up"])?;
    for (index, net) in &nets {
        let (tap, eth) = (tap(vmid, *index), format!("eth{index}"));
        let mac = net.mac.clone().unwrap_or_else(random_mac);
        ip(&["link", "add", &tap, "type", "veth", "peer", "name", &eth, "address", &mac, "netns", &ns])?;
        ip(&["link", "set", &tap, "master", net.bridge().unwrap_or_default(), "up"])?;
        if net.props.get("link_down").is_some_and(|v| v == "1") {
            continue;
        }
        ip(&["-n", &ns, "link", "set", &eth, "up"])?;
        for (cidr, gateway) in guest_addresses(config, *index) {
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", &eth])?;
            if let Some(gateway) = gateway {
                ip(&["-n", &ns, "route", "replace", "default", "via", &gateway, "dev", &eth])?;
            }
        }
    }
    Ok(())
}

/// Tells the network where the VM is now, as a booted or migrated guest does: a gratuitous ARP
/// from each IPv4 address of its NICs teaches the bridges its MAC's port.
pub fn announce(vmid: u32) {
    let ns = netns(vmid);
    let Ok(listing) = ip(&["-n", &ns, "-o", "-4", "addr", "show", "scope", "global"]) else { return };
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [_, dev, "inet", cidr, ..] = fields.as_slice() {
            let address = cidr.split('/').next().unwrap_or_default();
            let _ = Command::new("ip")
                .args(["netns", "exec", &ns, "arping", "-q", "-U", "-c", "1", "-I", dev, address])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Unplugs the VM: its namespace and every `tap<vmid>i<N>` (deleting a veth end deletes the
/// pair, even when a namespace outlives its name).
pub fn unplug(vmid: u32) {
    let _ = ip(&["netns", "del", &netns(vmid)]);
    let prefix = format!("tap{vmid}i");
    let Ok(links) = ip(&["-o", "link", "show"]) else { return };
    for line in links.lines() {
        let Some(name) = line.split_whitespace().nth(1) else { continue };
        let name = name.trim_end_matches(':').split('@').next().unwrap_or_default();
        if name.strip_prefix(&prefix).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            let _ = ip(&["link", "del", name]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nets_parse_and_print_as_qemu_server_writes_them() {
        let net = parse_net("virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1").unwrap();
        assert_eq!(net.model, "virtio");
        assert_eq!(net.mac.as_deref(), Some("BC:24:11:00:01:01"));
        assert_eq!((net.bridge(), net.firewall()), (Some("vmbr0"), true));
        assert_eq!(print_net(&net), "virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1");
        // Keys sorted after the model, booleans as 0/1, `model=`/`macaddr=` spelled out.
        let net = parse_net("model=e1000,tag=5,firewall=yes,macaddr=02:00:00:00:00:01,bridge=vmbr1").unwrap();
        assert_eq!(print_net(&net), "e1000=02:00:00:00:00:01,bridge=vmbr1,firewall=1,tag=5");
        assert!(!parse_net("virtio=BC:24:11:00:01:01,bridge=vmbr0").unwrap().firewall());
        assert!(parse_net("virtio=01:00:00:00:00:01,bridge=vmbr0").unwrap_err().contains("unicast"));
        assert!(parse_net("virtio,bridge=vmbr0,colour=red").is_err());
        assert!(parse_net("bridge=vmbr0").is_err());
    }

    #[test]
    fn a_net_without_mac_gets_one_with_proxmox_prefix() {
        let value = with_mac("virtio,bridge=vmbr0").unwrap();
        let (model, rest) = value.split_once('=').unwrap();
        assert_eq!(model, "virtio");
        assert!(rest.starts_with("BC:24:11:") && rest.ends_with(",bridge=vmbr0"), "{value}");
        assert_eq!(
            with_mac("virtio=BC:24:11:00:01:01,bridge=vmbr0").unwrap(),
            "virtio=BC:24:11:00:01:01,bridge=vmbr0"
        );
    }

    #[test]
    fn guest_addresses_come_from_cloud_init_ipconfig() {
        let config: VmConfig = [
            ("ipconfig0".to_string(), "ip=10.0.1.1/8,gw=10.0.0.254".to_string()),
            ("ipconfig1".to_string(), "ip=dhcp,ip6=fd00::1/64".to_string()),
        ]
        .into();
        assert_eq!(guest_addresses(&config, 0), [("10.0.1.1/8".to_string(), Some("10.0.0.254".to_string()))]);
        assert_eq!(guest_addresses(&config, 1), [("fd00::1/64".to_string(), None)]);
        assert!(guest_addresses(&config, 2).is_empty());
    }
}
