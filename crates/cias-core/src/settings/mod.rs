//! Cluster settings: one YAML file in the management directory (`/data/cias/cias.yaml`),
//! shared by every node, and a separate secrets file of mode 0600 (see [`secrets`]).
//!
//! Loading is strict: unknown keys are rejected, and every address is checked against the
//! others (see [`ClusterSettings::problems`]). Errors name the file, the line and the field.

mod locate;
pub mod secrets;
mod validate;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use secrets::{Secret, Secrets};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// Proxmox cluster name (at most 15 characters).
    #[serde(default = "default_cluster_name")]
    pub cluster_name: String,
    /// DNS domain of node hostnames, e.g. `example.com`.
    pub domain: String,
    /// Where reports go.
    pub admin_email: String,
    pub external: ExternalNetwork,
    #[serde(default)]
    pub internal: InternalNetwork,
    #[serde(default)]
    pub interfaces: Interfaces,
    #[serde(default)]
    pub vrrp: Vrrp,
    #[serde(default)]
    pub moosefs: MooseFs,
    #[serde(default)]
    pub smtp: Smtp,
    #[serde(default)]
    pub uplink: Uplink,
    #[serde(default)]
    pub fencing: Fencing,
    #[serde(default)]
    pub placement: Placement,
    #[serde(default)]
    pub watch: Watch,
    #[serde(default)]
    pub alerts: Alerts,
    #[serde(default)]
    pub backups: Backups,
}

/// The external network (SPEC section 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalNetwork {
    /// e.g. `192.168.56.0/24`
    pub network: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// The master's external IP, a keepalived VIP.
    pub master_ip: Ipv4Addr,
    /// The router's "Proxmox management" IP (also its web GUI).
    pub router_proxmox_ip: Ipv4Addr,
    /// The router's "NAS management" IP.
    pub router_nas_ip: Ipv4Addr,
    /// The router's "VM management" IPs; list index = X of the VMIDs it forwards (1..251 IPs).
    pub router_vm_ips: Vec<Ipv4Addr>,
}

/// The fixed-plan internal network `10.0.0.0/8`: only the two service addresses are chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InternalNetwork {
    /// The router's LAN address and the internal gateway (`cias-router`).
    pub router_ip: Ipv4Addr,
    /// The master's internal VIP (`cias-pve-master`).
    pub master_vip: Ipv4Addr,
}

impl Default for InternalNetwork {
    fn default() -> Self {
        Self { router_ip: Ipv4Addr::new(10, 0, 0, 254), master_vip: Ipv4Addr::new(10, 254, 0, 254) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Interfaces {
    /// Interface carrying the internal network and the internal VIP.
    pub lan: String,
    /// Interface carrying the external master IP.
    pub wan: String,
}

impl Default for Interfaces {
    fn default() -> Self {
        Self { lan: "vmbr0".into(), wan: "vmbr0".into() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Vrrp {
    /// VRRP router id shared by all nodes (1..255); must be unique on the network.
    pub virtual_router_id: u16,
    /// Advertisement interval in seconds (1..255); failover takes about 3 of them.
    pub advert_int: u16,
}

impl Default for Vrrp {
    fn default() -> Self {
        Self { virtual_router_id: 51, advert_int: 1 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MooseFs {
    /// Only this network may mount (SPEC section 4: `10.254.0.0/16`).
    pub exports_network: Ipv4Net,
    /// Trash time of `/mnt/mfs`, seconds (short: space comes back soon after a delete).
    pub trash_time_secs: u32,
    /// Reconnection delay of chunkservers and metaloggers, seconds (measured: 1 s brings
    /// mounts back about 6.5 s after a master failure; the default 5 s takes 14-17 s).
    pub reconnection_delay_secs: u32,
    /// File system for data disks.
    pub disk_filesystem: DiskFilesystem,
}

impl Default for MooseFs {
    fn default() -> Self {
        Self {
            exports_network: Ipv4Net::new(Ipv4Addr::new(10, 254, 0, 0), 16).expect("valid prefix"),
            trash_time_secs: 3600,
            reconnection_delay_secs: 1,
            disk_filesystem: DiskFilesystem::Ext4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFilesystem {
    Ext4,
    Xfs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    /// Sender address of reports.
    pub from: String,
    /// Login name; the password lives in the secrets file.
    pub username: Option<String>,
}

impl Default for Smtp {
    fn default() -> Self {
        Self { host: "localhost".into(), port: 25, from: "dlll-cias@localhost".into(), username: None }
    }
}

/// The uplink check (SPEC section 4): a node from which none of the targets answers a ping
/// powers off after `shutdown_after_mins`, its VMs stopped cleanly first (`cias_core::uplink`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Uplink {
    /// Addresses pinged; any answer counts. Empty: the external gateway, 8.8.8.8 and 1.1.1.1
    /// (see [`ClusterSettings::uplink_targets`]). `target:` (one address) is read as a list.
    #[serde(alias = "target", deserialize_with = "one_or_many")]
    pub targets: Vec<Ipv4Addr>,
    pub shutdown_after_mins: u32,
}

impl Default for Uplink {
    fn default() -> Self {
        Self { targets: Vec::new(), shutdown_after_mins: 15 }
    }
}

/// Reads an address or a list of addresses as a list (files written before `uplink.targets`
/// had one `target`).
pub fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Ipv4Addr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Ipv4Addr),
        Many(Vec<Ipv4Addr>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(a) => vec![a],
        OneOrMany::Many(v) => v,
    })
}

/// Self-fencing and recovery timing (SPEC section 7, split brain and fencing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fencing {
    /// A node outside the quorate partition this long stops its own VMs.
    pub delay_secs: u32,
    /// The quorate side recovers a lost node's VMs only after it has been gone for
    /// `delay_secs + margin_secs`: the margin covers both sides' detection lag and the stop.
    pub margin_secs: u32,
}

impl Default for Fencing {
    fn default() -> Self {
        Self { delay_secs: 10, margin_secs: 5 }
    }
}

impl Fencing {
    /// How long a lost node must have been gone before its VMs are recovered elsewhere.
    pub fn recovery_wait(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.delay_secs) + u64::from(self.margin_secs))
    }
}

/// Where VMs go when they leave a node (see [`crate::placement`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Placement {
    /// A node receives VMs only while its memory in use stays at or under this percentage of
    /// its total (1..100), so it keeps room for its own VMs' growth and the host.
    pub max_memory_percent: u8,
}

impl Default for Placement {
    fn default() -> Self {
        Self { max_memory_percent: 90 }
    }
}

/// The master's node check (`dlll_cias-watch nodes`, SPEC section 4 and scenario 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Watch {
    /// A node silent this long, in seconds, is removed from the cluster (default 30 minutes).
    /// The check runs every 5 minutes, so a removal comes at the first check after the timer;
    /// a short value (lab tests) still needs two checks that find the node silent.
    pub node_removal_secs: u32,
}

impl Default for Watch {
    fn default() -> Self {
        Self { node_removal_secs: 1800 }
    }
}

impl Watch {
    /// How long a node must have been silent before it is removed.
    pub fn node_removal(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.node_removal_secs))
    }
}

/// Mails about a condition that lasts (a service that cannot start, an old router copy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    /// The same condition is mailed again at most once per this many minutes (default 360).
    pub repeat_after_mins: u32,
}

impl Default for Alerts {
    fn default() -> Self {
        Self { repeat_after_mins: 360 }
    }
}

/// Backups (SPEC section 4): the weekly jobs and the router's local copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backups {
    /// vzdump's compression of the weekly backup of every VM but the router: `zstd`, `gzip`,
    /// `lzo` or `0` (none). The router's is never compressed: it is restored in a hurry.
    pub compress: String,
    /// The administrator is told once the router's local copy is older than this many days
    /// and no newer one can be copied (MooseFS down, or no newer backup).
    pub local_copy_max_age_days: u32,
    /// Where a VM is restored while MooseFS is down (the router from its local copy): a
    /// storage of each node for VM disks. Proxmox names it `local-lvm` on a fresh install
    /// (`local-zfs` on ZFS).
    pub local_storage: String,
}

impl Default for Backups {
    fn default() -> Self {
        Self { compress: "gzip".into(), local_copy_max_age_days: 8, local_storage: "local-lvm".into() }
    }
}

fn default_cluster_name() -> String {
    "DLLL-CIAS".into()
}

/// Why a settings or secrets file could not be used. Always names the file.
#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("cannot read {file} - {reason}")]
    Read { file: PathBuf, reason: std::io::Error },
    #[error("cannot write {file} - {reason}")]
    Write { file: PathBuf, reason: std::io::Error },
    #[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Syntax { file: PathBuf, line: Option<usize>, message: String },
    #[error("{file}{}: {field}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid { file: PathBuf, line: Option<usize>, field: String, message: String },
    #[error(
        "{file} is readable by group or others (mode {mode:04o}); it holds passwords: run `chmod 600 {file}`"
    )]
    SecretsExposed { file: PathBuf, mode: u32 },
}

impl ClusterSettings {
    /// The sample settings of `testdata/cias.yaml`, for tests.
    #[cfg(all(test, feature = "cluster"))]
    pub(crate) fn sample() -> Self {
        Self::parse(include_str!("../../testdata/cias.yaml"), Path::new("cias.yaml"))
            .expect("the sample is valid")
    }

    /// What the uplink check pings: `uplink.targets`, or by default the external gateway,
    /// 8.8.8.8 and 1.1.1.1 (the nodes reach all three through the router).
    pub fn uplink_targets(&self) -> Vec<Ipv4Addr> {
        if self.uplink.targets.is_empty() {
            vec![self.external.gateway, Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(1, 1, 1, 1)]
        } else {
            self.uplink.targets.clone()
        }
    }

    /// Reads and validates a settings file.
    pub fn load(file: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(file)
            .map_err(|source| SettingsError::Read { file: file.into(), reason: source })?;
        Self::parse(&text, file)
    }

    /// Parses and validates settings text; `file` is only used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Self, SettingsError> {
        let settings: Self = serde_yaml::from_str(text).map_err(|e| SettingsError::Syntax {
            file: file.into(),
            line: e.location().map(|l| l.line()),
            message: strip_location(&e.to_string()),
        })?;
        if let Some(issue) = settings.problems().into_iter().next() {
            return Err(SettingsError::Invalid {
                file: file.into(),
                line: locate::line_of(text, &issue.field),
                field: issue.field,
                message: issue.message,
            });
        }
        Ok(settings)
    }

    /// Every rule this settings value breaks, most basic first (empty when valid).
    pub fn problems(&self) -> Vec<validate::Problem> {
        validate::problems(self)
    }

    /// [`Self::problems`] and the stricter rules for a cluster being installed.
    pub fn new_cluster_problems(&self) -> Vec<validate::Problem> {
        validate::new_cluster_problems(self)
    }

    /// Serialises the settings (validated first, so an invalid file is never written).
    pub fn to_yaml(&self) -> Result<String, SettingsError> {
        if let Some(issue) = self.problems().into_iter().next() {
            return Err(SettingsError::Invalid {
                file: PathBuf::from("(new settings)"),
                line: None,
                field: issue.field,
                message: issue.message,
            });
        }
        serde_yaml::to_string(self).map_err(|e| SettingsError::Syntax {
            file: PathBuf::from("(new settings)"),
            line: None,
            message: e.to_string(),
        })
    }

    /// The external VM-management IP of index X, when configured.
    pub fn vm_management_ip(&self, index: u8) -> Option<Ipv4Addr> {
        self.external.router_vm_ips.get(usize::from(index)).copied()
    }
}

pub use validate::{check_interface_name, Problem};

/// serde_yaml appends "at line L column C"; we print the line our own way.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests;
