//! keepalived: the normal configuration (BACKUP, nopreempt, this node's priority, both VIPs,
//! `notify_master` running the takeover) and the manual-switch one kept for
//! `dlll_cias-switch-to-master`; both also kept in this node's management directory.

use std::time::Duration;

use anyhow::{bail, Result};
use cias_core::paths::BIN_DIR;
use cias_core::peers;
use cias_core::vrrp::Priority;

use crate::ctx::Ctx;
use crate::node::Role;

const FENCE_UNIT: &str = "/etc/systemd/system/dlll-cias-fence.service";
const KEEPALIVED_DROP_IN: &str = "/etc/systemd/system/keepalived.service.d/dlll-cias.conf";

/// The reconcile loop's service, on every node (keepalived only elects; the loop guards the
/// VIPs, the MooseFS master and the VMs, also on "never master" nodes that run no keepalived).
pub fn fence(ctx: &mut Ctx) -> Result<()> {
    require_binary(ctx, "dlll_cias-fence")?;
    let unit = ctx.templates.render(
        "systemd/dlll-cias-fence.service.j2",
        &std::collections::BTreeMap::from([("bin_dir", BIN_DIR)]),
    )?;
    ctx.write(FENCE_UNIT, &unit, "0644")?;
    ctx.run(&["systemctl", "daemon-reload"])?;
    ctx.run(&["systemctl", "enable", "--now", "dlll-cias-fence"])?;
    Ok(())
}

fn require_binary(ctx: &Ctx, name: &str) -> Result<()> {
    let path = format!("{BIN_DIR}/{name}");
    if !ctx.test(&["test", "-x", &path])? {
        bail!("{path} is missing: install all dlll_cias-* binaries into {BIN_DIR} before running setup");
    }
    Ok(())
}

pub fn install(ctx: &mut Ctx) -> Result<()> {
    // keepalived runs the hook the moment this node wins: it must be there.
    require_binary(ctx, "dlll_cias-switch-to-master")?;
    let priority = Priority::new(ctx.node.priority)?;
    let peers = crate::steps::trust::peers_of(ctx)?;
    // The same files and test as every later change of peers (`dlll_cias-watch peers`): a file
    // that fails keepalived's test never replaces a working one.
    peers::apply_keepalived(
        ctx.local.as_ref(),
        &ctx.templates,
        &ctx.settings,
        &ctx.node.name,
        priority,
        &peers,
        true,
    )?;
    if !priority.can_be_master() {
        // keepalived 2.2.7 with no VRRP instance never reports ready to systemd (Type=notify):
        // the start times out after 90 s (measured in the lab). A never-master node has
        // nothing for it to do, so it stays off; its file is kept for the record.
        ctx.run(&["systemctl", "disable", "--now", "keepalived"])?;
        return Ok(());
    }
    let restart_always = ctx.templates.render("systemd/keepalived.override.conf.j2", &())?;
    ctx.write(KEEPALIVED_DROP_IN, &restart_always, "0644")?;
    ctx.run(&["systemctl", "daemon-reload"])?;
    ctx.run(&["systemctl", "enable", "keepalived"])?;
    ctx.run(&["systemctl", "restart", "keepalived"])?;
    if ctx.node.role == Role::First {
        // Alone on the network, this node wins the election after about 3 adverts.
        let vip = format!(" {}/", ctx.settings.internal.master_vip);
        let lan = ctx.settings.interfaces.lan.clone();
        ctx.wait_until("the master VIP on this node", Duration::from_secs(30), || {
            Ok(ctx.query(&["ip", "-o", "-4", "addr", "show", "dev", &lan])?.contains(&vip))
        })?;
    }
    Ok(())
}
