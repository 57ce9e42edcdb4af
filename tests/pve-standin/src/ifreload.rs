//! `ifreload -a` (ifupdown2, which Proxmox ships): makes the live network match
//! `/etc/network/interfaces` for what the toolkit writes - bridges and their ports, static
//! addresses (ports of a bridge keep none), the default gateway. Idempotent. Bonds fail: this
//! kernel has no bonding driver, so a lab cannot have them (say it, never fake it).

use std::process::Command;

use crate::{Failure, Result};

const FILE: &str = "/etc/network/interfaces";

#[derive(Debug, Default)]
struct Iface {
    name: String,
    address: Option<String>,
    gateway: Option<String>,
    ports: Vec<String>,
    bond_slaves: Vec<String>,
}

fn parse(text: &str) -> Vec<Iface> {
    let mut ifaces: Vec<Iface> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["iface", name, ..] => ifaces.push(Iface { name: name.to_string(), ..Iface::default() }),
            [key, values @ ..] if line.starts_with(char::is_whitespace) => {
                let Some(iface) = ifaces.last_mut() else { continue };
                let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                match *key {
                    "address" => iface.address = values.first().cloned(),
                    "gateway" => iface.gateway = values.first().cloned(),
                    "bridge-ports" => iface.ports = values.into_iter().filter(|p| p != "none").collect(),
                    "bond-slaves" => iface.bond_slaves = values,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    ifaces
}

fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip").args(args).output()?;
    if !out.status.success() {
        return Err(Failure::die(format!(
            "error: ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Global IPv4 addresses of `dev` (`A/P`).
fn addresses(dev: &str) -> Result<Vec<String>> {
    Ok(ip(&["-o", "-4", "addr", "show", "dev", dev, "scope", "global"])?
        .lines()
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1).map(str::to_string))
        .collect())
}

pub fn main(args: &[String]) -> Result<u8> {
    if args.first().map(String::as_str) != Some("-a") {
        return Err(Failure::with_code("usage: ifreload -a", 1));
    }
    let ifaces = parse(&std::fs::read_to_string(FILE)?);
    if let Some(bond) = ifaces.iter().find(|i| !i.bond_slaves.is_empty()) {
        return Err(Failure::with_code(
            format!("error: {}: cannot create bond: this kernel has no bonding support", bond.name),
            1,
        ));
    }
    for iface in ifaces.iter().filter(|i| i.name != "lo") {
        let exists = ip(&["link", "show", &iface.name]).is_ok();
        if !exists && !iface.ports.is_empty() {
            ip(&["link", "add", &iface.name, "type", "bridge"])?;
        } else if !exists {
            return Err(Failure::with_code(format!("error: {}: interface not found", iface.name), 1));
        }
        for port in &iface.ports {
            for a in addresses(port)? {
                ip(&["addr", "del", &a, "dev", port])?;
            }
            ip(&["link", "set", port, "master", &iface.name, "up"])?;
        }
        ip(&["link", "set", &iface.name, "up"])?;
        let current = addresses(&iface.name)?;
        if let Some(wanted) = &iface.address {
            if !current.contains(wanted) {
                ip(&["addr", "add", wanted, "dev", &iface.name])?;
            }
        }
        if let Some(gateway) = &iface.gateway {
            ip(&["route", "replace", "default", "via", gateway, "dev", &iface.name])?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn stanzas_and_their_options() {
        let ifaces = super::parse(
            "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet manual\n\nauto vmbr0\n\
             iface vmbr0 inet static\n\taddress 10.254.0.1/8\n\tgateway 10.0.0.254\n\tbridge-ports eth0\n\
             \tbridge-stp off\n",
        );
        assert_eq!(ifaces.len(), 3);
        assert_eq!(ifaces[2].address.as_deref(), Some("10.254.0.1/8"));
        assert_eq!(ifaces[2].gateway.as_deref(), Some("10.0.0.254"));
        assert_eq!(ifaces[2].ports, vec!["eth0"]);
    }
}
