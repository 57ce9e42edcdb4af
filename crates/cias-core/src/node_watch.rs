//! The master's node check (SPEC section 4, scenario 6): `dlll_cias-watch nodes`, every 5
//! minutes, looks at every member of the cluster once, remembers since when each silent node
//! has been silent, and decides which to remove. The decisions ([`Failures::sweep`]) are pure
//! and tested on a virtual clock; the look itself ([`probe_all`]) is plain TCP.
//!
//! A node "answers" when it accepts a TCP connection on the cluster's SSH port within
//! [`PROBE_TIMEOUT`]: its kernel, network and sshd are up. One connect per node, many at
//! once, so a sweep of 1,270 live nodes takes well under a second (an SSH session each would
//! take minutes). A node whose sshd is down counts as silent: the removal could not reach it
//! either. A node whose kernel answers but whose services hang is the reconcile loop's
//! business (it fences itself when it loses quorum), not this check's.
//!
//! Removal needs a majority: only while the members that answer (this node included) are
//! more than half of all members. Otherwise this node may be the one cut off, or half the
//! cluster may be down at once (a power cut), and removing the silent half would leave a
//! cluster that only exists on this side. Nothing is removed then, and the administrator is
//! told once.
//!
//! The state lives on shared storage ([`Failures::file`]) so a new master continues the old
//! one's timers. Its times are wall-clock seconds (the boot clock differs between nodes): a
//! clock stepped back only delays a removal; one stepped forward can bring it closer, by the
//! step.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::proxmox::pvesh::ClusterStatusEntry;
use crate::state_file::StateFile;

/// The port probed: the cluster's SSH (every node runs sshd; Proxmox itself needs it).
pub const PROBE_PORT: u16 = 22;
/// How long a node may take to accept the connection. A live node on the LAN answers within
/// milliseconds; a powered-off one never does, so this bounds the sweep. Long enough for the
/// kernel's first two SYN retransmissions (after 1 s and 3 s on Linux): with 1 s, one lost
/// SYN, or a SYN dropped by an sshd whose listen queue was full, ended the probe just as its
/// retry went out, and a live node counted as silent (measured in the sweep bench: 685 of
/// 1,270 loopback targets of one sshd).
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(3500);
/// Probes at once: a silent node holds one worker for [`PROBE_TIMEOUT`], so with a few dead
/// nodes among 1,270 a sweep still takes about one timeout.
pub const PROBE_WORKERS: usize = 128;
/// A look this long after the previous one starts every failure over: nobody looked in
/// between (no quorate master), so nothing is known about that time. Longer than a removal
/// may hold the watch's lock (30 minutes) plus the cron period.
pub const MAX_GAP: Duration = Duration::from_secs(3600);

/// The silent nodes, kept between looks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failures {
    /// When the last look was (unix seconds; 0 before the first).
    pub looked_secs: u64,
    /// The members that did not answer at the last look, by name.
    pub nodes: BTreeMap<String, Failure>,
}

/// One silent node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The first look that found it silent (unix seconds).
    pub since_secs: u64,
    /// Whether the administrator was told that its removal waits for a majority.
    pub refusal_told: bool,
    /// Whether the administrator was told that its removal failed (it is retried at each look).
    pub removal_failure_told: bool,
}

impl Failure {
    fn silent_for(&self, now_secs: u64) -> Duration {
        Duration::from_secs(now_secs.saturating_sub(self.since_secs))
    }
}

/// What one look found, in the order to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The first look after `gap` without any: the failures known before were forgotten.
    StartOver { gap: Duration },
    /// A remembered node is no longer a member (removed, by this watch or by hand): forgotten.
    Left { node: String },
    /// A silent node answers again: forgotten, nothing is done.
    Back { node: String, after: Duration },
    /// A member does not answer, for the first time in this episode: tell the administrator.
    FirstFailure { node: String },
    /// Silent for the removal timer or longer, and a majority answers: remove it.
    Remove { node: String, failed_for: Duration },
    /// These nodes are due for removal but too few members answer: tell the administrator
    /// (once per node and episode; the removal waits).
    RemovalRefused { nodes: Vec<String>, why: String },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::StartOver { gap } => {
                write!(f, "no look for {}: every failure starts over", span(*gap))
            }
            Finding::Left { node } => write!(f, "{node} is no longer a member: forgotten"),
            Finding::Back { node, after } => write!(f, "{node} answers again (after {})", span(*after)),
            Finding::FirstFailure { node } => write!(f, "{node} does not answer"),
            Finding::Remove { node, failed_for } => {
                write!(f, "remove {node} (silent for {})", span(*failed_for))
            }
            Finding::RemovalRefused { nodes, why } => write!(f, "not removing {}: {why}", nodes.join(", ")),
        }
    }
}

/// `/mnt/mfs/cias/node-watch.json`: on shared storage, so it survives a change of master.
impl StateFile for Failures {
    const NAME: &'static str = "node-watch.json";

    fn file() -> PathBuf {
        Path::new(crate::paths::SHARED_MANAGEMENT_DIR).join(Self::NAME)
    }
}

impl Failures {
    /// One look at `now_secs`: `members` of the cluster, the ones that `answered` (`me`, the
    /// node looking, always counts as answering and is never removed). `remove_after` is the
    /// removal timer.
    pub fn sweep(
        &mut self,
        members: &[&str],
        answered: &BTreeSet<String>,
        me: &str,
        now_secs: u64,
        remove_after: Duration,
    ) -> Vec<Finding> {
        let mut findings = Vec::new();
        let gap = Duration::from_secs(now_secs.saturating_sub(self.looked_secs));
        if !self.nodes.is_empty() && gap > MAX_GAP {
            self.nodes.clear();
            findings.push(Finding::StartOver { gap });
        }
        self.looked_secs = now_secs;

        let left: Vec<String> =
            self.nodes.keys().filter(|n| !members.contains(&n.as_str())).cloned().collect();
        for node in left {
            self.nodes.remove(&node);
            findings.push(Finding::Left { node });
        }
        let answers = |node: &str| node == me || answered.contains(node);
        for &node in members {
            match (answers(node), self.nodes.get(node)) {
                (true, Some(failure)) => {
                    let after = failure.silent_for(now_secs);
                    self.nodes.remove(node);
                    findings.push(Finding::Back { node: node.to_string(), after });
                }
                (false, None) => {
                    let failure =
                        Failure { since_secs: now_secs, refusal_told: false, removal_failure_told: false };
                    self.nodes.insert(node.to_string(), failure);
                    findings.push(Finding::FirstFailure { node: node.to_string() });
                }
                _ => {}
            }
        }

        let due: Vec<&String> = self
            .nodes
            .iter()
            .filter(|(_, f)| f.silent_for(now_secs) >= remove_after)
            .map(|(n, _)| n)
            .collect();
        if due.is_empty() {
            return findings;
        }
        let answering = members.iter().filter(|n| answers(n)).count();
        if 2 * answering > members.len() {
            // Removing a silent node lowers the member count and keeps every answering one,
            // so the majority that holds now holds after each removal too.
            findings.extend(due.into_iter().map(|node| Finding::Remove {
                node: node.clone(),
                failed_for: self.nodes[node].silent_for(now_secs),
            }));
        } else {
            let nodes: Vec<String> = due.into_iter().cloned().collect();
            let mut untold = false;
            for node in &nodes {
                if let Some(failure) = self.nodes.get_mut(node) {
                    untold |= !std::mem::replace(&mut failure.refusal_told, true);
                }
            }
            if untold {
                let why = format!(
                    "only {answering} of the {} members answer (this one included), not a majority",
                    members.len()
                );
                findings.push(Finding::RemovalRefused { nodes, why });
            }
        }
        findings
    }

    /// After a removal of `node` that did not succeed (it is retried at the next look):
    /// whether to tell the administrator, once per episode.
    pub fn removal_failed(&mut self, node: &str) -> bool {
        match self.nodes.get_mut(node) {
            Some(failure) if !failure.removal_failure_told => {
                failure.removal_failure_told = true;
                true
            }
            _ => false,
        }
    }
}

/// A member of the cluster as `/cluster/status` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// Its cluster address; pmxcfs may not know an offline node's.
    pub address: Option<IpAddr>,
    /// Whether corosync sees it in this partition.
    pub online: bool,
}

/// Every member in `/cluster/status`, in its order.
pub fn members(entries: &[ClusterStatusEntry]) -> Vec<Member> {
    entries
        .iter()
        .filter_map(|e| match e {
            ClusterStatusEntry::Node { name, ip, online, .. } => Some(Member {
                name: name.clone(),
                address: ip.as_deref().and_then(|ip| ip.parse().ok()),
                online: *online,
            }),
            _ => None,
        })
        .collect()
}

/// The members that answer: `me` without a probe, the others through `probe` (given name and
/// address, it returns the names that answered, e.g. [`probe_all`]). A member without a known
/// address cannot be probed: corosync's view decides for it (an online member has one, so
/// this is an offline node, silent).
pub fn look(
    members: &[Member],
    me: &str,
    probe: impl FnOnce(&[(String, IpAddr)]) -> BTreeSet<String>,
) -> BTreeSet<String> {
    let targets: Vec<(String, IpAddr)> =
        members.iter().filter(|m| m.name != me).filter_map(|m| Some((m.name.clone(), m.address?))).collect();
    let mut answered = probe(&targets);
    answered.extend(
        members.iter().filter(|m| m.name == me || (m.address.is_none() && m.online)).map(|m| m.name.clone()),
    );
    answered
}

/// The names of `addresses` that accept a TCP connection on `port` within `timeout`, probed
/// by up to `parallel` threads at once.
pub fn probe_all(
    addresses: &[(String, IpAddr)],
    port: u16,
    timeout: Duration,
    parallel: usize,
) -> BTreeSet<String> {
    answering(addresses, parallel, |ip| {
        TcpStream::connect_timeout(&SocketAddr::new(ip, port), timeout).is_ok()
    })
}

/// The names of `addresses` for which `check` holds, checked by up to `parallel` threads at once.
pub fn answering(
    addresses: &[(String, IpAddr)],
    parallel: usize,
    check: impl Fn(IpAddr) -> bool + Sync,
) -> BTreeSet<String> {
    let next = AtomicUsize::new(0);
    let worker = || {
        let mut answered = Vec::new();
        while let Some((name, ip)) = addresses.get(next.fetch_add(1, Ordering::Relaxed)) {
            if check(*ip) {
                answered.push(name.clone());
            }
        }
        answered
    };
    std::thread::scope(|s| {
        let workers: Vec<_> =
            (0..parallel.clamp(1, addresses.len().max(1))).map(|_| s.spawn(worker)).collect();
        workers.into_iter().flat_map(|w| w.join().expect("a probe does not panic")).collect()
    })
}

/// A duration as a person reads it in a log or a mail: seconds under two minutes, minutes
/// after.
pub fn span(d: Duration) -> String {
    match d.as_secs() {
        s if s < 120 => format!("{s} s"),
        s => format!("{} min", s / 60),
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;
    use crate::scenario_log::assert_log;

    /// A change in the virtual cluster, at a given minute.
    #[derive(Debug, Clone, Copy)]
    enum Event {
        /// The node stops answering (powered off, cable cut).
        Down(&'static str),
        /// It answers again.
        Up(&'static str),
        /// Someone removed it from the cluster by hand.
        RemovedByHand(&'static str),
        /// No quorate master runs the watch from now on.
        NoMaster,
        /// A master runs the watch again (another node, same shared state).
        MasterBack,
        /// `dlll_cias-remove-node` fails from now on.
        RemovalBreaks,
    }

    /// Runs `script` on a cluster of `members` (the first is the master, which looks) for
    /// `mins` minutes, with a look every 5 minutes (cron) and a removal timer of 30 minutes.
    /// Returns the log: events (`!`), findings (`->`) and failed removals, one line each.
    fn run(members: &[&'static str], script: &[(u64, Event)], mins: u64) -> String {
        let me = members[0];
        let mut members: Vec<&str> = members.to_vec();
        let mut down = BTreeSet::new();
        let (mut master, mut removal_works) = (true, true);
        let mut failures = Failures::default();
        let mut log = String::new();
        for t in 0..=mins {
            for (_, event) in script.iter().filter(|(at, _)| *at == t) {
                log += &format!("{t:>3} ! {event:?}\n");
                match *event {
                    Event::Down(n) => drop(down.insert(n)),
                    Event::Up(n) => drop(down.remove(n)),
                    Event::RemovedByHand(n) => members.retain(|m| *m != n),
                    Event::NoMaster => master = false,
                    Event::MasterBack => master = true,
                    Event::RemovalBreaks => removal_works = false,
                }
            }
            if t % 5 != 0 || !master {
                continue;
            }
            // What the master saves survives a master change, so a round trip through JSON
            // belongs to every look.
            failures = serde_json::from_str(&serde_json::to_string(&failures).unwrap()).unwrap();
            let answered = members.iter().filter(|m| !down.contains(*m)).map(|m| m.to_string()).collect();
            for finding in failures.sweep(&members, &answered, me, t * 60, Duration::from_secs(30 * 60)) {
                log += &format!("{t:>3}   -> {finding}\n");
                if let Finding::Remove { node, .. } = finding {
                    if removal_works {
                        members.retain(|m| *m != node);
                    } else if failures.removal_failed(&node) {
                        log += &format!("{t:>3}      removal failed: tell\n");
                    } else {
                        log += &format!("{t:>3}      removal failed (told before)\n");
                    }
                }
            }
        }
        log
    }

    const THREE: [&str; 3] = ["pve1", "pve2", "pve3"];

    #[test]
    fn a_powered_off_node_is_told_once_then_removed_after_the_timer() {
        let log = run(&THREE, &[(3, Event::Down("pve2"))], 60);
        assert_log(
            &log,
            "
          3 ! Down(\"pve2\")
          5   -> pve2 does not answer
         35   -> remove pve2 (silent for 30 min)
         40   -> pve2 is no longer a member: forgotten
        ",
        );
    }

    #[test]
    fn a_node_back_before_the_timer_is_forgotten() {
        let script = [(3, Event::Down("pve2")), (27, Event::Up("pve2")), (33, Event::Down("pve2"))];
        let log = run(&THREE, &script, 60);
        assert_log(
            &log,
            "
          3 ! Down(\"pve2\")
          5   -> pve2 does not answer
         27 ! Up(\"pve2\")
         30   -> pve2 answers again (after 25 min)
         33 ! Down(\"pve2\")
         35   -> pve2 does not answer
        ",
        );
    }

    #[test]
    fn without_a_majority_nothing_is_removed_and_that_is_told_once() {
        let script = [(3, Event::Down("pve2")), (8, Event::Down("pve3")), (52, Event::Up("pve3"))];
        let log = run(&THREE, &script, 70);
        assert_log(
            &log,
            "
          3 ! Down(\"pve2\")
          5   -> pve2 does not answer
          8 ! Down(\"pve3\")
         10   -> pve3 does not answer
         35   -> not removing pve2: only 1 of the 3 members answer (this one included), not a majority
         40   -> not removing pve2, pve3: only 1 of the 3 members answer (this one included), not a majority
         52 ! Up(\"pve3\")
         55   -> pve3 answers again (after 45 min)
         55   -> remove pve2 (silent for 50 min)
         60   -> pve2 is no longer a member: forgotten
        ",
        );
    }

    #[test]
    fn half_of_an_even_cluster_is_no_majority() {
        let script = [(1, Event::Down("pve3")), (1, Event::Down("pve4"))];
        let log = run(&["pve1", "pve2", "pve3", "pve4"], &script, 40);
        assert!(log.ends_with("35   -> not removing pve3, pve4: only 2 of the 4 members answer (this one included), not a majority\n"), "{log}");
    }

    #[test]
    fn several_nodes_due_at_once_are_all_removed_while_a_majority_answers() {
        let script = [(1, Event::Down("pve4")), (1, Event::Down("pve5"))];
        let log = run(&["pve1", "pve2", "pve3", "pve4", "pve5"], &script, 40);
        assert_log(
            &log,
            "
          1 ! Down(\"pve4\")
          1 ! Down(\"pve5\")
          5   -> pve4 does not answer
          5   -> pve5 does not answer
         35   -> remove pve4 (silent for 30 min)
         35   -> remove pve5 (silent for 30 min)
         40   -> pve4 is no longer a member: forgotten
         40   -> pve5 is no longer a member: forgotten
        ",
        );
    }

    #[test]
    fn a_node_removed_by_hand_is_forgotten() {
        let log = run(&THREE, &[(3, Event::Down("pve2")), (12, Event::RemovedByHand("pve2"))], 60);
        assert_log(
            &log,
            "
          3 ! Down(\"pve2\")
          5   -> pve2 does not answer
         12 ! RemovedByHand(\"pve2\")
         15   -> pve2 is no longer a member: forgotten
        ",
        );
    }

    #[test]
    fn a_failing_removal_is_retried_at_each_look_and_told_once() {
        let log = run(&THREE, &[(0, Event::RemovalBreaks), (3, Event::Down("pve2"))], 45);
        assert_log(
            &log,
            "
          0 ! RemovalBreaks
          3 ! Down(\"pve2\")
          5   -> pve2 does not answer
         35   -> remove pve2 (silent for 30 min)
         35      removal failed: tell
         40   -> remove pve2 (silent for 35 min)
         40      removal failed (told before)
         45   -> remove pve2 (silent for 40 min)
         45      removal failed (told before)
        ",
        );
    }

    #[test]
    fn a_new_master_continues_the_timers_but_a_long_gap_starts_them_over() {
        let script = [
            (3, Event::Down("pve2")),
            (12, Event::NoMaster),
            (14, Event::MasterBack),
            (22, Event::NoMaster),
            (100, Event::MasterBack),
        ];
        let log = run(&THREE, &script, 140);
        assert_log(
            &log,
            "
          3 ! Down(\"pve2\")
          5   -> pve2 does not answer
         12 ! NoMaster
         14 ! MasterBack
         22 ! NoMaster
        100 ! MasterBack
        100   -> no look for 80 min: every failure starts over
        100   -> pve2 does not answer
        130   -> remove pve2 (silent for 30 min)
        135   -> pve2 is no longer a member: forgotten
        ",
        );
    }

    #[test]
    fn the_looking_node_is_never_removed_even_unprobed() {
        let mut failures = Failures::default();
        let none = BTreeSet::new();
        for now in [0, 3600, 7200] {
            let findings =
                failures.sweep(&["pve1", "pve2", "pve3"], &none, "pve1", now, Duration::from_secs(60));
            assert!(!findings.iter().any(|f| f.to_string().contains("pve1")), "{findings:?}");
        }
    }

    #[test]
    fn members_come_from_cluster_status_and_unaddressed_ones_go_by_corosync() {
        let entries: Vec<ClusterStatusEntry> = crate::proxmox::pvesh::parse(
            "pvesh get /cluster/status",
            include_str!("../testdata/proxmox/cluster-status.json"),
        )
        .unwrap();
        let mut members = members(&entries);
        assert_eq!(
            members[1],
            Member { name: "pve2".into(), address: Some("10.0.0.2".parse().unwrap()), online: false }
        );
        members.push(Member { name: "pve3".into(), address: None, online: true });
        members.push(Member { name: "pve4".into(), address: None, online: false });
        let answered = look(&members, "pve1", |targets| {
            assert_eq!(targets, [("pve2".to_string(), "10.0.0.2".parse().unwrap())], "me is not probed");
            BTreeSet::from(["pve2".to_string()])
        });
        assert_eq!(answered, BTreeSet::from(["pve1", "pve2", "pve3"].map(String::from)));
    }

    #[test]
    fn probes_answer_for_an_open_port_only() {
        let open = TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let (open_port, closed_port) =
            (open.local_addr().unwrap().port(), closed.local_addr().unwrap().port());
        drop(closed);
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let answered = |port| {
            probe_all(&[("a".into(), loopback), ("b".into(), loopback)], port, Duration::from_secs(1), 64)
        };
        assert_eq!(answered(open_port), BTreeSet::from(["a".to_string(), "b".to_string()]));
        assert_eq!(answered(closed_port), BTreeSet::new());
        assert_eq!(probe_all(&[], open_port, Duration::from_secs(1), 64), BTreeSet::new());
    }

    #[test]
    fn survives_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node-watch.json");
        let mut failures = Failures::default();
        failures.sweep(&["pve1", "pve2"], &BTreeSet::new(), "pve1", 1_000, Duration::from_secs(60));
        failures.save(&file).unwrap();
        assert_eq!(Failures::load(&file), failures);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            r#"{"looked_secs":1000,"nodes":{"pve2":{"since_secs":1000,"refusal_told":false,"removal_failure_told":false}}}"#
        );
    }
}
