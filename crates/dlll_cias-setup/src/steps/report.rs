//! The end of an install: the node's cron jobs, then a report (summary on the terminal, a
//! mail to the administrator, this node's directory published to the shared mirror).

use anyhow::Result;
use cias_core::majority::Takeover;
use cias_core::templates::contexts::CronContext;

use crate::ctx::Ctx;
use crate::node::Role;
use crate::steps::management::publish_node_dir;
use crate::ui;

pub fn cron(ctx: &mut Ctx) -> Result<()> {
    let text =
        ctx.templates.render("cron/dlll-cias.cron.j2", &CronContext::new(&ctx.settings, &ctx.node.name))?;
    ctx.write("/etc/cron.d/dlll-cias", &text, "0644")?;
    Ok(())
}

/// The summary the administrator reads on the terminal and in the mail.
pub fn summary(ctx: &Ctx) -> String {
    let s = &ctx.settings;
    let mut text = format!(
        "Node {} ({}, {}) is {} the {} cluster.\n\n\
         Proxmox web UI:   https://{}:8006 (this node), https://{}:8006 (the master)\n\
         Router web UI:    https://{}\n\
         MooseFS web UI:   http://{}:9425 (on the master)\n\
         keepalived priority: {}{}\n",
        ctx.node.name,
        ctx.node.ip,
        ctx.node.hostname,
        if ctx.node.role == Role::First { "the first node of" } else { "now a member of" },
        s.cluster_name,
        ctx.node.ip,
        s.external.master_ip,
        s.external.router_proxmox_ip,
        s.internal.master_vip,
        ctx.node.priority,
        if ctx.node.priority == 0 { " (never master)" } else { "" },
    );
    text.push_str(&format!(
        "Data disks:       {}\n",
        if ctx.node.disks.is_empty() {
            "none".to_string()
        } else {
            ctx.node
                .disks
                .iter()
                .map(|d| format!("{} -> {}", d.device, d.mount_point()))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    if let Some(takeover) = Takeover::read(ctx.local.as_ref()) {
        text.push_str(&format!("{}\n", takeover.summary()));
        if let Some(advice) = takeover.advice().filter(|_| !ctx.dry_run) {
            ui::warn(&advice);
        }
    }
    text.push_str(&format!(
        "\nSecurity (SPEC section 8):\n\
         - root logs in over SSH with a key only; with its password only from {nodes}\n  \
           (where a new server joins from). Keep a key for root on your workstation.\n\
         - VRRP, MooseFS and corosync are accepted only from the cluster's nodes (nftables table\n  \
           inet dlll_cias); every VM may send only from its own address (Proxmox VM firewall).\n\
         - MooseFS mounts need the cluster's password (secrets file; /etc/mfs/mfsmount.cfg, mode 0600).\n",
        nodes = cias_core::netplan::NodeKind::Pve.network()
    ));
    text.push_str("\nSteps of this run:\n");
    for (title, took) in &ctx.timings {
        text.push_str(&format!("  {:>7.1}s  {title}\n", took.as_secs_f64()));
    }
    text.push_str(&format!(
        "\nSetup log: {}\n",
        crate::node::node_dir(&ctx.node.name).join("setup.log").display()
    ));
    text
}

pub fn report(ctx: &mut Ctx) -> Result<()> {
    let text = summary(ctx);
    let subject = format!("[{}] node {} installed", ctx.settings.cluster_name, ctx.node.name);
    if ctx.dry_run {
        ui::line(&format!("    would mail {} - {subject}", ctx.settings.admin_email));
    } else {
        crate::mail::send(&ctx.settings, &ctx.secrets, &subject, &text)?;
        publish_node_dir(ctx)?;
    }
    ui::line(&text);
    Ok(())
}
