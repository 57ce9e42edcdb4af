//! Installing the Proxmox stand-in (`tests/pve-standin`) into lab nodes: the binary, a wrapper
//! under each real tool name, the router VM's scripts, the membership (heartbeat) service and
//! the VM firewall service (`pve-firewall`; the node rootfs has nftables) started by the node's
//! systemd. With it, a lab node is a Proxmox VE node to the toolkit.

use std::path::{Path, PathBuf};

use super::addr::{Node, LAN_PREFIX, NODE_LAN_IF, NODE_WAN_IF};
use super::layout::in_node;
use super::{ExtraFile, Lab};
use anyhow::{Context, Result};

/// The Proxmox tools the stand-in answers as, where Proxmox VE has them (ifupdown2's
/// `ifreload`, pve-ha-manager's `watchdog-mux` and `pve-firewall` are in `/usr/sbin`, the others
/// in `/usr/bin`).
pub const TOOLS: &[&str] = &[
    "/usr/bin/pvecm",
    "/usr/bin/pvesh",
    "/usr/bin/qm",
    "/usr/bin/qmrestore",
    "/usr/bin/vzdump",
    "/usr/bin/pvesm",
    "/usr/bin/pveversion",
    "/usr/bin/vma",
    "/usr/sbin/ifreload",
    "/usr/sbin/watchdog-mux",
    "/usr/sbin/pve-firewall",
];
/// root's password on every node: Proxmox's installer sets one and lets root log in with it
/// over SSH, which is how a new node first reaches the master (and what `pvecm add` asks).
pub const ROOT_PASSWORD: &str = "labpassword";
/// sshd as Proxmox VE configures it: root may log in with its password (keys still work).
/// Named to sort before the lab's `cias-lab.conf`: sshd keeps the first value it reads.
const SSHD_DROP_IN: &str = "/etc/ssh/sshd_config.d/00-proxmox.conf";
/// The router VM's scripts (run over SSH as `cias` while the router runs on the node).
pub const ROUTER_SCRIPTS: &[&str] = &[
    "create_user.sh",
    "setup_ip_proxmox.sh",
    "setup_ip_nas.sh",
    "setup_ip_vm.sh",
    "dev_clean.sh",
    "change_password.sh",
    "list_ip_vm.sh",
    "remove_ip_vm.sh",
    "setup_port_forward.sh",
    "remove_port_forward.sh",
    "list_port_forwards.sh",
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
    for path in TOOLS {
        let tool = path.rsplit('/').next().unwrap_or(path);
        let wrapper = staging.join(tool);
        std::fs::write(&wrapper, format!("#!/bin/sh\nexec {BINARY_IN_NODE} {tool} \"$@\"\n"))?;
        files.push(ExtraFile { source: wrapper, dest: path.to_string(), mode: 0o755 });
    }
    let sshd = staging.join("sshd-proxmox.conf");
    std::fs::write(
        &sshd,
        "# As on Proxmox VE: root logs in with its password too (Proxmox stand-in).\n\
         PermitRootLogin yes\nPasswordAuthentication yes\n",
    )?;
    files.push(ExtraFile { source: sshd, dest: SSHD_DROP_IN.into(), mode: 0o644 });
    for script in ROUTER_SCRIPTS {
        let wrapper = staging.join(script);
        std::fs::write(&wrapper, format!("#!/bin/sh\nexec {BINARY_IN_NODE} router-call {script} \"$@\"\n"))?;
        files.push(ExtraFile { source: wrapper, dest: format!("/usr/local/bin/{script}"), mode: 0o755 });
    }
    let heartbeat = format!(
        "[Unit]\nDescription=Proxmox stand-in cluster membership (corosync's role)\nAfter=network.target\n\n\
         [Service]\nExecStart={BINARY_IN_NODE} heartbeat\nRestart=always\nRestartSec=1\n\n\
         [Install]\nWantedBy=multi-user.target\n"
    );
    for (name, content) in [
        (HEARTBEAT_UNIT, heartbeat.as_str()),
        (WATCHDOG_UNIT, WATCHDOG_MUX_UNIT),
        (FIREWALL_UNIT, PVE_FIREWALL_UNIT),
        ("networking.service", NETWORKING_UNIT),
        (DATA_DISKS_UNIT, DATA_DISKS),
    ] {
        let unit = staging.join(name);
        std::fs::write(&unit, content)?;
        files.push(ExtraFile { source: unit, dest: format!("/etc/systemd/system/{name}"), mode: 0o644 });
    }
    Ok(files)
}

/// pve-firewall's unit as Proxmox VE ships it (`debian/pve-firewall.service`): `start` forks
/// the daemon, which writes the PIDFile; `stop` removes the node's table.
const PVE_FIREWALL_UNIT: &str = "[Unit]\nDescription=Proxmox VE firewall (stand-in)\n\
    ConditionPathExists=/usr/sbin/pve-firewall\nAfter=network.target\nDefaultDependencies=no\n\
    Before=shutdown.target\nConflicts=shutdown.target\n\n\
    [Service]\nExecStart=/usr/sbin/pve-firewall start\nExecStop=/usr/sbin/pve-firewall stop\n\
    ExecReload=/usr/sbin/pve-firewall restart\nPIDFile=/run/pve-firewall.pid\nType=forking\n\n\
    [Install]\nWantedBy=multi-user.target\n";

/// The VM firewall's unit; [`enable`] starts it now and at every boot.
pub const FIREWALL_UNIT: &str = "pve-firewall.service";

/// ifupdown2's boot unit as Proxmox VE has it: every boot raises what /etc/network/interfaces
/// lists (the installer's vmbr0 after setup), so a power cycle brings a node back as it was.
const NETWORKING_UNIT: &str = "[Unit]\nDescription=Network initialization (ifupdown2, Proxmox stand-in)\n\
    DefaultDependencies=no\nWants=network.target\nAfter=local-fs.target network-pre.target\n\
    Before=network.target shutdown.target network-online.target\n\n\
    [Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/usr/sbin/ifreload -a\n\n\
    [Install]\nWantedBy=multi-user.target network-online.target\n";

/// The data disks of `/etc/fstab`, mounted at boot. A real node's systemd does it, but in a
/// container its fstab generator skips device entries (measured: after a power cycle every lab
/// node came up without its data disks, and its chunkserver failed on the bare mount point).
/// Before the chunkserver, which would give up on them otherwise.
const DATA_DISKS: &str =
    "[Unit]\nDescription=Data disks of /etc/fstab (the lab's nodes boot in containers)\n\
    DefaultDependencies=no\nAfter=local-fs.target\nBefore=moosefs-chunkserver.service shutdown.target\n\n\
    [Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/mount -a -t ext4,xfs\n\n\
    [Install]\nWantedBy=multi-user.target\n";

/// The data disks' boot unit of the lab (see [`DATA_DISKS`]).
const DATA_DISKS_UNIT: &str = "cias-lab-data-disks.service";

/// pve-ha-manager's `watchdog-mux` unit, started at boot. The stand-in's softdog is a child
/// process of the multiplexer that must outlive it (as the kernel's driver outlives a killed
/// `watchdog-mux`), hence `KillMode=process`.
const WATCHDOG_MUX_UNIT: &str = "[Unit]\nDescription=Proxmox VE watchdog multiplexer (stand-in)\n\n\
    [Service]\nExecStart=/usr/sbin/watchdog-mux\nKillMode=process\n\n\
    [Install]\nWantedBy=multi-user.target\n";

/// The watchdog multiplexer's unit; [`enable`] starts it now and at every boot.
pub const WATCHDOG_UNIT: &str = "watchdog-mux.service";

/// The membership service's unit; [`enable`] starts it now and at every boot.
pub const HEARTBEAT_UNIT: &str = "pve-standin-heartbeat.service";

/// Enables and starts the membership service, the watchdog multiplexer and the VM firewall in
/// every node (a unit file copied into a `.wants` directory is not enough: systemd wants a
/// symlink there), gives root its password (sshd already started with `SSHD_DROP_IN`, copied
/// before the boot), writes the node's `/etc/network/interfaces` and enables its boot-time use.
pub fn enable(lab: &Lab) -> Result<()> {
    for &node in lab.nodes() {
        let interfaces = in_node(node, "/etc/network/interfaces");
        std::fs::create_dir_all(in_node(node, "/etc/network/interfaces.d"))?;
        std::fs::write(&interfaces, interfaces_file(node))
            .with_context(|| format!("{node}: cannot write {}", interfaces.display()))?;
        lab.sh(
            node,
            &format!(
                "systemctl enable --now {HEARTBEAT_UNIT} {WATCHDOG_UNIT} {FIREWALL_UNIT} && \
                 systemctl enable --quiet networking.service {DATA_DISKS_UNIT} && \
                 echo 'root:{ROOT_PASSWORD}' | chpasswd"
            ),
        )?;
    }
    Ok(())
}

/// A Proxmox node has `/etc/network/interfaces` (ifupdown2): this one describes the network
/// the lab gave the node, so `ifreload -a` on an untouched node changes nothing.
fn interfaces_file(node: Node) -> String {
    format!(
        "auto lo\niface lo inet loopback\n\nauto {NODE_LAN_IF}\niface {NODE_LAN_IF} inet static\n\
         \taddress {}/{LAN_PREFIX}\n\niface {NODE_WAN_IF} inet manual\n\n\
         source /etc/network/interfaces.d/*\n",
        node.lan_ip()
    )
}
