//! The router's management after install (SPEC sections 3 and 5): its VM-management IPs and
//! each VM's port forwards, set through the router's own scripts, idempotently: the router
//! says what it has and only the difference is called, so a re-run changes nothing.
//!
//! The scripts (Zentyal's DLLL-CIAS module, run over SSH as `cias`). SPEC section 5 names
//! `setup_ip_vm.sh`; the others are this toolkit's interface, which the router image provides:
//! - `setup_ip_vm.sh INDEX IP MASK GATEWAY`, `remove_ip_vm.sh INDEX`;
//!   `list_ip_vm.sh` prints `INDEX IP` lines;
//! - `setup_port_forward.sh EXT_IP EXT_PORT INT_IP INT_PORT`,
//!   `remove_port_forward.sh EXT_IP EXT_PORT`; `list_port_forwards.sh` prints
//!   `EXT_IP EXT_PORT INT_IP INT_PORT` lines.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use std::path::{Path, PathBuf};

use crate::host::{Command, HostError, SshAuth, SshHost, SshTarget};
use crate::paths;
use crate::settings::{ClusterSettings, Secret};
use crate::netplan::ports::{PortBlock, Service};
use crate::netplan::Vmid;
use crate::proxmox::FormatError;

/// The router's SSH login (SPEC section 5).
pub const LOGIN: &str = "cias";
/// Where setup pinned the router's SSH host key (under the management directory, mirrored).
pub const KNOWN_HOSTS: &str = "router_known_hosts";

pub const LIST_VM_IPS: &str = "list_ip_vm.sh";
pub const LIST_FORWARDS: &str = "list_port_forwards.sh";

/// Logs in to the router as [`LOGIN`] with the password setup gave it (`router_login_password`),
/// checking its host key against the one setup pinned (this node's management directory, or
/// its shared mirror).
pub fn login(settings: &ClusterSettings, password: &Secret) -> Result<SshHost, HostError> {
    let address = settings.internal.router_ip.to_string();
    let pinned = [paths::MANAGEMENT_DIR, paths::SHARED_MANAGEMENT_DIR]
        .iter()
        .map(|dir| Path::new(dir).join(KNOWN_HOSTS))
        .find(|p| p.exists())
        .unwrap_or_else(|| Path::new(paths::MANAGEMENT_DIR).join(KNOWN_HOSTS));
    let mut target = SshTarget::root(&address, &address, PathBuf::new(), pinned);
    target.user = LOGIN.into();
    target.auth = SshAuth::Password(password.clone());
    SshHost::connect(target)
}

/// One forward: an external address and port to a VM's address and port (TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Forward {
    pub external_ip: Ipv4Addr,
    pub external_port: u16,
    pub internal_ip: Ipv4Addr,
    pub internal_port: u16,
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} -> {}:{}", self.external_ip, self.external_port, self.internal_ip, self.internal_port)
    }
}

/// A forward of `vmid` on `external_ip` (its VM-management IP): the external port is the
/// VM's block with the given last two digits (`suffix`, 0..=99), to `vm_port` inside the VM.
pub fn forward(vmid: Vmid, external_ip: Ipv4Addr, suffix: u16, vm_port: u16) -> Forward {
    Forward {
        external_ip,
        external_port: PortBlock::of(vmid).port(suffix),
        internal_ip: vmid.internal_ip(),
        internal_port: vm_port,
    }
}

/// The well-known forwards of `vmid` (SPEC section 3): AB80, AB43, AB22, AB89.
pub fn service_forwards(vmid: Vmid, external_ip: Ipv4Addr, services: &[Service]) -> Vec<Forward> {
    services.iter().map(|s| forward(vmid, external_ip, s.suffix(), s.vm_port())).collect()
}

/// A change on the router, and the script call that makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    SetVmIp { index: u8, ip: Ipv4Addr },
    RemoveVmIp { index: u8, ip: Ipv4Addr },
    AddForward(Forward),
    RemoveForward(Forward),
}

impl Change {
    /// The router script call; `mask` and `gateway` are the external network's.
    pub fn command(&self, mask: Ipv4Addr, gateway: Ipv4Addr) -> Command {
        let f = |v: &dyn fmt::Display| v.to_string();
        let argv: Vec<String> = match self {
            Change::SetVmIp { index, ip } => {
                vec!["setup_ip_vm.sh".into(), f(index), f(ip), f(&mask), f(&gateway)]
            }
            Change::RemoveVmIp { index, .. } => vec!["remove_ip_vm.sh".into(), f(index)],
            Change::AddForward(w) => vec![
                "setup_port_forward.sh".into(),
                f(&w.external_ip),
                f(&w.external_port),
                f(&w.internal_ip),
                f(&w.internal_port),
            ],
            Change::RemoveForward(w) => {
                vec!["remove_port_forward.sh".into(), f(&w.external_ip), f(&w.external_port)]
            }
        };
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        Command::from_argv(&argv)
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::SetVmIp { index, ip } => write!(f, "set VM-management IP {index}: {ip}"),
            Change::RemoveVmIp { index, ip } => write!(f, "remove VM-management IP {index} ({ip})"),
            Change::AddForward(w) => write!(f, "forward {w}"),
            Change::RemoveForward(w) => write!(f, "remove the forward {w}"),
        }
    }
}

/// What the router must change so that `wanted` are forwarded (or, with `remove`, are not):
/// nothing for a forward it already has; a port forwarded elsewhere is taken back first.
pub fn forward_changes(current: &[Forward], wanted: &[Forward], remove: bool) -> Vec<Change> {
    let mut changes = Vec::new();
    for w in wanted {
        let same_port = current.iter().find(|c| (c.external_ip, c.external_port) == (w.external_ip, w.external_port));
        match (same_port, remove) {
            (Some(c), true) if c == w => changes.push(Change::RemoveForward(*w)),
            (Some(c), false) if c != w => {
                changes.push(Change::RemoveForward(*c));
                changes.push(Change::AddForward(*w));
            }
            (None, false) => changes.push(Change::AddForward(*w)),
            _ => {}
        }
    }
    changes
}

/// What the router must change so that VM-management IP number `index` is `ip` (`add`) or is
/// gone: nothing when it already is. Refused when the router has `ip` under another index
/// (the settings and the router disagree: changing either could move VMs' external address).
pub fn vm_ip_changes(current: &BTreeMap<u8, Ipv4Addr>, index: u8, ip: Ipv4Addr, add: bool) -> Result<Vec<Change>, String> {
    if let Some((other, _)) = current.iter().find(|(i, a)| **a == ip && **i != index) {
        return Err(format!(
            "the router has {ip} as VM-management IP {other}, the settings as {index}: set them straight by hand first"
        ));
    }
    Ok(match (current.get(&index) == Some(&ip), add) {
        (false, true) => vec![Change::SetVmIp { index, ip }],
        (true, false) => vec![Change::RemoveVmIp { index, ip }],
        _ => vec![],
    })
}

/// The wanted forwards, refused when two of them claim one external port.
pub fn check_distinct(wanted: &[Forward]) -> Result<(), String> {
    for (i, w) in wanted.iter().enumerate() {
        if wanted[..i].iter().any(|o| (o.external_ip, o.external_port) == (w.external_ip, w.external_port)) {
            return Err(format!("external port {} is asked for twice", w.external_port));
        }
    }
    Ok(())
}

/// `list_ip_vm.sh`'s output: index -> IP.
pub fn parse_vm_ips(text: &str) -> Result<BTreeMap<u8, Ipv4Addr>, FormatError> {
    rows(text, LIST_VM_IPS, 2)?
        .into_iter()
        .map(|w| Ok((number(&w[0], LIST_VM_IPS)?, address(&w[1], LIST_VM_IPS)?)))
        .collect()
}

/// `list_port_forwards.sh`'s output.
pub fn parse_forwards(text: &str) -> Result<Vec<Forward>, FormatError> {
    rows(text, LIST_FORWARDS, 4)?
        .into_iter()
        .map(|w| {
            Ok(Forward {
                external_ip: address(&w[0], LIST_FORWARDS)?,
                external_port: number(&w[1], LIST_FORWARDS)?,
                internal_ip: address(&w[2], LIST_FORWARDS)?,
                internal_port: number(&w[3], LIST_FORWARDS)?,
            })
        })
        .collect()
}

fn rows(text: &str, command: &'static str, fields: usize) -> Result<Vec<Vec<String>>, FormatError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let words: Vec<String> = l.split_whitespace().map(str::to_string).collect();
            if words.len() == fields {
                Ok(words)
            } else {
                Err(FormatError { command, problem: format!("'{l}' does not have {fields} fields") })
            }
        })
        .collect()
}

fn number<T: std::str::FromStr>(word: &str, command: &'static str) -> Result<T, FormatError> {
    word.parse().map_err(|_| FormatError { command, problem: format!("'{word}' is not a number") })
}

fn address(word: &str, command: &'static str) -> Result<Ipv4Addr, FormatError> {
    word.parse().map_err(|_| FormatError { command, problem: format!("'{word}' is not an IPv4 address") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn a_vms_forwards_follow_its_vmid() {
        let vmid = Vmid::new(9151).unwrap();
        let all = service_forwards(vmid, ip("192.168.56.113"), &Service::ALL);
        let shown: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "192.168.56.113:15180 -> 10.9.1.51:80",
                "192.168.56.113:15143 -> 10.9.1.51:443",
                "192.168.56.113:15122 -> 10.9.1.51:22",
                "192.168.56.113:15189 -> 10.9.1.51:3389"
            ]
        );
        assert_eq!(forward(vmid, ip("192.168.56.113"), 10, 8080).external_port, 15110);
    }

    #[test]
    fn only_the_difference_is_changed() {
        let vmid = Vmid::new(101).unwrap();
        let wanted = service_forwards(vmid, ip("192.168.56.104"), &[Service::Http, Service::Ssh]);
        let all_new = forward_changes(&[], &wanted, false);
        assert_eq!(all_new, [Change::AddForward(wanted[0]), Change::AddForward(wanted[1])]);
        assert_eq!(forward_changes(&wanted, &wanted, false), []);
        // A port forwarded somewhere else is taken back first.
        let elsewhere = Forward { internal_ip: ip("10.0.9.9"), ..wanted[0] };
        assert_eq!(
            forward_changes(&[elsewhere, wanted[1]], &wanted, false),
            [Change::RemoveForward(elsewhere), Change::AddForward(wanted[0])]
        );
        // Removing takes away only what is this VM's.
        assert_eq!(forward_changes(&[elsewhere, wanted[1]], &wanted, true), [Change::RemoveForward(wanted[1])]);
        assert_eq!(forward_changes(&[], &wanted, true), []);
    }

    #[test]
    fn script_calls_have_the_routers_argument_order() {
        let (mask, gw) = (ip("255.255.255.0"), ip("192.168.56.1"));
        let set = Change::SetVmIp { index: 1, ip: ip("192.168.56.105") }.command(mask, gw);
        assert_eq!(set.argv(), ["setup_ip_vm.sh", "1", "192.168.56.105", "255.255.255.0", "192.168.56.1"]);
        let w = forward(Vmid::new(101).unwrap(), ip("192.168.56.104"), 22, 22);
        assert_eq!(
            Change::AddForward(w).command(mask, gw).argv(),
            ["setup_port_forward.sh", "192.168.56.104", "10122", "10.0.1.1", "22"]
        );
        assert_eq!(Change::RemoveForward(w).command(mask, gw).argv(), ["remove_port_forward.sh", "192.168.56.104", "10122"]);
    }

    #[test]
    fn vm_ips_change_only_where_router_and_settings_agree() {
        let current: BTreeMap<u8, Ipv4Addr> = [(0, ip("192.168.56.104")), (1, ip("192.168.56.105"))].into();
        let new = ip("192.168.56.106");
        assert_eq!(vm_ip_changes(&current, 2, new, true).unwrap(), [Change::SetVmIp { index: 2, ip: new }]);
        assert_eq!(vm_ip_changes(&current, 1, ip("192.168.56.105"), true).unwrap(), []);
        assert_eq!(
            vm_ip_changes(&current, 1, ip("192.168.56.105"), false).unwrap(),
            [Change::RemoveVmIp { index: 1, ip: ip("192.168.56.105") }]
        );
        assert_eq!(vm_ip_changes(&current, 2, new, false).unwrap(), []);
        let err = vm_ip_changes(&current, 2, ip("192.168.56.105"), true).unwrap_err();
        assert!(err.contains("the router has 192.168.56.105 as VM-management IP 1, the settings as 2"), "{err}");
    }

    #[test]
    fn one_external_port_is_asked_for_once() {
        let vmid = Vmid::new(101).unwrap();
        let mut wanted = service_forwards(vmid, ip("192.168.56.104"), &[Service::Ssh]);
        assert!(check_distinct(&wanted).is_ok());
        wanted.push(forward(vmid, ip("192.168.56.104"), 22, 2222));
        assert_eq!(check_distinct(&wanted).unwrap_err(), "external port 10122 is asked for twice");
    }

    #[test]
    fn the_routers_lists_are_read_and_garbage_refused() {
        let ips = parse_vm_ips("0 192.168.56.104\n1 192.168.56.105\n").unwrap();
        assert_eq!(ips.get(&1), Some(&ip("192.168.56.105")));
        let fw = parse_forwards("192.168.56.104 10122 10.0.1.1 22\n").unwrap();
        assert_eq!(fw[0].internal_port, 22);
        let err = parse_forwards("192.168.56.104 10122\n").unwrap_err().to_string();
        assert_eq!(err, "unexpected output of `list_port_forwards.sh` - '192.168.56.104 10122' does not have 4 fields");
        assert!(parse_vm_ips("x 1.2.3.4").unwrap_err().to_string().contains("'x' is not a number"));
    }
}
