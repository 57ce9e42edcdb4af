use thiserror::Error;

/// Why an address-plan input is invalid. Each message says what is wrong and what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    #[error("VMID {0} is reserved for the router (Zentyal) and is not a normal VM")]
    RouterVmid(u32),
    #[error("VMID {vmid} is invalid: {reason}")]
    Vmid { vmid: u64, reason: &'static str },
    #[error("VMID '{0}' is invalid: it is not a number (VMIDs for VMs run from 101 to 250599)")]
    VmidNotNumber(String),
    #[error("{ip} is not a VM address: {reason}")]
    VmIp { ip: String, reason: String },
    #[error("port {port} is not a forwarded VM port: {reason}")]
    Port { port: u32, reason: &'static str },
    #[error("VM-management IP index {0} is invalid: it must be 0..250")]
    ExternalIndex(u32),
    #[error("hostname '{name}' is invalid: {reason}")]
    Hostname { name: String, reason: String },
    #[error("{ip} is not a {kind} address: {reason}")]
    NodeIp { ip: String, kind: &'static str, reason: &'static str },
    #[error("no free {kind} address left: all {capacity} addresses have been used once (addresses are never reused)")]
    Exhausted { kind: &'static str, capacity: usize },
    #[error("{what} '{value}' is already in the registry (used by {owner}); addresses and hostnames are never reused")]
    AlreadyUsed { what: &'static str, value: String, owner: String },
    #[error("'{0}' is not in the registry")]
    UnknownNode(String),
}
