//! The node's own system files: `/etc/hosts` and the network (`/etc/network/interfaces`,
//! applied with `ifreload -a` as on every Proxmox VE node).

use anyhow::{bail, Result};
use cias_core::paths::MFS_MASTER_HOST;
use cias_core::templates::contexts::NetworkContext;

use crate::ctx::Ctx;

const BEGIN: &str = "# dlll-cias begin (managed by dlll_cias-setup)";
const END: &str = "# dlll-cias end";
const INTERFACES: &str = "/etc/network/interfaces";

/// `/etc/hosts` with our block: the master's name on the VIP, and this node's names on its new
/// address. Lines that named this node elsewhere (Proxmox's installer wrote one with the old
/// address) are folded into the block, keeping their names.
pub fn hosts_text(current: &str, node: &str, ip: &str, alias: &str, master_vip: &str) -> String {
    let mut names = vec![alias.to_string()];
    let mut kept = Vec::new();
    let mut in_block = false;
    let names_node = |l: &str| l.split_whitespace().skip(1).any(|n| n.split('.').next() == Some(node));
    for line in current.lines() {
        match line {
            l if l == BEGIN => in_block = true,
            l if l == END => in_block = false,
            l if names_node(l) => names.extend(l.split_whitespace().skip(1).map(str::to_string)),
            _ if in_block => {}
            l => kept.push(l.to_string()),
        }
    }
    names.push(node.to_string());
    let mut unique: Vec<String> = Vec::new();
    for n in names {
        if !unique.contains(&n) {
            unique.push(n);
        }
    }
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    format!(
        "{}\n\n{BEGIN}\n{master_vip}\t{MFS_MASTER_HOST}\n{ip}\t{}\n{END}\n",
        kept.join("\n"),
        unique.join(" ")
    )
}

pub fn hosts(ctx: &mut Ctx) -> Result<()> {
    let current = ctx.query(&["cat", "/etc/hosts"])?;
    let text = hosts_text(
        &current,
        &ctx.node.name,
        &ctx.node.ip.to_string(),
        &ctx.node.hostname,
        &ctx.settings.internal.master_vip.to_string(),
    );
    if text != current {
        ctx.write("/etc/hosts", &text, "0644")?;
    }
    Ok(())
}

/// Bridges the NICs into vmbr0 with the node's address; keeps the previous file once.
pub fn network(ctx: &mut Ctx) -> Result<()> {
    let net = NetworkContext::new(&ctx.settings, &ctx.node.nics, ctx.node.ip);
    let text = ctx.templates.render("network/interfaces.j2", &net)?;
    let backup = format!("{INTERFACES}.dlll-cias-orig");
    if ctx.test(&["test", "-f", INTERFACES])? && !ctx.test(&["test", "-e", &backup])? {
        ctx.run(&["cp", "-a", INTERFACES, &backup])?;
    }
    ctx.write(INTERFACES, &text, "0644")?;
    ctx.run(&["ifreload", "-a"])?;
    if !ctx.dry_run {
        // The node's address moved: a session to the master opened before is dead now.
        if ctx.master.is_some() {
            let vip = ctx.settings.internal.master_vip.to_string();
            let pinned = crate::steps::master_access::pinned_file(&ctx.node.name);
            ctx.master = Some(crate::remote::key_login(&vip, &pinned)?);
        }
        let addresses = ctx.query(&["ip", "-o", "-4", "addr", "show", "dev", "vmbr0"])?;
        if !addresses.contains(&format!(" {}/", ctx.node.ip)) {
            bail!("vmbr0 does not have {} after `ifreload -a`: {addresses}", ctx.node.ip);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_entry_of_this_node_moves_into_the_block_with_its_names() {
        let current = "127.0.0.1 localhost\n10.254.1.7 node1.lab.example node1\n10.254.1.8 node2\n";
        let text = hosts_text(current, "node1", "10.254.0.1", "pve.r.a.0-1.example.com", "10.254.0.254");
        assert_eq!(
            text,
            "127.0.0.1 localhost\n10.254.1.8 node2\n\n# dlll-cias begin (managed by dlll_cias-setup)\n\
             10.254.0.254\tcias-pve-master\n10.254.0.1\tpve.r.a.0-1.example.com node1.lab.example node1\n\
             # dlll-cias end\n"
        );
        assert_eq!(hosts_text(&text, "node1", "10.254.0.1", "pve.r.a.0-1.example.com", "10.254.0.254"), text);
    }
}
