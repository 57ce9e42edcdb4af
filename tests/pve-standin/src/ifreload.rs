//! `ifreload -a [-i FILE]` (ifupdown2, which Proxmox ships): makes the live network match
//! `/etc/network/interfaces` for the interfaces marked `auto`, with `ip` commands.
//!
//! Covered: `iface NAME inet|inet6 static|manual|loopback`, `address` (A/P, or A with
//! `netmask`), `gateway`, `bridge-ports P...|none`, `bridge-stp`, `bridge-fd`, `address-purge`.
//! Like ifupdown2, addresses of scope global that the file does not give an interface are
//! removed (keepalived's VIPs too) unless `address-purge no`; ports never leave a bridge (a
//! running VM's tap stays). Everything else (`source`, `mtu`, `post-up`...) is ignored.
//! Idempotent: a second run changes nothing. This kernel has no bonding driver: a bond is
//! refused before anything changes, so a lab node keeps its network.
//! Messages and exit codes are ifupdown2's: `error: ...`/`warning: ...` on stderr, exit 1
//! when an interface failed, 90 for bad arguments.

use std::net::IpAddr;
use std::process::Command;

use serde_json::Value;

use crate::{Failure, Result};

const DEFAULT_FILE: &str = "/etc/network/interfaces";
/// Words that start a top-level entry; any other line is an option of the last `iface`.
const TOP_LEVEL: &[&str] =
    &["auto", "allow-auto", "allow-hotplug", "iface", "source", "source-directory", "mapping"];

#[derive(Debug, Default)]
struct Stanza {
    name: String,
    methods: Vec<String>,
    /// Normalised `A/P`.
    addresses: Vec<String>,
    gateways: Vec<String>,
    /// `Some` when the stanza is a bridge (`bridge-ports none` gives an empty list).
    ports: Option<Vec<String>>,
    stp: Option<String>,
    forward_delay: Option<String>,
    bond: bool,
    purge: bool,
}

#[derive(Debug, Default)]
struct Config {
    auto: Vec<String>,
    stanzas: Vec<Stanza>,
}

/// `A/P` with the address in canonical form; `A` alone takes `netmask` or a host prefix.
fn normalise(address: &str, netmask: Option<&str>) -> Option<String> {
    let (ip, prefix) = match address.split_once('/') {
        Some((ip, p)) => (ip.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
        None => {
            let ip: IpAddr = address.parse().ok()?;
            let prefix = match (netmask, ip) {
                (Some(m), _) if m.parse::<u8>().is_ok() => m.parse().ok()?,
                (Some(m), IpAddr::V4(_)) => {
                    u32::from(m.parse::<std::net::Ipv4Addr>().ok()?).count_ones() as u8
                }
                (_, IpAddr::V4(_)) => 32,
                (_, IpAddr::V6(_)) => 128,
            };
            (ip, prefix)
        }
    };
    Some(format!("{ip}/{prefix}"))
}

fn parse(text: &str) -> std::result::Result<Config, String> {
    let mut config = Config::default();
    // Stanza index, and its raw address/netmask lines (a netmask may follow its address).
    let mut current: Option<usize> = None;
    let mut raw: Vec<(Vec<String>, Option<String>)> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&key, values)) = words.split_first() else { continue };
        if key.starts_with('#') {
            continue;
        }
        if TOP_LEVEL.contains(&key) || key.starts_with("allow-") {
            current = None;
        }
        match key {
            "auto" | "allow-auto" => config.auto.extend(values.iter().map(|v| v.to_string())),
            "iface" => {
                let [name, _family, method, ..] = values else {
                    return Err(format!("line {}: invalid iface stanza: {}", number + 1, line.trim()));
                };
                // Several stanzas of one interface (inet and inet6) are one interface.
                let index = match config.stanzas.iter().position(|s| s.name == *name) {
                    Some(i) => i,
                    None => {
                        config.stanzas.push(Stanza {
                            name: name.to_string(),
                            purge: true,
                            ..Stanza::default()
                        });
                        raw.push((Vec::new(), None));
                        config.stanzas.len() - 1
                    }
                };
                config.stanzas[index].methods.push(method.to_string());
                current = Some(index);
            }
            _ => {
                // Top-level words other than `auto`/`iface` (`source`...) are ignored.
                let Some(index) = current else { continue };
                let stanza = &mut config.stanzas[index];
                let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                match key {
                    "address" => raw[index].0.extend(values),
                    "netmask" => raw[index].1 = values.first().cloned(),
                    "gateway" => stanza.gateways.extend(values),
                    "bridge-ports" => {
                        stanza.ports = Some(values.into_iter().filter(|p| p != "none").collect())
                    }
                    "bridge-stp" => stanza.stp = values.first().cloned(),
                    "bridge-fd" => stanza.forward_delay = values.first().cloned(),
                    "address-purge" => {
                        stanza.purge = !matches!(values.first().map(String::as_str), Some("no" | "off" | "0"))
                    }
                    k if k.starts_with("bond-") => stanza.bond = true,
                    _ => {}
                }
            }
        }
    }
    for (stanza, (addresses, netmask)) in config.stanzas.iter_mut().zip(raw) {
        for address in addresses {
            let normal = normalise(&address, netmask.as_deref())
                .ok_or_else(|| format!("{}: invalid address '{address}'", stanza.name))?;
            stanza.addresses.push(normal);
        }
        stanza.bond |= stanza.name.starts_with("bond");
    }
    Ok(config)
}

/// Runs `ip ARGS`; the error reads like ifupdown2's failed command.
fn ip(args: &[&str]) -> std::result::Result<String, String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "cmd 'ip {}' failed: returned {} ({})",
            args.join(" "),
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The live link as `ip -d -j addr show` gives it; `None` when it does not exist.
fn link(name: &str) -> Option<Value> {
    let json = ip(&["-d", "-j", "addr", "show", "dev", name]).ok()?;
    serde_json::from_str::<Value>(&json).ok()?.get(0).cloned()
}

fn is_up(link: &Value) -> bool {
    link["flags"].as_array().is_some_and(|f| f.iter().any(|f| f == "UP"))
}

/// Addresses of scope global, normalised (ifupdown2 leaves kernel-made link/host ones alone).
fn global_addresses(link: &Value) -> Vec<String> {
    link["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["scope"] == "global")
        .filter_map(|a| normalise(&format!("{}/{}", a["local"].as_str()?, a["prefixlen"].as_u64()?), None))
        .collect()
}

fn on_link(gateway: IpAddr, addresses: &[String]) -> bool {
    let bits = |ip: IpAddr| -> (u128, u32) {
        match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        }
    };
    let (gw, width) = bits(gateway);
    addresses.iter().filter_map(|a| a.split_once('/')).any(|(net, prefix)| {
        let (Ok(net), Ok(prefix)) = (net.parse::<IpAddr>(), prefix.parse::<u32>()) else { return false };
        let (net, net_width) = bits(net);
        let shift = width.saturating_sub(prefix);
        net_width == width && (shift >= 128 || (gw >> shift) == (net >> shift))
    })
}

/// `yes`/`on`/`1` -> 1, `no`/`off`/`0` -> 0.
fn bool_word(word: &str) -> Option<u8> {
    match word {
        "yes" | "on" | "1" => Some(1),
        "no" | "off" | "0" => Some(0),
        _ => None,
    }
}

/// Brings one interface in line with its stanza; warnings go to stderr, the first error ends it.
fn apply(stanza: &Stanza) -> std::result::Result<(), String> {
    let name = stanza.name.as_str();
    if let Some(method) =
        stanza.methods.iter().find(|m| !["static", "manual", "loopback"].contains(&m.as_str()))
    {
        return Err(format!("{name}: method '{method}' is not supported by the Proxmox stand-in"));
    }
    let mut live = link(name);
    if live.is_none() && stanza.ports.is_some() {
        ip(&["link", "add", "name", name, "type", "bridge"])?;
        live = link(name);
    }
    let Some(live) = live else {
        eprintln!("warning: {name}: interface not recognized - please check interface configuration");
        return Ok(());
    };
    if stanza.ports.is_some() {
        let data = &live["linkinfo"]["info_data"];
        // STP first: the kernel only takes a forward delay below 2 s with STP off.
        if let Some(stp) = stanza.stp.as_deref() {
            let wanted = bool_word(stp).ok_or_else(|| format!("{name}: invalid bridge-stp '{stp}'"))?;
            if data["stp_state"].as_u64() != Some(u64::from(wanted)) {
                ip(&["link", "set", "dev", name, "type", "bridge", "stp_state", &wanted.to_string()])?;
            }
        }
        if let Some(fd) = stanza.forward_delay.as_deref() {
            let secs: u64 = fd.parse().map_err(|_| format!("{name}: invalid bridge-fd '{fd}'"))?;
            // `ip` counts the delay in centiseconds.
            if data["forward_delay"].as_u64() != Some(secs * 100) {
                ip(&[
                    "link",
                    "set",
                    "dev",
                    name,
                    "type",
                    "bridge",
                    "forward_delay",
                    &(secs * 100).to_string(),
                ])?;
            }
        }
        for port in stanza.ports.iter().flatten() {
            let Some(port_link) = link(port) else {
                return Err(format!("{name}: bridge port {port} does not exist"));
            };
            if port_link["master"].as_str() != Some(name) {
                ip(&["link", "set", "dev", port, "master", name])?;
            }
            if !is_up(&port_link) {
                ip(&["link", "set", "dev", port, "up"])?;
            }
        }
    }
    let current = global_addresses(&live);
    if stanza.purge {
        for address in current.iter().filter(|a| !stanza.addresses.contains(a)) {
            ip(&["addr", "del", address, "dev", name])?;
        }
    }
    for address in stanza.addresses.iter().filter(|a| !current.contains(a)) {
        ip(&["addr", "add", address, "dev", name])?;
    }
    if !is_up(&live) {
        ip(&["link", "set", "dev", name, "up"])?;
    }
    for gateway in &stanza.gateways {
        let Ok(gw) = gateway.parse::<IpAddr>() else {
            return Err(format!("{name}: invalid gateway '{gateway}'"));
        };
        // ifupdown2 adds the route `onlink` even off-link; the stand-in says so instead, since
        // such a gateway is a configuration mistake.
        if !on_link(gw, &stanza.addresses) {
            eprintln!(
                "warning: {name}: gateway {gateway} is not in a subnet of {name}: no default route set"
            );
            continue;
        }
        let family = if gw.is_ipv4() { "-4" } else { "-6" };
        let routes = ip(&[family, "-j", "route", "show", "default"])?;
        let routes: Value = serde_json::from_str(&routes).unwrap_or_default();
        let present = routes
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["gateway"] == gateway.as_str() && r["dev"] == name));
        if !present {
            ip(&[family, "route", "replace", "default", "via", gateway, "proto", "kernel", "dev", name])?;
        }
    }
    Ok(())
}

/// A bond needs the kernel's bonding driver; say plainly when it is missing, as `ip` finds.
fn refuse_bond(name: &str) -> Failure {
    let why = match ip(&["link", "add", "name", name, "type", "bond"]) {
        Err(e) if e.contains("Unknown device type") => format!(
            "cannot create bond: this kernel has no bonding support ('ip link add {name} type bond': Unknown device type)"
        ),
        Err(e) => format!("cannot create bond: {e}"),
        Ok(_) => {
            let _ = ip(&["link", "del", "dev", name]);
            "bonds are not supported by the Proxmox stand-in".to_string()
        }
    };
    Failure::with_code(format!("error: {name}: {why}"), 1)
}

fn usage(error: &str) -> Failure {
    Failure::with_code(
        format!(
            "usage: ifreload [-h] (-a | -c) [-v] [-d] [-f] [-n] [-s] [-i INTERFACESFILE]\nerror: {error}"
        ),
        90,
    )
}

pub fn main(args: &[String]) -> Result<u8> {
    let mut all = false;
    let mut file = DEFAULT_FILE.to_string();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "-a" | "--all" => all = true,
            "-i" | "--interfaces" => {
                file = words
                    .next()
                    .ok_or_else(|| usage("argument -i/--interfaces: expected one argument"))?
                    .clone()
            }
            other => return Err(usage(&format!("unrecognized arguments: {other}"))),
        }
    }
    if !all {
        return Err(usage("'-a' or '-c' or '-allow' option is required"));
    }
    let text = std::fs::read_to_string(&file)
        .map_err(|e| Failure::with_code(format!("error: main exception: {file}: {e}"), 1))?;
    let config = parse(&text).map_err(|e| Failure::with_code(format!("error: {file}: {e}"), 1))?;
    let wanted: Vec<&Stanza> = config
        .stanzas
        .iter()
        .filter(|s| {
            config.auto.contains(&s.name) && s.name != "lo" && !s.methods.iter().any(|m| m == "loopback")
        })
        .collect();
    if let Some(bond) = wanted.iter().find(|s| s.bond) {
        return Err(refuse_bond(&bond.name));
    }
    let mut failed = false;
    for stanza in wanted {
        if let Err(e) = apply(stanza) {
            eprintln!("error: {e}");
            failed = true;
        }
    }
    Ok(u8::from(failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROXMOX: &str = "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet manual\n\n\
        auto vmbr0\niface vmbr0 inet static\n\taddress 10.254.0.1/8\n\tgateway 10.0.0.254\n\
        \tbridge-ports eth0\n\tbridge-stp off\n\tbridge-fd 0\n\nsource /etc/network/interfaces.d/*\n";

    #[test]
    fn a_proxmox_file_gives_a_bridge_with_its_port_and_address() {
        let config = parse(PROXMOX).unwrap();
        assert_eq!(config.auto, ["lo", "eth0", "vmbr0"]);
        let vmbr0 = &config.stanzas[2];
        assert_eq!(vmbr0.addresses, ["10.254.0.1/8"]);
        assert_eq!(vmbr0.gateways, ["10.0.0.254"]);
        assert_eq!(vmbr0.ports.as_deref(), Some(&["eth0".to_string()][..]));
        assert_eq!((vmbr0.stp.as_deref(), vmbr0.forward_delay.as_deref()), (Some("off"), Some("0")));
        assert!(config.stanzas[1].addresses.is_empty() && config.stanzas[1].purge);
    }

    #[test]
    fn old_style_netmasks_bonds_and_bridges_without_ports() {
        let text =
            "iface vmbr1 inet static\n address 192.168.5.3\n netmask 255.255.255.0\n bridge-ports none\n\
                    iface bond0 inet manual\n bond-slaves eth1 eth2\niface bond1 inet manual\n bond-mode 1\n";
        let config = parse(text).unwrap();
        assert_eq!(config.stanzas[0].addresses, ["192.168.5.3/24"]);
        assert_eq!(config.stanzas[0].ports.as_deref(), Some(&[][..]));
        assert!(config.stanzas[1].bond && config.stanzas[2].bond);
    }

    #[test]
    fn a_gateway_is_on_link_only_inside_a_subnet() {
        let addresses = ["10.254.0.1/8".to_string()];
        assert!(on_link("10.0.0.254".parse().unwrap(), &addresses));
        assert!(!on_link("192.168.1.1".parse().unwrap(), &addresses));
        assert!(on_link("192.168.1.1".parse().unwrap(), &["0.0.0.0/0".to_string()]));
    }
}
