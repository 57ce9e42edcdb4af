//! Proxmox node and NAS addresses and hostnames (SPEC section 2).
//!
//! Nodes are `10.254.R.N` (R 1..5, N 1..254) plus `10.254.0.1`, the address the first node
//! takes; NAS servers are `10.253.R.N`. Hostnames are `pve.<rack>.<slot>.<R>-<N>.<domain>`
//! and `nas.<rack>.<slot>.<R>-<N>.<domain>`.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::PlanError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A Proxmox VE node.
    Pve,
    /// An optional NAS server (NFS only).
    Nas,
}

impl NodeKind {
    fn second_octet(self) -> u8 {
        match self {
            NodeKind::Pve => 254,
            NodeKind::Nas => 253,
        }
    }

    /// The hostname's first label.
    pub fn prefix(self) -> &'static str {
        match self {
            NodeKind::Pve => "pve",
            NodeKind::Nas => "nas",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            NodeKind::Pve => "Proxmox node",
            NodeKind::Nas => "NAS",
        }
    }

    /// The network every address of this kind is in (`10.254.0.0/16` for nodes).
    pub fn network(self) -> ipnet::Ipv4Net {
        ipnet::Ipv4Net::new(Ipv4Addr::new(10, self.second_octet(), 0, 0), 16).expect("valid prefix")
    }

    /// Every address of this kind, in allocation order.
    pub fn addresses(self) -> impl Iterator<Item = NodeAddress> {
        let first = (self == NodeKind::Pve).then_some(NodeAddress { kind: self, r: 0, n: 1 });
        first
            .into_iter()
            .chain((1..=5u8).flat_map(move |r| (1..=254u8).map(move |n| NodeAddress { kind: self, r, n })))
    }
}

/// A node or NAS address of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeAddress {
    kind: NodeKind,
    r: u8,
    n: u8,
}

impl NodeAddress {
    pub fn new(kind: NodeKind, r: u8, n: u8) -> Result<Self, PlanError> {
        Self::from_ip(kind, Ipv4Addr::new(10, kind.second_octet(), r, n))
    }

    pub fn from_ip(kind: NodeKind, ip: Ipv4Addr) -> Result<Self, PlanError> {
        let [first, second, r, n] = ip.octets();
        let invalid = |reason| PlanError::NodeIp { ip: ip.to_string(), kind: kind.describe(), reason };
        if first != 10 || second != kind.second_octet() {
            return Err(invalid(match kind {
                NodeKind::Pve => "Proxmox nodes are 10.254.R.N",
                NodeKind::Nas => "NAS servers are 10.253.R.N",
            }));
        }
        let first_node = kind == NodeKind::Pve && r == 0 && n == 1;
        if !first_node && !(1..=5).contains(&r) {
            return Err(invalid("R (the third octet) must be 1..5"));
        }
        if !(1..=254).contains(&n) {
            return Err(invalid("N (the fourth octet) must be 1..254"));
        }
        Ok(Self { kind, r, n })
    }

    pub fn kind(self) -> NodeKind {
        self.kind
    }

    pub fn ip(self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.kind.second_octet(), self.r, self.n)
    }

    /// `R-N`, the hostname label that encodes the address.
    pub fn label(self) -> String {
        format!("{}-{}", self.r, self.n)
    }
}

/// A node or NAS hostname, `<pve|nas>.<rack>.<slot>.<R>-<N>.<domain>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hostname {
    pub address: NodeAddress,
    pub rack: String,
    pub slot: String,
    pub domain: String,
}

impl Hostname {
    pub fn new(address: NodeAddress, rack: &str, slot: &str, domain: &str) -> Result<Self, PlanError> {
        let name = format!("{}.{rack}.{slot}.{}.{domain}", address.kind.prefix(), address.label());
        let invalid = |reason: String| PlanError::Hostname { name: name.clone(), reason };
        check_label(rack).map_err(|r| invalid(format!("the rack {r}")))?;
        check_label(slot).map_err(|r| invalid(format!("the slot {r}")))?;
        check_domain(domain).map_err(invalid)?;
        if name.len() > 253 {
            return Err(invalid("it is longer than 253 characters".into()));
        }
        Ok(Self { address, rack: rack.into(), slot: slot.into(), domain: domain.into() })
    }

    /// The address the hostname encodes.
    pub fn ip(&self) -> Ipv4Addr {
        self.address.ip()
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}.{}",
            self.address.kind.prefix(),
            self.rack,
            self.slot,
            self.address.label(),
            self.domain
        )
    }
}

impl FromStr for Hostname {
    type Err = PlanError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let invalid =
            |reason: &str| PlanError::Hostname { name: name.to_string(), reason: reason.to_string() };
        let mut labels = name.splitn(5, '.');
        let (Some(prefix), Some(rack), Some(slot), Some(rn), Some(domain)) =
            (labels.next(), labels.next(), labels.next(), labels.next(), labels.next())
        else {
            return Err(invalid("expected pve.<rack>.<slot>.<R>-<N>.<domain>"));
        };
        let kind = match prefix {
            "pve" => NodeKind::Pve,
            "nas" => NodeKind::Nas,
            _ => return Err(invalid("the first label must be 'pve' or 'nas'")),
        };
        let (r, n) = rn
            .split_once('-')
            .and_then(|(r, n)| Some((r.parse::<u8>().ok()?, n.parse::<u8>().ok()?)))
            .ok_or_else(|| invalid("the fourth label must be <R>-<N>, e.g. 1-1"))?;
        let address = NodeAddress::new(kind, r, n).map_err(|e| invalid(&e.to_string()))?;
        Hostname::new(address, rack, slot, domain)
    }
}

/// Checks one DNS label (RFC 1123, lowercase): returns what is wrong.
fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() || label.len() > 63 {
        return Err(format!("'{label}' must be 1..63 characters"));
    }
    if !label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(format!("'{label}' may contain only a-z, 0-9 and '-'"));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("'{label}' must not start or end with '-'"));
    }
    Ok(())
}

/// Checks a DNS domain such as `example.com`.
pub fn check_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("the domain is empty".into());
    }
    domain.split('.').try_for_each(check_label).map_err(|r| format!("the domain label {r}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_parse_spec_example() {
        let addr = NodeAddress::new(NodeKind::Pve, 1, 1).unwrap();
        let host = Hostname::new(addr, "master-rack", "a", "example.com").unwrap();
        assert_eq!(host.to_string(), "pve.master-rack.a.1-1.example.com");
        assert_eq!(host.ip(), Ipv4Addr::new(10, 254, 1, 1));
        assert_eq!("pve.master-rack.a.1-1.example.com".parse::<Hostname>().unwrap(), host);
        let nas: Hostname = "nas.master-rack.a.2-7.example.com".parse().unwrap();
        assert_eq!(nas.ip(), Ipv4Addr::new(10, 253, 2, 7));
    }

    #[test]
    fn first_node_address_is_0_1_and_only_for_proxmox() {
        assert_eq!(NodeKind::Pve.addresses().next().unwrap().ip(), Ipv4Addr::new(10, 254, 0, 1));
        assert_eq!(NodeKind::Nas.addresses().next().unwrap().ip(), Ipv4Addr::new(10, 253, 1, 1));
        assert!(NodeAddress::new(NodeKind::Nas, 0, 1).is_err());
        assert!(NodeAddress::new(NodeKind::Pve, 0, 2).is_err());
        assert_eq!(NodeKind::Pve.addresses().count(), 1 + 5 * 254);
    }

    #[test]
    fn invalid_hostnames_say_why() {
        let msg = |s: &str| s.parse::<Hostname>().unwrap_err().to_string();
        assert!(msg("pve.rack.a.1-1").contains("expected pve.<rack>.<slot>.<R>-<N>.<domain>"));
        assert!(msg("web.rack.a.1-1.example.com").contains("'pve' or 'nas'"));
        assert!(msg("pve.rack.a.6-1.example.com").contains("R (the third octet) must be 1..5"));
        assert!(msg("pve.rack.a.1-255.example.com").contains("N (the fourth octet) must be 1..254"));
        assert!(msg("pve.rack.a.1-300.example.com").contains("<R>-<N>"));
        assert!(msg("pve.rack.a.1-0.example.com").contains("N (the fourth octet) must be 1..254"));
        assert!(msg("pve.Rack.a.1-1.example.com").contains("the rack 'Rack' may contain only"));
        assert!(msg("pve.rack.-a.1-1.example.com").contains("the slot '-a' must not start"));
        assert!(msg("pve.rack.a.1-1.exa_mple.com").contains("domain label"));
    }

    #[test]
    fn invalid_node_ips_say_why() {
        let msg = |s: &str| NodeAddress::from_ip(NodeKind::Pve, s.parse().unwrap()).unwrap_err().to_string();
        assert_eq!(
            msg("10.253.1.1"),
            "10.253.1.1 is not a Proxmox node address: Proxmox nodes are 10.254.R.N"
        );
        assert!(msg("10.254.0.254").contains("R (the third octet) must be 1..5"));
        assert!(msg("10.254.1.255").contains("N (the fourth octet) must be 1..254"));
    }
}
