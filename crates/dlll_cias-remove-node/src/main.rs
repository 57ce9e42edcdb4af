//! `dlll_cias-remove-node NODE`: takes a node out of the cluster for good (SPEC section 6,
//! scenario 6). A node that answers leaves by itself (`dlll_cias-escape` runs on it). A dead
//! one is removed from here: its VMs are recovered on the least-loaded other nodes (on their
//! shared disks; from the newest backup only when a disk is gone), then it is deleted from the
//! Proxmox cluster (which lowers the expected votes: the only path that does) and its address
//! retired for good. Proxmox's documented procedure (pvecm.adoc, "Remove a Cluster Node").
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use cias_core::chunkservers;
use cias_core::clock::boot_ms;
use cias_core::exit::{self, BadInput, Refused};
use cias_core::fence::LastSeen;
use cias_core::host::{Command, DryRunHost, Host, LocalHost};
use cias_core::installed::InstalledNode;
use cias_core::journal::{JournalError, RunLock};
use cias_core::members::{self, host_of, step_host, vip_holder};
use cias_core::notify::tell_admin_and;
use cias_core::paths;
use cias_core::settings::ClusterSettings;
use cias_core::state_file::StateFile;
use cias_core::takeover::{self, Action, ClusterView, Inputs};
use cias_core::timeline::Timeline;
use cias_core::{registry_file, vm_recovery};
use clap::Parser;

/// Remove NODE from the DLLL-CIAS cluster for good.
///
/// If NODE is in the quorate partition, it leaves by itself: dlll_cias-escape runs on it
/// (its VMs move live, it hands the master role over, its MooseFS disks are drained, it
/// leaves the cluster and powers off).
///
/// If NODE is not: it must have been outside the quorate partition longer than the fence
/// delay plus margin (fencing.delay_secs + fencing.margin_secs), so it has stopped its own VMs;
/// a node that is only cut off for a moment is refused. Then its VMs are recovered on the
/// least RAM-loaded other nodes (not the master) from their shared disks, or from their newest
/// backup when a disk is gone; NODE is deleted from the Proxmox cluster (`pvecm delnode`, which
/// lowers the expected votes) and its directory in /etc/pve removed; its address and host name
/// are retired in the registry, never given out again; the administrator gets the report.
///
/// --dead skips the wait, after a prompt: only for a node you know is powered off.
#[derive(Debug, Parser)]
#[command(
    name = "dlll_cias-remove-node",
    version = cias_core::VERSION,
    after_help = concat!(
        cias_core::exit_status_help!(),
        " Refused: no quorum, NODE not gone long enough, prompt declined, another removal running.\n\n",
        "Files: /data/cias/nodes/<this node>/remove-node.log (every run)."
    )
)]
struct Cli {
    #[command(flatten)]
    verbosity: cias_core::logging::Verbosity,
    /// The node to remove (its Proxmox node name).
    node: String,
    /// NODE is powered off for sure: do not wait for the fence delay (asks first at a terminal).
    #[arg(long)]
    dead: bool,
    /// Do not ask (needed with --dead when there is no terminal).
    #[arg(long)]
    yes: bool,
    /// Show what would be done, with the exact commands; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also send the report to this address.
    #[arg(long, value_name = "ADDRESS")]
    mail: Option<String>,
    /// Cluster settings.
    #[arg(long, value_name = "FILE", default_value_os_t = paths::default_settings_file())]
    config: PathBuf,
}

const LOCK: &str = "/run/dlll-cias/remove-node.lock";

fn main() -> ExitCode {
    cias_core::docs::write_if_asked::<Cli>();
    let cli = Cli::parse();
    cias_core::logging::start("dlll_cias-remove-node", cli.verbosity, cias_core::logging::Terminal::Echo);
    exit::finish("dlll_cias-remove-node", run(&cli))
}

struct Ctx {
    /// This node, read through (in a dry run, the recorder).
    host: Arc<dyn Host>,
    /// This node for real: carries the SSH sessions to the others.
    local: Arc<dyn Host>,
    me: String,
    settings: ClusterSettings,
    dry_run: bool,
    /// What was done, logged as it happens and mailed at the end.
    tl: Timeline,
}

impl Ctx {
    fn on(&self, view: &ClusterView, node: &str) -> Result<Arc<dyn Host>> {
        Ok(step_host(&self.local, view, node, self.dry_run)?)
    }
}

fn run(cli: &Cli) -> Result<ExitCode> {
    let me = paths::node_name().context("cannot read this node's host name")?;
    let settings = ClusterSettings::load(&cli.config)?;
    InstalledNode::load(&me)?;
    if cli.node == me {
        return Err(BadInput(format!(
            "{me} is this node: run dlll_cias-escape here to take it out of the cluster"
        ))
        .into());
    }
    if !cli.dry_run {
        cias_core::logging::also_to_file(&paths::node_dir(&me).join("remove-node.log"))
            .context("cannot open the removal log")?;
    }
    let _lock = match RunLock::acquire(std::path::Path::new(LOCK)) {
        Err(JournalError::Busy { pid, .. }) => {
            return Err(Refused(format!("another removal is running (pid {pid}); wait for it")).into())
        }
        lock => lock?,
    };
    let local: Arc<dyn Host> = Arc::new(LocalHost::new(me.clone()));
    let mut ctx = Ctx {
        host: DryRunHost::printing_if(cli.dry_run, local.clone()),
        local,
        me,
        settings,
        dry_run: cli.dry_run,
        tl: Timeline::new(),
    };
    let view = members::view(ctx.host.as_ref())?;
    if !view.quorate {
        return Err(Refused(format!(
            "{} is not in the quorate partition; only the quorate side may remove a node",
            ctx.me
        ))
        .into());
    }
    let node = cli.node.as_str();
    match view.nodes.iter().find(|n| n.name == node) {
        Some(member) if member.online => return escape_on(&ctx, &view, cli),
        Some(_) => {
            let gone = refuse_unless_gone(&ctx, &view, cli)?;
            if !recover_vms(&mut ctx, &view, node, gone)? {
                ctx.tl.note(&format!(
                    "{node} stays a member of the cluster: some of its VMs were not recovered (see above); \
                     run dlll_cias-remove-node {node} again once that is fixed"
                ));
                finish(&ctx, cli, false);
                return Ok(ExitCode::FAILURE);
            }
            delete_from_cluster(&mut ctx, node, view.ip(node).map(str::to_string))?;
            retire(&mut ctx, node)?;
        }
        // Not (or no longer) a member: an interrupted removal ends here; anything else is a typo.
        None if retire(&mut ctx, node)? => {}
        None => return Err(BadInput(format!("{node} is not a member of this cluster")).into()),
    }
    finish(&ctx, cli, true);
    Ok(ExitCode::SUCCESS)
}

/// A node that answers leaves by itself: its own escape moves its VMs live and drains its disks.
fn escape_on(ctx: &Ctx, view: &ClusterView, cli: &Cli) -> Result<ExitCode> {
    let node = cli.node.as_str();
    println!("{node} is in the quorate partition: it leaves by itself (dlll_cias-escape runs there)");
    let mut argv = vec!["dlll_cias-escape", "--yes"];
    if cli.dry_run {
        argv.push("--dry-run");
    }
    if let Some(to) = &cli.mail {
        argv.extend(["--mail", to.as_str()]);
    }
    let host = host_of(&ctx.local, view, node).with_context(|| format!("no address for {node}"))?;
    let out = host.execute(&Command::from_argv(&argv).timeout(std::time::Duration::from_secs(4 * 3600)))?;
    if out.code == Some(127) {
        return Err(Refused(format!(
            "{node} answers, so it must leave by itself (its VMs moved live, its disks drained), but \
             dlll_cias-escape is not installed there; nothing was changed. Power it off first to remove it as a dead node"
        ))
        .into());
    }
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    // The escape ends by powering its node off, which cuts this session: what counts is
    // whether the node has left the cluster.
    if !cli.dry_run && !members::view(ctx.local.as_ref())?.nodes.iter().any(|n| n.name == node) {
        println!("{node} has left the cluster");
        return Ok(ExitCode::SUCCESS);
    }
    Ok(ExitCode::from(out.code.and_then(|c| u8::try_from(c).ok()).unwrap_or(1)))
}

/// How long NODE has been outside the quorate partition, as this node's reconcile loop saw it;
/// refuses while that is shorter than the fence delay plus margin (unless `--dead`, confirmed).
fn refuse_unless_gone(ctx: &Ctx, view: &ClusterView, cli: &Cli) -> Result<std::time::Duration> {
    let node = cli.node.as_str();
    let now = boot_ms();
    let gone =
        LastSeen::load(&LastSeen::file()).absences(view.lost().into_iter().filter(|n| *n == node), now, now)
            [node];
    let wait = ctx.settings.fencing.recovery_wait();
    if gone >= wait {
        return Ok(gone);
    }
    if !cli.dead {
        return Err(Refused(format!(
            "{node} has been outside the quorate partition for {}s only; it may be cut off and still \
             running its VMs. It can be removed once it has been gone {}s (fencing.delay_secs + \
             margin_secs: by then it has stopped them itself). If you know it is powered off, use --dead",
            gone.as_secs(),
            wait.as_secs()
        ))
        .into());
    }
    let risk = format!(
        "{node} has left the quorate partition only {}s ago. If it is still running (cut off, not dead), \
         its VMs will run twice on the same disks and be destroyed. Is {node} powered off?",
        gone.as_secs()
    );
    let confirmed = if cli.yes {
        true
    } else if std::io::stdin().is_terminal() {
        dialoguer::Confirm::new().with_prompt(risk).default(false).interact()?
    } else {
        return Err(Refused(format!("{risk} Without a terminal, --dead needs --yes")).into());
    };
    if !confirmed {
        return Err(Refused("not confirmed; nothing was changed".into()).into());
    }
    Ok(wait)
}

/// Recovers NODE's VMs where placement says; false when some could not be.
fn recover_vms(ctx: &mut Ctx, view: &ClusterView, node: &str, gone: std::time::Duration) -> Result<bool> {
    let master = vip_holder(&ctx.local, view, &ctx.settings.internal.master_vip.to_string())
        .unwrap_or_else(|| ctx.me.clone());
    let should_run = vm_recovery::should_run(ctx.host.as_ref(), view)?;
    let lost_for = BTreeMap::from([(node.to_string(), gone)]);
    let inputs = Inputs {
        me: &master,
        lost_for: &lost_for,
        recovery_wait: ctx.settings.fencing.recovery_wait(),
        should_run: &should_run,
        memory_limit_percent: ctx.settings.placement.max_memory_percent,
    };
    let mut all = true;
    for action in takeover::plan(view, &inputs).actions {
        let outcome = match &action {
            Action::Recover { vmid, from, to, start } if from == node => {
                let target = ctx.on(view, to)?;
                let mut notes = Vec::new();
                let local_storage = &ctx.settings.backups.local_storage;
                let done = vm_recovery::recover(
                    ctx.host.as_ref(),
                    target.as_ref(),
                    *vmid,
                    from,
                    *start,
                    local_storage,
                    &mut |n| notes.push(n.to_string()),
                );
                notes.into_iter().for_each(|n| ctx.tl.note(&n));
                done.map_err(anyhow::Error::from)
            }
            Action::Unplaced { from, .. } if from == node => Err(anyhow::anyhow!("{action}")),
            _ => continue,
        };
        match outcome {
            Ok(()) => ctx.tl.note(&format!("{action}: done")),
            Err(e) => {
                all = false;
                ctx.tl.note(&format!("{action}: FAILED - {e:#}"));
            }
        }
    }
    Ok(all)
}

/// `pvecm delnode` (lowers the expected votes), then the node's directory in /etc/pve, which
/// Proxmox leaves behind; it holds no VM config any more.
fn delete_from_cluster(ctx: &mut Ctx, node: &str, ip: Option<String>) -> Result<()> {
    ctx.host.run(&Command::from_argv(&["pvecm", "delnode", node]))?;
    ctx.tl.note(&format!("{node} deleted from the Proxmox cluster (pvecm delnode)"));
    // Its chunkserver leaves the MooseFS master's list, so the master copies its chunks now
    // rather than waiting for it to come back.
    if let Some(ip) = ip {
        if !ctx.dry_run {
            match chunkservers::remove(ctx.local.as_ref(), &ip, Duration::from_secs(5))? {
                None => ctx.tl.note(&format!("its MooseFS chunkserver {ip} taken off the master's list")),
                Some(why) => ctx.tl.note(&format!("its MooseFS chunkserver stays listed: {why}")),
            }
        }
    }
    let dir = format!("/etc/pve/nodes/{node}");
    let left =
        ctx.host.execute(&Command::query_argv(&["find", &dir, "-name", "*.conf", "-path", "*-server/*"]))?;
    if left.stdout.trim().is_empty() {
        ctx.host.run(&Command::from_argv(&["rm", "-rf", &dir]))?;
        ctx.tl.note(&format!("{dir} removed"));
    } else {
        ctx.tl.note(&format!(
            "{dir} kept: it still holds guest configs ({})",
            left.stdout.trim().replace('\n', ", ")
        ));
    }
    Ok(())
}

/// Retires NODE's address and host name in the cluster's registry (never given out again);
/// false when the registry does not know NODE or it was retired already.
fn retire(ctx: &mut Ctx, node: &str) -> Result<bool> {
    let Some(entry) = registry_file::retire(ctx.host.as_ref(), registry_file::SHARED, node)? else {
        return Ok(false);
    };
    ctx.tl.note(&format!(
        "{node}'s address {} and host name {} retired in the registry",
        entry.ip, entry.hostname
    ));
    cias_core::peers::follow_registry(ctx.host.as_ref(), &mut ctx.tl);
    Ok(true)
}

fn finish(ctx: &Ctx, cli: &Cli, removed: bool) {
    print!("{}", ctx.tl.text());
    if cli.dry_run {
        return;
    }
    let subject = if removed {
        format!("DLLL-CIAS: node {} removed from the cluster", cli.node)
    } else {
        format!("DLLL-CIAS: removal of node {} did not complete", cli.node)
    };
    let body = format!("dlll_cias-remove-node {} on {}:\n\n{}", cli.node, ctx.me, ctx.tl.text());
    tell_admin_and(&ctx.settings, cli.mail.as_deref(), &subject, &body);
}
