//! MooseFS promotion (SPEC section 7): the new master starts `mfsmaster` on the files its
//! own metalogger kept (the unit runs `mfsmaster -a`, which picks the newest metadata and
//! replays the changelogs), never on fresh metadata, which chunkservers would refuse. A manual
//! switch first takes the old master's final metadata (written when it stops cleanly), so not
//! even the metalogger's last second of changes is lost.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cias_core::host::{is_mounted, port_open, Command, Host};

use crate::timeline::Timeline;
use crate::{Ctx, Peer};

use cias_core::mfs_metadata::{newest_version_command, parse_newest_version, DATA_PATH};
/// The master's metadata file in `DATA_PATH`.
const METADATA: &str = "/var/lib/mfs/metadata.mfs";
/// `mfsmaster stop` takes ~4 s (measured); a big namespace takes longer to dump.
const STOP_LIMIT: Duration = Duration::from_secs(300);

fn active(ctx: &Ctx, unit: &str) -> Result<bool> {
    Ok(ctx.host.execute(&Command::query_argv(&["systemctl", "is-active", "--quiet", unit]))?.success())
}

/// Whether this node's mfsmaster is not running yet.
pub fn needs_promotion(ctx: &Ctx) -> Result<bool> {
    Ok(!active(ctx, "moosefs-master")?)
}

/// The newest metadata version `host` holds (0: none).
fn newest_version(host: &dyn Host) -> Result<u64> {
    Ok(parse_newest_version(&host.run(&newest_version_command())?.stdout).unwrap_or(0))
}

/// How long the takeover waits for the other nodes to say how new their copy is: a node that
/// just died may still be listed online, and its SSH connection would hang.
const ASK_LIMIT: Duration = Duration::from_millis(1500);

/// Makes sure this node starts from the newest copy in the quorate partition: when another
/// node's metalogger is ahead of this one's (this one was reconnecting, or started over after
/// a split brain), that node's metalogger files are copied here first. The nodes are asked in
/// parallel, one SSH round each; those that do not answer within [`ASK_LIMIT`] are left out.
fn take_newer_copy(ctx: &Ctx, tl: &mut Timeline) -> Result<()> {
    let mine = newest_version(ctx.host.as_ref())?;
    let view = ctx.view()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut asked = 0;
    for name in view.online().into_iter().filter(|n| *n != ctx.node) {
        let peer = ctx.peer(name, &view)?;
        let tx = tx.clone();
        asked += 1;
        std::thread::spawn(move || {
            let version = newest_version(peer.host.as_ref());
            let _ = tx.send((peer, version));
        });
    }
    let deadline = Instant::now() + ASK_LIMIT;
    let mut best: Option<(Peer, u64)> = None;
    for _ in 0..asked {
        let Ok((peer, version)) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            tl.note("a node did not say in time how new its metadata is; it is left out");
            break;
        };
        match version {
            Ok(v) if v > best.as_ref().map_or(mine, |b| b.1) => best = Some((peer, v)),
            Ok(_) => {}
            Err(e) => tl.note(&format!("cannot ask {} how new its metadata is - {e:#}", peer.name())),
        }
    }
    let Some((peer, version)) = best else { return Ok(()) };
    tl.note(&format!(
        "{} holds newer metadata (version {version}, here {mine}): its metalogger's copy comes here first",
        peer.name()
    ));
    ctx.host.run(&Command::from_argv(&["systemctl", "stop", "moosefs-metalogger"]))?;
    ctx.host.run(&peer.copy_from(&format!("{DATA_PATH}/*_ml*"), &format!("{DATA_PATH}/")))?;
    ctx.host.run(&Command::from_argv(&[
        "find",
        DATA_PATH,
        "-maxdepth",
        "1",
        "-name",
        "*_ml*",
        "-exec",
        "chown",
        "mfs:mfs",
        "{}",
        "+",
    ]))?;
    ctx.host.run(&Command::from_argv(&["systemctl", "start", "moosefs-metalogger"]))?;
    Ok(())
}

pub fn promote(ctx: &Ctx, tl: &mut Timeline) -> Result<()> {
    if active(ctx, "moosefs-master")? {
        tl.note("mfsmaster already runs on this node");
    } else {
        take_newer_copy(ctx, tl)?;
        let files = ctx.host.run(&Command::query_argv(&["ls", DATA_PATH]))?.stdout;
        let has_metadata =
            files.lines().any(|f| f.starts_with("metadata_ml.mfs") || f.starts_with("metadata.mfs"));
        if !has_metadata {
            bail!(
                "{DATA_PATH} holds no metadata from the metalogger; refusing to start an empty master \
                 (chunkservers would refuse its new metadata id) - restore {DATA_PATH} from another node's metalogger"
            );
        }
        ctx.host.run(&Command::from_argv(&["systemctl", "start", "moosefs-master"]))?;
    }
    ctx.host.run(&Command::from_argv(&["systemctl", "start", "moosefs-cgiserv"]))?;
    if ctx.dry_run {
        return Ok(());
    }
    let vip = ctx.settings.internal.master_vip.to_string();
    let started = Instant::now();
    while !port_open(ctx.host.as_ref(), &vip, 9421)? {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the new mfsmaster does not answer at {vip}:9421 after 60 s (see journalctl -u moosefs-master)");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    tl.note(&format!("mfsmaster answers clients at {vip}:9421"));
    Ok(())
}

/// The planned handover: the old master stops cleanly (it dumps its whole metadata), and that
/// file comes here, where the next `mfsmaster -a` starts from it. Clients wait in between.
pub fn take_final_metadata(ctx: &Ctx, old: &Peer) -> Result<()> {
    let stop = |unit: &str| Command::from_argv(&["systemctl", "stop", unit]).timeout(STOP_LIMIT);
    old.host.run(&stop("moosefs-cgiserv"))?;
    old.host.run(&stop("moosefs-master"))?;
    // A running master keeps its metadata as metadata.mfs.back: the file only exists once it
    // stopped, so a dry run cannot look for it.
    if !ctx.dry_run {
        old.host
            .run(&Command::query_argv(&["test", "-s", METADATA]))
            .with_context(|| format!("{} stopped its mfsmaster but wrote no {METADATA}", old.name()))?;
    }
    ctx.host.run(&old.copy_from(METADATA, METADATA))?;
    ctx.host.run(&Command::from_argv(&["chown", "mfs:mfs", METADATA]))?;
    Ok(())
}

/// Undoes [`take_final_metadata`] when this node could not become master: the old master
/// starts again from the metadata it just wrote.
pub fn restart_old_master(old: &Peer) -> Result<()> {
    for unit in ["moosefs-master", "moosefs-cgiserv"] {
        old.host.run(&Command::from_argv(&["systemctl", "start", unit]))?;
    }
    Ok(())
}

/// Undoes a promotion that raced with losing the election, the way keepalived's
/// notify_backup does (`dlll_cias-fence demoted`: mfsmaster stopped, its files set aside).
pub fn demote(ctx: &Ctx) -> Result<()> {
    let fence = format!("{}/dlll_cias-fence", cias_core::paths::BIN_DIR);
    ctx.host.run(&Command::from_argv(&[&fence, "demoted"]))?;
    Ok(())
}

/// Mounts `/mnt/mfs` here when it is not (the fence unmounts it, and a remount fails while no
/// master runs): the VM map and the VMs' disks are read through it.
pub fn ensure_mounted(ctx: &Ctx, tl: &mut Timeline) -> Result<()> {
    let mount = cias_core::paths::MFS_MOUNT;
    if is_mounted(ctx.host.as_ref(), mount)? {
        return Ok(());
    }
    let started = Instant::now();
    loop {
        let start = Command::from_argv(&["systemctl", "start", cias_core::paths::MFS_MOUNT_UNIT]);
        let tried = ctx.host.execute(&start.timeout(Duration::from_secs(30)))?;
        if ctx.dry_run || is_mounted(ctx.host.as_ref(), mount)? {
            tl.note(&format!("{mount} mounted again"));
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("cannot mount {mount}: {}", tried.stderr.trim());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
