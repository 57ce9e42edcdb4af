//! VMID <-> internal address (SPEC section 3): `X*1000 + A*100 + B` <-> `10.X.A.B`.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::PlanError;

/// The router's VMID; never a normal VM.
pub const ROUTER_VMID: u32 = 100;
/// The smallest and largest VM VMIDs (10.0.1.1 and 10.250.5.99).
pub const MIN_VMID: u32 = 101;
pub const MAX_VMID: u32 = 250_599;
/// Highest VM-management IP index X.
pub const MAX_EXTERNAL_INDEX: u8 = 250;
/// Number of valid VM VMIDs: 251 indexes x 5 x 99.
pub const VMID_COUNT: usize = 251 * 5 * 99;

/// A valid VM VMID, decomposed into its plan digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vmid {
    /// X: external VM-management IP index, 0..=250.
    external_index: u8,
    /// A: 1..=5.
    a: u8,
    /// B: 1..=99.
    b: u8,
}

impl Vmid {
    /// Validates a numeric VMID.
    pub fn new(vmid: u64) -> Result<Self, PlanError> {
        if vmid == u64::from(ROUTER_VMID) {
            return Err(PlanError::RouterVmid(ROUTER_VMID));
        }
        let invalid = |reason| PlanError::Vmid { vmid, reason };
        if !(u64::from(MIN_VMID)..=u64::from(MAX_VMID)).contains(&vmid) {
            return Err(invalid("VMIDs for VMs run from 101 to 250599"));
        }
        let (x, a, b) = (vmid / 1000, (vmid / 100) % 10, vmid % 100);
        if b == 0 {
            return Err(invalid("the last two digits must be 01..99"));
        }
        if !(1..=5).contains(&a) {
            return Err(invalid("the hundreds digit must be 1..5"));
        }
        // Range check above bounds x to 0..=250.
        Ok(Self { external_index: x as u8, a: a as u8, b: b as u8 })
    }

    /// The VMID of an internal VM address `10.X.A.B`.
    pub fn from_ip(ip: Ipv4Addr) -> Result<Self, PlanError> {
        let [first, x, a, b] = ip.octets();
        let invalid = |reason: &str| PlanError::VmIp { ip: ip.to_string(), reason: reason.to_string() };
        if first != 10 {
            return Err(invalid("VM addresses are 10.X.A.B inside 10.0.0.0/8"));
        }
        if ip == Ipv4Addr::new(10, 0, 0, 254) {
            return Err(invalid("it is the router's LAN address (VMID 100)"));
        }
        match x {
            254 => return Err(invalid("10.254.x.x holds the Proxmox nodes and the master VIP")),
            253 => return Err(invalid("10.253.x.x holds the NAS servers")),
            super::DHCP_SECOND_OCTET => {
                return Err(invalid("10.251.x.x is the router's temporary DHCP range"))
            }
            x if x > MAX_EXTERNAL_INDEX => {
                return Err(invalid("the second octet (external index X) must be 0..250"))
            }
            _ => {}
        }
        if !(1..=5).contains(&a) {
            return Err(invalid("the third octet must be 1..5"));
        }
        if !(1..=99).contains(&b) {
            return Err(invalid("the fourth octet must be 1..99"));
        }
        Ok(Self { external_index: x, a, b })
    }

    /// Every valid VM VMID in ascending order (124,245 of them).
    pub fn all() -> impl Iterator<Item = Vmid> {
        (0..=MAX_EXTERNAL_INDEX).flat_map(|external_index| {
            (1..=5u8).flat_map(move |a| (1..=99u8).map(move |b| Vmid { external_index, a, b }))
        })
    }

    pub fn number(self) -> u32 {
        u32::from(self.external_index) * 1000 + u32::from(self.a) * 100 + u32::from(self.b)
    }

    /// The VM's internal address `10.X.A.B`.
    pub fn internal_ip(self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.external_index, self.a, self.b)
    }

    /// X: which VM-management IP forwards to this VM.
    pub fn external_index(self) -> u8 {
        self.external_index
    }

    /// The hundreds digit A (1..=5) and the last two digits B (1..=99).
    pub fn block_digits(self) -> (u8, u8) {
        (self.a, self.b)
    }
}

impl fmt::Display for Vmid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

impl FromStr for Vmid {
    type Err = PlanError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let number: u64 = s.trim().parse().map_err(|_| PlanError::VmidNotNumber(s.to_string()))?;
        Self::new(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        assert_eq!(Vmid::new(101).unwrap().internal_ip(), Ipv4Addr::new(10, 0, 1, 1));
        assert_eq!(Vmid::new(10501).unwrap().internal_ip(), Ipv4Addr::new(10, 10, 5, 1));
        assert_eq!(Vmid::new(250599).unwrap().internal_ip(), Ipv4Addr::new(10, 250, 5, 99));
        assert_eq!(Vmid::new(9151).unwrap().internal_ip(), Ipv4Addr::new(10, 9, 1, 51));
    }

    #[test]
    fn every_valid_vmid_round_trips_and_the_count_matches_the_plan() {
        let mut count = 0;
        let mut previous = 0;
        for vmid in Vmid::all() {
            assert!(vmid.number() > previous, "ascending order");
            previous = vmid.number();
            assert_eq!(Vmid::new(u64::from(vmid.number())), Ok(vmid));
            assert_eq!(Vmid::from_ip(vmid.internal_ip()), Ok(vmid));
            assert_eq!(vmid.to_string().parse::<Vmid>(), Ok(vmid));
            count += 1;
        }
        assert_eq!(count, VMID_COUNT);
        assert_eq!(count, 124_245);
    }

    #[test]
    fn exactly_the_plan_vmids_are_valid() {
        let valid: std::collections::HashSet<u32> = Vmid::all().map(Vmid::number).collect();
        for n in 0..=260_000u32 {
            assert_eq!(Vmid::new(u64::from(n)).is_ok(), valid.contains(&n), "VMID {n}");
        }
    }

    #[test]
    fn invalid_vmids_say_why() {
        let msg = |n: u64| Vmid::new(n).unwrap_err().to_string();
        assert_eq!(msg(1100), "VMID 1100 is invalid: the last two digits must be 01..99");
        assert_eq!(msg(1050), "VMID 1050 is invalid: the hundreds digit must be 1..5");
        assert_eq!(msg(1650), "VMID 1650 is invalid: the hundreds digit must be 1..5");
        assert_eq!(msg(99), "VMID 99 is invalid: VMIDs for VMs run from 101 to 250599");
        assert_eq!(msg(0), "VMID 0 is invalid: VMIDs for VMs run from 101 to 250599");
        assert_eq!(msg(251101), "VMID 251101 is invalid: VMIDs for VMs run from 101 to 250599");
        assert_eq!(msg(100), "VMID 100 is reserved for the router (Zentyal) and is not a normal VM");
        assert!(matches!("abc".parse::<Vmid>(), Err(PlanError::VmidNotNumber(_))));
        assert!(matches!("-5".parse::<Vmid>(), Err(PlanError::VmidNotNumber(_))));
    }

    #[test]
    fn invalid_ips_say_why() {
        let msg = |s: &str| Vmid::from_ip(s.parse().unwrap()).unwrap_err().to_string();
        assert_eq!(
            msg("192.168.1.1"),
            "192.168.1.1 is not a VM address: VM addresses are 10.X.A.B inside 10.0.0.0/8"
        );
        assert!(msg("10.0.0.254").contains("router"));
        assert!(msg("10.254.1.1").contains("Proxmox nodes"));
        assert!(msg("10.253.1.1").contains("NAS"));
        assert!(msg("10.251.3.4").contains("DHCP"));
        assert!(msg("10.252.1.1").contains("second octet"));
        assert!(msg("10.1.0.1").contains("third octet must be 1..5"));
        assert!(msg("10.1.6.1").contains("third octet must be 1..5"));
        assert!(msg("10.1.1.0").contains("fourth octet must be 1..99"));
        assert!(msg("10.1.1.100").contains("fourth octet must be 1..99"));
    }
}
