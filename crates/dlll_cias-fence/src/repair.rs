//! The repairs the reconcile loop (and keepalived's hooks) make on this node.

use std::time::Duration;

use anyhow::Result;
use cias_core::host::{clear_mark, holds_address, is_mounted, set_mark, Command, Host};
use cias_core::mfs_metadata::{
    data_files, is_master_file, is_metalogger_file, master_state_command, master_state_runs, move_into,
    DATA_PATH,
};
use cias_core::settings::ClusterSettings;

/// Where Proxmox keeps the pid file of each running VM.
const VM_PID_DIR: &str = "/run/qemu-server";

pub const NO_MASTER: &str = "no mfsmaster runs here";

/// Whether the mfsmaster unit runs, or is starting or stopping (it may serve then too).
pub fn master_runs(host: &dyn Host) -> Result<bool> {
    let cmd = master_state_command().timeout(Duration::from_secs(3));
    Ok(master_state_runs(&host.execute(&cmd)?.stdout))
}

/// Kills this node's mfsmaster (and mfscgiserv) if it runs.
pub fn stop_master(host: &dyn Host) -> Result<String> {
    if !master_runs(host)? {
        return Ok(NO_MASTER.into());
    }
    // SIGKILL, not a clean stop: a clean stop takes about 4 s, during which this master could
    // still accept writes the quorate side never sees.
    host.run(&Command::from_argv(&["systemctl", "kill", "--signal=SIGKILL", "moosefs-master"]))?;
    host.execute(&Command::from_argv(&["systemctl", "stop", "moosefs-master", "moosefs-cgiserv"]))?;
    Ok("mfsmaster killed".into())
}

/// Quorum is lost: kills this node's mfsmaster, and marks it as cut off when one ran
/// ([`cias_core::paths::CUT_OFF_MARK`]): between the split and this kill it may have logged
/// changes the quorate side never sees.
pub fn kill_cut_off_master(host: &dyn Host) -> Result<String> {
    let outcome = stop_master(host)?;
    if outcome != NO_MASTER {
        set_mark(host, cias_core::paths::CUT_OFF_MARK)?;
    }
    Ok(outcome)
}

/// keepalived died (or restarted) and left its VIPs on the interfaces, where they would
/// answer next to the new master's: every address of the two VIPs is removed.
pub fn drop_vips(host: &dyn Host, settings: &ClusterSettings) -> Result<String> {
    let listing = host.run(&Command::query_argv(&["ip", "-o", "-4", "addr", "show"]))?.stdout;
    let vips = [settings.internal.master_vip.to_string(), settings.external.master_ip.to_string()];
    let mut dropped = vec![];
    // `2: eth0    inet 10.254.0.254/8 scope global secondary eth0:vip ...`
    for line in listing.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (Some(dev), Some(cidr)) =
            (words.get(1), words.iter().position(|w| *w == "inet").and_then(|i| words.get(i + 1)))
        else {
            continue;
        };
        if vips.iter().any(|vip| cidr.split('/').next() == Some(vip.as_str())) {
            host.run(&Command::from_argv(&["ip", "addr", "del", cidr, "dev", dev]))?;
            dropped.push(format!("{cidr} on {dev}"));
        }
    }
    Ok(if dropped.is_empty() { "no VIP left".into() } else { format!("removed {}", dropped.join(", ")) })
}

/// Makes a master promoted from metalogger files (`mfsmaster -a`) offer a full metadata copy.
/// Such a master has no `metadata.mfs.back` until its hourly dump, and until then a metalogger
/// that starts over (every demoted former master's does) can download none: it holds
/// changelogs only, and after a few failovers no quorate node may hold a copy a master can
/// start from (measured in the lab: the second partition in a row left none). A second
/// mfsmaster, on loopback ports and a private directory, loads the same chain of files and
/// stops cleanly, which writes `metadata.mfs` at least as new as the master's start; as the
/// master's `metadata.mfs.back` it continues into the master's own changelogs.
const PUBLISH_BASE: &str = r#"set -eu
data=$1
tmp=$(mktemp -d "$data/.publish-base.XXXXXX")
cfg="$tmp/mfsmaster.cfg"
trap 'mfsmaster -c "$cfg" stop >/dev/null 2>&1 || true; rm -rf -- "$tmp"' EXIT
cp -p -- "$data"/metadata_ml.mfs.back* "$data"/changelog_ml*.mfs "$tmp"/
printf '%s\n' 'WORKING_USER = mfs' 'WORKING_GROUP = mfs' "DATA_PATH = $tmp" \
  'EXPORTS_FILENAME = /etc/mfs/mfsexports.cfg' \
  'MATOML_LISTEN_HOST = 127.0.0.1' 'MATOML_LISTEN_PORT = 19419' \
  'MATOCS_LISTEN_HOST = 127.0.0.1' 'MATOCS_LISTEN_PORT = 19420' \
  'MATOCL_LISTEN_HOST = 127.0.0.1' 'MATOCL_LISTEN_PORT = 19421' >"$cfg"
chown -R mfs:mfs "$tmp"
mfsmaster -c "$cfg" -a start
mfsmaster -c "$cfg" stop
install -o mfs -g mfs -m 0640 -- "$tmp/metadata.mfs" "$data/.metadata.mfs.back.new"
mv -f -- "$data/.metadata.mfs.back.new" "$data/metadata.mfs.back"
"#;

/// Starts [`PUBLISH_BASE`] in its own unit (it takes a few seconds; the loop goes on).
pub fn publish_base(host: &dyn Host) -> Result<String> {
    let unit = Command::query_argv(&["systemctl", "is-active", "--quiet", "dlll-cias-publish-base"]);
    if host.execute(&unit.timeout(Duration::from_secs(3)))?.success() {
        return Ok("metadata.mfs.back still being written (a large namespace takes a while)".into());
    }
    host.run(&Command::from_argv(&[
        "systemd-run",
        "--quiet",
        "--collect",
        "--unit=dlll-cias-publish-base",
        "sh",
        "-c",
        PUBLISH_BASE,
        "dlll-cias-publish-base",
        DATA_PATH,
    ]))?;
    Ok("metadata.mfs.back being written for the metaloggers (unit dlll-cias-publish-base)".into())
}

/// This node's metalogger holds no metadata file (it started over while the master had none
/// to offer): restarted, it downloads one.
pub fn restart_metalogger(host: &dyn Host) -> Result<String> {
    host.run(&Command::from_argv(&["systemctl", "restart", "--no-block", "moosefs-metalogger"]))?;
    Ok("metalogger restarted to download the master's metadata".into())
}

/// Removes the mark a manual switch left while it took this node's final metadata.
pub fn clear_handover(host: &dyn Host) -> Result<String> {
    clear_mark(host, cias_core::paths::HANDOVER_MARK)?;
    Ok("the handover mark is gone".into())
}

/// The VIP holder's mfsmaster does not serve: started again (its unit runs `mfsmaster -a`,
/// which starts from the newest metadata here), without waiting: the loop looks again.
pub fn restart_master(host: &dyn Host) -> Result<String> {
    for unit in ["moosefs-master", "moosefs-cgiserv"] {
        host.run(&Command::from_argv(&["systemctl", "restart", "--no-block", unit]))?;
    }
    Ok("mfsmaster restarted".into())
}

/// Kills every VM process of this node (the pid files Proxmox keeps), like a watchdog reset
/// would, but leaving the node itself up for the administrator.
pub fn stop_vms(host: &dyn Host) -> Result<String> {
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
pub fn rejoined(host: &dyn Host, settings: &ClusterSettings) -> Result<String> {
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

/// A new directory for files set aside now.
fn set_aside_dir() -> String {
    format!("{DATA_PATH}/old-master-{}", cias_core::clock::unix_secs())
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
    let dir = set_aside_dir();
    move_into(host, &dir, &files, is_master_file)?;
    let mut sets: Vec<&String> = files.iter().filter(|n| n.starts_with("old-master-")).collect();
    sets.sort_by_key(|n| n.trim_start_matches("old-master-").parse::<u64>().unwrap_or(0));
    for old in sets.iter().rev().skip(KEEP_SET_ASIDE - 1) {
        host.run(&Command::from_argv(&["rm", "-rf", "--", &format!("{DATA_PATH}/{old}")]))?;
    }
    Ok(Some(dir))
}

/// This node may not run an mfsmaster (a BACKUP, a node in FAULT, a node whose keepalived
/// died): it is stopped, and a former master's files are set aside so a later promotion
/// here cannot take them for current.
///
/// Its metalogger keeps its copy when this node stayed in the quorum: it followed the one
/// master there was, and MooseFS's metalogger itself downloads afresh when the next master's
/// changes do not continue its own. Starting it over at every demotion left no copy to
/// promote from after a few role changes in a row (measured: keepalived killed three times
/// in 25 s). Only a master cut off from the quorum may have logged changes nobody else has,
/// numbered like the new master's: then its metalogger starts over from the current master.
pub fn demote(host: &dyn Host) -> Result<String> {
    // keepalived's hook and the loop both demote (a FAULT and a lost VIP in the same second):
    // one at a time, or the second moves files the first already moved.
    let lock_file = std::path::Path::new(cias_core::paths::STATE_DIR).join("demote.lock");
    std::fs::create_dir_all(cias_core::paths::STATE_DIR)?;
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_file)?;
    lock.lock()?;
    let mut outcome = stop_master(host)?;
    let aside = set_aside_master_files(host)?;
    let marked = std::path::Path::new(cias_core::paths::CUT_OFF_MARK).exists();
    let cut_off = marked || (aside.is_some() && !crate::observe::quorum(host).0);
    match (aside, cut_off) {
        (aside, true) => {
            let dir = aside.unwrap_or_else(set_aside_dir);
            restart_metalogger_empty(host, &dir)?;
            clear_mark(host, cias_core::paths::CUT_OFF_MARK)?;
            outcome += &format!(
                "; it served cut off from the quorum: its master files and its metalogger's moved to {dir} \
                 (the metalogger starts over from the current master)"
            );
        }
        (Some(dir), false) => {
            outcome += &format!(
                "; its master files moved to {dir}; its metalogger keeps its copy (this node stayed in the quorum)"
            );
        }
        (None, false) => {}
    }
    Ok(outcome)
}

/// Restarts this node's metalogger with none of its files (moved into `dir`).
fn restart_metalogger_empty(host: &dyn Host, dir: &str) -> Result<()> {
    host.run(&Command::from_argv(&["systemctl", "stop", "moosefs-metalogger"]))?;
    move_into(host, dir, &data_files(host)?, is_metalogger_file)?;
    host.run(&Command::from_argv(&["systemctl", "start", "moosefs-metalogger"]))?;
    Ok(())
}

pub const REMOUNT_RETRY: Duration = Duration::from_secs(10);

/// Mounts MooseFS again through its systemd unit, without waiting (a mount waits for a
/// master, and this loop must not); `attempt` counts from 0. Returns whether to look again.
pub fn remount(host: &dyn Host, attempt: u32) -> bool {
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
