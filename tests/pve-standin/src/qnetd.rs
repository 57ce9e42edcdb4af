//! `pve-standin qnetd`: the QDevice arbiter (corosync-qnetd's role) that the lab runs on its
//! NAS. Real corosync-qnetd cannot serve the stand-in's nodes, which run no corosync: here each
//! node's membership service ([`crate::heartbeat`]) reports its partition to the arbiter every
//! half second (UDP, [`PORT`]) and gets the arbiter's vote, or not. The decision follows qnetd's
//! `ffsplit` algorithm ([`Arbiter::vote`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::UdpSocket;

use crate::cluster::{now_ms, HEARTBEAT_TIMEOUT_MS};
use crate::Result;

/// corosync-qnetd's port.
pub const PORT: u16 = 5403;

/// What one node last reported: its node id and the members of its partition.
#[derive(Debug, Clone)]
struct Report {
    nodeid: u32,
    partition: BTreeSet<String>,
    at_ms: u64,
}

/// One cluster's arbitration.
#[derive(Debug, Default)]
pub struct Arbiter {
    reports: BTreeMap<String, Report>,
    /// The partition that had the vote last.
    holder: Option<BTreeSet<String>>,
}

impl Arbiter {
    /// Records `node`'s report and says whether its partition has the vote. `ffsplit`
    /// (qnetd-algo-ffsplit.c): exactly one partition gets it - the one with more nodes; on a
    /// tie the one that overlaps the partition that had it, if only one does ("keep active
    /// partition"); then the one with the lowest node id (`tie_breaker: lowest`). Like qnetd,
    /// which waits for a stable membership, it decides only when every live node's partition
    /// is reported alike by all its members; until then nobody gets the vote. A node silent
    /// for a heartbeat timeout is gone.
    pub fn vote(&mut self, node: &str, nodeid: u32, partition: BTreeSet<String>, now_ms: u64) -> bool {
        self.reports.insert(node.to_string(), Report { nodeid, partition, at_ms: now_ms });
        self.reports.retain(|_, r| now_ms.saturating_sub(r.at_ms) < HEARTBEAT_TIMEOUT_MS);
        let settled = |members: &BTreeSet<String>| {
            members.iter().all(|m| self.reports.get(m).is_some_and(|r| &r.partition == members))
        };
        if !self.reports.values().all(|r| settled(&r.partition)) {
            return false;
        }
        let candidates: BTreeSet<&BTreeSet<String>> = self.reports.values().map(|r| &r.partition).collect();
        let overlaps_holder = |p: &BTreeSet<String>| self.holder.as_ref().is_some_and(|h| !h.is_disjoint(p));
        let keeps = candidates.iter().filter(|p| overlaps_holder(p)).count() == 1;
        let lowest_id = |p: &BTreeSet<String>| {
            p.iter().filter_map(|m| self.reports.get(m)).map(|r| r.nodeid).min().unwrap_or(u32::MAX)
        };
        let winner = candidates
            .iter()
            .max_by_key(|p| (p.len(), keeps && overlaps_holder(p), std::cmp::Reverse(lowest_id(p))))
            .map(|p| (*p).clone());
        let mine = self.reports.get(node).map(|r| r.partition.clone());
        self.holder = winner;
        self.holder.is_some() && self.holder == mine
    }
}

/// Serves every cluster that reports to it, until killed.
pub fn run() -> Result<u8> {
    let socket = UdpSocket::bind(("0.0.0.0", PORT))?;
    let mut clusters: BTreeMap<String, Arbiter> = BTreeMap::new();
    loop {
        let mut buf = [0u8; 2048];
        let Ok((len, from)) = socket.recv_from(&mut buf) else { continue };
        let text = String::from_utf8_lossy(&buf[..len]).to_string();
        let Some(request) = Request::parse(&text) else { continue };
        let arbiter = clusters.entry(request.cluster.clone()).or_default();
        let granted = arbiter.vote(&request.node, request.nodeid, request.partition, now_ms());
        let _ = socket.send_to(reply(&request.cluster, granted).as_bytes(), from);
    }
}

/// `vote CLUSTER NODEID NODE MEMBER,MEMBER,...`: a node's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub cluster: String,
    pub nodeid: u32,
    pub node: String,
    pub partition: BTreeSet<String>,
}

impl Request {
    pub fn to_message(&self) -> String {
        let members: Vec<&str> = self.partition.iter().map(String::as_str).collect();
        format!("vote {} {} {} {}", self.cluster, self.nodeid, self.node, members.join(","))
    }

    pub fn parse(text: &str) -> Option<Request> {
        let mut words = text.strip_prefix("vote ")?.split(' ');
        let cluster = words.next()?.to_string();
        let nodeid = words.next()?.parse().ok()?;
        let node = words.next()?.to_string();
        let partition = words.next()?.split(',').filter(|m| !m.is_empty()).map(str::to_string).collect();
        Some(Request { cluster, nodeid, node, partition })
    }
}

/// Whether an arbiter answers at `address` (asked as a cluster of no members).
pub fn answers(address: &str) -> bool {
    let Ok(socket) = UdpSocket::bind("0.0.0.0:0") else { return false };
    let _ = socket.set_read_timeout(Some(std::time::Duration::from_millis(500)));
    let probe = Request { cluster: "-".into(), nodeid: 0, node: "-".into(), partition: BTreeSet::new() };
    (0..4).any(|_| {
        let mut buf = [0u8; 256];
        socket.send_to(probe.to_message().as_bytes(), (address, PORT)).is_ok()
            && socket.recv_from(&mut buf).is_ok_and(|(len, _)| buf[..len].starts_with(b"qvote "))
    })
}

/// The arbiter's answer: `qvote CLUSTER yes|no`.
pub fn reply(cluster: &str, granted: bool) -> String {
    format!("qvote {cluster} {}", if granted { "yes" } else { "no" })
}

/// Whether `text` is the arbiter's answer granting `cluster` the vote; `None` when it is no answer.
pub fn parse_reply(text: &str, cluster: &str) -> Option<bool> {
    let rest = text.strip_prefix("qvote ")?.strip_prefix(cluster)?.strip_prefix(' ')?;
    match rest {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_whole_cluster_gets_the_vote_once_every_member_reports_it() {
        let mut a = Arbiter::default();
        assert!(!a.vote("node1", 1, set(&["node1", "node2"]), 0));
        assert!(a.vote("node2", 2, set(&["node1", "node2"]), 100));
        assert!(a.vote("node1", 1, set(&["node1", "node2"]), 500));
    }

    #[test]
    fn the_survivor_of_a_dead_node_gets_it_once_the_dead_nodes_report_is_gone() {
        let mut a = Arbiter::default();
        a.vote("node1", 1, set(&["node1", "node2"]), 0);
        a.vote("node2", 2, set(&["node1", "node2"]), 0);
        // node1 died at 0: node2 sees itself alone; until node1's last report ({node1, node2})
        // is gone, the membership is not stable.
        assert!(!a.vote("node2", 2, set(&["node2"]), 2500));
        assert!(a.vote("node2", 2, set(&["node2"]), 3000));
        assert!(a.vote("node2", 2, set(&["node2"]), HEARTBEAT_TIMEOUT_MS + 100));
    }

    #[test]
    fn never_two_partitions_at_once_whatever_order_the_reports_come_in() {
        for first in ["node1", "node2"] {
            let mut a = Arbiter::default();
            a.vote("node1", 1, set(&["node1", "node2"]), 0);
            a.vote("node2", 2, set(&["node1", "node2"]), 0);
            // The split: each side reports itself alone, in either order.
            for (t, who) in [(1000, first), (1001, if first == "node1" { "node2" } else { "node1" })] {
                let id = if who == "node1" { 1 } else { 2 };
                a.vote(who, id, set(&[who]), t);
            }
            for t in (1500..6000).step_by(500) {
                let one = a.vote("node1", 1, set(&["node1"]), t);
                let two = a.vote("node2", 2, set(&["node2"]), t + 1);
                assert!(!(one && two), "both sides had the vote at {t} (first: {first})");
                assert!(one, "the lowest node id's side keeps it");
            }
        }
    }

    #[test]
    fn an_even_split_keeps_the_vote_with_one_side_only() {
        let mut a = Arbiter::default();
        a.vote("node1", 1, set(&["node1", "node2"]), 0);
        a.vote("node2", 2, set(&["node1", "node2"]), 0);
        // Split at 1000: both report alone; the lowest node id wins, and keeps it.
        let two = a.vote("node2", 2, set(&["node2"]), 1000);
        let one = a.vote("node1", 1, set(&["node1"]), 1001);
        assert!(one && !two);
        for t in (1500..20_000).step_by(500) {
            assert!(!a.vote("node2", 2, set(&["node2"]), t));
            assert!(a.vote("node1", 1, set(&["node1"]), t + 1));
        }
    }

    #[test]
    fn a_partition_holding_the_vote_keeps_it_on_a_tie() {
        let mut a = Arbiter::default();
        // node1 was gone; node2 alone got the vote.
        assert!(a.vote("node2", 2, set(&["node2"]), 0));
        // node1 comes back but cannot reach node2: same size, node2 keeps the vote (it overlaps
        // the partition that had it; node1 does not).
        assert!(!a.vote("node1", 1, set(&["node1"]), 100));
        assert!(a.vote("node2", 2, set(&["node2"]), 200));
    }

    #[test]
    fn requests_and_replies_read_back() {
        let r = Request {
            cluster: "lab".into(),
            nodeid: 2,
            node: "node2".into(),
            partition: set(&["node1", "node2"]),
        };
        assert_eq!(r.to_message(), "vote lab 2 node2 node1,node2");
        assert_eq!(Request::parse(&r.to_message()), Some(r));
        assert_eq!(parse_reply(&reply("lab", true), "lab"), Some(true));
        assert_eq!(parse_reply(&reply("lab", false), "lab"), Some(false));
        assert_eq!(parse_reply(&reply("other", true), "lab"), None);
    }
}
