//! Whether the cluster heals by itself (SPEC section 7): a node that loses sight of the others
//! may act only if its side can still hold a majority of the votes, so the loss of any one node
//! must leave one. Three nodes have that, and so do two with a QDevice (corosync-qnetd on the
//! NAS or any small machine gives one side its vote). Two nodes alone do not: the survivor of
//! a dead peer cannot tell it from a cut link, so nothing may move by itself, and no node may
//! fence itself either (it would turn a failure into an outage of the whole cluster).

use std::time::Duration;

use crate::host::{Command, Host};
use crate::proxmox::corosync::{self, Votes};

/// What the cluster does when a node is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takeover {
    /// The survivors keep a majority: they take over, the lost node fences itself.
    Automatic,
    /// No majority survives a node's loss: nothing moves by itself, nobody fences.
    Off(Votes),
}

impl Takeover {
    /// From the configured votes. Only a plain configuration (one vote per node, votequorum's
    /// own arithmetic) may count as "off": anything else stays on the side that fences.
    pub fn from_votes(votes: Votes) -> Takeover {
        let expected = votes.expected();
        let left = expected.saturating_sub(1);
        if left > expected / 2 || !votes.plain {
            Takeover::Automatic
        } else {
            Takeover::Off(votes)
        }
    }

    /// This node's cluster, from corosync.conf; `None` when it cannot be read (no cluster yet,
    /// or the file is broken): callers choose the safe side.
    pub fn read(host: &dyn Host) -> Option<Takeover> {
        read_votes(host).map(Takeover::from_votes)
    }

    pub fn automatic(self) -> bool {
        self == Takeover::Automatic
    }

    /// One line for the terminal and the logs.
    pub fn summary(self) -> String {
        match self {
            Takeover::Automatic => "Automatic takeover: on (a majority survives any node's loss)".into(),
            Takeover::Off(v) => format!(
                "Automatic takeover: OFF ({} node{}, {}: no majority survives a node's loss)",
                v.nodes,
                if v.nodes == 1 { "" } else { "s" },
                if v.qdevice.is_some() { "QDevice" } else { "no QDevice" }
            ),
        }
    }

    /// What the administrator must know and do when takeover is off; `None` when it is on.
    pub fn advice(self) -> Option<String> {
        match self {
            Takeover::Automatic => None,
            Takeover::Off(v) if v.nodes < 2 => Some(
                "Automatic takeover is OFF until the cluster has a second node and a QDevice, or three nodes."
                    .into(),
            ),
            Takeover::Off(_) => Some(
                "Automatic takeover is OFF: this cluster has two votes, so a node that loses the other cannot \
                 tell a dead node from a cut link. Nothing moves by itself and no node fences itself. When a \
                 node dies: make sure it is off (it does not fence itself: if it still runs, it runs the \
                 master and its VMs), then on the survivor run `pvecm expected 1` - that is the \
                 confirmation: the survivor takes over within seconds (or run `dlll_cias-switch-to-master` \
                 there). To make takeover automatic, add a QDevice \
                 (`pvecm qdevice setup ADDRESS` with corosync-qnetd on the NAS or any small machine) or a \
                 third node."
                    .into(),
            ),
        }
    }
}

/// The votes of this node's cluster (corosync.conf); `None` when it cannot be read within 3 s
/// (a hung pmxcfs must not hang the reconcile loop or a mail).
pub fn read_votes(host: &dyn Host) -> Option<Votes> {
    let cat = Command::query_argv(&["cat", corosync::CONF]).timeout(Duration::from_secs(3));
    let out = host.run(&cat).ok()?;
    corosync::parse_votes(&out.stdout).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn votes(nodes: u32, qdevice: Option<u32>) -> Votes {
        Votes { nodes, node_votes: nodes, qdevice, qdevice_host: None, plain: true }
    }

    #[test]
    fn a_majority_must_survive_one_node() {
        assert_eq!(Takeover::from_votes(votes(1, None)), Takeover::Off(votes(1, None)));
        assert_eq!(Takeover::from_votes(votes(2, None)), Takeover::Off(votes(2, None)));
        assert!(Takeover::from_votes(votes(2, Some(1))).automatic());
        assert!(Takeover::from_votes(votes(3, None)).automatic());
        assert!(Takeover::from_votes(votes(4, None)).automatic());
        // A QDevice whose votes are 0 does not count (votequorum's device votes may be set so).
        assert!(!Takeover::from_votes(votes(2, Some(0))).automatic());
        // two_node, weighted votes and the like: counted as "on", so quorum loss fences.
        assert!(Takeover::from_votes(Votes { plain: false, ..votes(2, None) }).automatic());
    }

    #[test]
    fn the_summary_and_advice_say_why() {
        let off = Takeover::from_votes(votes(2, None));
        assert_eq!(
            off.summary(),
            "Automatic takeover: OFF (2 nodes, no QDevice: no majority survives a node's loss)"
        );
        let advice = off.advice().unwrap();
        assert!(advice.contains("pvecm expected 1") && advice.contains("pvecm qdevice setup"), "{advice}");
        assert_eq!(Takeover::Automatic.advice(), None);
    }
}
