//! Self-fencing (SPEC section 7): every node watches its own quorum every second. A node that
//! leaves the quorate partition stops its mfsmaster once the loss is confirmed ([`CONFIRM`]) and, once it has been out for the
//! fence delay, its VMs, so the quorate side can safely start them elsewhere. The quorate side
//! records when it last saw each member ([`LastSeen`]) so it knows how long a node has been gone.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::state_file::StateFile;

/// Now, in unix milliseconds (the unit of [`LastSeen`]).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// When each node was last seen in this node's quorate partition (unix milliseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSeen {
    pub nodes: BTreeMap<String, u64>,
}

/// `/run/dlll-cias/last-seen.json`, written by the fence service every second. A missing or
/// unreadable record makes a new master count a node as lost from the moment it looks, which
/// only waits longer.
impl StateFile for LastSeen {
    const NAME: &'static str = "last-seen.json";
}

impl LastSeen {
    /// Notes that `online` are in the quorate partition at `now_ms`.
    pub fn record<'a>(&mut self, online: impl IntoIterator<Item = &'a str>, now_ms: u64) {
        for node in online {
            self.nodes.insert(node.to_string(), now_ms);
        }
    }

    /// How long `node` has been out of the partition, if it was ever seen in it.
    pub fn lost_for(&self, node: &str, now_ms: u64) -> Option<Duration> {
        self.nodes.get(node).map(|seen| Duration::from_millis(now_ms.saturating_sub(*seen)))
    }
}

/// What the fence service must do on this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceAction {
    /// Quorum just went: stop this node's mfsmaster (keepalived drops the VIPs by itself).
    StopMaster,
    /// Out of quorum for the fence delay: stop every VM of this node.
    StopVms,
    /// Quorum is back: this node is a plain BACKUP again.
    Rejoined,
}

/// How long quorum must stay lost before the node acts: two readings one second apart, the
/// same as keepalived's `fall 2` on the quorum check, so a one-reading blip (seen while a node
/// joins) neither drops the VIPs nor kills the master.
pub const CONFIRM: Duration = Duration::from_secs(2);

/// The self-fence state machine of one node.
#[derive(Debug, Clone, Default)]
pub struct SelfFence {
    lost_since_ms: Option<u64>,
    master_stopped: bool,
    vms_stopped: bool,
}

impl SelfFence {
    /// Feeds one quorum reading; returns what to do now.
    pub fn tick(&mut self, quorate: bool, now_ms: u64, delay: Duration) -> Vec<FenceAction> {
        if quorate {
            let acted = self.master_stopped;
            *self = Self::default();
            return if acted { vec![FenceAction::Rejoined] } else { vec![] };
        }
        let since = *self.lost_since_ms.get_or_insert(now_ms);
        let out_for = Duration::from_millis(now_ms.saturating_sub(since));
        let mut actions = vec![];
        if out_for >= CONFIRM && !self.master_stopped {
            self.master_stopped = true;
            actions.push(FenceAction::StopMaster);
        }
        if out_for >= delay.max(CONFIRM) && !self.vms_stopped {
            self.vms_stopped = true;
            // Stop the master again in case someone restarted it meanwhile.
            if !actions.contains(&FenceAction::StopMaster) {
                actions.push(FenceAction::StopMaster);
            }
            actions.push(FenceAction::StopVms);
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losing_quorum_stops_the_master_once_confirmed_and_the_vms_after_the_delay() {
        let delay = Duration::from_secs(10);
        let mut f = SelfFence::default();
        assert_eq!(f.tick(true, 0, delay), vec![]);
        assert_eq!(f.tick(false, 1_000, delay), vec![]);
        assert_eq!(f.tick(false, 3_000, delay), vec![FenceAction::StopMaster]);
        assert_eq!(f.tick(false, 10_999, delay), vec![]);
        assert_eq!(f.tick(false, 11_000, delay), vec![FenceAction::StopMaster, FenceAction::StopVms]);
        assert_eq!(f.tick(false, 12_000, delay), vec![], "VMs are stopped once");
        assert_eq!(f.tick(true, 13_000, delay), vec![FenceAction::Rejoined]);
        assert_eq!(f.tick(false, 14_000, delay), vec![], "a new loss starts over");
        assert_eq!(f.tick(false, 16_000, delay), vec![FenceAction::StopMaster]);
    }

    #[test]
    fn a_blip_shorter_than_the_confirmation_does_nothing() {
        let delay = Duration::from_secs(10);
        let mut f = SelfFence::default();
        assert_eq!(f.tick(false, 0, delay), vec![]);
        assert_eq!(f.tick(false, 1_000, delay), vec![]);
        assert_eq!(f.tick(true, 2_000, delay), vec![], "nothing was done, nothing to undo");
        assert_eq!(f.tick(true, 20_000, delay), vec![]);
    }

    #[test]
    fn last_seen_round_trips_and_measures_absence() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("last-seen.json");
        let mut seen = LastSeen::default();
        seen.record(["node1", "node2"], 1_000);
        seen.record(["node2"], 4_000);
        seen.save(&file).unwrap();
        let back = LastSeen::load(&file);
        assert_eq!(back, seen);
        assert_eq!(back.lost_for("node1", 6_000), Some(Duration::from_secs(5)));
        assert_eq!(back.lost_for("node3", 6_000), None);
        assert_eq!(LastSeen::load(&dir.path().join("missing")), LastSeen::default());
    }
}
