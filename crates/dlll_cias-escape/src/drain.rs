//! This node's MooseFS disks leave without a chunk losing a copy: each is marked for removal
//! (a `*` before its path in mfshdd.cfg, read again on SIGHUP), the master copies every chunk
//! on it to other chunkservers, and the disk reads "marked for removal (ready)" in `mfscli
//! -SHD` once nothing depends on it any more (MooseFS manual, "marking disks for removal").

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use cias_core::escape::{disks_of, Disk};
use cias_core::host::Command;
use cias_core::paths;
use indicatif::{ProgressBar, ProgressStyle};

use crate::Ctx;

const HDD_CONF: &str = "/etc/mfs/mfshdd.cfg";
/// Replication of a full disk takes hours on real hardware; this only bounds a stuck wait.
const LIMIT: Duration = Duration::from_secs(24 * 3600);

fn disks(ctx: &Ctx) -> Result<Vec<Disk>> {
    let out = ctx.local.run(&Command::query_argv(&[
        "mfscli",
        "-H",
        paths::MFS_MASTER_HOST,
        "-n",
        "-p",
        "-s",
        ";",
        "-SHD",
    ]))?;
    Ok(disks_of(&out.stdout, &ctx.ip))
}

pub fn drain(ctx: &mut Ctx) -> Result<()> {
    let running = Command::query_argv(&["systemctl", "is-active", "--quiet", "moosefs-chunkserver.service"]);
    if !ctx.local.execute(&running)?.success() {
        // Stopped only after its disks were drained (a re-run), or never installed here.
        ctx.tl.note("MooseFS chunkserver not running here: no disk to drain");
        return Ok(());
    }
    // Lines naming a disk start with '/'; marked ones already start with '*'.
    ctx.host.run(&Command::from_argv(&["sed", "-i", "s|^/|*/|", HDD_CONF]))?;
    ctx.host.run(&Command::from_argv(&["systemctl", "reload", "moosefs-chunkserver.service"]))?;
    if ctx.dry_run {
        return Ok(());
    }
    let bar = ProgressBar::new_spinner()
        .with_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("a valid template"));
    bar.enable_steady_tick(Duration::from_millis(200));
    let started = Instant::now();
    loop {
        // Until the master lists this node's disks (a reload takes a moment) nothing is ready.
        let disks = disks(ctx)?;
        if !disks.is_empty() && disks.iter().all(Disk::ready) {
            break;
        }
        let waiting: Vec<String> = disks
            .iter()
            .filter(|d| !d.ready())
            .map(|d| format!("{} ({} chunks, {})", d.path, d.chunks, d.status))
            .collect();
        bar.set_message(if disks.is_empty() {
            format!("waiting for the MooseFS master to list the disks of {}", ctx.ip)
        } else {
            format!(
                "MooseFS copies the chunks of {} elsewhere (at its own pace: its chunk loop looks at each chunk \
                 once per CHUNKS_LOOP_MIN_TIME, 300 s by default)",
                waiting.join(", ")
            )
        });
        if started.elapsed() > LIMIT {
            bail!(
                "the MooseFS disks were not drained after {}h: {}",
                LIMIT.as_secs() / 3600,
                waiting.join(", ")
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    bar.finish_and_clear();
    ctx.tl.note(&format!(
        "MooseFS disks drained in {:.0}s: every chunk has its copies on other nodes",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}
