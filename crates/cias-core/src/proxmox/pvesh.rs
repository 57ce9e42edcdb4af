//! `pvesh get ... --output-format json`: cluster status, resources, nodes.

use serde::Deserialize;

use super::FormatError;
use crate::host::Command;

/// `pvesh get PATH --output-format json` (read-only).
pub fn get_json(path: &str) -> Command {
    Command::query_argv(&["pvesh", "get", path, "--output-format", "json"])
}

/// `pvesh get /cluster/resources --type vm --output-format json`.
pub fn vm_resources_command() -> Command {
    Command::query_argv(&["pvesh", "get", "/cluster/resources", "--type", "vm", "--output-format", "json"])
}

/// pvesh prints booleans as 0/1.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(u8::deserialize(d)? != 0)
}

/// One entry of `/cluster/status`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClusterStatusEntry {
    Cluster {
        name: String,
        nodes: u32,
        #[serde(deserialize_with = "flag")]
        quorate: bool,
        version: u32,
    },
    Node {
        name: String,
        #[serde(default)]
        ip: Option<String>,
        nodeid: u32,
        #[serde(deserialize_with = "flag")]
        online: bool,
        #[serde(deserialize_with = "flag")]
        local: bool,
    },
}

/// Whether `/cluster/status` says quorate, and the names of the nodes online in this
/// partition. A node in no cluster has no `cluster` entry: never quorate.
pub fn partition(entries: &[ClusterStatusEntry]) -> (bool, Vec<&str>) {
    let quorate = entries.iter().any(|e| matches!(e, ClusterStatusEntry::Cluster { quorate: true, .. }));
    let online = entries
        .iter()
        .filter_map(|e| match e {
            ClusterStatusEntry::Node { name, online: true, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    (quorate, online)
}

/// One VM of `/cluster/resources --type vm`. Runtime fields vanish when a node's data expires.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VmResource {
    pub vmid: u32,
    pub node: String,
    pub status: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub maxmem: Option<u64>,
    #[serde(default)]
    pub mem: Option<u64>,
    #[serde(default)]
    pub lock: Option<String>,
    #[serde(default, deserialize_with = "optional_flag")]
    pub template: bool,
}

fn optional_flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<u8>::deserialize(d)?.unwrap_or(0) != 0)
}

/// One node of `/nodes`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NodeEntry {
    pub node: String,
    /// `online`, `offline` or `unknown`.
    pub status: String,
    #[serde(default)]
    pub mem: Option<u64>,
    #[serde(default)]
    pub maxmem: Option<u64>,
    #[serde(default)]
    pub ssl_fingerprint: Option<String>,
}

/// Parses pvesh JSON into `T`, naming the path on failure.
pub fn parse<T: serde::de::DeserializeOwned>(command: &'static str, json: &str) -> Result<T, FormatError> {
    serde_json::from_str(json).map_err(|e| FormatError::new(command, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_status_sample() {
        let entries: Vec<ClusterStatusEntry> =
            parse("pvesh get /cluster/status", include_str!("../../testdata/proxmox/cluster-status.json"))
                .unwrap();
        assert_eq!(
            entries[0],
            ClusterStatusEntry::Cluster { name: "prod".into(), nodes: 2, quorate: false, version: 3 }
        );
        assert!(
            matches!(&entries[2], ClusterStatusEntry::Node { name, online: false, local: false, .. } if name == "pve2")
        );
    }

    #[test]
    fn vm_resources_sample() {
        let vms: Vec<VmResource> = parse(
            "pvesh get /cluster/resources",
            include_str!("../../testdata/proxmox/cluster-resources-vm.json"),
        )
        .unwrap();
        assert_eq!(vms[0].vmid, 100);
        assert_eq!(vms[0].maxmem, Some(4_294_967_296));
        assert_eq!(vms[0].name.as_deref(), Some("web01"));
        assert_eq!((vms[1].status.as_str(), vms[1].mem), ("unknown", None));
    }

    #[test]
    fn not_json_is_a_format_error_naming_the_command() {
        let err = parse::<Vec<NodeEntry>>("pvesh get /nodes", "proxy handler failed").unwrap_err();
        assert!(err.to_string().starts_with("unexpected output of `pvesh get /nodes` - "), "{err}");
    }

    #[test]
    fn commands_are_exact_argv() {
        assert_eq!(
            vm_resources_command().argv(),
            ["pvesh", "get", "/cluster/resources", "--type", "vm", "--output-format", "json"]
        );
        assert!(!get_json("/nodes").changes_state());
    }
}
