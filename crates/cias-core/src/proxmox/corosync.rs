//! `/etc/pve/corosync.conf`: the votes the cluster is configured with. Read from the cluster
//! file system, which every member can read even without quorum (pmxcfs is read-only then).

use super::FormatError;

/// Where Proxmox keeps the cluster's corosync configuration.
pub const CONF: &str = "/etc/pve/corosync.conf";

/// The votes corosync.conf gives the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Votes {
    /// Members in the node list.
    pub nodes: u32,
    /// Their votes (`quorum_votes`, 1 when not given).
    pub node_votes: u32,
    /// The QDevice's votes (`quorum.device.votes`), when one is configured.
    pub qdevice: Option<u32>,
    /// The QDevice's qnetd host (`quorum.device.net.host`).
    pub qdevice_host: Option<std::net::IpAddr>,
    /// Every node has exactly one vote, and no votequorum option changes the arithmetic
    /// (`two_node`, `auto_tie_breaker`, `last_man_standing`, `expected_votes`). Proxmox writes
    /// none of them; a cluster configured otherwise is counted by the safe side.
    pub plain: bool,
}

impl Votes {
    /// Every vote the cluster may count: votequorum's expected votes.
    pub fn expected(&self) -> u32 {
        self.node_votes + self.qdevice.unwrap_or(0)
    }
}

/// One `key: value` line or section edge of corosync's configuration format.
enum Token<'a> {
    Open(&'a str),
    Close,
    Pair(&'a str, &'a str),
}

fn tokens(text: &str) -> impl Iterator<Item = Token<'_>> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).filter_map(|line| {
        if line == "}" {
            Some(Token::Close)
        } else if let Some(name) = line.strip_suffix('{') {
            Some(Token::Open(name.trim()))
        } else {
            line.split_once(':').map(|(k, v)| Token::Pair(k.trim(), v.trim()))
        }
    })
}

/// Reads the votes from corosync.conf's text.
pub fn parse_votes(text: &str) -> Result<Votes, FormatError> {
    let bad = |problem: String| FormatError::new("corosync.conf", problem);
    let mut path: Vec<&str> = Vec::new();
    let (mut nodes, mut node_votes, mut qdevice, mut qdevice_host, mut plain) = (0, 0, None, None, true);
    let mut has_nodelist = false;
    for token in tokens(text) {
        match token {
            Token::Open(name) => {
                match (path.as_slice(), name) {
                    ([], "nodelist") => has_nodelist = true,
                    (["nodelist"], "node") => {
                        nodes += 1;
                        node_votes += 1;
                    }
                    (["quorum"], "device") => qdevice = Some(1),
                    _ => {}
                }
                path.push(name);
            }
            Token::Close => {
                path.pop().ok_or_else(|| bad("a '}' closes no section".into()))?;
            }
            Token::Pair(key, value) => {
                let number = || value.parse::<u32>().map_err(|_| bad(format!("{key}: '{value}' is not a number")));
                match (path.as_slice(), key) {
                    // The default of 1 was counted when the node's section opened.
                    (["nodelist", "node"], "quorum_votes") => {
                        let votes = number()?;
                        plain &= votes == 1;
                        node_votes = node_votes - 1 + votes;
                    }
                    (["quorum"], "two_node" | "auto_tie_breaker" | "last_man_standing" | "expected_votes") => {
                        plain &= value == "0" && key != "expected_votes";
                    }
                    (["quorum", "device"], "votes") => qdevice = Some(number()?),
                    (["quorum", "device", "net"], "host") => {
                        qdevice_host = Some(value.parse().map_err(|_| bad(format!("host: '{value}' is not an address")))?)
                    }
                    _ => {}
                }
            }
        }
    }
    if !path.is_empty() {
        return Err(bad(format!("section '{}' is not closed", path.join("."))));
    }
    if !has_nodelist || nodes == 0 {
        return Err(bad("no node in its nodelist".into()));
    }
    Ok(Votes { nodes, node_votes, qdevice, qdevice_host, plain })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As `pvecm create` / `addnode` and `pvecm qdevice setup` write it (pve-cluster).
    const TWO_NODES_QDEVICE: &str = "logging {\n  debug: off\n  to_syslog: yes\n}\n\nnodelist {\n  node {\n    name: pve1\n    nodeid: 1\n    quorum_votes: 1\n    ring0_addr: 10.254.1.1\n  }\n  node {\n    name: pve2\n    nodeid: 2\n    quorum_votes: 1\n    ring0_addr: 10.254.1.2\n  }\n}\n\nquorum {\n  device {\n    model: net\n    net {\n      algorithm: ffsplit\n      host: 10.253.1.1\n      tls: on\n    }\n    votes: 1\n  }\n  provider: corosync_votequorum\n}\n\ntotem {\n  cluster_name: lab\n  config_version: 3\n  interface {\n    linknumber: 0\n  }\n  ip_version: ipv4-6\n  version: 2\n}\n";

    #[test]
    fn two_nodes_and_a_qdevice() {
        let v = parse_votes(TWO_NODES_QDEVICE).unwrap();
        let host = Some("10.253.1.1".parse().unwrap());
        assert_eq!(v, Votes { nodes: 2, node_votes: 2, qdevice: Some(1), qdevice_host: host, plain: true });
        assert_eq!(v.expected(), 3);
    }

    #[test]
    fn without_qdevice_and_with_default_and_extra_votes() {
        let text = TWO_NODES_QDEVICE.replace(
            "  device {\n    model: net\n    net {\n      algorithm: ffsplit\n      host: 10.253.1.1\n      tls: on\n    }\n    votes: 1\n  }\n",
            "",
        );
        let text = text.replacen("    quorum_votes: 1\n", "", 1).replacen("quorum_votes: 1", "quorum_votes: 3", 1);
        let v = parse_votes(&text).unwrap();
        assert_eq!((v.nodes, v.node_votes, v.qdevice, v.plain), (2, 4, None, false));
        let two_node = text.replace("  provider: corosync_votequorum\n", "  provider: corosync_votequorum\n  two_node: 1\n");
        assert!(!parse_votes(&two_node.replace("quorum_votes: 3", "quorum_votes: 1")).unwrap().plain);
        assert!(parse_votes(&TWO_NODES_QDEVICE.replace("device {", "two_node: 0\n  device {")).unwrap().plain);
    }

    #[test]
    fn broken_files_are_refused() {
        let err = parse_votes("nodelist {\n  node {\n    name: a\n").unwrap_err().to_string();
        assert_eq!(err, "unexpected output of `corosync.conf` - section 'nodelist.node' is not closed");
        let err = parse_votes("quorum {\n  provider: corosync_votequorum\n}\n").unwrap_err().to_string();
        assert!(err.contains("no node in its nodelist"), "{err}");
        let bad = TWO_NODES_QDEVICE.replace("quorum_votes: 1", "quorum_votes: x");
        assert!(parse_votes(&bad).unwrap_err().to_string().contains("quorum_votes: 'x' is not a number"));
    }
}
