//! `dlll_cias-escape`: this node leaves the cluster for good (SPEC section 6, scenario 5). The
//! plan is `cias_core::escape::plan`'s; this file shows it, asks, and carries it out: the
//! master role handed over first (the router goes with it), every other VM moved live to the
//! least RAM-loaded other node, this node's MooseFS disks drained until every chunk has its
//! copies elsewhere, its services stopped, its address retired and the node deleted from the
//! Proxmox cluster by a remaining member, the report is mailed, and the node powers off. Every step looks at
//! what is left first, so a re-run after an interruption continues.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod drain;
mod moves;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cias_core::chunkservers;
use cias_core::escape::{self, Inputs, Plan};
use cias_core::exit::{self, Refused};
use cias_core::handover;
use cias_core::host::{Command, DryRunHost, Host, LocalHost};
use cias_core::installed::InstalledNode;
use cias_core::journal::{JournalError, RunLock};
use cias_core::members::{self, step_host, vip_holder};
use cias_core::notify::tell_admin_and;
use cias_core::paths;
use cias_core::registry_file;
use cias_core::settings::ClusterSettings;
use cias_core::takeover::{ClusterView, ROUTER_VMID};
use cias_core::timeline::Timeline;
use clap::Parser;

/// Take this node out of the DLLL-CIAS cluster for good.
///
/// In order: if this node is the master, the role goes to the online node with the highest
/// priority (the manual switch runs there; the router migrates live with it). Every other VM
/// here moves live (stopped ones offline) to the online non-master node with the smallest share
/// of RAM in use that has room under placement.max_memory_percent, a few at a time. This
/// node's MooseFS disks are marked for removal, and it waits until every chunk on them has its
/// copies on other nodes. Its address and host name are retired in the registry (never given
/// out again), keepalived, the reconcile loop, MooseFS and the cron jobs stop here, a remaining
/// member deletes it from the Proxmox cluster (`pvecm delnode`) and removes its directory in
/// /etc/pve, the administrator (and --mail) get the report, and the node powers off.
///
/// The plan is shown first (all of it with --dry-run, which changes nothing) and confirmed at
/// a terminal unless --yes. Interrupted, a re-run continues where it stopped.
#[derive(Debug, Parser)]
#[command(
    name = "dlll_cias-escape",
    version = cias_core::VERSION,
    after_help = concat!(
        cias_core::exit_status_help!(),
        " Refused: no quorum, the last node, no successor, no room for a VM, not confirmed.\n\n",
        "Files: /data/cias/nodes/<node>/escape.log (every run)."
    )
)]
struct Cli {
    #[command(flatten)]
    verbosity: cias_core::logging::Verbosity,
    /// Do not ask for confirmation (needed without a terminal).
    #[arg(long)]
    yes: bool,
    /// Show the plan and every command; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also send the report to this address.
    #[arg(long, value_name = "ADDRESS")]
    mail: Option<String>,
    /// How many VMs migrate at once.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=16))]
    parallel: u8,
    /// Stay on at the end (the node is out of the cluster anyway).
    #[arg(long)]
    no_poweroff: bool,
    /// Cluster settings.
    #[arg(long, value_name = "FILE", default_value_os_t = paths::default_settings_file())]
    config: PathBuf,
}

const LOCK: &str = "/run/dlll-cias/escape.lock";

/// Everything the steps work with.
#[derive(Debug)]
pub struct Ctx {
    /// This node, read through (in a dry run, the recorder).
    pub host: Arc<dyn Host>,
    /// This node for real: carries the SSH sessions to the others.
    pub local: Arc<dyn Host>,
    pub me: String,
    pub ip: String,
    settings: ClusterSettings,
    pub dry_run: bool,
    /// What was done, logged as it happens and mailed at the end.
    pub tl: Timeline,
    /// How many VMs migrate at once.
    pub parallel: usize,
}

impl Ctx {
    /// Another member as a host (a dry run shows its commands).
    fn on(&self, view: &ClusterView, node: &str) -> Result<Arc<dyn Host>> {
        Ok(step_host(&self.local, view, node, self.dry_run)?)
    }

    fn view(&self) -> Result<ClusterView> {
        Ok(members::view(self.local.as_ref())?)
    }

    fn plan(&self, view: &ClusterView) -> Result<Plan> {
        let vip = self.settings.internal.master_vip.to_string();
        let master = vip_holder(&self.local, view, &vip);
        let priorities = members::priorities(view);
        let inputs = Inputs {
            me: &self.me,
            master: master.as_deref(),
            priorities: &priorities,
            memory_limit_percent: self.settings.placement.max_memory_percent,
        };
        Ok(escape::plan(view, &inputs).map_err(|r| Refused(r.to_string()))?)
    }
}

fn main() -> ExitCode {
    cias_core::docs::write_if_asked::<Cli>();
    let cli = Cli::parse();
    cias_core::logging::start("dlll_cias-escape", cli.verbosity, cias_core::logging::Terminal::Echo);
    exit::finish("dlll_cias-escape", run(&cli).map(|()| ExitCode::SUCCESS))
}

fn run(cli: &Cli) -> Result<()> {
    let me = paths::node_name().context("cannot read this node's host name")?;
    let settings = ClusterSettings::load(&cli.config)?;
    let installed = InstalledNode::load(&me)?;
    if !cli.dry_run {
        cias_core::logging::also_to_file(&paths::node_dir(&me).join("escape.log"))
            .context("cannot open the escape log")?;
    }
    let _lock = match RunLock::acquire(Path::new(LOCK)) {
        Err(JournalError::Busy { pid, .. }) => {
            bail!(Refused(format!("an escape is already running here (pid {pid})")))
        }
        lock => lock?,
    };
    let local: Arc<dyn Host> = Arc::new(LocalHost::new(me.clone()));
    let mut ctx = Ctx {
        host: DryRunHost::printing_if(cli.dry_run, local.clone()),
        local,
        me,
        ip: installed.ip.to_string(),
        settings,
        dry_run: cli.dry_run,
        tl: Timeline::new(),
        parallel: usize::from(cli.parallel),
    };
    let view = ctx.view()?;
    let plan = ctx.plan(&view)?;
    show(&ctx, &plan);
    if !plan.unplaced.is_empty() {
        bail!(Refused(format!(
            "no node has room for VM {} under placement.max_memory_percent ({}%): free memory elsewhere or raise the limit",
            plan.unplaced.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
            ctx.settings.placement.max_memory_percent
        )));
    }
    confirm(cli)?;

    let outcome = leave(&mut ctx, &view, &plan);
    if let Err(e) = &outcome {
        ctx.tl.note(&format!("stopped - {e:#}; run dlll_cias-escape again to continue"));
    }
    print!("{}", ctx.tl.text());
    if !cli.dry_run {
        let subject = match &outcome {
            Ok(()) => format!("DLLL-CIAS: node {} left the cluster", ctx.me),
            Err(_) => format!("DLLL-CIAS: node {} did not finish leaving the cluster", ctx.me),
        };
        let body = format!("dlll_cias-escape on {}:\n\n{}", ctx.me, ctx.tl.text());
        tell_admin_and(&ctx.settings, cli.mail.as_deref(), &subject, &body);
    }
    outcome?;
    if !cli.no_poweroff {
        ctx.tl.note("powering off");
        ctx.host.run(&Command::from_argv(&["systemctl", "poweroff"]))?;
    }
    Ok(())
}

fn show(ctx: &Ctx, plan: &Plan) {
    println!("Plan for {} leaving the cluster:", ctx.me);
    if let Some(to) = &plan.handover_to {
        println!("  hand the master role over to {to} (the router VM {ROUTER_VMID} migrates live with it)");
    }
    for m in &plan.moves {
        println!("  move {m}");
    }
    for vmid in &plan.unplaced {
        println!("  VM {vmid}: no node has room for it");
    }
    println!(
        "  drain this node's MooseFS disks; stop keepalived, the reconcile loop, MooseFS and the cron jobs \
         here; retire {} in the registry; delete {} from the Proxmox cluster; mail the report; power off",
        ctx.ip, ctx.me
    );
}

fn confirm(cli: &Cli) -> Result<()> {
    if cli.yes || cli.dry_run {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!(Refused("without a terminal, confirm with --yes".into()));
    }
    if !dialoguer::Confirm::new().with_prompt("Carry this out?").default(false).interact()? {
        bail!(Refused("not confirmed; nothing was changed".into()));
    }
    Ok(())
}

/// Every step after the confirmation, in order.
fn leave(ctx: &mut Ctx, view: &ClusterView, plan: &Plan) -> Result<()> {
    let successor = match &plan.handover_to {
        Some(to) => {
            hand_over(ctx, view, to)?;
            to.clone()
        }
        None => vip_holder(&ctx.local, view, &ctx.settings.internal.master_vip.to_string())
            .filter(|m| *m != ctx.me)
            .or_else(|| view.online().into_iter().find(|n| *n != ctx.me).map(str::to_string))
            .context("no other online member to leave the cluster through")?,
    };
    // The handover changed who is master and where the router runs: plan the moves afresh.
    let (view, plan) = if plan.handover_to.is_some() && !ctx.dry_run {
        let view = ctx.view()?;
        let plan = ctx.plan(&view)?;
        (view, plan)
    } else {
        (view.clone(), plan.clone())
    };
    moves::migrate_all(ctx, &plan.moves)?;
    if !ctx.dry_run {
        let left: Vec<u32> = ctx.view()?.vms.iter().filter(|v| v.node == ctx.me).map(|v| v.vmid).collect();
        if !left.is_empty() {
            bail!("VMs still on this node after the moves: {left:?}");
        }
    }
    drain::drain(ctx)?;
    // Services first (taking its chunkserver off the master's list needs a connection from this
    // node's address), then the address retired on the successor: once retired, the members'
    // node filters refuse new connections from this node (measured: its `mfscli -CRC` got no
    // answer when a member's filter had followed the registry in between).
    stop_services(ctx)?;
    let member = ctx.on(&view, &successor)?;
    if let Some(entry) = registry_file::retire(member.as_ref(), registry_file::SHARED, &ctx.me)? {
        ctx.tl
            .note(&format!("address {} and host name {} retired in the registry", entry.ip, entry.hostname));
    }
    member.run(&Command::from_argv(&["pvecm", "delnode", &ctx.me]))?;
    member.run(&Command::from_argv(&["rm", "-rf", &format!("/etc/pve/nodes/{}", ctx.me)]))?;
    ctx.tl.note(&format!("{} deleted from the Proxmox cluster by {successor} (pvecm delnode)", ctx.me));
    cias_core::peers::follow_registry(member.as_ref(), &mut ctx.tl);
    Ok(())
}

/// The manual switch runs on `to`; this node waits until the VIP and the router have left it.
fn hand_over(ctx: &mut Ctx, view: &ClusterView, to: &str) -> Result<()> {
    ctx.on(view, to)?.run(&handover::switch_command())?;
    if ctx.dry_run {
        return Ok(());
    }
    handover::wait_gone(ctx.local.as_ref(), &ctx.settings.internal.master_vip.to_string())?;
    ctx.tl.note(&format!("master role and router handed over to {to}"));
    Ok(())
}

/// This node stops taking part: the loop first (it disarms the watchdog as it stops), then
/// keepalived, MooseFS (its chunkserver also leaves the master's list, or the master would
/// copy no endangered chunk while it is listed) and the cron jobs; its mount last, once
/// nothing here writes to it.
fn stop_services(ctx: &mut Ctx) -> Result<()> {
    ctx.host.run(&Command::from_argv(&[
        "systemctl",
        "disable",
        "--now",
        "dlll-cias-fence.service",
        "keepalived.service",
        "moosefs-chunkserver.service",
        "moosefs-metalogger.service",
    ]))?;
    if !ctx.dry_run {
        if let Some(why) = chunkservers::remove(ctx.local.as_ref(), &ctx.ip, Duration::from_secs(60))? {
            bail!("{why}; run dlll_cias-escape again");
        }
    }
    ctx.host.run(&Command::from_argv(&["rm", "-f", "/etc/cron.d/dlll-cias"]))?;
    ctx.host.run(&Command::from_argv(&["systemctl", "stop", paths::MFS_MOUNT_UNIT]))?;
    ctx.tl.note("keepalived, the reconcile loop, MooseFS and the cron jobs stopped here");
    Ok(())
}
