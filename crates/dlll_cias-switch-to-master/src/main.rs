//! `dlll_cias-switch-to-master`: make this node the cluster master (SPEC section 6,
//! scenarios 3 and 4).
//!
//! keepalived runs it as `notify_master` (`--from-keepalived`) the moment this node takes the
//! VIPs: it promotes MooseFS from the local metalogger, then brings the router here and
//! recovers the VMs of lost nodes (see `cias_core::takeover` for the rules and the fence
//! wait). Run by hand on another node, it is the manual switch (`manual`). It refuses to act
//! without quorum or on a "never master" node, and one lock makes overlapping notifications
//! run it once.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod keepalived;
mod manual;
mod moosefs;
mod vms;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use cias_core::clock::boot_ms;
use cias_core::host::{Command, DryRunHost, Host, LocalHost, PeerHost};
use cias_core::installed::InstalledNode;
use cias_core::journal::{JournalError, RunLock};
use cias_core::notify::tell_admin;
use cias_core::paths;
use cias_core::reconcile::Verdict;
use cias_core::settings::ClusterSettings;
use cias_core::state_file::StateFile;
use cias_core::takeover::ClusterView;
use clap::Parser;

use cias_core::timeline::Timeline;

/// Make this node the master of the DLLL-CIAS cluster.
///
/// From keepalived (--from-keepalived): the VIPs are already here. Promotes MooseFS from this
/// node's metalogger, starts mfscgiserv, then migrates the router (VM 100) here or recovers it,
/// and recovers every VM of a lost node on the least-loaded other node - only after the lost
/// node has been out of the quorate partition for the fence delay plus the margin (it has
/// stopped them by then). Mails the administrator the timeline.
///
/// By hand on another node: the manual switch. The current master stops its mfsmaster cleanly
/// and this node takes its final metadata; this node wins the VRRP election with its
/// manual-switch keepalived file, goes back to its normal file (nopreempt keeps it master),
/// promotes MooseFS and migrates the router here live. On the current master it has nothing
/// to do.
///
/// Refuses without quorum, and on a node installed with priority 0 ("never master").
#[derive(Debug, Parser)]
#[command(
    name = "dlll_cias-switch-to-master",
    version = cias_core::VERSION,
    after_help = concat!(
        cias_core::exit_status_help!(),
        " Another takeover running counts as done. Refused: no quorum, a never-master node.\n\n\
         Files: /data/cias/nodes/<node>/takeover.log (timeline of every run, also in the journal)."
    )
)]
struct Cli {
    #[command(flatten)]
    verbosity: cias_core::logging::Verbosity,
    /// Set by keepalived's notify_master hook: the VIPs already moved here.
    #[arg(long)]
    from_keepalived: bool,
    /// Show what would be done, with the exact commands; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Cluster settings.
    #[arg(long, value_name = "FILE", default_value_os_t = paths::default_settings_file())]
    config: PathBuf,
}

const LOCK: &str = paths::TAKEOVER_LOCK;
/// Left by a notify_master that found a takeover running.
const AGAIN: &str = "/run/dlll-cias/switch-to-master.again";
/// A takeover asked for again more often than this is left to the reconcile loop.
const MAX_RERUNS: usize = 2;

/// Why the takeover did not act; the administrator is told.
#[derive(Debug)]
enum Refusal {
    NoQuorum(String),
    NeverMaster,
    /// The reconcile loop says this node may not hold the role now (why).
    Unfit(String),
}

/// Another node of the cluster.
#[derive(Debug)]
pub struct Peer {
    /// Runs commands there (a dry run shows them as that node's).
    pub host: Arc<dyn Host>,
    link: PeerHost,
}

impl Peer {
    pub fn name(&self) -> &str {
        self.host.name()
    }

    /// The command, for this node, that copies the peer's file `remote` to `local` here.
    pub fn copy_from(&self, remote: &str, local: &str) -> Command {
        self.link.copy_from(remote, local)
    }
}

/// Everything the steps work with.
#[derive(Debug)]
pub struct Ctx {
    /// This node (in a dry run, the recorder).
    pub host: Arc<dyn Host>,
    /// This node for real, which carries the SSH sessions to peers.
    local: Arc<dyn Host>,
    pub node: String,
    pub settings: ClusterSettings,
    pub dry_run: bool,
}

impl Ctx {
    pub fn view(&self) -> Result<ClusterView> {
        Ok(cias_core::members::view(self.host.as_ref())?)
    }

    /// Another node of the cluster, reached over SSH at its cluster address.
    pub fn peer(&self, name: &str, view: &ClusterView) -> Result<Peer> {
        let ip = view
            .ip(name)
            .with_context(|| format!("pvesh get /cluster/status lists no address for {name}"))?;
        let link = PeerHost::new(name, ip, self.local.clone());
        Ok(Peer { host: DryRunHost::printing_if(self.dry_run, Arc::new(link.clone())), link })
    }

    /// Fails with [`LostElection`] once this node does not hold the master VIP (a dry run
    /// goes on as if it did).
    pub fn still_master(&self) -> Result<()> {
        if !self.dry_run && !self.holds_master_vip()? {
            bail!(LostElection);
        }
        Ok(())
    }

    pub fn holds_master_vip(&self) -> Result<bool> {
        Ok(cias_core::host::holds_address(
            self.host.as_ref(),
            &self.settings.internal.master_vip.to_string(),
        )?)
    }
}

fn main() -> ExitCode {
    cias_core::docs::write_if_asked::<Cli>();
    let cli = Cli::parse();
    cias_core::logging::start(
        "dlll_cias-switch-to-master",
        cli.verbosity,
        cias_core::logging::Terminal::Echo,
    );
    match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(target: cias_core::logging::RECORD_ONLY, "failed: {e:#}");
            eprintln!("dlll_cias-switch-to-master: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Checks that change nothing come first: a node that is not installed, or whose settings are
/// broken, gets an error and no log directory, no lock, no mail.
fn run(cli: &Cli) -> Result<ExitCode> {
    let node = paths::node_name().context("cannot read this node's host name")?;
    let settings = ClusterSettings::load(&cli.config)?;
    let installed = InstalledNode::load(&node)?;
    let caller = if cli.from_keepalived { "keepalived notify_master" } else { "manual switch" };
    if !cli.dry_run {
        cias_core::logging::also_to_file(&paths::node_dir(&node).join("takeover.log"))
            .context("cannot open the takeover log")?;
    }
    let _lock = if cli.dry_run {
        None
    } else {
        match RunLock::acquire(std::path::Path::new(LOCK)) {
            Ok(lock) => Some(lock),
            Err(JournalError::Busy { pid, .. }) => {
                // Not lost: a takeover that does not complete looks for this request at its end.
                if let Err(e) = std::fs::write(AGAIN, caller) {
                    tracing::error!("cannot leave the request {AGAIN} - {e}");
                }
                tracing::info!(
                    "{caller}: a takeover is already running (pid {pid}); it runs again after it if it does not complete"
                );
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => return Err(e.into()),
        }
    };
    let local: Arc<dyn Host> = Arc::new(LocalHost::new(node.clone()));
    let ctx = Ctx {
        host: DryRunHost::printing_if(cli.dry_run, local.clone()),
        local,
        node: node.clone(),
        settings,
        dry_run: cli.dry_run,
    };
    let mut tl = Timeline::new();
    tl.note(&format!("{caller} on {node}"));

    let refusal = if !installed.priority.can_be_master() {
        Some(Refusal::NeverMaster)
    } else {
        // Only a QDevice's re-vote leaves a gap in the quorum of the side that keeps a majority.
        let revote = cli.from_keepalived
            && cias_core::majority::read_votes(ctx.local.as_ref()).is_some_and(|v| v.qdevice.is_some());
        let view = if revote { quorate_view(&ctx)? } else { ctx.view()? };
        let verdict = verdict_after(boot_ms());
        if !view.quorate {
            let online: Vec<&str> = view.online().into_iter().collect();
            Some(Refusal::NoQuorum(format!(
                "this node sees {} of {} nodes ({})",
                online.len(),
                view.nodes.len(),
                online.join(", ")
            )))
        } else if let (false, Err(why)) = (cli.from_keepalived || ctx.holds_master_vip()?, verdict) {
            // keepalived's check fails here too: this node could not win the election.
            Some(Refusal::Unfit(why))
        } else {
            None
        }
    };
    if let Some(refusal) = refusal {
        let why = match &refusal {
            Refusal::NoQuorum(seen) => format!(
                "refused: {node} is not in the quorate partition of the cluster ({seen}); a node \
                 without quorum must not start a MooseFS master or VMs (the other side may run them). \
                 Bring the network back; if the other nodes are really dead, remove them first \
                 (dlll_cias-remove-node)"
            ),
            Refusal::NeverMaster => format!(
                "refused: {node} was installed with priority 0 (\"never master\") and never becomes \
                 master; run the switch on another node"
            ),
            Refusal::Unfit(why) => format!(
                "refused: {node} may not hold the master role now: {why} (see /data/cias/nodes/{node}/fence.log); \
                 run the switch on another node, or again once this is resolved"
            ),
        };
        tl.note(&why);
        eprintln!("dlll_cias-switch-to-master: {why}");
        if !cli.dry_run {
            tell_admin(&ctx.settings, &format!("DLLL-CIAS: {node} refused to become master"), &tl.text());
        }
        return Ok(ExitCode::from(3));
    }

    if !cli.dry_run && keepalived::switch_file_left_active(&ctx)? {
        tl.step(
            "keepalived's normal configuration restored (an interrupted manual switch had left it raised)",
            |_| keepalived::restore_normal(&ctx),
        )?;
    }
    let is_master = ctx.holds_master_vip()?;
    if !cli.from_keepalived && is_master && !moosefs::needs_promotion(&ctx)? {
        tl.note("this node already is the master: nothing to do");
        println!("{node} already is the master: nothing to do");
        return Ok(ExitCode::SUCCESS);
    }

    let _ = std::fs::remove_file(AGAIN);
    let mut outcome = if cli.from_keepalived || is_master {
        takeover(&ctx, &mut tl)
    } else {
        manual::switch(&ctx, &mut tl)
    };
    // keepalived made this node master again while a takeover that then stopped (it lost the
    // VIP for a moment, or a step failed) was running: that second notify_master runs now.
    for _ in 0..MAX_RERUNS {
        let requested = std::fs::remove_file(AGAIN).is_ok();
        if !requested || outcome.is_ok() || cli.dry_run || !ctx.holds_master_vip().unwrap_or(false) {
            break;
        }
        tl.note("keepalived notified again during the takeover, which did not complete: it runs again");
        outcome = takeover(&ctx, &mut tl);
    }
    if let Err(e) = &outcome {
        tl.note(&format!("takeover stopped - {e:#}"));
        if e.is::<LostElection>() {
            // Not a failure: the winner's takeover goes on and mails the administrator.
            print!("{}", tl.text());
            return Ok(ExitCode::SUCCESS);
        }
    }
    let failed = outcome.is_err();
    tl.note(&format!("takeover finished after {:.1}s", tl.elapsed().as_secs_f64()));
    if !cli.dry_run {
        let subject = match (failed, ctx.holds_master_vip().unwrap_or(false)) {
            (false, _) => format!("DLLL-CIAS: {node} is the new master"),
            (true, true) => format!("DLLL-CIAS: {node} is master, but the takeover had failures"),
            (true, false) => format!("DLLL-CIAS: {node} did not become master"),
        };
        tell_admin(&ctx.settings, &subject, &tl.text());
    }
    print!("{}", tl.text());
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Scenario 3: MooseFS first (clients wait on it), then the VMs.
///
/// Two BACKUPs of equal priority that lose the master at the same moment both become MASTER
/// and both run this; the one with the lower address yields within milliseconds, on the
/// other's first advert (keepalived's tie rule). So every step first checks that this node
/// still holds the VIP, and a promotion that raced with the demotion is undone; the loser's
/// notify_backup (`dlll_cias-fence demoted`) stops its mfsmaster too.
pub fn takeover(ctx: &Ctx, tl: &mut Timeline) -> Result<()> {
    ctx.still_master()?;
    let storage =
        tl.step("MooseFS master promoted from the local metalogger", |tl| moosefs::promote(ctx, tl));
    if let Err(lost) = ctx.still_master() {
        moosefs::demote(ctx)?;
        return Err(lost);
    }
    let storage = storage.and_then(|()| moosefs::ensure_mounted(ctx, tl));
    if storage.is_err() {
        // The cluster's network needs its router even so: it comes back from its local copy
        // (cias_core::vm_recovery); every VM whose disk is on MooseFS waits for it.
        tl.note("without MooseFS, the VMs come back as far as they can: the router from its local copy");
    }
    let vms = vms::reconcile(ctx, tl);
    storage.and(vms)
}

/// This node stopped holding the master VIP (another node won the election): its takeover
/// stops, the winner's goes on.
#[derive(Debug)]
pub struct LostElection;

impl std::fmt::Display for LostElection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("this node no longer holds the master VIP (another node won the election); its takeover stops here")
    }
}

impl std::error::Error for LostElection {}

/// The reconcile loop's verdict from a look taken after `since` (boot clock), or its last one
/// after 3 s: a node that has just regained quorum (`pvecm expected 1` on the survivor of a
/// two-node cluster) is fit only from the loop's next look, a second later.
fn verdict_after(since: u64) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let verdict = Verdict::load(&Verdict::file());
        if verdict.at_ms >= since || std::time::Instant::now() > deadline {
            return verdict.allows_role(boot_ms());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The cluster as this node sees it, quorate if it becomes so within 10 s. In a cluster with
/// a QDevice, keepalived may make this node MASTER while the QDevice re-votes after a member's
/// loss (measured in the lab, two nodes and a QDevice: the survivor's VRRP timer fired in that
/// gap, its takeover refused, and the node gave the role up for 2 minutes). Without quorum it
/// is still refused, 10 s later.
fn quorate_view(ctx: &Ctx) -> Result<ClusterView> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let view = ctx.view()?;
        if view.quorate || std::time::Instant::now() > deadline {
            return Ok(view);
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}
