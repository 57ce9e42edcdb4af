//! How the installer's keepalived priority becomes a VRRP priority (SPEC section 7).
//!
//! Administrators choose 0..100 (default 50). keepalived accepts 1..255 and falls back to 100
//! for anything else, so 0 ("never master") cannot be written as a priority: such a node runs
//! no VRRP instance. 1..100 are used as they are. The manual switch uses [`SWITCH_PRIORITY`],
//! above every normal priority and below 255 (255 means "address owner" and would cancel
//! nopreempt).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The priority a node takes while a manual switch makes it win the election.
pub const SWITCH_PRIORITY: u8 = 254;
/// The default installer priority.
pub const DEFAULT_PRIORITY: u8 = 50;

/// The installer's priority, 0..=100; 0 means the node never becomes master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Priority(u8);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("priority {0} is invalid: choose 0..100 (0 = this node never becomes master)")]
pub struct PriorityError(pub String);

impl Priority {
    pub const NEVER_MASTER: Priority = Priority(0);

    pub fn new(value: u8) -> Result<Self, PriorityError> {
        if value <= 100 {
            Ok(Self(value))
        } else {
            Err(PriorityError(value.to_string()))
        }
    }

    pub fn value(self) -> u8 {
        self.0
    }

    pub fn can_be_master(self) -> bool {
        self.0 > 0
    }

    /// The keepalived priority, or `None` for a node that never becomes master.
    pub fn vrrp(self) -> Option<u8> {
        self.can_be_master().then_some(self.0)
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self(DEFAULT_PRIORITY)
    }
}

impl TryFrom<u8> for Priority {
    type Error = PriorityError;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Priority> for u8 {
    fn from(p: Priority) -> u8 {
        p.0
    }
}

impl FromStr for Priority {
    type Err = PriorityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value: u8 = s.trim().parse().map_err(|_| PriorityError(s.to_string()))?;
        Self::new(value)
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_map_to_valid_vrrp_values() {
        assert_eq!(Priority::new(0).unwrap().vrrp(), None);
        assert_eq!(Priority::new(1).unwrap().vrrp(), Some(1));
        assert_eq!(Priority::new(100).unwrap().vrrp(), Some(100));
        assert_eq!(Priority::default().vrrp(), Some(50));
        const { assert!(SWITCH_PRIORITY > 100 && SWITCH_PRIORITY < 255) };
    }

    #[test]
    fn out_of_range_priorities_say_why() {
        assert_eq!(
            "101".parse::<Priority>().unwrap_err().to_string(),
            "priority 101 is invalid: choose 0..100 (0 = this node never becomes master)"
        );
        assert!("999".parse::<Priority>().is_err());
        assert!("high".parse::<Priority>().is_err());
    }
}
