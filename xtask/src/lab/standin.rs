//! Installing the Proxmox stand-in (`tests/pve-standin`) into lab nodes: the binary, a wrapper
//! under each real tool name, the router VM's scripts, and the membership (heartbeat) service
//! started by the node's systemd. With it, a lab node is a Proxmox VE node to the toolkit.

use std::path::{Path, PathBuf};

use super::{ExtraFile, Lab};
use anyhow::{Context, Result};

/// The Proxmox tools the stand-in answers as.
pub const TOOLS: &[&str] =
    &["pvecm", "pvesh", "qm", "qmrestore", "vzdump", "pvesm", "pveversion", "ifreload"];
/// root's password on every node: Proxmox's installer sets one and lets root log in with it
/// over SSH, which is how a new node first reaches the master.
pub const ROOT_PASSWORD: &str = "labpassword";
/// The router VM's scripts (run over SSH as `cias` while the router runs on the node).
pub const ROUTER_SCRIPTS: &[&str] = &[
    "create_user.sh",
    "setup_ip_proxmox.sh",
    "setup_ip_nas.sh",
    "setup_ip_vm.sh",
    "dev_clean.sh",
    "change_password.sh",
];
const BINARY_IN_NODE: &str = "/usr/local/lib/pve-standin/pve-standin";

/// The stand-in binary of this workspace, built on demand.
pub fn binary() -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    duct::cmd!("cargo", "build", "--quiet", "-p", "pve-standin")
        .dir(env!("CARGO_MANIFEST_DIR"))
        .run()
        .context("building the Proxmox stand-in")?;
    Ok(target.join("debug/pve-standin"))
}

/// Files that make a lab node look like a Proxmox VE node to the toolkit.
pub fn extra_files(staging: &Path) -> Result<Vec<ExtraFile>> {
    std::fs::create_dir_all(staging)?;
    let mut files = vec![ExtraFile { source: binary()?, dest: BINARY_IN_NODE.into(), mode: 0o755 }];
    for tool in TOOLS {
        let wrapper = staging.join(tool);
        std::fs::write(&wrapper, format!("#!/bin/sh\nexec {BINARY_IN_NODE} {tool} \"$@\"\n"))?;
        files.push(ExtraFile { source: wrapper, dest: format!("/usr/bin/{tool}"), mode: 0o755 });
    }
    for script in ROUTER_SCRIPTS {
        let wrapper = staging.join(script);
        std::fs::write(&wrapper, format!("#!/bin/sh\nexec {BINARY_IN_NODE} router-call {script} \"$@\"\n"))?;
        files.push(ExtraFile { source: wrapper, dest: format!("/usr/local/bin/{script}"), mode: 0o755 });
    }
    let unit = staging.join("pve-standin-heartbeat.service");
    std::fs::write(
        &unit,
        format!(
            "[Unit]\nDescription=Proxmox stand-in cluster membership (corosync's role)\nAfter=network.target\n\n\
             [Service]\nExecStart={BINARY_IN_NODE} heartbeat\nRestart=always\nRestartSec=1\n\n\
             [Install]\nWantedBy=multi-user.target\n"
        ),
    )?;
    files.push(ExtraFile {
        source: unit,
        dest: format!("/etc/systemd/system/{HEARTBEAT_UNIT}"),
        mode: 0o644,
    });
    Ok(files)
}

/// The membership service's unit; [`enable`] starts it now and at every boot.
pub const HEARTBEAT_UNIT: &str = "pve-standin-heartbeat.service";

/// Enables and starts the membership service in every node (a unit file copied into a
/// `.wants` directory is not enough: systemd wants a symlink there).
pub fn enable(lab: &Lab) -> Result<()> {
    for &node in lab.nodes() {
        lab.sh(
            node,
            &format!(
                "systemctl enable --now {HEARTBEAT_UNIT} && echo 'root:{ROOT_PASSWORD}' | chpasswd && \
                 printf 'PermitRootLogin yes\\nPasswordAuthentication yes\\n' > /etc/ssh/sshd_config.d/00-proxmox.conf && \
                 systemctl reload ssh"
            ),
        )?;
    }
    Ok(())
}
