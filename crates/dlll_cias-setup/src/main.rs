//! `dlll_cias-setup`: installs this server as a node of the DLLL-CIAS cluster - the first node
//! of a new cluster when no master answers (scenario 1), else a new member (scenario 2).
//! Planning reads everything first and changes nothing; the steps then run in order, each
//! recorded in a journal so a re-run continues where a failed run stopped.

mod answers;
mod ctx;
mod mail;
mod node;
mod plan;
mod preflight;
mod remote;
mod steps;
mod ui;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use cias_core::host::{DryRunHost, Host, LocalHost};
use cias_core::journal::{Journal, RunLock};
use clap::Parser;

use crate::answers::Answers;
use crate::node::{node_dir, NodeRecord};

/// Install this server as a DLLL-CIAS cluster node.
///
/// With no master answering at the master VIP (10.254.0.254), this node becomes the first node
/// of a new cluster: keepalived VIPs, MooseFS master, Proxmox cluster DLLL-CIAS, storages,
/// backup jobs and the router VM. With a master answering, it joins that cluster.
///
/// Nothing changes before the plan is shown and confirmed (at a terminal, or by --yes). Every question is
/// also a flag and a key of the answers file. Passwords never go on the command line: they are
/// asked at the terminal or read from --secrets-file. A failed run is continued by running
/// the same command again; a finished node is left as it is.
#[derive(Debug, Parser)]
#[command(
    name = "dlll_cias-setup",
    version = cias_core::VERSION,
    after_help = concat!("Examples:\n  dlll_cias-setup                                   # interactive\n  dlll_cias-setup --dry-run --answers a.yaml --secrets-file s.yaml\n  dlll_cias-setup --answers a.yaml --secrets-file s.yaml --wipe /dev/sdc\n\nFiles: /data/cias (management directory), /data/cias/nodes/<node>/setup.log (log),\n/data/cias/nodes/<node>/setup.journal (finished steps).\n\n", cias_core::exit_status_help!())
)]
struct Cli {
    /// Answers file (YAML; keys are the flag names with '_' for '-'): runs without questions.
    #[arg(long, value_name = "FILE")]
    answers: Option<PathBuf>,
    /// Passwords as YAML (router_admin_password, master_root_password, smtp_password) from a
    /// file of mode 0600, or '-' for stdin.
    #[arg(long, value_name = "FILE|-")]
    secrets_file: Option<PathBuf>,
    /// Show the plan and every command and file this node would get; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Format DEVICE although it holds a partition table or a file system (its content is
    /// destroyed); repeat per device. Without it only blank disks are formatted.
    #[arg(long = "wipe", value_name = "DEVICE")]
    wipe: Vec<String>,
    /// Proceed without confirming the plan (needed without a terminal, e.g. with --answers
    /// from automation).
    #[arg(long, short = 'y')]
    yes: bool,
    /// Where a running cluster's master answers (default: the master VIP 10.254.0.254).
    #[arg(long, value_name = "IP")]
    master: Option<Ipv4Addr>,
    /// Test labs only: loop devices count as disks.
    #[arg(long, hide = true)]
    loop_disks: bool,
    #[command(flatten)]
    answer_flags: Answers,
    #[command(flatten)]
    verbosity: cias_core::logging::Verbosity,
}

const LOCK: &str = cias_core::paths::SETUP_LOCK;

fn main() -> ExitCode {
    cias_core::docs::write_if_asked::<Cli>();
    let cli = Cli::parse();
    // Its screen is its own (plan, progress bars): the log goes to the file and the journal.
    cias_core::logging::start("dlll_cias-setup", cli.verbosity, cias_core::logging::Terminal::Silent);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ui::error(&format!("{e:#}"));
            ExitCode::from(cias_core::exit::code(e.as_ref()))
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let node = cias_core::paths::node_name().context("cannot read the host name")?;
    if !cli.dry_run {
        cias_core::exit::require_root("dlll_cias-setup")?;
    }
    let _lock = if cli.dry_run { None } else { Some(RunLock::acquire(std::path::Path::new(LOCK))?) };
    let local: Arc<dyn Host> = Arc::new(LocalHost::new(node.clone()));
    let host: Arc<dyn Host> = if cli.dry_run {
        Arc::new(DryRunHost::reading_from(local).with_sink(ui::dry_run_command))
    } else {
        local
    };
    let journal_file = node_dir(&node).join("setup.journal");
    let mut journal = Journal::open(&journal_file)?;
    let mut ctx = match NodeRecord::load(&node)? {
        Some(record) => {
            let steps = steps::for_role(record.role);
            if steps.iter().all(|s| journal.is_done(s.id)) {
                ui::line(&format!(
                    "Nothing to do: node {node} finished setup earlier ({}); nothing was changed.",
                    journal_file.display()
                ));
                return Ok(());
            }
            plan::resume(&cli, host, record, &journal)?
        }
        None => match plan::fresh(&cli, host)? {
            Some(ctx) => ctx,
            None => {
                ui::line("Nothing was changed.");
                return Ok(());
            }
        },
    };
    if !cli.dry_run {
        let log = node_dir(&node).join("setup.log");
        cias_core::logging::also_to_file(&log).with_context(|| format!("cannot open {}", log.display()))?;
        tracing::info!("dlll_cias-setup {} started on {node}", env!("CARGO_PKG_VERSION"));
    }
    let steps = steps::for_role(ctx.node.role);
    steps::run(&mut ctx, &steps, &mut journal)?;
    if cli.dry_run {
        ui::line("Dry run: nothing was changed.");
    }
    Ok(())
}
