//! `dlll_cias-watch`: the jobs cron runs on every node (SPEC section 4). The master-only jobs
//! are installed everywhere and do nothing unless this node holds the master VIP, so the role
//! can move without anyone editing crontabs.
//!
//! - `vmids`: the master writes which VMID lives on which node, and whether it runs, to
//!   `/mnt/mfs/cias/pve_master_vmid.conf`; a new master reads it to know which VMs to start.
//! - `master`: on a "never master" node, tells the administrator when the quorate cluster has
//!   had no master on two looks a minute apart (this node will not take the role; see
//!   `cias_core::master_watch`).
//! - `nodes`: the quorate master probes every node (TCP, SSH port) and removes one silent
//!   for `watch.node_removal_secs` (30 minutes), while a majority answers; the timers live in
//!   `/mnt/mfs/cias/node-watch.json` (see `cias_core::node_watch`).
//! - `peers`: every node keeps keepalived's unicast peers and its nftables filter in line with
//!   the address registry (see `cias_core::peers`); `--all` asks every member to.
//! - `uplink`: every node pings the uplink targets; when none answers, one power-off is
//!   scheduled `uplink.shutdown_after_mins` later (VMs stopped cleanly first, the master's role
//!   handed over first), cancelled when the link comes back (see `cias_core::uplink`).
//!
//! `vmids` also keeps every VM's Proxmox firewall in place (`cias_core::guest_firewall`).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod nodes;
mod peers;
mod uplink;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cias_core::guest_firewall::{self, ClusterFirewall, Fix};
use cias_core::host::{port_open, Command, Host, LocalHost};
use cias_core::installed::InstalledNode;
use cias_core::journal::{JournalError, RunLock};
use cias_core::master_watch::{Absence, Finding};
use cias_core::paths;
use cias_core::proxmox::pvesh::{self, VmResource};
use cias_core::settings::ClusterSettings;
use cias_core::state_file::StateFile;
use clap::Parser;

/// Cron jobs of a DLLL-CIAS node. Each run's outcome is in the journal (`journalctl -t
/// dlll_cias-watch`); what changed is also in /data/cias/nodes/NODE/watch.log.
#[derive(Debug, Parser)]
#[command(name = "dlll_cias-watch", version = cias_core::VERSION, after_help = cias_core::exit_status_help!())]
struct Cli {
    #[command(subcommand)]
    job: Job,
    #[command(flatten)]
    verbosity: cias_core::logging::Verbosity,
}

#[derive(Debug, clap::Subcommand)]
enum Job {
    /// On the master: write the VMID map /mnt/mfs/cias/pve_master_vmid.conf, and give every VM
    /// its anti-spoofing firewall (every minute).
    ///
    /// A VM whose /etc/pve/firewall/VMID.fw is missing or differs from dlll-cias' gets it (its
    /// NIC may send only from its MAC and its VMID's address 10.X.A.B, and from the DHCP range),
    /// and `firewall=1` on net0 (`pvesh set`). What was changed is logged in
    /// /data/cias/nodes/NODE/watch.log.
    Vmids,
    /// On a never-master node: mail the administrator when no master answers on two looks
    /// (every minute).
    Master,
    /// On every node: ping the uplink targets; when none answers, power this node off later
    /// (every 3 minutes).
    ///
    /// The targets are `uplink.targets` in /data/cias/cias.yaml (default: the external
    /// gateway, 8.8.8.8 and 1.1.1.1); any answer to `ping` counts. The first run that gets no
    /// answer schedules one power-off `uplink.shutdown_after_mins` later (default 15) as the
    /// systemd timer dlll-cias-uplink-power-off.timer, tells everyone logged in (wall) and
    /// mails the administrator; later runs leave it as it is. A run that gets an answer again
    /// cancels it. Nothing is scheduled while the router VM 100 runs nowhere (then the outside
    /// cannot answer through it whatever the uplink does). The state is kept in
    /// /var/lib/dlll-cias/uplink.json: a node that boots without uplink schedules afresh, a
    /// full period later.
    ///
    /// At the deadline, if still nothing answers: the master hands its role and the router to
    /// the highest-priority node whose uplink answers (the manual switch runs there); every VM
    /// here is shut down cleanly (`qm shutdown --timeout 180 --forceStop 1`); a master that
    /// found no such node then keeps the storage up until no VM runs on the other nodes (their
    /// disks are on it; at most 15 minutes); the node powers off (`systemctl poweroff`).
    Uplink {
        /// Cancel the scheduled power-off; none is scheduled again until the uplink has come
        /// back once.
        #[arg(long, conflicts_with_all = ["probe", "power_off"])]
        cancel: bool,
        /// Only ping the targets: exit 0 when one answers, 1 when none does; nothing changes.
        #[arg(long, conflicts_with = "power_off")]
        probe: bool,
        /// Run by the power-off timer at the deadline (see above).
        #[arg(long, hide = true)]
        power_off: bool,
    },
    /// On the quorate master: check every node and remove the ones silent too long (every 5
    /// minutes).
    ///
    /// Every member of `pvesh get /cluster/status` is probed at once: a node answers when it
    /// accepts a TCP connection on port 22 (SSH) within 1 s, so a node whose sshd is down counts
    /// as silent. The administrator is mailed when a node first fails to answer. A node silent
    /// for `watch.node_removal_secs` in /data/cias/cias.yaml (default 1800, 30 minutes) is
    /// removed with `dlll_cias-remove-node --yes NODE` at the first check after that, only
    /// while more than half of the members answer; otherwise nothing is removed and the
    /// administrator is told why, once. A node that answers again is forgotten.
    ///
    /// Since when each node has been silent is kept in /mnt/mfs/cias/node-watch.json (shared,
    /// so a new master continues the timers); the log is /data/cias/nodes/NODE/watch.log.
    /// Does nothing, silently, unless this node holds the master VIP and has quorum.
    Nodes,
    /// On every node: bring keepalived's unicast peers and the node filter (nftables table inet
    /// dlll_cias, /etc/dlll-cias/firewall.nft) in line with the address registry (every minute).
    ///
    /// Only the registry's nodes may speak VRRP, MooseFS and corosync to a node. The registry is
    /// read from /mnt/mfs/cias (this node's /data/cias copy while MooseFS is down); an unchanged
    /// registry changes nothing. keepalived is reloaded, never restarted, so no role moves.
    Peers {
        /// Also on every other online member, over SSH (a node joining or leaving asks this).
        #[arg(long)]
        all: bool,
        /// Convert a keepalived that still advertises by multicast (a node installed before
        /// unicast peers) to unicast. Its election restarts: the master is demoted for a few
        /// seconds and mfsmaster moves. Run it on every node (or once with --all) at a quiet
        /// moment; nodes that differ cannot hear each other meanwhile.
        #[arg(long)]
        unicast: bool,
    },
}

/// What a job did, for the journal.
type Outcome = String;

const NOT_MASTER: &str = "this node does not hold the master VIP: nothing to do";

fn vmids(host: &dyn Host) -> Result<Outcome> {
    let settings = ClusterSettings::load(&paths::default_settings_file())?;
    if !cias_core::host::holds_address(host, &settings.internal.master_vip.to_string())? {
        return Ok(NOT_MASTER.into());
    }
    let vms: Vec<VmResource> =
        pvesh::parse("pvesh get /cluster/resources", &host.run(&pvesh::vm_resources_command())?.stdout)?;
    // Never overwrite a good map with what a node without quorum sees.
    if vms.iter().any(|v| v.status == "unknown") {
        return Ok("some VMs' state is unknown (no quorum?): the VMID map is left as it was".into());
    }
    let text = cias_core::takeover::vmid_map_text(&vms);
    let partial = format!("{}.partial", paths::VMID_MAP_FILE);
    host.run(&Command::write_file(&partial, text, "0644"))?;
    host.run(&Command::from_argv(&["mv", &partial, paths::VMID_MAP_FILE]))?;
    let fixes = secure_vms(host, &settings, &vms)?;
    Ok(format!("VMID map written ({} VMs); {fixes} firewall fix(es)", vms.len()))
}

/// What the firewall job last told about (told again only when it changes).
#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct FirewallFindings {
    cluster_off: bool,
    foreign: Vec<u32>,
    addressless: Vec<u32>,
}

impl StateFile for FirewallFindings {
    const NAME: &'static str = "watch-firewall.json";
}

/// Every VM gets its anti-spoofing firewall; what cannot be done is named in the log (once), and
/// the rest is still done. Returns how many fixes were made.
fn secure_vms(host: &dyn Host, settings: &ClusterSettings, vms: &[VmResource]) -> Result<usize> {
    let cluster = guest_firewall::ensure_cluster(host)?;
    let vms: Vec<(String, u32)> =
        vms.iter().filter(|v| v.kind == "qemu" && !v.template).map(|v| (v.node.clone(), v.vmid)).collect();
    let plan = guest_firewall::plan(&vms, &guest_firewall::observe(host)?, settings);
    let findings = FirewallFindings {
        cluster_off: cluster == ClusterFirewall::TheirsOff,
        foreign: plan.foreign.clone(),
        addressless: plan.addressless.clone(),
    };
    let file = FirewallFindings::file();
    let news = FirewallFindings::load(&file) != findings;
    if plan.fixes.is_empty() && cluster != ClusterFirewall::Ours(true) && !news {
        return Ok(0);
    }
    cias_core::logging::also_to_file(&paths::node_dir(host.name()).join("watch.log"))?;
    if cluster == ClusterFirewall::Ours(true) {
        tracing::info!("datacenter firewall switched on ({})", guest_firewall::CLUSTER_FILE);
    }
    if news {
        if findings.cluster_off {
            tracing::error!(
                "{} is the administrator's and lacks `enable: 1`: Proxmox compiles no VM firewall rule, so no VM is held to its address",
                guest_firewall::CLUSTER_FILE
            );
        }
        for vmid in &findings.foreign {
            tracing::warn!(
                "VM {vmid}: {} is the administrator's (no dlll-cias mark): left as it is",
                guest_firewall::vm_file(*vmid)
            );
        }
        for vmid in &findings.addressless {
            tracing::warn!("VM {vmid}: its VMID is outside the address plan, so it may send from no address");
        }
        findings.save(&file).with_context(|| format!("cannot write {}", file.display()))?;
    }
    let mut failed: Vec<String> = Vec::new();
    for fix in &plan.fixes {
        match (guest_firewall::apply(host, fix), fix) {
            (Ok(()), Fix::File { vmid, .. }) => {
                tracing::info!("VM {vmid}: anti-spoofing firewall file written")
            }
            (Ok(()), Fix::Nic { vmid, node, net, .. }) => {
                tracing::info!("VM {vmid} on {node}: firewall=1 set on {net}")
            }
            (Err(e), _) => {
                tracing::error!("VM {}: anti-spoofing firewall not in place - {e}", fix.vmid());
                failed.push(fix.vmid().to_string());
            }
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("VMs without anti-spoofing firewall: {}", failed.join(", "));
    }
    Ok(plan.fixes.len())
}

fn master(host: &dyn Host, node: &str) -> Result<Outcome> {
    let settings = ClusterSettings::load(&paths::default_settings_file())?;
    if InstalledNode::load(node)?.priority.can_be_master() {
        return Ok("this node may be master (its keepalived takes the role itself): nothing to do".into());
    }
    let status = host.run(&pvesh::get_json("/cluster/status"))?.stdout;
    let entries: Vec<pvesh::ClusterStatusEntry> = pvesh::parse("pvesh get /cluster/status", &status)?;
    if !pvesh::partition(&entries).0 {
        // Cut off: the fence service acts, and nothing here can tell who is master.
        return Ok("this node is outside the quorate partition: nothing to look at".into());
    }
    // One look at a time (cron, or an administrator at the same moment): told once.
    let _lock = match RunLock::acquire(&Path::new(paths::STATE_DIR).join("watch-master.lock")) {
        Err(JournalError::Busy { .. }) => return Ok("another look is under way".into()),
        lock => lock?,
    };
    cias_core::logging::also_to_file(&paths::node_dir(node).join("watch.log"))?;
    let vip = settings.internal.master_vip.to_string();
    let answers = port_open(host, &vip, 9421)?;
    let file = Absence::file();
    let mut absence = Absence::load(&file);
    let finding = absence.observe(answers, cias_core::clock::boot_ms());
    absence.save(&file).with_context(|| format!("cannot write {}", file.display()))?;
    let outcome = format!("a master answers at {vip}:9421: {}", if answers { "yes" } else { "no" });
    match finding {
        Finding::Present => {}
        Finding::Missing(d) => tracing::warn!("no master answers at {vip}:9421 (for {}s)", d.as_secs()),
        Finding::Back(d) => {
            tracing::warn!("a master answers at {vip}:9421 again, after {}s without", d.as_secs())
        }
        Finding::Tell(d) => {
            let why = format!(
                "No master has answered at {vip}:9421 for {}s, and {node} was installed with priority 0 \
                 (\"never master\"): it does not take the role. The cluster's storage (MooseFS) and router \
                 have no master. Bring back a node that may be master, or run dlll_cias-switch-to-master \
                 on one that is up.",
                d.as_secs()
            );
            tracing::error!("{why}");
            cias_core::notify::tell_admin(
                &settings,
                &format!("DLLL-CIAS: no master, and {node} will not take the role"),
                &why,
            );
        }
    }
    Ok(outcome)
}

impl Job {
    fn name(&self) -> &'static str {
        match self {
            Job::Vmids => "vmids",
            Job::Master => "master",
            Job::Uplink { .. } => "uplink",
            Job::Nodes => "nodes",
            Job::Peers { .. } => "peers",
        }
    }
}

fn main() -> ExitCode {
    cias_core::docs::write_if_asked::<Cli>();
    let cli = Cli::parse();
    cias_core::logging::start("dlll_cias-watch", cli.verbosity, cias_core::logging::Terminal::Echo);
    let name = cli.job.name();
    let result = paths::node_name().context("cannot read this node's host name").and_then(|node| {
        let local: std::sync::Arc<dyn Host> = std::sync::Arc::new(LocalHost::new(node.clone()));
        match cli.job {
            Job::Vmids => vmids(local.as_ref()),
            Job::Master => master(local.as_ref(), &node),
            Job::Nodes => nodes::run(local.as_ref(), &node),
            Job::Peers { all, unicast } => peers::run(&local, &node, all, unicast),
            Job::Uplink { cancel, probe, power_off } => {
                let ask = match (cancel, probe, power_off) {
                    (true, _, _) => uplink::Ask::Cancel,
                    (_, true, _) => uplink::Ask::Probe,
                    (_, _, true) => uplink::Ask::PowerOff,
                    _ => uplink::Ask::Look,
                };
                uplink::run(&local, ask)
            }
        }
    });
    cias_core::exit::finish(
        &format!("dlll_cias-watch {name}"),
        result.map(|outcome| {
            tracing::info!(target: cias_core::logging::NOT_IN_FILE, "{name}: {outcome}");
            ExitCode::SUCCESS
        }),
    )
}
