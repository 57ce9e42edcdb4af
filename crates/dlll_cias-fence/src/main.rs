//! `dlll_cias-fence`: the reconcile loop of this node and keepalived's hooks (SPEC section 8).
//!
//! - `dlll_cias-fence run` is the `dlll-cias-fence` service on every node ("never master"
//!   ones too). Every second it looks at this node (quorum, keepalived, the VIPs, mfsmaster,
//!   a running takeover) and repairs whatever breaks the node's invariants; the decisions are
//!   `cias_core::reconcile`'s. It records when it last saw each member in the quorate
//!   partition, which tells a new master how long a node is gone, and feeds Proxmox's
//!   watchdog (watchdog-mux) while quorate, so a node whose loop dies cannot stay unfenced.
//! - `dlll_cias-fence check` is keepalived's `vrrp_script`, run every second: exit 0 while the
//!   loop (fresh, in the last 3 s) says this node may hold the role, 1 otherwise. Two failures
//!   in a row put the VRRP instance in FAULT, which drops the VIPs at once.
//! - `dlll_cias-fence demoted` is keepalived's `notify_backup`, `notify_fault` and
//!   `notify_stop`: a node that is not the master runs no mfsmaster and sets a former master's
//!   files aside.
#![allow(clippy::print_stderr)]

mod observe;
mod repair;
mod run;

use std::process::ExitCode;

use anyhow::{Context, Result};
use cias_core::clock::boot_ms;
use cias_core::host::LocalHost;
use cias_core::reconcile::Verdict;
use cias_core::settings::ClusterSettings;
use cias_core::state_file::StateFile;
use clap::Parser;

/// The reconcile loop of this node (self-fencing and the master's invariants), and the check
/// and hooks keepalived runs.
#[derive(Debug, Parser)]
#[command(
    name = "dlll_cias-fence",
    version = cias_core::VERSION,
    after_help = concat!(cias_core::exit_status_help!(), "\n\nFiles: /run/dlll-cias/reconcile.json (the loop's verdict: may this node hold the role, and why not),\n\
                  /run/dlll-cias/last-seen.json (when each member was last seen in the quorate partition),\n\
                  /data/cias/nodes/<node>/fence.log (every repair and fence event; also in the journal)."
    )
)]
struct Cli {
    #[command(subcommand)]
    job: Job,
    #[command(flatten)]
    verbosity: cias_core::logging::Verbosity,
}

#[derive(Debug, clap::Subcommand)]
enum Job {
    /// Exit 0 when the reconcile loop says this node may hold the master role, 1 when not
    /// (keepalived's check; the reason is in the loop's log).
    Check,
    /// This node is not the master: stop its mfsmaster if one runs and set a former master's
    /// files aside (keepalived's notify_backup, notify_fault and notify_stop).
    Demoted,
    /// The reconcile loop (the dlll-cias-fence service): every second, repair what breaks this
    /// node's invariants and fence it when it leaves the quorum.
    Run {
        /// Cluster settings (fence delay, VIPs).
        #[arg(long, value_name = "FILE", default_value_os_t = cias_core::paths::default_settings_file())]
        config: std::path::PathBuf,
    },
}

fn demoted() -> Result<()> {
    let node = cias_core::paths::node_name().context("cannot read this node's host name")?;
    let host = LocalHost::new(node.clone());
    cias_core::logging::also_to_file(&cias_core::paths::node_dir(&node).join("fence.log"))?;
    let outcome = repair::demote(&host)?;
    if outcome != repair::NO_MASTER {
        tracing::warn!("keepalived says this node is not the master: {outcome}");
    }
    Ok(())
}

/// The loop could not start: the journal has it, and the administrator is told at most once
/// per `alerts.repeat_after_mins` (systemd starts the loop again every second).
fn report_start_failure(config: &std::path::Path, error: &anyhow::Error) {
    let Ok(settings) = ClusterSettings::load(config) else { return };
    let node = cias_core::paths::node_name().unwrap_or_else(|_| "this node".into());
    cias_core::notify::alert(
        &settings,
        run::START_FAILED,
        &format!("DLLL-CIAS: the reconcile loop cannot start on {node}"),
        &format!(
            "dlll-cias-fence on {node} fails to start: {error:#}\n\nUntil it runs, {node} cannot hold the master \
             role and nothing repairs its mfsmaster or VIPs. See journalctl -u dlll-cias-fence."
        ),
    );
}

fn main() -> ExitCode {
    cias_core::docs::write_if_asked::<Cli>();
    let cli = Cli::parse();
    cias_core::logging::start("dlll_cias-fence", cli.verbosity, cias_core::logging::Terminal::Echo);
    match cli.job {
        Job::Check => match Verdict::load(&Verdict::file()).allows_role(boot_ms()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
        Job::Demoted => match demoted() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(target: cias_core::logging::RECORD_ONLY, "demotion failed - {e:#}");
                eprintln!("dlll_cias-fence: {e:#}");
                ExitCode::FAILURE
            }
        },
        Job::Run { config } => match run::run(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("dlll_cias-fence: {e:#}");
                report_start_failure(&config, &e);
                ExitCode::from(2)
            }
        },
    }
}
