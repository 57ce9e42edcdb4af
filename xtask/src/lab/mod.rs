//! The lab: a real multi-node cluster on one machine, for the integration tests.
//! See README.md beside this file. Every command of `cargo xtask lab` is a method here.

pub mod addr;
pub mod cli;
pub mod disks;
pub mod layout;
pub mod nas;
pub mod node;
pub mod rootfs;
pub mod run;
pub mod smtp;
pub mod standin;
pub mod status;

mod cgroup;
mod faults;
mod network;
mod ssh;
mod teardown;

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub use addr::Node;
pub use disks::{DiskPrep, DiskSpec};
pub use node::ExtraFile;
pub use run::Output;
pub use smtp::Mail;
pub use status::NodeStatus;

use layout::{nodes_dir, shared_pve_dir, MOUNT_SOURCE, NSPAWN_RUN_DIR};

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// 1..=[`addr::MAX_NODES`].
    pub nodes: u8,
    /// Size of each (sparse) disk image.
    pub disk_size_mib: u64,
    /// Disks that are not blank at first boot.
    pub disks: Vec<DiskSpec>,
    /// Files put into every node before it boots.
    pub extra_files: Vec<ExtraFile>,
    /// Install the Proxmox VE stand-in ([`standin`]) so nodes look like Proxmox nodes.
    pub proxmox: bool,
    /// Nodes have the Debian packages the toolkit depends on (keepalived, MooseFS, ...:
    /// [`rootfs::Variant::Full`]). Without them ([`rootfs::Variant::Plain`]) they have the lab's
    /// package cache as apt source instead, where `apt install ./dlll-cias_*.deb` finds them.
    pub toolkit_deps: bool,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            nodes: 3,
            disk_size_mib: 4096,
            disks: Vec::new(),
            extra_files: Vec::new(),
            proxmox: true,
            toolkit_deps: true,
        }
    }
}

/// A running lab. Cheap to get again with [`Lab::attach`]: all state is on the host.
#[derive(Debug, Clone)]
pub struct Lab {
    nodes: Vec<Node>,
}

const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

impl Lab {
    /// Tears down any earlier lab and builds a fresh one; returns when every node has booted
    /// and answers SSH from the driver.
    pub fn up(config: &LabConfig) -> Result<Lab> {
        require_root()?;
        crate::prereqs::ensure_packages(crate::prereqs::LAB_PACKAGES)?;
        let nodes = (1..=config.nodes).map(Node::new).collect::<Result<Vec<_>>>()?;
        if nodes.is_empty() {
            bail!("a lab needs at least one node");
        }
        Lab::down()?;
        let variant = if config.toolkit_deps { rootfs::Variant::Full } else { rootfs::Variant::Plain };
        let rootfs = rootfs::ensure(variant)?;
        let mut config = config.clone();
        if config.proxmox {
            config.extra_files.extend(standin::extra_files(&Path::new(layout::STATE_DIR).join("standin"))?);
        }
        let started = Instant::now();
        let lab = Lab { nodes };
        lab.build(&config, &rootfs).context("lab up failed (run `cargo xtask lab down` to clean up)")?;
        if config.proxmox {
            standin::enable(&lab)?;
            nas::start()?;
        }
        if rootfs.packages.is_some() {
            for &node in &lab.nodes {
                lab.sh(node, "apt-get update -qq")?;
            }
        }
        eprintln!("lab: {} nodes up in {:.1?} (after the rootfs)", lab.nodes.len(), started.elapsed());
        Ok(lab)
    }

    fn build(&self, config: &LabConfig, rootfs: &rootfs::Rootfs) -> Result<()> {
        mount_nspawn_run_dir()?;
        fs::create_dir_all(shared_pve_dir())?;
        if let Some(packages) = &rootfs.packages {
            std::os::unix::fs::symlink(packages, rootfs::packages_link())?;
        }
        network::create_fabric()?;
        smtp::start()?;
        ssh::create_driver_key()?;
        let mut keys = Vec::new();
        for &node in &self.nodes {
            network::create_node(node)?;
            node::prepare(node, &rootfs.tree, &self.nodes)?;
            keys.push((node, ssh::create_node_keys(node)?));
            for file in &config.extra_files {
                node::install(node, file)?;
            }
            disks::create(node, config.disk_size_mib, &config.disks)?;
        }
        ssh::distribute(&keys)?;
        for &node in &self.nodes {
            node::boot(node)?;
        }
        for &node in &self.nodes {
            self.wait_ready(node)?;
        }
        Ok(())
    }

    /// Waits until the node has booted and answers SSH from the driver.
    fn wait_ready(&self, node: Node) -> Result<()> {
        node::wait_booted(node, BOOT_TIMEOUT)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.ssh(node, &["true"])?;
            if out.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{node}: SSH from the driver fails: {}", out.stderr.trim());
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// The running lab, from what is on the host.
    pub fn attach() -> Result<Lab> {
        let mut nodes = Vec::new();
        if let Ok(entries) = fs::read_dir(nodes_dir()) {
            for entry in entries.flatten() {
                nodes.push(entry.file_name().to_string_lossy().parse::<Node>()?);
            }
        }
        if nodes.is_empty() {
            bail!("no lab is up (run `cargo xtask lab up`)");
        }
        nodes.sort();
        Ok(Lab { nodes })
    }

    /// Removes everything a lab made: processes, cgroups, namespaces, mounts, loop devices,
    /// files. Safe to run twice and after a crash; keeps only the rootfs cache.
    pub fn down() -> Result<()> {
        require_root()?;
        teardown::run()
    }

    /// What `down` would have to remove; empty when the machine is clean.
    pub fn leftovers() -> Result<Vec<String>> {
        teardown::leftovers()
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Checks the name belongs to this lab.
    pub fn node(&self, name: &str) -> Result<Node> {
        let node: Node = name.parse()?;
        if !self.nodes.contains(&node) {
            bail!("{node} is not in this lab ({} nodes)", self.nodes.len());
        }
        Ok(node)
    }

    /// Runs a command inside the node (no shell unless you start one); never fails on a
    /// non-zero exit, only when the node is down.
    pub fn exec(&self, node: Node, command: &[&str]) -> Result<Output> {
        let argv: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        node::exec(node, &argv)
    }

    /// Runs a bash script inside the node; fails with the script's stderr on a non-zero exit.
    pub fn sh(&self, node: Node, script: &str) -> Result<String> {
        let out = self.exec(node, &["bash", "-c", script])?;
        if !out.success() {
            bail!(
                "{node}: `{script}` exited with {}: {}{}",
                out.status,
                out.stderr.trim(),
                if out.stderr.trim().is_empty() { out.stdout.trim() } else { "" }
            );
        }
        Ok(out.stdout)
    }

    /// Runs `command` on the node over SSH from the driver namespace (host key pinned).
    pub fn ssh(&self, node: Node, command: &[&str]) -> Result<Output> {
        let argv: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        ssh::from_driver(node, &argv).output()
    }

    /// Logs in to the node over SSH with a terminal, in the background, running `command`;
    /// what the terminal shows (e.g. `wall` messages) goes to `log`.
    pub fn terminal(&self, node: Node, command: &[&str], log: &Path) -> Result<()> {
        let argv: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        ssh::terminal_from_driver(node, &argv).spawn_detached(log)
    }

    /// Runs a command in the driver namespace (on both bridges, like an admin's laptop).
    pub fn driver(&self, command: &[&str]) -> Result<Output> {
        let mut argv = vec!["ip", "netns", "exec", addr::DRIVER_NETNS];
        argv.extend_from_slice(command);
        run::cmd(argv).output()
    }

    /// Copies a host file into every node (running or not).
    pub fn install(&self, file: &ExtraFile) -> Result<()> {
        for &node in &self.nodes {
            node::install(node, file)?;
        }
        Ok(())
    }

    /// The node's root as seen from the host (to read or write its files directly).
    pub fn root(&self, node: Node) -> PathBuf {
        layout::node_root(node)
    }

    /// The node's two disks, as `/dev/loopN` (the same path inside the node).
    pub fn disks(&self, node: Node) -> Result<Vec<String>> {
        disks::devices(node)
    }

    /// Every message the SMTP server received, oldest first.
    pub fn mail(&self) -> Result<Vec<Mail>> {
        smtp::messages()
    }

    /// The node's journal (also readable while the node is off).
    pub fn logs(&self, node: Node, args: &[&str]) -> Result<String> {
        let journal = layout::in_node(node, "/var/log/journal").display().to_string();
        let mut argv = vec!["journalctl", "--no-pager", "-D", &journal];
        argv.extend_from_slice(args);
        run::cmd(argv).run().with_context(|| format!("{node}: cannot read its journal"))
    }
}

fn require_root() -> Result<()> {
    let status = fs::read_to_string("/proc/self/status")?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("?");
    if uid != "0" {
        bail!("the lab needs root (namespaces, mounts, loop devices, cgroups)");
    }
    Ok(())
}

/// nspawn keeps state in /run/systemd/nspawn, which must be a tmpfs; /run is not one here.
fn mount_nspawn_run_dir() -> Result<()> {
    fs::create_dir_all(NSPAWN_RUN_DIR)?;
    run::cmd(["mount", "-t", "tmpfs", MOUNT_SOURCE, NSPAWN_RUN_DIR])
        .run()
        .context("cannot mount a tmpfs for systemd-nspawn")?;
    Ok(())
}
