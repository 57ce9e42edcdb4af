//! `dlll_cias-fence`: self-fencing of this node (SPEC section 7, split brain and fencing).
//!
//! - `dlll_cias-fence check` is keepalived's `vrrp_script`, run every second: exit 0 while
//!   this node is in the quorate Proxmox partition, 1 otherwise. Two failures in a row put
//!   the VRRP instance in FAULT, which drops the VIPs at once.
//! - `dlll_cias-fence run` is the `dlll-cias-fence` service on every node (also on "never
//!   master" nodes, which run no keepalived). It reads the quorum every second; when it goes,
//!   it kills this node's mfsmaster at once (a second master would fork the file system's
//!   metadata) and, once the node has been out for the fence delay, every VM of this node, so
//!   the quorate side can start them elsewhere without any VM running twice. While quorate it
//!   records when it last saw each member, which tells a new master how long a node is gone.
#![allow(clippy::print_stderr)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cias_core::fence::{now_ms, FenceAction, LastSeen, SelfFence};
use cias_core::host::{holds_address, is_mounted, Command, Host, LocalHost};
use cias_core::proxmox::pvecm;
use cias_core::proxmox::pvesh::{self, ClusterStatusEntry};
use cias_core::settings::ClusterSettings;
use clap::Parser;

/// Self-fencing: the quorum check keepalived tracks, and the fence service.
#[derive(Debug, Parser)]
#[command(
    name = "dlll_cias-fence",
    version,
    after_help = "Files: /run/dlll-cias/last-seen.json (when each member was last seen),\n\
                  /data/cias/nodes/<node>/fence.log (every fence event; also in the journal)."
)]
enum Cli {
    /// Exit 0 when this node is in the quorate partition, 1 when not (keepalived's check).
    Check,
    /// Watch the quorum every second and fence this node when it is lost (the service).
    Run {
        /// Cluster settings (fence delay).
        #[arg(long, value_name = "FILE", default_value_os_t = cias_core::paths::default_settings_file())]
        config: std::path::PathBuf,
    },
}

/// Where Proxmox keeps the pid file of each running VM.
const VM_PID_DIR: &str = "/run/qemu-server";
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether this node is quorate, and the members of its partition. Any failure to ask counts
/// as "not quorate": a node that cannot tell must assume the worst.
fn quorum(host: &dyn Host) -> (bool, Vec<String>) {
    let cmd = pvesh::get_json("/cluster/status").timeout(QUERY_TIMEOUT);
    let Ok(out) = host.run(&cmd) else { return (false, vec![]) };
    let Ok(entries) = pvesh::parse::<Vec<ClusterStatusEntry>>("pvesh get /cluster/status", &out.stdout)
    else {
        return (false, vec![]);
    };
    let (quorate, online) = pvesh::partition(&entries);
    (quorate, online.into_iter().map(str::to_string).collect())
}

fn stop_master(host: &dyn Host) -> Result<String> {
    let active =
        host.execute(&Command::query_argv(&["systemctl", "is-active", "--quiet", "moosefs-master"]))?;
    if !active.success() {
        return Ok("no mfsmaster runs here".into());
    }
    // SIGKILL, not a clean stop: a clean stop takes about 4 s, during which this master could
    // still accept writes the quorate side never sees.
    host.run(&Command::from_argv(&["systemctl", "kill", "--signal=SIGKILL", "moosefs-master"]))?;
    host.execute(&Command::from_argv(&["systemctl", "stop", "moosefs-master", "moosefs-cgiserv"]))?;
    Ok("mfsmaster killed".into())
}

/// Kills every VM process of this node (the pid files Proxmox keeps), like a watchdog reset
/// would, but leaving the node itself up for the administrator.
fn stop_vms(host: &dyn Host) -> Result<String> {
    let listing = host.execute(&Command::query_argv(&["find", VM_PID_DIR, "-name", "*.pid"]))?;
    let mut killed = vec![];
    for file in listing.stdout.lines() {
        let vmid = file.rsplit('/').next().and_then(|f| f.strip_suffix(".pid")).unwrap_or(file);
        let pid = host.execute(&Command::query_argv(&["cat", file]))?.stdout.trim().to_string();
        if pid.parse::<u32>().is_err() {
            continue;
        }
        if host.execute(&Command::from_argv(&["kill", "-KILL", &pid]))?.success() {
            killed.push(vmid.to_string());
        }
    }
    // A VM blocked in I/O on the shared storage cannot die until that I/O returns, and the
    // write would then land after the quorate side started the VM elsewhere. A forced unmount
    // aborts every pending MooseFS request at once: this node is cut off the shared storage.
    let mfs = cias_core::paths::MFS_MOUNT;
    let cut = if is_mounted(host, mfs)? {
        host.execute(&Command::from_argv(&["umount", "-f", "-l", mfs]))?;
        format!("; {mfs} force-unmounted (pending writes aborted)")
    } else {
        String::new()
    };
    let vms = if killed.is_empty() {
        "no VM ran here".to_string()
    } else {
        format!("VMs killed: {}", killed.join(", "))
    };
    Ok(format!("{vms}{cut}"))
}

/// Back in the quorate partition. If keepalived kept the VIPs through a short loss, nobody
/// else took over and the master this service killed must come back: run the takeover again.
fn rejoined(host: &dyn Host, settings: &ClusterSettings) -> Result<String> {
    let mfs = cias_core::paths::MFS_MOUNT;
    if !is_mounted(host, mfs)? {
        // The fence unmounted it; fstab knows how to mount it again.
        if let Err(e) = host.run(&Command::from_argv(&["mount", mfs])) {
            tracing::error!("cannot mount {mfs} again - {e}");
        }
    }
    if !holds_address(host, &settings.internal.master_vip.to_string())? {
        return Ok("quorum regained: this node is a plain BACKUP".into());
    }
    let takeover = format!("{}/dlll_cias-switch-to-master", cias_core::paths::BIN_DIR);
    // In its own unit: the takeover may wait minutes, and this loop must keep watching.
    host.run(&Command::from_argv(&["systemd-run", "--quiet", "--collect", &takeover, "--from-keepalived"]))?;
    Ok("quorum regained while holding the master VIP: takeover started again".into())
}

fn run(config: &std::path::Path) -> Result<()> {
    let settings = ClusterSettings::load(config)?;
    let node = cias_core::paths::node_name().context("cannot read this node's host name")?;
    let host = LocalHost::new(node.clone());
    cias_core::logging::to_file_and_stderr(&cias_core::paths::node_dir(&node).join("fence.log"))?;
    let delay = Duration::from_secs(u64::from(settings.fencing.delay_secs));
    let seen_file = LastSeen::file();
    let mut seen = LastSeen::load(&seen_file);
    let mut fence = SelfFence::default();
    tracing::warn!("fence service started on {node} (fence delay {}s)", delay.as_secs());
    loop {
        let tick = Instant::now();
        let (quorate, online) = quorum(&host);
        let now = now_ms();
        if quorate {
            seen.record(online.iter().map(String::as_str), now);
            if let Err(e) = seen.save(&seen_file) {
                tracing::error!("cannot write {} - {e}", seen_file.display());
            }
        }
        for action in fence.tick(quorate, now, delay) {
            let outcome = match action {
                FenceAction::StopMaster => stop_master(&host).map(|o| format!("quorum lost: {o}")),
                FenceAction::StopVms => stop_vms(&host)
                    .map(|o| format!("out of quorum for {}s (the fence delay): {o}", delay.as_secs())),
                FenceAction::Rejoined => rejoined(&host, &settings),
            };
            match outcome {
                Ok(message) => tracing::warn!("{message}"),
                Err(e) => tracing::error!("fencing step failed - {e:#}"),
            }
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
    }
}

fn main() -> ExitCode {
    match Cli::parse() {
        Cli::Check => {
            let host = LocalHost::new("localhost");
            match host.execute(&pvecm::status_command().timeout(QUERY_TIMEOUT)) {
                Ok(out) if out.success() => ExitCode::SUCCESS,
                _ => ExitCode::FAILURE,
            }
        }
        Cli::Run { config } => match run(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("dlll_cias-fence: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}
