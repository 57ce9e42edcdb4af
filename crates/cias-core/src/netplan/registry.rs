//! The cluster-wide registry of node and NAS addresses (`registry.yaml` in the management
//! directory). Entries are never deleted, only marked removed, so an address or hostname is
//! never handed out twice: reusing a hostname breaks the Proxmox cluster.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::{Hostname, NodeKind, PlanError};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    #[serde(default)]
    pub entries: Vec<RegistryEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryEntry {
    pub kind: NodeKind,
    pub hostname: String,
    pub ip: Ipv4Addr,
    /// Set when the node left the cluster; the entry stays so nothing is reused.
    #[serde(default)]
    pub removed: bool,
    /// The Proxmox node name (the host name up to its first dot), which Proxmox cannot take
    /// twice either: recorded by the installer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
}

impl Registry {
    /// Hands out the next address of `kind` that was never used, with its hostname.
    pub fn allocate(
        &mut self,
        kind: NodeKind,
        rack: &str,
        slot: &str,
        domain: &str,
    ) -> Result<Hostname, PlanError> {
        let address = kind
            .addresses()
            .find(|a| !self.entries.iter().any(|e| e.ip == a.ip()))
            .ok_or(PlanError::Exhausted { kind: kind.prefix(), capacity: kind.addresses().count() })?;
        let hostname = Hostname::new(address, rack, slot, domain)?;
        self.record(&hostname)?;
        Ok(hostname)
    }

    /// Records a hostname chosen elsewhere (e.g. a node installed by hand); refuses reuse.
    pub fn record(&mut self, hostname: &Hostname) -> Result<(), PlanError> {
        let name = hostname.to_string();
        if let Some(e) = self.entries.iter().find(|e| e.ip == hostname.ip()) {
            return Err(PlanError::AlreadyUsed {
                what: "address",
                value: e.ip.to_string(),
                owner: e.hostname.clone(),
            });
        }
        if let Some(e) = self.entries.iter().find(|e| e.hostname == name) {
            return Err(PlanError::AlreadyUsed { what: "hostname", value: name, owner: e.ip.to_string() });
        }
        self.entries.push(RegistryEntry {
            kind: hostname.address.kind(),
            hostname: name,
            ip: hostname.ip(),
            removed: false,
            node_name: None,
        });
        Ok(())
    }

    /// The entry of the node whose Proxmox node name is `name` (removed ones included).
    pub fn by_node_name(&self, name: &str) -> Option<&RegistryEntry> {
        self.entries.iter().find(|e| e.node_name.as_deref() == Some(name))
    }

    /// The node called `name` in Proxmox: its existing entry when it has one (a re-run), else a
    /// new address and hostname. A name a removed node had is refused, as Proxmox would.
    pub fn claim_for_node(
        &mut self,
        name: &str,
        kind: NodeKind,
        rack: &str,
        slot: &str,
        domain: &str,
    ) -> Result<RegistryEntry, PlanError> {
        if let Some(entry) = self.by_node_name(name) {
            if entry.removed {
                return Err(PlanError::AlreadyUsed {
                    what: "node name",
                    value: name.to_string(),
                    owner: format!("{} (removed from the cluster)", entry.hostname),
                });
            }
            return Ok(entry.clone());
        }
        self.allocate(kind, rack, slot, domain)?;
        let entry = self.entries.last_mut().expect("just allocated");
        entry.node_name = Some(name.to_string());
        Ok(entry.clone())
    }

    /// Marks a node as gone (by hostname or address); its address stays taken.
    pub fn retire(&mut self, node: &str) -> Result<(), PlanError> {
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.hostname == node || e.ip.to_string() == node)
            .ok_or_else(|| PlanError::UnknownNode(node.to_string()))?;
        entry.removed = true;
        Ok(())
    }

    /// Nodes of `kind` still in the cluster.
    pub fn active(&self, kind: NodeKind) -> impl Iterator<Item = &RegistryEntry> {
        self.entries.iter().filter(move |e| e.kind == kind && !e.removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(reg: &mut Registry, kind: NodeKind) -> String {
        reg.allocate(kind, "master-rack", "a", "example.com").unwrap().to_string()
    }

    #[test]
    fn allocates_in_order_starting_with_the_first_node_address() {
        let mut reg = Registry::default();
        assert_eq!(alloc(&mut reg, NodeKind::Pve), "pve.master-rack.a.0-1.example.com");
        assert_eq!(alloc(&mut reg, NodeKind::Pve), "pve.master-rack.a.1-1.example.com");
        assert_eq!(alloc(&mut reg, NodeKind::Nas), "nas.master-rack.a.1-1.example.com");
        assert_eq!(alloc(&mut reg, NodeKind::Pve), "pve.master-rack.a.1-2.example.com");
    }

    #[test]
    fn a_removed_node_address_is_never_reused() {
        let mut reg = Registry::default();
        alloc(&mut reg, NodeKind::Pve);
        let second = alloc(&mut reg, NodeKind::Pve);
        reg.retire(&second).unwrap();
        assert_eq!(alloc(&mut reg, NodeKind::Pve), "pve.master-rack.a.1-2.example.com");
        assert_eq!(reg.active(NodeKind::Pve).count(), 2);
        let yaml = serde_yaml::to_string(&reg).unwrap();
        let mut back: Registry = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(alloc(&mut back, NodeKind::Pve), "pve.master-rack.a.1-3.example.com");
    }

    #[test]
    fn recording_a_used_address_or_hostname_is_refused() {
        let mut reg = Registry::default();
        let first = reg.allocate(NodeKind::Pve, "r", "a", "example.com").unwrap();
        let err = reg.record(&first).unwrap_err().to_string();
        assert!(err.contains("address '10.254.0.1' is already in the registry"), "{err}");
        let mut other_rack = first.clone();
        other_rack.rack = "other".into();
        assert!(reg.record(&other_rack).is_err(), "same address, other name");
    }

    #[test]
    fn a_node_claims_its_entry_once_and_a_removed_name_is_refused() {
        let mut reg = Registry::default();
        let first = reg.claim_for_node("node1", NodeKind::Pve, "r", "a", "example.com").unwrap();
        let again = reg.claim_for_node("node1", NodeKind::Pve, "r", "a", "example.com").unwrap();
        assert_eq!((first.ip, again.ip), (Ipv4Addr::new(10, 254, 0, 1), Ipv4Addr::new(10, 254, 0, 1)));
        let second = reg.claim_for_node("node2", NodeKind::Pve, "r", "a", "example.com").unwrap();
        assert_eq!(second.ip, Ipv4Addr::new(10, 254, 1, 1));
        reg.retire(&second.hostname).unwrap();
        let err = reg.claim_for_node("node2", NodeKind::Pve, "r", "a", "example.com").unwrap_err();
        assert!(err.to_string().contains("node name 'node2'"), "{err}");
    }

    #[test]
    fn exhaustion_is_an_error_not_a_reuse() {
        let mut reg = Registry::default();
        for _ in 0..NodeKind::Nas.addresses().count() {
            alloc(&mut reg, NodeKind::Nas);
        }
        let err = reg.allocate(NodeKind::Nas, "r", "a", "example.com").unwrap_err();
        assert_eq!(err, PlanError::Exhausted { kind: "nas", capacity: 1270 });
    }
}
