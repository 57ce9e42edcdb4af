//! A node: an overlay of the shared rootfs booted with real systemd by `systemd-nspawn`, in
//! its own network namespace and cgroup.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::addr::*;
use super::cgroup::Group;
use super::disks;
use super::layout::*;
use super::rootfs;
use super::run::{cmd, Cmd, Output};

/// A file put into every node's root before it boots (and by [`super::Lab::install`] later):
/// the hook for binaries and configs the toolkit's tests need in the nodes.
#[derive(Debug, Clone)]
pub struct ExtraFile {
    /// On the host.
    pub source: PathBuf,
    /// Absolute path inside the node.
    pub dest: String,
    pub mode: u32,
}

pub fn cgroup(node: Node) -> Group {
    Group::new(&node.name())
}

/// Mounts the node's overlay and writes its identity: host name, hosts file, machine id.
pub fn prepare(node: Node, rootfs: &Path, all: &[Node]) -> Result<()> {
    let dir = node_dir(node);
    for sub in ["upper", "work", "merged"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        rootfs.display(),
        dir.join("upper").display(),
        dir.join("work").display()
    );
    let merged = node_root(node).display().to_string();
    cmd(["mount", "-t", "overlay", &format!("{MOUNT_SOURCE}-{node}"), "-o", &options, &merged])
        .run()
        .with_context(|| format!("{node}: cannot mount its root overlay"))?;

    fs::write(in_node(node, "/etc/hostname"), format!("{node}\n"))?;
    fs::write(in_node(node, "/etc/hosts"), hosts_file(all))?;
    let machine_id = fs::read_to_string("/proc/sys/kernel/random/uuid")?.replace('-', "");
    fs::write(in_node(node, "/etc/machine-id"), machine_id)?;
    Ok(())
}

fn hosts_file(all: &[Node]) -> String {
    let mut hosts = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for node in all {
        hosts += &format!("{}\t{node}\n", node.lan_ip());
    }
    hosts += &format!("{SMTP_IP}\t{SMTP_HOSTNAME}\n{DRIVER_LAN_IP}\t{DRIVER_HOSTNAME}\n");
    hosts
}

/// Copies a host file into the node's root (works while the node runs: the host writes
/// into the same overlay the node sees).
pub fn install(node: Node, file: &ExtraFile) -> Result<()> {
    let dest = in_node(node, &file.dest);
    let copy = || -> Result<()> {
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(&file.source, &dest)?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(file.mode))?;
        Ok(())
    };
    copy().with_context(|| format!("{node}: cannot install {} as {}", file.source.display(), file.dest))
}

/// Boots the node in the background (its network namespace and disks must exist).
pub fn boot(node: Node) -> Result<()> {
    let mut argv: Vec<String> = [
        "systemd-nspawn",
        "--quiet",
        "--boot",
        // No machined on these hosts: without these two, nspawn fails on the system bus.
        "--register=no",
        "--keep-unit",
        "--console=passive",
        "--link-journal=no",
        "--resolv-conf=off",
        "--timezone=off",
        // keepalived adds VIPs: the namespace alone does not grant CAP_NET_ADMIN.
        "--capability=CAP_NET_ADMIN",
        "--bind=/dev/fuse",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.push(format!("--directory={}", node_root(node).display()));
    argv.push(format!("--machine={node}"));
    argv.push(format!("--network-namespace-path=/run/netns/{}", node.netns()));
    for dev in disks::devices(node)? {
        argv.push(format!("--bind={dev}"));
    }
    argv.push(format!("--bind-ro={}:/sys/block", disks::sysfs_view(node).display()));
    argv.push(format!("--bind={}:{SHARED_PVE_NODE_PATH}", shared_pve_dir().display()));
    // A plain lab's package cache (see `rootfs`), read-only.
    let packages = rootfs::packages_link();
    if packages.symlink_metadata().is_ok() {
        let dir = fs::canonicalize(&packages)
            .with_context(|| format!("{node}: the lab's package cache {} is gone", packages.display()))?;
        argv.push(format!("--bind-ro={}:{}", dir.display(), rootfs::PACKAGES_NODE_PATH));
    }
    cgroup(node)
        .spawn(&argv, true, &node_console_log(node))
        .with_context(|| format!("{node}: cannot start systemd-nspawn"))
}

/// The host PID of the node's systemd (PID 1 inside), if it runs.
pub fn pid1(node: Node) -> Option<u32> {
    cgroup(node).pids().into_iter().find(|pid| {
        fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("NSpid:"))?.to_string();
                let ids: Vec<&str> = line.split_whitespace().skip(1).collect();
                Some(ids.len() > 1 && ids.last() == Some(&"1"))
            })
            .unwrap_or(false)
    })
}

const NODE_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A command run inside the node (all its namespaces, a clean environment), as a process of
/// the node's cgroup, so a power-off kills it as well.
pub fn exec_cmd(node: Node, command: &[String]) -> Result<Cmd> {
    let Some(pid) = pid1(node) else {
        bail!("{node} is not running");
    };
    let mut argv: Vec<String> = vec![
        "nsenter".into(),
        "-t".into(),
        pid.to_string(),
        "-a".into(),
        "--".into(),
        "env".into(),
        "-i".into(),
        NODE_PATH.into(),
        "HOME=/root".into(),
        "LANG=C.UTF-8".into(),
        "TERM=xterm".into(),
    ];
    argv.extend(command.iter().cloned());
    Ok(cgroup(node).wrap(&argv, false))
}

pub fn exec(node: Node, command: &[String]) -> Result<Output> {
    exec_cmd(node, command)?.output()
}

/// Waits until the node's systemd has finished booting (running or degraded).
pub fn wait_booted(node: Node, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no PID 1 yet");
    while Instant::now() < deadline {
        if pid1(node).is_some() {
            let out = exec(node, &["systemctl".into(), "is-system-running".into(), "--wait".into()])?;
            last = format!("{}{}", out.stdout.trim(), out.stderr.trim());
            match out.stdout.trim() {
                "running" => return Ok(()),
                "degraded" => {
                    let failed = exec(node, &["systemctl".into(), "--failed".into(), "--no-legend".into()])?;
                    eprintln!("lab: {node} booted degraded:\n{}", failed.stdout);
                    return Ok(());
                }
                _ => {}
            }
        } else if !cgroup(node).populated() {
            let console = fs::read_to_string(node_console_log(node)).unwrap_or_default();
            bail!("{node}: systemd-nspawn exited:\n{}", tail(&console, 20));
        }
        sleep(Duration::from_millis(100));
    }
    bail!("{node} did not finish booting in {timeout:?} (last state: {last})")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
