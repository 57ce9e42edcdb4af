//! MooseFS promotion (SPEC section 7): the new master starts `mfsmaster` on the files its
//! own metalogger kept (the unit runs `mfsmaster -a`, which picks the newest metadata and
//! replays the changelogs), never on fresh metadata, which chunkservers would refuse.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use cias_core::host::{port_open, Command};

use crate::timeline::Timeline;
use crate::Ctx;

const DATA_PATH: &str = "/var/lib/mfs";

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
