//! "Is my cluster healthy?" (`dlll_cias-status`): what each node says about itself, one
//! shell round each ([`node_command`], [`NodeReport::parse`]), and [`assess`], which names
//! every problem with what to do, as `gnt-cluster verify` does. Pure: the binary gathers.

use std::time::Duration;

use serde::Serialize;

use crate::backups::human;
use crate::chunkservers::ChunkHealth;
use crate::host::Command;
use crate::netplan::vmid::ROUTER_VMID;

/// How bad the cluster is: the worst of its problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    Healthy,
    /// Something is missing but storage, the router and the VMs are served.
    Degraded,
    /// Storage, the router or the master role is not served (or served twice).
    Broken,
}

impl Health {
    /// The exit status of `dlll_cias-status`: 0, 1, 2.
    pub fn exit_code(self) -> u8 {
        self as u8
    }
}

/// One problem: how bad, what, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Health,
    pub what: String,
    pub fix: String,
}

/// What one node says about itself ([`node_command`]); `None` for a node that did not answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeReport {
    pub holds_master_vip: bool,
    pub holds_external_vip: bool,
    /// systemd's word for each unit (`active`, `inactive`, `failed`, ...).
    pub mfsmaster: String,
    pub keepalived: String,
    pub fence: String,
    pub chunkserver: String,
    pub metalogger: String,
    pub mounted: bool,
    /// `dlll_cias-watch --version`.
    pub version: String,
    /// The uplink watch's state (`/var/lib/dlll-cias/uplink.json`), `up` when none.
    pub uplink: String,
    /// Age of the newest local router copy in /var/lib/vz/dump (`None`: there is none).
    pub router_copy_age_secs: Option<u64>,
    /// Age of the node's install record (`None`: not installed).
    pub installed_age_secs: Option<u64>,
}

const UNITS: [(&str, &str); 5] = [
    ("mfsmaster", "moosefs-master"),
    ("keepalived", "keepalived"),
    ("fence", "dlll-cias-fence"),
    ("chunkserver", "moosefs-chunkserver"),
    ("metalogger", "moosefs-metalogger"),
];

/// The read-only round a node answers: `key value` lines.
pub fn node_command(master_vip: &str, external_vip: &str) -> Command {
    let mut script = String::from("addrs=$(ip -o -4 addr show); now=$(date +%s); ");
    for (key, ip) in [("master-vip", master_vip), ("external-vip", external_vip)] {
        script += &format!("case \"$addrs\" in *\" {ip}/\"*) echo '{key} yes';; *) echo '{key} no';; esac; ");
    }
    for (key, unit) in UNITS {
        script += &format!("echo \"{key} $(systemctl is-active {unit}.service)\"; ");
    }
    script += &format!(
        "mountpoint -q {mfs} && echo 'mounted yes' || echo 'mounted no'; \
         echo \"version $({bin}/dlll_cias-watch --version 2>/dev/null | head -n 1)\"; \
         echo \"uplink $(sed -n 's/.*\"state\":\"\\([a-z-]*\\)\".*/\\1/p' {uplink} 2>/dev/null)\"; \
         copy=$(ls -t {dump}/vzdump-qemu-{ROUTER_VMID}-* 2>/dev/null | grep -v '\\.dat$' | head -n 1); \
         [ -n \"$copy\" ] && echo \"router-copy-age $((now - $(stat -c %Y \"$copy\")))\"; \
         record={nodes}/$(cut -d. -f1 /proc/sys/kernel/hostname)/node.yaml; \
         [ -f \"$record\" ] && echo \"installed-age $((now - $(stat -c %Y \"$record\")))\"; true",
        mfs = crate::paths::MFS_MOUNT,
        bin = crate::paths::BIN_DIR,
        uplink = <crate::uplink::Uplink as crate::state_file::StateFile>::file().display(),
        dump = crate::paths::LOCAL_DUMP_DIR,
        nodes = std::path::Path::new(crate::paths::MANAGEMENT_DIR).join("nodes").display(),
    );
    Command::query_argv(&["sh", "-c", &script])
}

impl NodeReport {
    pub fn parse(text: &str) -> Self {
        let mut report = NodeReport::default();
        for line in text.lines() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            let value = value.trim().to_string();
            match key {
                "master-vip" => report.holds_master_vip = value == "yes",
                "external-vip" => report.holds_external_vip = value == "yes",
                "mfsmaster" => report.mfsmaster = value,
                "keepalived" => report.keepalived = value,
                "fence" => report.fence = value,
                "chunkserver" => report.chunkserver = value,
                "metalogger" => report.metalogger = value,
                "mounted" => report.mounted = value == "yes",
                "version" => report.version = value,
                "uplink" => report.uplink = if value.is_empty() { "up".into() } else { value },
                "router-copy-age" => report.router_copy_age_secs = value.parse().ok(),
                "installed-age" => report.installed_age_secs = value.parse().ok(),
                _ => {}
            }
        }
        report
    }

    fn serves_master(&self) -> bool {
        crate::mfs_metadata::master_state_runs(&self.mfsmaster)
    }
}

/// One member as the status sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeView {
    pub name: String,
    /// Online in the quorate partition (`pvesh get /cluster/status`).
    pub online: bool,
    /// What it said about itself (`None`: offline, or no answer).
    pub report: Option<NodeReport>,
}

/// Everything [`assess`] looks at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// The node the status ran on, and whether it is in the quorate partition.
    pub seen_from: String,
    pub quorate: bool,
    pub nodes: Vec<NodeView>,
    /// The router VM's status and node (`None`: the cluster lists no VM 100).
    pub router: Option<(String, String)>,
    /// Age of the VMID map on shared storage (`None`: unreadable).
    pub vmid_map_age_secs: Option<u64>,
    /// Age of the newest router backup on shared storage (`None`: none found).
    pub router_backup_age_secs: Option<u64>,
    /// The chunks short of copies, as the master counts them (`None`: it did not say).
    pub chunks: Option<ChunkHealth>,
    /// Whether a node's loss leaves a majority that takes over ([`crate::majority`];
    /// `None`: corosync.conf unreadable).
    pub automatic_takeover: Option<bool>,
    /// Whether the QDevice gives this node's partition its vote (`pvecm status`; `None`: no
    /// QDevice, or no answer).
    pub qdevice_voting: Option<bool>,
}

/// The limits [`assess`] holds the cluster to (from the settings).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Router backups (shared and local copies) older than this are a problem.
    pub backup_max_age: Duration,
}

/// How long the master's VMID map may go unwritten (it is written every minute).
const VMID_MAP_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// Every problem of the cluster, worst first, and the health they make.
pub fn assess(seen: &Observed, limits: Limits) -> (Health, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut add =
        |severity, what: String, fix: &str| problems.push(Problem { severity, what, fix: fix.into() });
    if !seen.quorate {
        add(
            Health::Broken,
            format!("{} is outside the quorate partition: what it sees of the others may be stale", seen.seen_from),
            "check its network and corosync (pvecm status), or run dlll_cias-status on a node of the quorate part",
        );
    }
    if seen.automatic_takeover == Some(false) {
        add(
            Health::Degraded,
            "automatic takeover is off: no majority survives a node's loss (fewer than three votes), so \
             nothing moves by itself when a node dies"
                .into(),
            "add a QDevice (dlll_cias-nas add ... --qdevice, or pvecm qdevice setup ADDRESS) or a third node; \
             until then, when a node dies: make sure it is powered off (it does not fence itself), then \
             pvecm expected 1 on the survivor, which then takes over",
        );
    }
    if seen.qdevice_voting == Some(false) {
        add(
            Health::Degraded,
            "the QDevice does not vote: the loss of one more node now leaves no majority (the survivor fences itself)".into(),
            "check the QDevice host (corosync-qnetd running and reachable on port 5403; pvecm status shows its votes)",
        );
    }
    let answered: Vec<(&str, &NodeReport)> =
        seen.nodes.iter().filter_map(|n| Some((n.name.as_str(), n.report.as_ref()?))).collect();
    for node in &seen.nodes {
        match (&node.report, node.online) {
            (_, false) => add(
                Health::Degraded,
                format!("{} is offline", node.name),
                "power it on; if it is gone for good, dlll_cias-remove-node NODE (the master's watch does this after watch.node_removal_secs)",
            ),
            (None, true) => add(
                Health::Degraded,
                format!("{} is online but did not answer over SSH", node.name),
                "check its sshd and the cluster's SSH keys (ssh root@NODE true)",
            ),
            _ => {}
        }
    }
    let holders: Vec<&str> = answered.iter().filter(|(_, r)| r.holds_master_vip).map(|(n, _)| *n).collect();
    let serving: Vec<&str> = answered.iter().filter(|(_, r)| r.serves_master()).map(|(n, _)| *n).collect();
    match holders.as_slice() {
        [] => add(
            Health::Broken,
            "no node holds the master VIP: storage and the router have no master".into(),
            "check keepalived on the nodes that may be master (journalctl -u keepalived), or run dlll_cias-switch-to-master on one",
        ),
        [master] => {
            if !serving.contains(master) {
                add(
                    Health::Broken,
                    format!("{master} holds the master VIP but its mfsmaster does not run: storage is down"),
                    "its reconcile loop restarts it within seconds (journalctl -u dlll-cias-fence -u moosefs-master); if it stays down, run dlll_cias-switch-to-master on another node",
                );
            }
        }
        many => add(
            Health::Broken,
            format!("{} all hold the master VIP (split brain)", many.join(", ")),
            "cut-off nodes fence themselves; if it lasts, stop keepalived on all but one",
        ),
    }
    for node in serving.iter().filter(|n| !holders.contains(n) || holders.len() > 1) {
        add(
            Health::Broken,
            format!("an mfsmaster runs on {node}, which is not the one master: two masters fork the storage"),
            "its reconcile loop stops it within seconds; if not: systemctl stop moosefs-master there",
        );
    }
    match seen.chunks {
        Some(c) if c.missing > 0 => add(
            Health::Broken,
            format!("{} no valid copy: the files they belong to lost data", chunks_have(c.missing)),
            "bring back the chunkservers that held them (mfscli -SIS lists their servers; mfsfileinfo on a file names its chunks)",
        ),
        _ => {}
    }
    match seen.chunks {
        Some(c) if c.undergoal > 0 => add(
            Health::Degraded,
            format!(
                "{} fewer copies than their goal ({} of them only one): one more lost disk may lose data",
                chunks_have(c.undergoal),
                c.endangered
            ),
            "bring back the missing chunkserver, or remove it for good (dlll_cias-remove-node) so MooseFS copies them elsewhere",
        ),
        None if !serving.is_empty() => add(
            Health::Degraded,
            "the MooseFS master did not say how many chunks lack copies".into(),
            "mfscli -H cias-pve-master -SIC on this node",
        ),
        _ => {}
    }
    match &seen.router {
        None => add(
            Health::Broken,
            format!("the cluster lists no router VM {ROUTER_VMID}"),
            "restore it from its backup (qmrestore) on the master",
        ),
        Some((status, node)) if status != "running" => add(
            Health::Broken,
            format!("the router VM {ROUTER_VMID} is {status} on {node}"),
            "qm start 100 on the master (the takeover does it when the role moves)",
        ),
        Some(_) => {}
    }
    let versions: std::collections::BTreeSet<&str> =
        answered.iter().map(|(_, r)| r.version.as_str()).collect();
    for (name, r) in &answered {
        let down = |unit: &str| !matches!(unit, "active" | "activating" | "reloading");
        for (label, state, fix) in [
            ("keepalived", &r.keepalived, "systemctl restart keepalived (it can take the master role again)"),
            (
                "the reconcile loop (dlll-cias-fence)",
                &r.fence,
                "systemctl restart dlll-cias-fence; journalctl -u dlll-cias-fence says why it stopped",
            ),
            (
                "the chunkserver",
                &r.chunkserver,
                "systemctl restart moosefs-chunkserver; check its data disks",
            ),
            ("the metalogger", &r.metalogger, "systemctl restart moosefs-metalogger"),
        ] {
            if down(state) {
                add(Health::Degraded, format!("{label} is {state} on {name}"), fix);
            }
        }
        if !r.mounted {
            add(
                Health::Degraded,
                format!("MooseFS is not mounted on {name}: its VMs' disks are out of reach"),
                "systemctl restart mnt-mfs.mount (the reconcile loop retries on its own)",
            );
        }
        if versions.len() > 1 {
            add(
                Health::Degraded,
                format!("{name} runs {}", if r.version.is_empty() { "no dlll-cias" } else { &r.version }),
                "install the same dlll-cias version on every node",
            );
        }
        if r.uplink != "up" {
            add(
                Health::Degraded,
                format!("{name} has no uplink ({}): it powers off unless the link comes back", r.uplink),
                "restore the link, or keep it up: dlll_cias-watch uplink --cancel on that node",
            );
        }
        if too_old(r.router_copy_age_secs, r.installed_age_secs, limits) {
            add(
                Health::Degraded,
                match r.router_copy_age_secs {
                    Some(a) => format!("{name}'s local router copy is {} old", human(Duration::from_secs(a))),
                    None => format!("{name} holds no local router copy"),
                },
                "dlll_cias-backup-zentyal on that node (cron runs it on Mondays)",
            );
        }
    }
    if seen.vmid_map_age_secs.is_none_or(|a| a > VMID_MAP_MAX_AGE.as_secs()) {
        add(
            Health::Degraded,
            match seen.vmid_map_age_secs {
                Some(a) => format!(
                    "the VMID map is {} old: a takeover now would not know every VM",
                    human(Duration::from_secs(a))
                ),
                None => {
                    "the VMID map cannot be read: a takeover now would not know which VMs to start".into()
                }
            },
            "dlll_cias-watch vmids on the master (cron runs it every minute)",
        );
    }
    let cluster_age = answered.iter().filter_map(|(_, r)| r.installed_age_secs).max();
    if too_old(seen.router_backup_age_secs, cluster_age, limits) {
        add(
            Health::Degraded,
            match seen.router_backup_age_secs {
                Some(a) => format!("the newest router backup is {} old", human(Duration::from_secs(a))),
                None => "there is no router backup on shared storage".into(),
            },
            "check the backup job (pvesh get /cluster/backup) and run it: vzdump 100",
        );
    }
    problems.sort_by_key(|p| std::cmp::Reverse(p.severity));
    let health = problems.iter().map(|p| p.severity).max().unwrap_or(Health::Healthy);
    (health, problems)
}

/// "1 chunk has", "2 chunks have".
fn chunks_have(n: u64) -> String {
    if n == 1 {
        "1 chunk has".into()
    } else {
        format!("{n} chunks have")
    }
}

/// A copy older than the limit, or none at all once the node (cluster) has been installed
/// longer than that: before, the first weekly run may not have come yet.
fn too_old(copy_age: Option<u64>, installed_age: Option<u64>, limits: Limits) -> bool {
    let limit = limits.backup_max_age.as_secs();
    match copy_age {
        Some(age) => age > limit,
        None => installed_age.is_none_or(|age| age > limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn healthy_report(master: bool) -> NodeReport {
        NodeReport::parse(&format!(
            "master-vip {m}\nexternal-vip {m}\nmfsmaster {}\nkeepalived active\nfence active\n\
             chunkserver active\nmetalogger active\nmounted yes\nversion dlll_cias-watch 0.1.0 (abc)\nuplink \n\
             router-copy-age {}\ninstalled-age {}\n",
            if master { "active" } else { "inactive" },
            2 * DAY,
            30 * DAY,
            m = if master { "yes" } else { "no" },
        ))
    }

    fn cluster() -> Observed {
        Observed {
            seen_from: "node2".into(),
            quorate: true,
            nodes: ["node1", "node2", "node3"]
                .iter()
                .enumerate()
                .map(|(i, n)| NodeView {
                    name: n.to_string(),
                    online: true,
                    report: Some(healthy_report(i == 0)),
                })
                .collect(),
            router: Some(("running".into(), "node1".into())),
            vmid_map_age_secs: Some(30),
            router_backup_age_secs: Some(DAY),
            chunks: Some(ChunkHealth::default()),
            automatic_takeover: Some(true),
            qdevice_voting: None,
        }
    }

    const LIMITS: Limits = Limits { backup_max_age: Duration::from_secs(8 * DAY) };

    fn whats(seen: &Observed) -> (Health, Vec<String>) {
        let (health, problems) = assess(seen, LIMITS);
        (health, problems.into_iter().map(|p| p.what).collect())
    }

    #[test]
    fn a_healthy_cluster_has_no_problem() {
        assert_eq!(whats(&cluster()), (Health::Healthy, vec![]));
        assert_eq!(Health::Healthy.exit_code(), 0);
    }

    #[test]
    fn a_cluster_without_automatic_takeover_is_degraded_and_says_why() {
        let mut seen = cluster();
        seen.automatic_takeover = Some(false);
        let (health, whats) = whats(&seen);
        assert_eq!(health, Health::Degraded);
        assert!(whats[0].starts_with("automatic takeover is off"), "{whats:?}");
        seen.automatic_takeover = None;
        assert_eq!(self::whats(&seen), (Health::Healthy, vec![]));
        seen.qdevice_voting = Some(false);
        let (health, whats) = self::whats(&seen);
        assert_eq!(health, Health::Degraded);
        assert!(whats[0].starts_with("the QDevice does not vote"), "{whats:?}");
    }

    #[test]
    fn a_node_off_degrades_and_is_named() {
        let mut seen = cluster();
        seen.nodes[2] = NodeView { name: "node3".into(), online: false, report: None };
        assert_eq!(whats(&seen), (Health::Degraded, vec!["node3 is offline".to_string()]));
        assert_eq!(Health::Degraded.exit_code(), 1);
    }

    #[test]
    fn chunks_short_of_copies_degrade_and_lost_ones_break() {
        let mut seen = cluster();
        seen.chunks = Some(ChunkHealth { missing: 0, endangered: 45, undergoal: 46 });
        assert_eq!(
            whats(&seen),
            (
                Health::Degraded,
                vec!["46 chunks have fewer copies than their goal (45 of them only one): one more lost disk may lose data".to_string()]
            )
        );
        seen.chunks = Some(ChunkHealth { missing: 0, endangered: 0, undergoal: 1 });
        assert_eq!(whats(&seen).1, ["1 chunk has fewer copies than their goal (0 of them only one): one more lost disk may lose data"]);
        seen.chunks = Some(ChunkHealth { missing: 2, endangered: 0, undergoal: 2 });
        let (health, problems) = whats(&seen);
        assert_eq!(health, Health::Broken);
        assert_eq!(problems[0], "2 chunks have no valid copy: the files they belong to lost data");
        seen.chunks = None;
        assert_eq!(
            whats(&seen),
            (
                Health::Degraded,
                vec!["the MooseFS master did not say how many chunks lack copies".to_string()]
            )
        );
    }

    #[test]
    fn the_master_without_mfsmaster_is_broken() {
        let mut seen = cluster();
        seen.nodes[0].report.as_mut().unwrap().mfsmaster = "inactive".into();
        let (health, problems) = whats(&seen);
        assert_eq!(health, Health::Broken);
        assert_eq!(problems, ["node1 holds the master VIP but its mfsmaster does not run: storage is down"]);
        assert_eq!(Health::Broken.exit_code(), 2);
    }

    #[test]
    fn a_second_mfsmaster_or_two_vip_holders_are_broken() {
        let mut seen = cluster();
        seen.nodes[1].report.as_mut().unwrap().mfsmaster = "active".into();
        assert_eq!(
            whats(&seen).1,
            ["an mfsmaster runs on node2, which is not the one master: two masters fork the storage"]
        );
        seen.nodes[1].report.as_mut().unwrap().holds_master_vip = true;
        let (health, problems) = whats(&seen);
        assert_eq!(health, Health::Broken);
        assert_eq!(problems[0], "node1, node2 all hold the master VIP (split brain)");
    }

    #[test]
    fn lesser_problems_are_named_worst_first() {
        let mut seen = cluster();
        let r = seen.nodes[2].report.as_mut().unwrap();
        r.keepalived = "failed".into();
        r.mounted = false;
        r.uplink = "lost".into();
        r.router_copy_age_secs = Some(9 * DAY);
        seen.router = Some(("stopped".into(), "node1".into()));
        seen.vmid_map_age_secs = None;
        let (health, problems) = whats(&seen);
        assert_eq!(health, Health::Broken);
        assert_eq!(
            problems,
            [
                "the router VM 100 is stopped on node1",
                "keepalived is failed on node3",
                "MooseFS is not mounted on node3: its VMs' disks are out of reach",
                "node3 has no uplink (lost): it powers off unless the link comes back",
                "node3's local router copy is 9 days 0 hours old",
                "the VMID map cannot be read: a takeover now would not know which VMs to start",
            ]
        );
    }

    #[test]
    fn missing_backups_count_only_once_the_first_weekly_run_is_due() {
        let mut seen = cluster();
        seen.router_backup_age_secs = None;
        for node in &mut seen.nodes {
            let r = node.report.as_mut().unwrap();
            r.router_copy_age_secs = None;
            r.installed_age_secs = Some(DAY);
        }
        assert_eq!(whats(&seen), (Health::Healthy, vec![]), "installed a day ago");
        seen.nodes[1].report.as_mut().unwrap().installed_age_secs = Some(9 * DAY);
        assert_eq!(
            whats(&seen).1,
            ["node2 holds no local router copy", "there is no router backup on shared storage"],
            "node2 was installed 9 days ago"
        );
    }

    #[test]
    fn the_node_round_is_read_only_and_parses_what_it_prints() {
        let cmd = node_command("10.254.0.254", "192.168.56.101");
        assert!(!cmd.changes_state());
        let report = healthy_report(true);
        assert!(report.holds_master_vip && report.serves_master() && report.mounted);
        assert_eq!(report.uplink, "up");
        assert_eq!(report.router_copy_age_secs, Some(2 * DAY));
    }
}
