//! What a node that leaves the cluster does with its role and its VMs (SPEC section 6,
//! scenario 5). Pure: `dlll_cias-escape` reads a [`ClusterView`], asks [`plan`], shows it,
//! and does it; asked again after an interruption, the plan holds only what is left.
//!
//! The rules:
//! - a leaving master first hands the role to the online node with the highest priority that
//!   may be master (ties to the name); the router goes with the role;
//! - every other VM of the leaving node moves to the online node with the smallest share of
//!   RAM in use that has room under the memory limit ([`placement::place`]), never to the
//!   leaving node and never to the master unless it is the only other node;
//! - running VMs move live, stopped ones (and templates) offline;
//! - the last node of a cluster cannot leave it.

use std::collections::BTreeMap;

use crate::placement::{self, Guest};
use crate::takeover::{ClusterView, ROUTER_VMID};

/// One VM to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub vmid: u32,
    pub name: String,
    /// Memory (bytes), as placed.
    pub mem: u64,
    pub to: String,
    /// Running: migrated live.
    pub online: bool,
}

impl std::fmt::Display for Move {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VM {} ({}, {} MiB) -> {} ({})",
            self.vmid,
            self.name,
            self.mem >> 20,
            self.to,
            if self.online { "live" } else { "offline" }
        )
    }
}

/// What the leaving node does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The leaving node is the master: the role (and the router) go here first.
    pub handover_to: Option<String>,
    pub moves: Vec<Move>,
    /// VMs no node has room for under the memory limit: the escape stops before them.
    pub unplaced: Vec<u32>,
}

/// Why the node cannot leave now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this node is not in the quorate partition; a node leaves only from the quorate side")]
    NoQuorum,
    #[error("no other node of the cluster is online: the last node cannot leave it")]
    LastNode,
    #[error("this node is the master and no other online node may be master (priority 0 everywhere): install or bring up one that may")]
    NoSuccessor,
}

/// The facts [`plan`] decides on besides the view.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The leaving node.
    pub me: &'a str,
    /// The node that holds the master VIP now, if any answers.
    pub master: Option<&'a str>,
    /// The keepalived priority (0..100 as installed; 0 = never master) of each node.
    pub priorities: &'a BTreeMap<String, u8>,
    /// A node receives VMs only up to this share of its memory (percent).
    pub memory_limit_percent: u8,
}

/// Decides the handover and every move; see the module rules.
pub fn plan(view: &ClusterView, inputs: &Inputs) -> Result<Plan, Refusal> {
    if !view.quorate {
        return Err(Refusal::NoQuorum);
    }
    let others: Vec<&str> = view.online().into_iter().filter(|n| *n != inputs.me).collect();
    if others.is_empty() {
        return Err(Refusal::LastNode);
    }
    let handover_to = if inputs.master == Some(inputs.me) {
        let best = others
            .iter()
            .filter_map(|n| inputs.priorities.get(*n).filter(|p| **p > 0).map(|p| (*p, *n)))
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(a.1)))
            .ok_or(Refusal::NoSuccessor)?;
        Some(best.1.to_string())
    } else {
        None
    };
    let master = handover_to.as_deref().or(inputs.master.filter(|m| *m != inputs.me));
    let candidates = view.placement_candidates(master, Some(inputs.me));
    let mine: Vec<_> = view.vms.iter().filter(|v| v.node == inputs.me && v.vmid != ROUTER_VMID).collect();
    let guests: Vec<Guest> =
        mine.iter().map(|v| Guest { vmid: v.vmid, mem: v.maxmem.unwrap_or(0) }).collect();
    let mut plan = Plan { handover_to, moves: Vec::new(), unplaced: Vec::new() };
    for (vm, (vmid, to)) in
        mine.iter().zip(placement::place(&candidates, &guests, inputs.memory_limit_percent))
    {
        match to {
            Some(to) => plan.moves.push(Move {
                vmid,
                name: vm.name.clone().unwrap_or_else(|| format!("VM {vmid}")),
                mem: vm.maxmem.unwrap_or(0),
                to,
                online: vm.status == "running",
            }),
            None => plan.unplaced.push(vmid),
        }
    }
    Ok(plan)
}

/// One data disk of a chunkserver, as `mfscli -SHD` lists it (plain text, `-s ';'`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub path: String,
    pub chunks: u64,
    /// `ok`, or e.g. `marked for removal`, `marked for removal (ready)`.
    pub status: String,
}

impl Disk {
    /// Every chunk on it has its copies elsewhere: the disk can go.
    pub fn ready(&self) -> bool {
        self.status.contains("marked for removal (ready)")
    }
}

/// The disks of the chunkserver at `ip` in `mfscli -n -p -s ';' -SHD` output: lines
/// `disks:;IP:PORT:PATH;CHUNKS;LAST ERROR;STATUS;...` (mfscli.py, plain mode).
pub fn disks_of(shd: &str, ip: &str) -> Vec<Disk> {
    let prefix = format!("{ip}:");
    shd.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(';').map(str::trim).collect();
            if !f.first()?.starts_with("disks") || !f.get(1)?.starts_with(&prefix) {
                return None;
            }
            let path = f[1][prefix.len()..].split_once(':')?.1.to_string();
            Some(Disk { path, chunks: f.get(2)?.parse().ok()?, status: f.get(4)?.to_string() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxmox::pvesh::VmResource;
    use crate::takeover::NodeState;

    const GIB: u64 = 1 << 30;

    fn node(name: &str, online: bool, mem_gib: u64) -> NodeState {
        NodeState { name: name.into(), online, ip: None, mem: mem_gib * GIB, maxmem: 64 * GIB }
    }

    fn vm(vmid: u32, node: &str, mem_gib: u64, status: &str) -> VmResource {
        serde_json::from_value(serde_json::json!({
            "id": format!("qemu/{vmid}"), "type": "qemu", "vmid": vmid, "node": node,
            "status": status, "maxmem": mem_gib * GIB, "name": format!("vm{vmid}"),
        }))
        .unwrap()
    }

    fn priorities(list: &[(&str, u8)]) -> BTreeMap<String, u8> {
        list.iter().map(|(n, p)| (n.to_string(), *p)).collect()
    }

    fn lines(plan: &Plan) -> Vec<String> {
        plan.moves.iter().map(Move::to_string).collect()
    }

    #[test]
    fn a_node_spreads_its_vms_by_ram_and_never_onto_the_master() {
        let view = ClusterView {
            quorate: true,
            nodes: vec![node("n1", true, 8), node("n2", true, 8), node("n3", true, 16), node("n4", true, 12)],
            vms: vec![
                vm(100, "n1", 4, "running"),
                vm(3101, "n3", 8, "running"),
                vm(3102, "n3", 4, "running"),
                vm(3103, "n3", 2, "stopped"),
                vm(3104, "n3", 1, "running"),
                vm(2101, "n2", 4, "running"),
            ],
        };
        let prio = priorities(&[("n1", 80), ("n2", 50), ("n3", 50), ("n4", 50)]);
        let inputs = Inputs { me: "n3", master: Some("n1"), priorities: &prio, memory_limit_percent: 90 };
        let plan = plan(&view, &inputs).unwrap();
        assert_eq!(plan.handover_to, None);
        assert_eq!(
            lines(&plan),
            [
                "VM 3101 (vm3101, 8192 MiB) -> n2 (live)",
                "VM 3102 (vm3102, 4096 MiB) -> n4 (live)",
                "VM 3103 (vm3103, 2048 MiB) -> n2 (offline)",
                "VM 3104 (vm3104, 1024 MiB) -> n4 (live)",
            ]
        );
    }

    #[test]
    fn a_leaving_master_hands_over_to_the_highest_priority_and_keeps_vms_off_it() {
        let view = ClusterView {
            quorate: true,
            nodes: vec![node("n1", true, 8), node("n2", true, 8), node("n3", true, 8), node("n4", false, 0)],
            vms: vec![vm(100, "n1", 4, "running"), vm(1101, "n1", 2, "running")],
        };
        let prio = priorities(&[("n1", 80), ("n2", 0), ("n3", 60), ("n4", 90)]);
        let inputs = Inputs { me: "n1", master: Some("n1"), priorities: &prio, memory_limit_percent: 90 };
        let plan = plan(&view, &inputs).unwrap();
        assert_eq!(plan.handover_to.as_deref(), Some("n3"), "n4 is offline, n2 never master");
        assert_eq!(
            lines(&plan),
            ["VM 1101 (vm1101, 2048 MiB) -> n2 (live)"],
            "the router goes with the role"
        );
    }

    #[test]
    fn refusals_and_the_memory_limit() {
        let alone = ClusterView {
            quorate: true,
            nodes: vec![node("n1", true, 8), node("n2", false, 0)],
            vms: vec![],
        };
        let prio = priorities(&[("n1", 80), ("n2", 0), ("n3", 0)]);
        let inputs = Inputs { me: "n1", master: Some("n1"), priorities: &prio, memory_limit_percent: 90 };
        assert_eq!(plan(&alone, &inputs), Err(Refusal::LastNode));
        let cut = ClusterView { quorate: false, ..alone.clone() };
        assert_eq!(plan(&cut, &inputs), Err(Refusal::NoQuorum));
        let two = ClusterView { nodes: vec![node("n1", true, 8), node("n3", true, 8)], ..alone };
        assert_eq!(plan(&two, &inputs), Err(Refusal::NoSuccessor));

        // The master is the only other node: it takes what fits under the limit.
        let view = ClusterView {
            quorate: true,
            nodes: vec![node("n1", true, 40), node("n2", true, 8)],
            vms: vec![vm(2101, "n2", 16, "running"), vm(2102, "n2", 4, "running")],
        };
        let inputs = Inputs { me: "n2", master: Some("n1"), priorities: &prio, memory_limit_percent: 75 };
        let plan = plan(&view, &inputs).unwrap();
        assert_eq!(lines(&plan), ["VM 2102 (vm2102, 4096 MiB) -> n1 (live)"]);
        assert_eq!(plan.unplaced, [2101], "40 + 16 GiB is over 75% of 64 GiB");
    }

    #[test]
    fn disks_of_a_chunkserver_as_mfscli_lists_them() {
        // mfscli 3.0.117 -n -p -s ';' -SHD, measured in the lab while node4's disks drained.
        let shd = "disks:;10.254.0.1:9422:/data/loop0/;27;no errors;ok;5781141141;224947238;232;3805;0;235;392;0;286613504;4126900224\n\
                   disks:;10.254.1.3:9422:/data/loop6/;1;no errors;marked for removal (not ready);0;1105534;0;166;0;0;55;0;269524992;4126900224\n\
                   disks:;10.254.1.3:9422:/data/loop7/;0;no errors;marked for removal (ready);0;1523972;0;86;0;0;57;0;269524992;4126900224\n";
        let disks = disks_of(shd, "10.254.1.3");
        assert_eq!(
            disks,
            [
                Disk {
                    path: "/data/loop6/".into(),
                    chunks: 1,
                    status: "marked for removal (not ready)".into()
                },
                Disk { path: "/data/loop7/".into(), chunks: 0, status: "marked for removal (ready)".into() },
            ]
        );
        assert_eq!(disks.iter().map(Disk::ready).collect::<Vec<_>>(), [false, true]);
        assert!(disks_of(shd, "10.254.1.30").is_empty(), "10.254.1.3 is not 10.254.1.30");
        assert_eq!(disks_of(shd, "10.254.0.1").len(), 1);
    }
}
