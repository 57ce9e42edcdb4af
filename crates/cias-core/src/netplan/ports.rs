//! Port forwarding (SPEC section 3, the DLLL-CIAS router convention): VMID `X·A·BB` owns the
//! port block `ABB`, i.e. external ports `ABB00..ABB99` on VM-management IP number X; the last
//! two digits name the service.

use std::fmt;

use serde::Serialize;

use super::{PlanError, Vmid};

/// A well-known service forward: external port suffix -> VM port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Http,
    Https,
    Ssh,
    Rdp,
}

impl Service {
    pub const ALL: [Service; 4] = [Service::Http, Service::Https, Service::Ssh, Service::Rdp];

    /// The last two digits of the external port.
    pub fn suffix(self) -> u16 {
        match self {
            Service::Http => 80,
            Service::Https => 43,
            Service::Ssh => 22,
            Service::Rdp => 89,
        }
    }

    /// The port inside the VM.
    pub fn vm_port(self) -> u16 {
        match self {
            Service::Http => 80,
            Service::Https => 443,
            Service::Ssh => 22,
            Service::Rdp => 3389,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Service::Http => "http",
            Service::Https => "https",
            Service::Ssh => "ssh",
            Service::Rdp => "rdp",
        }
    }

    fn from_suffix(suffix: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.suffix() == suffix)
    }
}

/// The port block `ABB` (101..=599) of a VMID: external ports `ABB00..=ABB99`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PortBlock(u16);

/// Lowest and highest forwarded external ports; all stay below 60000.
pub const MIN_PORT: u32 = 10_100;
pub const MAX_PORT: u32 = 59_999;

impl PortBlock {
    pub fn of(vmid: Vmid) -> Self {
        let (a, b) = vmid.block_digits();
        Self(u16::from(a) * 100 + u16::from(b))
    }

    pub fn number(self) -> u16 {
        self.0
    }

    /// The external port with the given last two digits (0..=99).
    pub fn port(self, suffix: u16) -> u16 {
        debug_assert!(suffix < 100);
        self.0 * 100 + suffix
    }

    pub fn service_port(self, service: Service) -> u16 {
        self.port(service.suffix())
    }

    /// Which VM (on VM-management IP `external_index`) and which suffix an external port forwards to.
    pub fn resolve(external_index: u32, port: u32) -> Result<Forward, PlanError> {
        let invalid = |reason| PlanError::Port { port, reason };
        if !(MIN_PORT..=MAX_PORT).contains(&port) {
            return Err(invalid("forwarded ports run from 10100 to 59999"));
        }
        let (block, suffix) = (port / 100, port % 100);
        if block % 100 == 0 {
            return Err(invalid("ports ABB00..ABB99 need BB in 01..99 (e.g. 10100..10199)"));
        }
        if external_index > u32::from(super::vmid::MAX_EXTERNAL_INDEX) {
            return Err(PlanError::ExternalIndex(external_index));
        }
        let vmid = Vmid::new(u64::from(external_index * 1000 + block))?;
        let suffix = suffix as u16;
        Ok(Forward { vmid, suffix, service: Service::from_suffix(suffix) })
    }
}

impl fmt::Display for PortBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where an external port leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub vmid: Vmid,
    /// The last two digits of the external port.
    pub suffix: u16,
    /// The well-known service, when the suffix names one; other suffixes are custom forwards.
    pub service: Option<Service>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vmid(n: u64) -> Vmid {
        Vmid::new(n).unwrap()
    }

    #[test]
    fn spec_examples() {
        let block = PortBlock::of(vmid(10501));
        assert_eq!(block.number(), 501);
        assert_eq!(block.service_port(Service::Http), 50180);
        assert_eq!(block.service_port(Service::Https), 50143);
        assert_eq!(block.service_port(Service::Ssh), 50122);
        assert_eq!(block.service_port(Service::Rdp), 50189);
        assert_eq!(PortBlock::of(vmid(9151)).service_port(Service::Ssh), 15122);
    }

    #[test]
    fn every_vmid_has_ports_in_range_that_resolve_back() {
        for v in Vmid::all() {
            let block = PortBlock::of(v);
            for suffix in [0, 22, 43, 80, 89, 99] {
                let port = u32::from(block.port(suffix));
                assert!((MIN_PORT..=MAX_PORT).contains(&port));
                let fwd = PortBlock::resolve(u32::from(v.external_index()), port).unwrap();
                assert_eq!((fwd.vmid, fwd.suffix), (v, suffix));
            }
        }
    }

    #[test]
    fn blocks_of_one_external_ip_never_overlap() {
        let mut seen = std::collections::HashSet::new();
        for v in Vmid::all().filter(|v| v.external_index() == 0) {
            assert!(seen.insert(PortBlock::of(v)), "block of {v} reused");
        }
        assert_eq!(seen.len(), 495);
    }

    #[test]
    fn services_are_named_by_suffix() {
        assert_eq!(PortBlock::resolve(9, 15122).unwrap().service, Some(Service::Ssh));
        assert_eq!(PortBlock::resolve(9, 15150).unwrap().service, None);
    }

    #[test]
    fn invalid_ports_say_why() {
        let msg = |x, p| PortBlock::resolve(x, p).unwrap_err().to_string();
        assert_eq!(
            msg(0, 8080),
            "port 8080 is not a forwarded VM port: forwarded ports run from 10100 to 59999"
        );
        assert_eq!(
            msg(0, 60000),
            "port 60000 is not a forwarded VM port: forwarded ports run from 10100 to 59999"
        );
        assert!(msg(0, 20050).contains("BB in 01..99"));
        assert_eq!(msg(251, 10122), "VM-management IP index 251 is invalid: it must be 0..250");
    }
}
