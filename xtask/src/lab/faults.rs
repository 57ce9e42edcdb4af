//! Fault injection: the failures a cluster must survive, on demand.

use anyhow::{bail, Result};

use super::addr::Node;
use super::{network, node, Lab};

impl Lab {
    /// Pulls the plug: every process of the node dies at once (`cgroup.kill`), and its network
    /// interfaces vanish with it (a dead node answers nothing, not even ARP for a VIP it held).
    /// Disks and files stay as they were.
    pub fn power_off(&self, node: Node) -> Result<()> {
        self.node(&node.name())?;
        node::cgroup(node).remove()?;
        network::delete_node(node)
    }

    /// Boots the node again with its disks and files as they were, its interfaces fresh
    /// (no VIPs); returns when it answers SSH.
    pub fn power_on(&self, node: Node) -> Result<()> {
        self.node(&node.name())?;
        if self.is_up(node) {
            bail!("{node} is already on");
        }
        network::delete_node(node)?;
        network::create_node(node)?;
        node::boot(node)?;
        self.wait_ready(node)
    }

    /// True while the node's systemd runs.
    pub fn is_up(&self, node: Node) -> bool {
        node::pid1(node).is_some()
    }

    /// Cuts the node's cables: its links go down (it sees carrier loss), its processes run on.
    pub fn cut(&self, node: Node) -> Result<()> {
        self.node(&node.name())?;
        network::set_links(node, false)
    }

    /// Splits the network: links stay up, traffic between nodes of different groups is
    /// dropped (a real split brain). Nodes named in no group form one more group. The driver
    /// and the mail server still reach every node.
    pub fn partition(&self, groups: &[Vec<Node>]) -> Result<()> {
        let mut seen = Vec::new();
        for node in groups.iter().flatten() {
            self.node(&node.name())?;
            if seen.contains(node) {
                bail!("{node} is in two groups of the partition");
            }
            seen.push(*node);
        }
        let mut all = groups.to_vec();
        all.push(self.nodes.iter().copied().filter(|n| !seen.contains(n)).collect());
        network::partition(&all)
    }

    /// The lab's uplink target stops answering these nodes' pings (the rest of their network
    /// works); an empty list gives every node its uplink back.
    pub fn cut_uplink(&self, nodes: &[Node]) -> Result<()> {
        for node in nodes {
            self.node(&node.name())?;
        }
        network::cut_uplink(nodes)
    }

    /// Undoes every cut, uplink cut and partition (powered-off nodes stay off).
    pub fn heal(&self) -> Result<()> {
        network::clear_partition()?;
        network::clear_uplink_cut()?;
        let existing = network::lab_netns()?;
        for &node in &self.nodes {
            if existing.contains(&node.netns()) {
                network::set_links(node, true)?;
            }
        }
        Ok(())
    }
}

/// Parses `node1,node2 / node3` (the words of the command line, joined).
pub fn parse_groups(words: &[String]) -> Result<Vec<Vec<Node>>> {
    let spec = words.join(" ");
    let groups = spec
        .split('/')
        .map(|group| {
            group.split([',', ' ']).filter(|w| !w.is_empty()).map(str::parse).collect::<Result<Vec<Node>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    if groups.iter().all(Vec::is_empty) {
        bail!("name the groups, e.g. `node1 / node2,node3`");
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups() {
        let words = ["node1,node2".to_string(), "/".into(), "3".into()];
        let groups = parse_groups(&words).unwrap();
        let names: Vec<Vec<String>> = groups.iter().map(|g| g.iter().map(|n| n.name()).collect()).collect();
        assert_eq!(names, [vec!["node1", "node2"], vec!["node3"]]);
        assert!(parse_groups(&["/".into()]).is_err());
    }
}
