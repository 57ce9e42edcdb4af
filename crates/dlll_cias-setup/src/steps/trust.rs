//! The trust boundary (SPEC section 8): this node's filter (only the registry's nodes speak
//! VRRP, MooseFS and corosync to it), the members admitting a new node before it joins, the
//! Proxmox VM firewall that keeps every VM on its own address, and root's SSH password login
//! limited to the nodes' network.

use anyhow::{bail, Context, Result};
use cias_core::guest_firewall::{self, ClusterFirewall};
use cias_core::host::{Command, NEW_FILE};
use cias_core::netplan::NodeKind;
use cias_core::paths::{MANAGEMENT_DIR, REGISTRY_FILE};
use cias_core::peers::{self, Peers};
use cias_core::registry_file;

use crate::ctx::Ctx;
use crate::node::Role;

/// This node and the other nodes, from the registry the management step saved (a dry run
/// has not saved it: this node alone).
pub fn peers_of(ctx: &Ctx) -> Result<Peers> {
    let text =
        ctx.local.execute(&Command::query_argv(&["cat", &format!("{MANAGEMENT_DIR}/{REGISTRY_FILE}")]))?;
    match Peers::from_registry(&registry_file::parse(&text.stdout)?, &ctx.node.name) {
        Err(_) if ctx.dry_run => Ok(Peers { own: ctx.node.ip, others: Vec::new() }),
        peers => Ok(peers?),
    }
}

/// The node filter (nftables table `inet dlll_cias`), loaded now and at every boot.
pub fn node_filter(ctx: &mut Ctx) -> Result<()> {
    let peers = peers_of(ctx)?;
    peers::apply_filter(ctx.local.as_ref(), &ctx.templates, &ctx.settings, &ctx.node.name, &peers)?;
    Ok(())
}

/// Before joining: every member's filter and keepalived learn this node's address (the master
/// asks them all), so its corosync, VRRP and MooseFS traffic is let in.
pub fn admission(ctx: &mut Ctx) -> Result<()> {
    ctx.master()?
        .run(&peers::refresh_command(true, false))
        .context("the cluster's members could not admit this node's address")?;
    Ok(())
}

/// Proxmox's VM firewall: on for the datacenter (first node), off for this node's own rules
/// (the node filter does that job). VMs get their rules from the master's watch; the router
/// gets them when it is restored.
pub fn guest_firewall(ctx: &mut Ctx) -> Result<()> {
    if ctx.node.role == Role::First
        && guest_firewall::ensure_cluster(ctx.local.as_ref())? == ClusterFirewall::TheirsOff
    {
        bail!(
            "{} exists without `enable: 1`: Proxmox would compile no VM firewall rule, and VMs could take the nodes' addresses; switch the datacenter firewall on (keep its policies ACCEPT) and run setup again",
            guest_firewall::CLUSTER_FILE
        );
    }
    let host_file = guest_firewall::host_file(&ctx.node.name);
    guest_firewall::ensure_pve_file(ctx.local.as_ref(), &host_file, &guest_firewall::host_text())?;
    Ok(())
}

/// sshd's drop-in; first in its directory, so it wins over Proxmox's `PermitRootLogin yes`.
const SSHD_DROP_IN: &str = "/etc/ssh/sshd_config.d/00-dlll-cias.conf";

/// Root logs in with a key only, except from the nodes' network, where a new server logs in
/// once with the root password to join (no VM can send from there: the VM firewall).
pub fn ssh_login(ctx: &mut Ctx) -> Result<()> {
    let text = format!(
        "# {SSHD_DROP_IN} - written by dlll-cias; edits are overwritten.\n\
         # root logs in with a key; with its password only from the nodes' network, where a\n\
         # new server joins the cluster from (SPEC section 8).\n\
         PermitRootLogin prohibit-password\n\
         Match Address {}\n\
         \tPermitRootLogin yes\n",
        NodeKind::Pve.network()
    );
    ctx.write_checked(SSHD_DROP_IN, &text, "0644", &["sshd", "-t", "-f", NEW_FILE])?;
    // The whole configuration with it: a drop-in sshd refuses must not wait for its next start.
    if let Err(e) = ctx.run(&["sshd", "-t"]) {
        ctx.run(&["rm", "-f", SSHD_DROP_IN])?;
        return Err(
            e.context(format!("sshd refuses its configuration with {SSHD_DROP_IN}; it was removed again"))
        );
    }
    ctx.run(&["systemctl", "reload", "ssh"])?;
    Ok(())
}
