//! The VRRP side of the manual switch (SPEC section 7): this node's keepalived runs the
//! manual-switch configuration that setup keeps in the node directory (priority 254, no
//! nopreempt), which makes it win against the current master, and its normal configuration
//! again as soon as it holds the VIPs. keepalived keeps an instance's MASTER state across a
//! reload (measured in the lab: no VIP loss in the 10 s after the normal file came back), and
//! nopreempt on every node keeps this node master from then on, also when a node with a
//! higher priority restarts.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cias_core::host::Command;
use cias_core::peers;

use crate::Ctx;

const ACTIVE: &str = peers::KEEPALIVED_FILE;
/// A BACKUP that stops hearing a lower-priority master wins after 3 adverts (~3 s, measured).
const WIN_LIMIT: Duration = Duration::from_secs(20);

fn kept(ctx: &Ctx, switch: bool) -> String {
    peers::kept_keepalived_file(&ctx.node, switch)
}

/// Makes keepalived run the kept normal or manual-switch file (checked before the reload).
fn activate(ctx: &Ctx, switch: bool) -> Result<()> {
    let file = kept(ctx, switch);
    ctx.host.run(&Command::query_argv(&["test", "-s", &file])).with_context(|| {
        format!("{file} is missing: re-run dlll_cias-setup on this node to write its keepalived files")
    })?;
    ctx.host.run(&Command::query_argv(&["keepalived", "--config-test", &format!("--use-file={file}")]))?;
    ctx.host.run(&Command::from_argv(&["install", "-m", "0644", &file, ACTIVE]))?;
    ctx.host.run(&Command::from_argv(&["systemctl", "reload", "keepalived"]))?;
    Ok(())
}

/// Whether keepalived was left on the manual-switch file (a switch that was killed midway).
pub fn switch_file_left_active(ctx: &Ctx) -> Result<bool> {
    Ok(peers::switch_file_active(ctx.host.as_ref(), &ctx.node)?)
}

/// Raises this node above every other and waits until it holds the master VIP, for at most
/// [`WIN_LIMIT`]; the caller restores the normal file either way.
pub fn win_election(ctx: &Ctx) -> Result<()> {
    activate(ctx, true)?;
    if ctx.dry_run {
        return Ok(());
    }
    let started = Instant::now();
    while started.elapsed() < WIN_LIMIT {
        if ctx.holds_master_vip()? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("this node does not hold the master VIP after {} s", WIN_LIMIT.as_secs())
}

/// Back to this node's normal configuration (its priority, nopreempt).
pub fn restore_normal(ctx: &Ctx) -> Result<()> {
    activate(ctx, false)
}
