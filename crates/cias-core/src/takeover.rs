//! What a new master does with the cluster's VMs (SPEC section 6, scenario 3; section 7,
//! recovering a dead node's VMs). Pure: the takeover binary reads a [`ClusterView`], asks
//! [`plan`] what is safe to do now, does it, and asks again until nothing is left to wait for.
//!
//! The rules:
//! - the router (VMID 100) comes to the new master: migrated live when it runs on a node of
//!   the quorate partition, recovered when its node is lost;
//! - every other VM of a lost node is recovered on a live node other than the master (the
//!   master itself only when it is the last one) chosen by [`placement::place`], under the
//!   memory limit; one that fits nowhere is reported ([`Action::Unplaced`]), not recovered;
//! - a lost node's VMs are touched only once the node has been outside the quorate partition
//!   longer than the fence delay plus a margin: by then it has stopped them itself;
//! - a VM that ran before (the master's VMID map) or is marked `onboot` ends up running.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;

use crate::host::Command;
use crate::placement::{self, Candidate, Guest};
use crate::proxmox::pvesh::{self, ClusterStatusEntry, VmResource};
use crate::proxmox::FormatError;

/// The router VM.
pub const ROUTER_VMID: u32 = 100;

/// A node of the cluster as the quorate partition sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub name: String,
    /// In this partition right now.
    pub online: bool,
    /// The cluster (corosync) address, which other nodes reach it at over SSH.
    pub ip: Option<String>,
    pub mem: u64,
    pub maxmem: u64,
}

/// The cluster as one node sees it: quorum, nodes, VMs.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterView {
    pub quorate: bool,
    pub nodes: Vec<NodeState>,
    pub vms: Vec<VmResource>,
}

#[derive(Debug, Deserialize)]
struct NodeLoad {
    node: String,
    #[serde(default)]
    mem: Option<u64>,
    #[serde(default)]
    maxmem: Option<u64>,
}

impl ClusterView {
    /// The read-only commands whose outputs [`ClusterView::parse`] takes, in that order.
    pub fn commands() -> [Command; 3] {
        [pvesh::get_json("/cluster/status"), pvesh::get_json("/nodes"), pvesh::vm_resources_command()]
    }

    /// Builds the view from `pvesh get /cluster/status`, `/nodes` and `/cluster/resources`.
    pub fn parse(status: &str, nodes: &str, vms: &str) -> Result<Self, FormatError> {
        let status: Vec<ClusterStatusEntry> = pvesh::parse("pvesh get /cluster/status", status)?;
        let loads: Vec<NodeLoad> = pvesh::parse("pvesh get /nodes", nodes)?;
        let vms: Vec<VmResource> = pvesh::parse("pvesh get /cluster/resources", vms)?;
        let quorate = pvesh::partition(&status).0;
        let mut states = Vec::new();
        for entry in status {
            match entry {
                ClusterStatusEntry::Cluster { .. } => {}
                ClusterStatusEntry::Node { name, online, ip, .. } => {
                    let load = loads.iter().find(|l| l.node == name);
                    states.push(NodeState {
                        mem: load.and_then(|l| l.mem).unwrap_or(0),
                        maxmem: load.and_then(|l| l.maxmem).unwrap_or(0),
                        name,
                        online,
                        ip,
                    });
                }
            }
        }
        Ok(Self { quorate, nodes: states, vms: vms.into_iter().filter(|v| v.kind == "qemu").collect() })
    }

    pub fn online(&self) -> BTreeSet<&str> {
        self.nodes.iter().filter(|n| n.online).map(|n| n.name.as_str()).collect()
    }

    pub fn lost(&self) -> BTreeSet<&str> {
        self.nodes.iter().filter(|n| !n.online).map(|n| n.name.as_str()).collect()
    }

    /// The online nodes VMs may be placed on, with their memory: all but `leaving` and the
    /// `master`, or the master too when no other node is left.
    pub fn placement_candidates(&self, master: Option<&str>, leaving: Option<&str>) -> Vec<Candidate> {
        let usable = |n: &NodeState| n.online && Some(n.name.as_str()) != leaving;
        let others = self.nodes.iter().any(|n| usable(n) && Some(n.name.as_str()) != master);
        self.nodes
            .iter()
            .filter(|n| usable(n) && (!others || Some(n.name.as_str()) != master))
            .map(|n| Candidate { name: n.name.clone(), mem_used: n.mem, mem_max: n.maxmem })
            .collect()
    }

    /// The cluster address of `node`, if the view has it.
    pub fn ip(&self, node: &str) -> Option<&str> {
        self.nodes.iter().find(|n| n.name == node).and_then(|n| n.ip.as_deref())
    }

    pub fn vm(&self, vmid: u32) -> Option<&VmResource> {
        self.vms.iter().find(|v| v.vmid == vmid)
    }
}

/// One thing the new master does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The router runs (or sits stopped) on a live node: migrate it here.
    MigrateHere { vmid: u32, from: String, online: bool },
    /// A lost node's VM: move its config to `to`, then start it when `start`.
    Recover { vmid: u32, from: String, to: String, start: bool },
    /// A VM that should run but does not, on its live node.
    Start { vmid: u32, node: String },
    /// A lost node's VM that no live node has room for under the memory limit.
    Unplaced { vmid: u32, from: String },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::MigrateHere { vmid, from, online: true } => {
                write!(f, "migrate VM {vmid} live from {from}")
            }
            Action::MigrateHere { vmid, from, online: false } => {
                write!(f, "move stopped VM {vmid} from {from}")
            }
            Action::Recover { vmid, from, to, start } => write!(
                f,
                "recover VM {vmid} of lost node {from} on {to}{}",
                if *start { " and start it" } else { " (it was not running: left stopped)" }
            ),
            Action::Start { vmid, node } => write!(f, "start VM {vmid} on {node}"),
            Action::Unplaced { vmid, from } => write!(
                f,
                "VM {vmid} of lost node {from}: no node has room for it under the memory limit (placement.max_memory_percent); left where it is"
            ),
        }
    }
}

/// What can be done now, and what must wait for a lost node's fence time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Lost nodes whose VMs wait, with how much longer.
    pub waiting: BTreeMap<String, Duration>,
}

/// The facts [`plan`] decides on besides the view.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// This node, the new master.
    pub me: &'a str,
    /// How long each lost node has been outside the quorate partition.
    pub lost_for: &'a BTreeMap<String, Duration>,
    /// Fence delay plus margin.
    pub recovery_wait: Duration,
    /// VMIDs that ran before the failure (the master's VMID map) or are marked `onboot`.
    pub should_run: &'a BTreeSet<u32>,
    /// A node receives recovered VMs only up to this share of its memory (percent).
    pub memory_limit_percent: u8,
}

/// Decides what the new master does now; see the module rules.
pub fn plan(view: &ClusterView, inputs: &Inputs) -> Plan {
    let mut plan = Plan::default();
    let online = view.online();
    let lost = view.lost();
    // How much longer a lost node's VMs must wait; `None` once they may be recovered.
    let wait_left = |node: &str| {
        let gone = inputs.lost_for.get(node).copied().unwrap_or_default();
        inputs.recovery_wait.checked_sub(gone).filter(|left| !left.is_zero())
    };
    let mut vms: Vec<&VmResource> = view.vms.iter().filter(|v| !v.template).collect();
    vms.sort_by_key(|v| (v.vmid != ROUTER_VMID, v.vmid));
    let recoverable: Vec<&VmResource> = vms
        .iter()
        .copied()
        .filter(|v| lost.contains(v.node.as_str()) && wait_left(&v.node).is_none())
        .collect();
    let mut placed = recovery_targets(view, inputs, &recoverable);
    for vm in vms {
        let node = vm.node.as_str();
        let should_run = inputs.should_run.contains(&vm.vmid);
        if lost.contains(node) {
            if let Some(left) = wait_left(node) {
                plan.waiting.insert(node.to_string(), left);
                continue;
            }
            let to = if vm.vmid == ROUTER_VMID {
                Some(inputs.me.to_string())
            } else {
                placed.remove(&vm.vmid).flatten()
            };
            let from = node.to_string();
            plan.actions.push(match to {
                Some(to) => {
                    Action::Recover { vmid: vm.vmid, from, to, start: should_run || vm.vmid == ROUTER_VMID }
                }
                None => Action::Unplaced { vmid: vm.vmid, from },
            });
        } else if vm.vmid == ROUTER_VMID && node != inputs.me && online.contains(node) {
            plan.actions.push(Action::MigrateHere {
                vmid: vm.vmid,
                from: node.to_string(),
                online: vm.status == "running",
            });
            if vm.status != "running" {
                plan.actions.push(Action::Start { vmid: vm.vmid, node: inputs.me.to_string() });
            }
        } else if vm.status != "running" && (should_run || vm.vmid == ROUTER_VMID) && online.contains(node) {
            plan.actions.push(Action::Start { vmid: vm.vmid, node: node.to_string() });
        }
    }
    plan
}

/// Where the recoverable VMs other than the router go: the live nodes other than the master,
/// or the master when it is the last one (then counting the router it takes first).
fn recovery_targets(
    view: &ClusterView,
    inputs: &Inputs,
    recoverable: &[&VmResource],
) -> BTreeMap<u32, Option<String>> {
    let router_mem: u64 =
        recoverable.iter().filter(|v| v.vmid == ROUTER_VMID).map(|v| v.maxmem.unwrap_or(0)).sum();
    let mut candidates = view.placement_candidates(Some(inputs.me), None);
    for c in candidates.iter_mut().filter(|c| c.name == inputs.me) {
        c.mem_used += router_mem;
    }
    let guests: Vec<Guest> = recoverable
        .iter()
        .filter(|v| v.vmid != ROUTER_VMID)
        .map(|v| Guest { vmid: v.vmid, mem: v.maxmem.unwrap_or(0) })
        .collect();
    placement::place(&candidates, &guests, inputs.memory_limit_percent).into_iter().collect()
}

/// One line of the master's VMID map (`/mnt/mfs/cias/pve_master_vmid.conf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmidMapEntry {
    pub vmid: u32,
    pub node: String,
    pub status: String,
}

/// The VMID map text: a header, then `VMID NODE STATUS` per VM, sorted by VMID.
pub fn vmid_map_text(vms: &[VmResource]) -> String {
    let mut sorted: Vec<&VmResource> = vms.iter().filter(|v| v.kind == "qemu").collect();
    sorted.sort_by_key(|v| v.vmid);
    let mut out = String::from("# VMID NODE STATUS - which VM lives where, written every minute by the master (dlll_cias-watch vmids)\n");
    for vm in sorted {
        out.push_str(&format!("{} {} {}\n", vm.vmid, vm.node, vm.status));
    }
    out
}

/// Reads a VMID map; lines that do not parse are skipped (the file is advice, not truth).
pub fn parse_vmid_map(text: &str) -> Vec<VmidMapEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let vmid = f.next()?.parse().ok()?;
            Some(VmidMapEntry { vmid, node: f.next()?.to_string(), status: f.next()?.to_string() })
        })
        .collect()
}

/// Whether a VM config (`/etc/pve/nodes/N/qemu-server/V.conf`) marks it to start at boot.
pub fn onboot(config: &str) -> bool {
    config
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split_once(':'))
        .any(|(k, v)| k.trim() == "onboot" && v.trim() == "1")
}

/// The first disk volume of a VM config (`a_mfs:100/vm-100-disk-0.raw`), to check it exists.
pub fn first_disk(config: &str) -> Option<String> {
    const BUSES: [&str; 4] = ["scsi", "virtio", "sata", "ide"];
    config.lines().take_while(|l| !l.starts_with('[')).find_map(|l| {
        let (key, value) = l.split_once(':')?;
        let is_disk = BUSES.iter().any(|b| key.strip_prefix(b).is_some_and(|n| n.parse::<u8>().is_ok()));
        let volume = value.trim().split(',').next()?.to_string();
        (is_disk && !value.contains("media=cdrom") && volume != "none").then_some(volume)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(vmid: u32, node: &str, status: &str, maxmem: u64) -> VmResource {
        VmResource {
            vmid,
            node: node.into(),
            status: status.into(),
            kind: "qemu".into(),
            name: None,
            maxmem: Some(maxmem),
            mem: None,
            lock: None,
            template: false,
        }
    }

    fn node(name: &str, online: bool, mem: u64) -> NodeState {
        NodeState { name: name.into(), online, ip: None, mem, maxmem: 16 << 30 }
    }

    fn view(vms: Vec<VmResource>) -> ClusterView {
        ClusterView {
            quorate: true,
            nodes: vec![node("node1", false, 0), node("node2", true, 8 << 30), node("node3", true, 2 << 30)],
            vms,
        }
    }

    fn inputs<'a>(lost_for: &'a BTreeMap<String, Duration>, should_run: &'a BTreeSet<u32>) -> Inputs<'a> {
        Inputs {
            me: "node2",
            lost_for,
            recovery_wait: Duration::from_secs(15),
            should_run,
            memory_limit_percent: 90,
        }
    }

    #[test]
    fn a_lost_nodes_vms_wait_for_the_fence_time() {
        let lost_for = BTreeMap::from([("node1".to_string(), Duration::from_secs(4))]);
        let run = BTreeSet::from([100]);
        let p = plan(&view(vec![vm(100, "node1", "unknown", 2 << 30)]), &inputs(&lost_for, &run));
        assert!(p.actions.is_empty());
        assert_eq!(p.waiting, BTreeMap::from([("node1".to_string(), Duration::from_secs(11))]));
    }

    #[test]
    fn after_the_fence_time_the_router_comes_here_and_others_go_to_the_least_loaded_non_master() {
        let lost_for = BTreeMap::from([("node1".to_string(), Duration::from_secs(16))]);
        let run = BTreeSet::from([100, 1101]);
        let p = plan(
            &view(vec![
                vm(1102, "node1", "unknown", 1 << 30),
                vm(100, "node1", "unknown", 2 << 30),
                vm(1101, "node1", "unknown", 1 << 30),
            ]),
            &inputs(&lost_for, &run),
        );
        assert_eq!(
            p.actions,
            vec![
                Action::Recover { vmid: 100, from: "node1".into(), to: "node2".into(), start: true },
                Action::Recover { vmid: 1101, from: "node1".into(), to: "node3".into(), start: true },
                Action::Recover { vmid: 1102, from: "node1".into(), to: "node3".into(), start: false },
            ]
        );
        assert!(p.waiting.is_empty());
    }

    #[test]
    fn the_router_on_a_live_node_migrates_live_and_running_vms_are_left_alone() {
        let none = BTreeMap::new();
        let run = BTreeSet::from([100, 2101]);
        let v = ClusterView {
            nodes: vec![node("node1", true, 0), node("node2", true, 0), node("node3", true, 0)],
            ..view(vec![vm(100, "node1", "running", 2 << 30), vm(2101, "node3", "running", 1 << 30)])
        };
        let p = plan(&v, &inputs(&none, &run));
        assert_eq!(p.actions, vec![Action::MigrateHere { vmid: 100, from: "node1".into(), online: true }]);
    }

    #[test]
    fn a_stopped_vm_that_should_run_is_started_on_its_node() {
        let none = BTreeMap::new();
        let run = BTreeSet::from([2101]);
        let p = plan(
            &view(vec![
                vm(100, "node2", "running", 0),
                vm(2101, "node3", "stopped", 0),
                vm(2102, "node3", "stopped", 0),
            ]),
            &inputs(&none, &run),
        );
        assert_eq!(p.actions, vec![Action::Start { vmid: 2101, node: "node3".into() }]);
    }

    #[test]
    fn the_master_takes_recovered_vms_only_when_it_is_the_last_node() {
        let lost_for = BTreeMap::from([
            ("node1".to_string(), Duration::from_secs(60)),
            ("node3".to_string(), Duration::from_secs(60)),
        ]);
        let run = BTreeSet::from([1101]);
        let v = ClusterView {
            nodes: vec![node("node1", false, 0), node("node2", true, 0), node("node3", false, 0)],
            ..view(vec![vm(1101, "node3", "unknown", 1 << 30)])
        };
        let p = plan(&v, &inputs(&lost_for, &run));
        assert_eq!(
            p.actions,
            vec![Action::Recover { vmid: 1101, from: "node3".into(), to: "node2".into(), start: true }]
        );
    }

    #[test]
    fn recovered_vms_spread_by_memory_and_one_that_fits_nowhere_is_reported() {
        let lost_for = BTreeMap::from([("node1".to_string(), Duration::from_secs(60))]);
        let run = BTreeSet::from([1101, 1102, 1103]);
        let v = ClusterView {
            nodes: vec![
                node("node1", false, 0),
                node("node2", true, 0),
                node("node3", true, 2 << 30),
                node("node4", true, 4 << 30),
            ],
            ..view(vec![
                vm(1101, "node1", "unknown", 4 << 30),
                vm(1102, "node1", "unknown", 32 << 30),
                vm(1103, "node1", "unknown", 12 << 30),
            ])
        };
        // Under 90% of 16 GiB node3 has 12.4 GiB of room, node4 10.4; the master takes none.
        let p = plan(&v, &inputs(&lost_for, &run));
        assert_eq!(
            p.actions,
            vec![
                Action::Recover { vmid: 1101, from: "node1".into(), to: "node4".into(), start: true },
                Action::Unplaced { vmid: 1102, from: "node1".into() },
                Action::Recover { vmid: 1103, from: "node1".into(), to: "node3".into(), start: true },
            ]
        );
        assert!(p.actions[1].to_string().contains("placement.max_memory_percent"));
    }

    #[test]
    fn view_from_pvesh_samples() {
        let v = ClusterView::parse(
            include_str!("../testdata/proxmox/cluster-status.json"),
            r#"[{"node":"pve1","status":"online","mem":100,"maxmem":1000},{"node":"pve2","status":"offline"}]"#,
            include_str!("../testdata/proxmox/cluster-resources-vm.json"),
        )
        .unwrap();
        assert!(!v.quorate);
        assert_eq!(v.lost(), BTreeSet::from(["pve2"]));
        assert_eq!(v.nodes[0].mem, 100);
        assert_eq!(v.ip("pve2"), Some("10.0.0.2"));
        assert!(v.vm(100).is_some());
    }

    #[test]
    fn the_vmid_map_round_trips() {
        let text = vmid_map_text(&[vm(2101, "node2", "running", 0), vm(100, "node1", "running", 0)]);
        assert!(text.starts_with('#'));
        assert_eq!(
            parse_vmid_map(&text),
            vec![
                VmidMapEntry { vmid: 100, node: "node1".into(), status: "running".into() },
                VmidMapEntry { vmid: 2101, node: "node2".into(), status: "running".into() },
            ]
        );
    }

    #[test]
    fn onboot_and_first_disk_from_a_vm_config() {
        let conf = "boot: order=scsi0\nide2: none,media=cdrom\nmemory: 2048\nonboot: 1\nscsi0: a_mfs:100/vm-100-disk-0.raw,size=4G\n\n[snap1]\nonboot: 0\n";
        assert!(onboot(conf));
        assert!(!onboot("memory: 2048\n"));
        assert_eq!(first_disk(conf).as_deref(), Some("a_mfs:100/vm-100-disk-0.raw"));
    }
}
