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
    pub members: Vec<Member>,
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
    let members = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("Nodeid"))
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(parse_member)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ClusterStatus {
        name: field("Name")?.to_string(),
        quorate,
        expected_votes: number("Expected votes")?,
        total_votes: number("Total votes")?,
        members,
    })
}

fn parse_member(line: &str) -> Result<Member, FormatError> {
    let bad = || FormatError::new("pvecm status", format!("bad member line '{line}'"));
    let mut words = line.split_whitespace();
    let nodeid = words.next().and_then(|w| u32::from_str_radix(w.trim_start_matches("0x"), 16).ok());
    let votes = words.next().and_then(|w| w.parse().ok());
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

    #[test]
    fn garbage_is_a_format_error() {
        let err = parse_status("Error: Corosync config '/etc/pve/corosync.conf' does not exist").unwrap_err();
        assert_eq!(err.to_string(), "unexpected output of `pvecm status` - no 'Quorate:' line");
    }
}
