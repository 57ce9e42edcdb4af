//! The address plan of SPEC sections 2 and 3: pure arithmetic, no I/O.
//!
//! - [`vmid`]: VMID <-> internal address `10.X.A.B`.
//! - [`ports`]: VMID -> port-forward block `AB` and service ports on VM-management IP `X`.
//! - [`node`]: Proxmox node and NAS addresses (`10.254.R.N`, `10.253.R.N`) and hostnames.
//! - [`registry`]: the cluster-wide record that hands out node addresses and never reuses one.

mod error;
pub mod node;
pub mod ports;
pub mod registry;
pub mod vmid;

pub use error::PlanError;
pub use node::{Hostname, NodeAddress, NodeKind};
pub use ports::{PortBlock, Service};
pub use registry::{Registry, RegistryEntry};
pub use vmid::Vmid;

use std::net::Ipv4Addr;

/// The internal network every plan address lives in.
pub const INTERNAL_NETWORK: ipnet::Ipv4Net = match ipnet::Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), 8) {
    Ok(net) => net,
    Err(_) => panic!("10.0.0.0/8 is a valid network"),
};

/// Temporary DHCP addresses (`10.251.0-254.1-254`) handed out by the router.
pub const DHCP_SECOND_OCTET: u8 = 251;
