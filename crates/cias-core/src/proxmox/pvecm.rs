//! `pvecm status`: cluster name, quorum, votes and members.

use super::FormatError;
use crate::host::Command;

/// `pvecm status` (read-only).
pub fn status_command() -> Command {
    Command::query_argv(&["pvecm", "status"])
}

/// What `pvecm status` says about the cluster, seen from the node that ran it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    pub name: String,
    pub quorate: bool,
    pub expected_votes: u32,
    pub total_votes: u32,
    /// The members of this node's partition (the QDevice's own line is not one).
    pub members: Vec<Member>,
    /// A QDevice is registered (`Flags: ... Qdevice`), and whether it gives this partition
    /// its votes now (`None`: no QDevice).
    pub qdevice_voting: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub nodeid: u32,
    pub votes: u32,
    /// The member's ring address (corosync prints addresses, not names, with `-H`).
    pub address: String,
    pub local: bool,
}

/// Parses `pvecm status` output (exit 0 or 2; exit 1 means no answer at all).
pub fn parse_status(text: &str) -> Result<ClusterStatus, FormatError> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(':')))
            .map(str::trim)
            .ok_or_else(|| FormatError::new("pvecm status", format!("no '{name}:' line")))
    };
    let number = |name: &str| {
        field(name)?
            .parse::<u32>()
            .map_err(|_| FormatError::new("pvecm status", format!("'{name}:' is not a number")))
    };
    let quorate = match field("Quorate")? {
        "Yes" => true,
        "No" => false,
        other => return Err(FormatError::new("pvecm status", format!("'Quorate: {other}'"))),
    };
    let header = text.lines().find(|l| l.trim_start().starts_with("Nodeid")).unwrap_or_default();
    // corosync-quorumtool adds a Qdevice column (and the QDevice's line, node id 0) when
    // a QDevice is registered.
    let qdevice_column = header.split_whitespace().any(|w| w == "Qdevice");
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("Nodeid"))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    let members = rows
        .iter()
        .filter(|l| !l.starts_with("0x00000000"))
        .map(|l| parse_member(l, qdevice_column))
        .collect::<Result<Vec<_>, _>>()?;
    let registered = field("Flags").is_ok_and(|f| f.split_whitespace().any(|w| w == "Qdevice"));
    // The QDevice's line shows its votes only while it votes for this partition; otherwise 0
    // and "Qdevice (votes N)".
    let qdevice_voting = registered.then(|| {
        rows.iter()
            .find(|l| l.starts_with("0x00000000"))
            .and_then(|l| l.split_whitespace().nth(1))
            .is_some_and(|votes| votes != "0")
    });
    Ok(ClusterStatus {
        name: field("Name")?.to_string(),
        quorate,
        expected_votes: number("Expected votes")?,
        total_votes: number("Total votes")?,
        members,
        qdevice_voting,
    })
}

fn parse_member(line: &str, qdevice_column: bool) -> Result<Member, FormatError> {
    let bad = || FormatError::new("pvecm status", format!("bad member line '{line}'"));
    let mut words = line.split_whitespace();
    let nodeid = words.next().and_then(|w| u32::from_str_radix(w.trim_start_matches("0x"), 16).ok());
    let votes = words.next().and_then(|w| w.parse().ok());
    if qdevice_column {
        words.next(); // the member's QDevice flags, e.g. A,V,NMW
    }
    let address = words.next().map(str::to_string);
    let local = words.next() == Some("(local)");
    match (nodeid, votes, address) {
        (Some(nodeid), Some(votes), Some(address)) => Ok(Member { nodeid, votes, address, local }),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_quorate_sample() {
        let s = parse_status(include_str!("../../testdata/proxmox/pvecm-status-not-quorate.txt")).unwrap();
        assert_eq!(s.name, "prod");
        assert!(!s.quorate);
        assert_eq!((s.expected_votes, s.total_votes), (2, 1));
        assert_eq!(s.members, [Member { nodeid: 1, votes: 1, address: "10.0.0.1".into(), local: true }]);
    }

    #[test]
    fn quorate_sample() {
        let s = parse_status(include_str!("../../testdata/proxmox/pvecm-status-quorate.txt")).unwrap();
        assert_eq!(s.name, "DLLL-CIAS");
        assert!(s.quorate);
        assert_eq!(s.members.len(), 3);
        assert_eq!(s.members.iter().find(|m| m.local).unwrap().address, "10.254.1.1");
    }

    /// corosync-quorumtool's layout with a QDevice (tools/corosync-quorumtool.c).
    #[test]
    fn a_qdevice_column_and_line_are_read() {
        let voting = "Quorate:          Yes\n\nVotequorum information\n----------------------\nExpected votes:   3\nHighest expected: 3\nTotal votes:      3\nQuorum:           2  \nFlags:            Quorate Qdevice \n\nMembership information\n----------------------\n    Nodeid      Votes    Qdevice Name\n0x00000001          1    A,V,NMW 10.0.0.1 (local)\n0x00000002          1    A,V,NMW 10.0.0.2\n0x00000000          1            Qdevice\n";
        let s = parse_status(&format!("Name:             lab\n{voting}")).unwrap();
        assert_eq!((s.expected_votes, s.total_votes, s.qdevice_voting), (3, 3, Some(true)));
        assert_eq!(s.members.len(), 2);
        assert_eq!(s.members[0], Member { nodeid: 1, votes: 1, address: "10.0.0.1".into(), local: true });
        let lost = voting
            .replace("Total votes:      3", "Total votes:      2")
            .replace("A,V,NMW", "A,NV,NMW")
            .replace("0x00000000          1            Qdevice", "0x00000000          0            Qdevice (votes 1)");
        let s = parse_status(&format!("Name:             lab\n{lost}")).unwrap();
        assert_eq!((s.total_votes, s.qdevice_voting, s.members.len()), (2, Some(false), 2));
        let none = parse_status(include_str!("../../testdata/proxmox/pvecm-status-quorate.txt")).unwrap();
        assert_eq!(none.qdevice_voting, None);
    }

    #[test]
    fn garbage_is_a_format_error() {
        let err = parse_status("Error: Corosync config '/etc/pve/corosync.conf' does not exist").unwrap_err();
        assert_eq!(err.to_string(), "unexpected output of `pvecm status` - no 'Quorate:' line");
    }
}
