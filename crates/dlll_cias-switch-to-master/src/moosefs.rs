//! MooseFS promotion (SPEC section 7): the new master starts `mfsmaster` on the files its
//! own metalogger kept (the unit runs `mfsmaster -a`, which picks the newest metadata and
//! replays the changelogs), never on fresh metadata, which chunkservers would refuse. A manual
//! switch first takes the old master's final metadata (written when it stops cleanly), so not
//! even the metalogger's last second of changes is lost.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cias_core::host::{is_mounted, port_open, Command};

use crate::timeline::Timeline;
use crate::{Ctx, Peer};

const DATA_PATH: &str = "/var/lib/mfs";
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

pub fn promote(ctx: &Ctx, tl: &mut Timeline) -> Result<()> {
    if active(ctx, "moosefs-master")? {
        tl.note("mfsmaster already runs on this node");
    } else {
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
        let tried =
            ctx.host.execute(&Command::from_argv(&["mount", mount]).timeout(Duration::from_secs(30)))?;
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
