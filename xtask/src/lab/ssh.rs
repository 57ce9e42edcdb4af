//! SSH identities. Every node has its own host key and root key pair; root on every node
//! accepts the driver's key and every node's key, and every node pins every other node's
//! host key in `/root/.ssh/known_hosts` (like a Proxmox cluster, which shares root keys and
//! known hosts between its nodes). The driver pins them in [`known_hosts`].

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};

use super::addr::{Node, DRIVER_NETNS};
use super::layout::{driver_key, in_node, known_hosts, ssh_dir};
use super::run::{cmd, Cmd};

fn keygen(path: &Path, comment: &str) -> Result<String> {
    let file = path.display().to_string();
    cmd(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", &file]).run()?;
    Ok(fs::read_to_string(path.with_extension("pub"))?.trim().to_string())
}

pub fn create_driver_key() -> Result<()> {
    fs::create_dir_all(ssh_dir())?;
    keygen(&driver_key(), "cias-lab-driver").context("cannot create the driver's SSH key")?;
    Ok(())
}

/// Generates the node's host key and root key; returns (host public key, root public key).
pub fn create_node_keys(node: Node) -> Result<(String, String)> {
    let keys = (|| {
        let host = keygen(&in_node(node, "/etc/ssh/ssh_host_ed25519_key"), &node.name())?;
        let root_ssh = in_node(node, "/root/.ssh");
        fs::create_dir_all(&root_ssh)?;
        fs::set_permissions(&root_ssh, fs::Permissions::from_mode(0o700))?;
        let user = keygen(&root_ssh.join("id_ed25519"), &format!("root@{node}"))?;
        Ok::<_, anyhow::Error>((host, user))
    })();
    keys.with_context(|| format!("{node}: cannot create its SSH keys"))
}

/// Writes the driver's known_hosts and every node's known_hosts and authorized_keys.
/// `keys` holds each node's (host key, root key).
pub fn distribute(keys: &[(Node, (String, String))]) -> Result<()> {
    let pinned: String = keys
        .iter()
        .map(|(node, (host, _))| {
            let key = host.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            format!("{},{} {key}\n", node.name(), node.lan_ip())
        })
        .collect();
    let driver_pub = fs::read_to_string(driver_key().with_extension("pub"))?;
    let authorized: String = std::iter::once(driver_pub.trim().to_string())
        .chain(keys.iter().map(|(_, (_, user))| user.clone()))
        .map(|k| k + "\n")
        .collect();
    fs::write(known_hosts(), &pinned)?;
    for (node, _) in keys {
        fs::write(in_node(*node, "/root/.ssh/known_hosts"), &pinned)?;
        let auth = in_node(*node, "/root/.ssh/authorized_keys");
        fs::write(&auth, &authorized)?;
        fs::set_permissions(&auth, fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// `ssh` from the driver namespace to root on the node, host key pinned; `command` is run by
/// the node's shell (empty: an interactive login).
pub fn from_driver(node: Node, command: &[String]) -> Cmd {
    driver_ssh(node, &[], command)
}

/// [`from_driver`] with a terminal (`ssh -tt`): a logged-in administrator, who sees `wall`
/// messages. The client gives up 15 s after the node stops answering.
pub fn terminal_from_driver(node: Node, command: &[String]) -> Cmd {
    driver_ssh(node, &["-tt", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"], command)
}

fn driver_ssh(node: Node, options: &[&str], command: &[String]) -> Cmd {
    let key = driver_key().display().to_string();
    let known = format!("UserKnownHostsFile={}", known_hosts().display());
    let mut argv: Vec<String> = [
        "ip",
        "netns",
        "exec",
        DRIVER_NETNS,
        "ssh",
        "-i",
        &key,
        "-o",
        &known,
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=5",
        "-o",
        "LogLevel=ERROR",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // The pin is under the node's name: the installer renumbers nodes (10.254.0.1 for the
    // first, 10.254.R.N for the others), so its address changes from the lab's.
    argv.extend(["-o".to_string(), format!("HostKeyAlias={}", node.name())]);
    argv.extend(options.iter().map(|o| o.to_string()));
    argv.push(format!("root@{}", lan_address(node)));
    argv.extend(command.iter().cloned());
    cmd(argv)
}

/// The node's own LAN address now (its primary 10.254/8 address, not a VIP), read from its
/// namespace; the lab's address while it has none.
fn lan_address(node: Node) -> String {
    let listed = cmd(["ip", "-n", &node.netns(), "-o", "-4", "addr", "show", "scope", "global"]).run();
    listed
        .ok()
        .and_then(|text| {
            text.lines().filter(|l| !l.contains(" secondary ")).find_map(|l| {
                let addr = l.split_whitespace().skip_while(|w| *w != "inet").nth(1)?;
                let ip = addr.split('/').next()?;
                ip.starts_with("10.254.").then(|| ip.to_string())
            })
        })
        .unwrap_or_else(|| node.lan_ip().to_string())
}
