//! Extension: talking to the master. While planning, the installer checks the master's SSH
//! host key against the fingerprint the administrator confirms, logs in once with the root
//! password; this step installs key login and pins the key, so later runs need no password.

use anyhow::{Context, Result};
use cias_core::host::Command;

use crate::ctx::Ctx;
use crate::node::node_dir;

/// This node's SSH key (what Proxmox nodes use between each other).
pub const KEY: &str = "/root/.ssh/id_ed25519";

/// The pinned host key of the master, for this node's later runs.
pub fn pinned_file(node: &str) -> String {
    node_dir(node).join("master_known_hosts").display().to_string()
}

/// Reads something on the master (runs for real in a dry run too).
pub fn master_query(ctx: &Ctx, argv: &[&str]) -> Result<String> {
    Ok(ctx.master()?.run(&Command::query_argv(argv))?.stdout)
}

/// Creates this node's key when it has none, authorises it on the master, pins the master.
pub fn install_key(ctx: &mut Ctx) -> Result<()> {
    if !ctx.test(&["test", "-f", KEY])? {
        let comment = format!("root@{}", ctx.node.name);
        ctx.run(&["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", &comment, "-f", KEY])?;
    }
    let public = if ctx.dry_run && !ctx.test(&["test", "-f", &format!("{KEY}.pub")])? {
        format!("ssh-ed25519 (the key ssh-keygen creates) root@{}", ctx.node.name)
    } else {
        ctx.query(&["cat", &format!("{KEY}.pub")])?.trim().to_string()
    };
    // Appended once: a re-run finds the line and adds nothing.
    let script = "mkdir -p -m 0700 /root/.ssh && touch /root/.ssh/authorized_keys && \
                  (grep -qxF \"$1\" /root/.ssh/authorized_keys || printf '%s\\n' \"$1\" >> /root/.ssh/authorized_keys)";
    ctx.master()?.run(&Command::from_argv(&["sh", "-c", script, "sh", &public]))?;
    let line = ctx.master_known_host.clone().context("the master's host key was not scanned")?;
    ctx.write(&pinned_file(&ctx.node.name), &format!("{line}\n"), "0644")?;
    Ok(())
}
