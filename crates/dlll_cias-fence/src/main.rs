//! `dlll_cias-fence`: self-fencing of this node (SPEC section 7, split brain and fencing).
//!
//! - `dlll_cias-fence check` is keepalived's `vrrp_script`, run every second: exit 0 while
//!   this node is in the quorate Proxmox partition, 1 otherwise. Two failures in a row put
//!   the VRRP instance in FAULT, which drops the VIPs at once.
//! - `dlll_cias-fence demoted` is keepalived's `notify_backup`: a node that is (or just became)
//!   a BACKUP runs no mfsmaster. Two BACKUPs of equal priority can both become MASTER for a
//!   moment, and both run the takeover; the loser's must not keep a second master running.
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
use cias_core::mfs_metadata::{is_master_file, is_metalogger_file, DATA_PATH};
use cias_core::proxmox::pvecm;
use cias_core::proxmox::pvesh::{self, ClusterStatusEntry};
use cias_core::settings::ClusterSettings;
use cias_core::state_file::StateFile;
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
    /// This node is a VRRP BACKUP: stop its mfsmaster if one runs (keepalived's notify_backup).
    Demoted,
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

const NO_MASTER: &str = "no mfsmaster runs here";

fn stop_master(host: &dyn Host) -> Result<String> {
    let active =
        host.execute(&Command::query_argv(&["systemctl", "is-active", "--quiet", "moosefs-master"]))?;
    if !active.success() {
        return Ok(NO_MASTER.into());
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
    if !holds_address(host, &settings.internal.master_vip.to_string())? {
        return Ok("quorum regained: this node is a plain BACKUP".into());
    }
    let takeover = format!("{}/dlll_cias-switch-to-master", cias_core::paths::BIN_DIR);
    // In its own unit: the takeover may wait minutes, and this loop must keep watching.
    host.run(&Command::from_argv(&["systemd-run", "--quiet", "--collect", &takeover, "--from-keepalived"]))?;
    Ok("quorum regained while holding the master VIP: takeover started again".into())
}

/// How many sets of a former master's files are kept.
const KEEP_SET_ASIDE: usize = 5;

/// The names of the files in MooseFS's data directory.
fn data_files(host: &dyn Host) -> Result<Vec<String>> {
    let listing = host.run(&Command::query_argv(&["ls", "-1", DATA_PATH]))?.stdout;
    Ok(listing.lines().map(str::to_string).collect())
}

/// Moves this node's own master files into `old-master-<unix time>` in the data directory
/// (the newest five sets are kept). Once another node is master they are stale, and worse: a
/// master cut off by a split brain wrote changes the quorate side never saw, numbered like
/// the new master's, so a later `mfsmaster -a` here could replay them over the metalogger's
/// (MooseFS's own recovery tests leave only the metalogger's files too).
fn set_aside_master_files(host: &dyn Host) -> Result<Option<String>> {
    let files = data_files(host)?;
    if !files.iter().any(|f| is_master_file(f)) {
        return Ok(None);
    }
    let dir = format!("{DATA_PATH}/old-master-{}", now_ms() / 1000);
    move_into(host, &dir, &files, is_master_file)?;
    let mut sets: Vec<&String> = files.iter().filter(|n| n.starts_with("old-master-")).collect();
    sets.sort_by_key(|n| n.trim_start_matches("old-master-").parse::<u64>().unwrap_or(0));
    for old in sets.iter().rev().skip(KEEP_SET_ASIDE - 1) {
        host.run(&Command::from_argv(&["rm", "-rf", "--", &format!("{DATA_PATH}/{old}")]))?;
    }
    Ok(Some(dir))
}

/// Moves those of `files` (names in the data directory) that `which` picks into `dir`.
fn move_into(host: &dyn Host, dir: &str, files: &[String], which: fn(&str) -> bool) -> Result<()> {
    let paths: Vec<String> = files.iter().filter(|n| which(n)).map(|n| format!("{DATA_PATH}/{n}")).collect();
    if paths.is_empty() {
        return Ok(());
    }
    host.run(&Command::from_argv(&["mkdir", "-p", dir]))?;
    let mut mv = vec!["mv", "-t", dir, "--"];
    mv.extend(paths.iter().map(String::as_str));
    host.run(&Command::from_argv(&mv))?;
    Ok(())
}

/// keepalived's notify_backup: this node is not the master (any more), so it runs no
/// mfsmaster and keeps no master files a later promotion could take for current.
fn demoted() -> Result<()> {
    let node = cias_core::paths::node_name().context("cannot read this node's host name")?;
    let host = LocalHost::new(node.clone());
    cias_core::logging::to_file_and_stderr(&cias_core::paths::node_dir(&node).join("fence.log"))?;
    let outcome = stop_master(&host)?;
    if outcome != NO_MASTER {
        tracing::warn!("keepalived made this node a BACKUP: {outcome}");
    }
    if let Some(dir) = set_aside_master_files(&host)? {
        tracing::warn!("this node's former mfsmaster files moved to {dir} (a promotion here starts from the metalogger's)");
        // While this node was master its metalogger followed it, also through a split brain
        // where it kept changes nobody else has: it starts over from the current master.
        restart_metalogger_empty(&host, &dir)?;
        tracing::warn!(
            "the metalogger's copy moved there too: it downloads the current master's metadata afresh"
        );
    }
    Ok(())
}

/// Restarts this node's metalogger with none of its files (moved into `dir`).
fn restart_metalogger_empty(host: &dyn Host, dir: &str) -> Result<()> {
    host.run(&Command::from_argv(&["systemctl", "stop", "moosefs-metalogger"]))?;
    move_into(host, dir, &data_files(host)?, is_metalogger_file)?;
    host.run(&Command::from_argv(&["systemctl", "start", "moosefs-metalogger"]))?;
    Ok(())
}

const REMOUNT_RETRY: Duration = Duration::from_secs(10);

/// Mounts MooseFS again through its systemd unit, without waiting (a mount waits for a
/// master, and this loop must not); `attempt` counts from 0. Returns whether to look again.
fn remount(host: &dyn Host, attempt: u32) -> bool {
    let mfs = cias_core::paths::MFS_MOUNT;
    let unit = cias_core::paths::MFS_MOUNT_UNIT;
    match is_mounted(host, mfs) {
        Ok(true) => {
            tracing::warn!("{mfs} is mounted again");
            false
        }
        Ok(false) => {
            // A start does nothing while systemd still counts the forced-off mount as its
            // unit's; later attempts restart it.
            let verb = if attempt == 0 { "start" } else { "restart" };
            if attempt > 0 {
                let state = host.execute(&Command::query_argv(&["systemctl", "is-active", unit]));
                let state = state.map(|o| o.stdout.trim().to_string()).unwrap_or_default();
                tracing::warn!("{mfs} is still not mounted ({unit} {state}); restarting it");
            }
            if let Err(e) = host.run(&Command::from_argv(&["systemctl", verb, "--no-block", unit])) {
                tracing::error!("cannot {verb} {unit} - {e}");
            }
            true
        }
        Err(e) => {
            tracing::error!("cannot read the mounts - {e}");
            true
        }
    }
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
    let mut remount_due: Option<Instant> = None;
    let mut remount_attempts = 0;
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
        // The fence unmounted MooseFS; back in the quorum it is mounted again, retried every
        // few seconds (it fails while no master runs, e.g. during the takeover that follows).
        if quorate && remount_due.is_some_and(|due| tick >= due) {
            remount_due = remount(&host, remount_attempts).then(|| tick + REMOUNT_RETRY);
            remount_attempts = if remount_due.is_some() { remount_attempts + 1 } else { 0 };
        }
        for action in fence.tick(quorate, now, delay) {
            if action == FenceAction::StopVms {
                (remount_due, remount_attempts) = (Some(tick), 0);
            }
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
        Cli::Demoted => match demoted() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("demotion failed - {e:#}");
                eprintln!("dlll_cias-fence: {e:#}");
                ExitCode::FAILURE
            }
        },
        Cli::Run { config } => match run(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("dlll_cias-fence: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}
