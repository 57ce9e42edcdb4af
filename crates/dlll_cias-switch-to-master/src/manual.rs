//! The manual switch (SPEC section 6, scenario 4), run on the chosen node: the old master
//! hands over its final MooseFS metadata, this node wins the VRRP election, keepalived goes
//! back to its normal configuration at once (so a crash later cannot leave this node
//! preempting everyone), and the takeover of scenario 3 follows: MooseFS here, the router
//! migrated live from the old master.
//!
//! keepalived's notify_master fires on this node when it wins; that run finds the takeover
//! lock held by this one and does nothing.

use anyhow::{bail, Context, Result};
use cias_core::host::holds_address;
use cias_core::takeover::ClusterView;

use crate::{keepalived, moosefs, Ctx, Peer};
use cias_core::timeline::Timeline;

/// The online node that holds the master VIP now, if any (asked over SSH: only the holder
/// knows).
fn current_master(ctx: &Ctx, view: &ClusterView) -> Result<Option<Peer>> {
    let vip = ctx.settings.internal.master_vip.to_string();
    for name in view.online().into_iter().filter(|n| *n != ctx.node) {
        let peer = ctx.peer(name, view)?;
        if holds_address(peer.host.as_ref(), &vip)
            .with_context(|| format!("cannot ask {name} whether it holds {vip}"))?
        {
            return Ok(Some(peer));
        }
    }
    Ok(None)
}

pub fn switch(ctx: &Ctx, tl: &mut Timeline) -> Result<()> {
    let view = ctx.view()?;
    let old = current_master(ctx, &view)?;
    match &old {
        Some(old) => {
            tl.note(&format!("{} is the master now", old.name()));
            let title = format!("final MooseFS metadata handed over by {}", old.name());
            tl.step(&title, |_| moosefs::take_final_metadata(ctx, old))?;
        }
        None => tl.note("no node holds the master VIP: this node takes it"),
    }
    let won = tl.step("VRRP election won with the manual-switch keepalived configuration", |_| {
        keepalived::win_election(ctx)
    });
    let restored = tl
        .step("normal keepalived configuration restored (nopreempt keeps this node master)", |_| {
            keepalived::restore_normal(ctx)
        });
    let won = won.is_ok() || (!ctx.dry_run && ctx.holds_master_vip()?);
    if !won {
        // The old master gets its mfsmaster back only while it still holds the VIP: if a
        // third node won meanwhile (another switch), that node's takeover runs MooseFS.
        let vip = ctx.settings.internal.master_vip.to_string();
        if let Some(old) = old.as_ref().filter(|o| holds_address(o.host.as_ref(), &vip).unwrap_or(false)) {
            let title = format!("{} restarted its mfsmaster (this node did not become master)", old.name());
            tl.step(&title, |_| moosefs::restart_old_master(old))?;
        }
        bail!("this node did not win the VRRP election within 20 s (see journalctl -u keepalived); keepalived's normal configuration is back");
    }
    restored?;
    crate::takeover(ctx, tl)
}
