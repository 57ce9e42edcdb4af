//! When each node was last seen in this node's quorate partition (SPEC section 8): the
//! reconcile loop records it every second; a new master reads it to know how long a lost node
//! has been gone, and so whether it has fenced itself. Times are the boot clock
//! ([`crate::clock::boot_ms`]). A record the loop has not refreshed for [`STALE`] proves no
//! absence: its reader counts a node as gone only since it looked itself (or since the node
//! was last seen, if later).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::state_file::StateFile;

/// A record older than this is unknown, not evidence: the loop that writes it every second
/// stopped, or this node was out of the quorum itself.
pub const STALE: Duration = Duration::from_secs(3);

/// When each node was last seen in this node's quorate partition (boot clock, milliseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSeen {
    pub nodes: BTreeMap<String, u64>,
    /// When the loop last looked while quorate.
    #[serde(default)]
    pub checked_ms: u64,
}

/// `/run/dlll-cias/last-seen.json`, written by the reconcile loop every second.
impl StateFile for LastSeen {
    const NAME: &'static str = "last-seen.json";
}

impl LastSeen {
    /// Notes that `online` are in the quorate partition at `now_ms`.
    pub fn record<'a>(&mut self, online: impl IntoIterator<Item = &'a str>, now_ms: u64) {
        for node in online {
            self.nodes.insert(node.to_string(), now_ms);
        }
        self.checked_ms = now_ms;
    }

    /// How long `node` has been out of the partition: `None` when it was never seen, or when
    /// the record is stale.
    pub fn lost_for(&self, node: &str, now_ms: u64) -> Option<Duration> {
        if now_ms.saturating_sub(self.checked_ms) > STALE.as_millis() as u64 {
            return None;
        }
        self.nodes.get(node).map(|seen| Duration::from_millis(now_ms.saturating_sub(*seen)))
    }

    /// How long each of `nodes` has been gone at `now_ms`; a node this record cannot vouch for
    /// counts as gone since `first_look_ms`, when its reader first looked (or since it was last
    /// seen in a stale record, if that is later: it may have been there until then).
    pub fn absences<'a>(
        &self,
        nodes: impl IntoIterator<Item = &'a str>,
        now_ms: u64,
        first_look_ms: u64,
    ) -> BTreeMap<String, Duration> {
        let since = |ms: u64| Duration::from_millis(now_ms.saturating_sub(ms));
        let gone = |n: &str| match (self.lost_for(n, now_ms), self.nodes.get(n)) {
            (Some(known), _) => known,
            (None, Some(&seen)) => since(seen.max(first_look_ms)),
            (None, None) => since(first_look_ms),
        };
        nodes.into_iter().map(|n| (n.to_string(), gone(n))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_stale_record_is_unknown_not_lost() {
        let mut seen = LastSeen::default();
        seen.record(["node1", "node2"], 10_000);
        seen.record(["node2"], 20_000);
        assert_eq!(seen.lost_for("node1", 23_000), Some(Duration::from_secs(13)));
        assert_eq!(seen.lost_for("node1", 23_001), None, "nobody refreshed it for 3 s");
        let gone = seen.absences(["node1", "node3"], 22_000, 21_000);
        assert_eq!(gone["node1"], Duration::from_secs(12));
        assert_eq!(gone["node3"], Duration::from_secs(1), "never seen: gone since the first look");
        let stale = seen.absences(["node1", "node2"], 30_000, 19_000);
        assert_eq!(stale["node1"], Duration::from_secs(11), "stale: since the first look");
        assert_eq!(stale["node2"], Duration::from_secs(10), "stale, but seen after the first look");
    }
}
