//! The one root filesystem every node boots (read-only lower layer of each node's overlay).
//!
//! Built once by mmdebstrap from Debian's packages, customised for the lab, and cached under
//! [`CACHE_DIR`] keyed on a hash of the package list and of `RECIPE`: a tarball (the portable
//! artifact) and its extracted tree (so a warm `lab up` skips the extraction).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use super::layout::CACHE_DIR;
use super::run::cmd;

pub const SUITE: &str = "bookworm";

/// Installed in every node. Services come from Debian's packages, installed but not configured
/// (configuring them is the toolkit's job); the rest is what an admin expects on a server.
pub const ROOTFS_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "keepalived",
    "cron",
    "fuse3",
    "moosefs-master",
    "moosefs-chunkserver",
    "moosefs-metalogger",
    "moosefs-client",
    "moosefs-cgiserv",
    "moosefs-cli",
    "iproute2",
    "iputils-ping",
    "iputils-arping",
    "e2fsprogs",
    "fdisk",
    "procps",
    "netcat-openbsd",
    "curl",
    "nftables",
];

/// Bump when [`customize`] changes, so cached trees are rebuilt.
const RECIPE: &str = "cias-lab rootfs recipe 1";

/// Returns the extracted, customised rootfs, building or extracting it when not cached.
pub fn ensure() -> Result<PathBuf> {
    let key = cache_key()?;
    let cache = Path::new(CACHE_DIR);
    let tree = cache.join(format!("rootfs-{key}"));
    if tree.is_dir() {
        return Ok(tree);
    }
    fs::create_dir_all(cache).with_context(|| format!("cannot create {}", cache.display()))?;
    let tarball = cache.join(format!("rootfs-{key}.tar.zst"));
    if !tarball.exists() {
        build(&tarball)?;
    }
    // Extract and customise beside the final name, then rename: a crash leaves no half tree.
    let partial = cache.join(format!("rootfs-{key}.partial"));
    if partial.exists() {
        fs::remove_dir_all(&partial).with_context(|| format!("cannot remove {}", partial.display()))?;
    }
    fs::create_dir_all(&partial)?;
    let started = Instant::now();
    let tar = tarball.display().to_string();
    let dir = partial.display().to_string();
    cmd(["tar", "--zstd", "-xpf", &tar, "-C", &dir, "--numeric-owner"])
        .run()
        .context("extracting the lab rootfs")?;
    customize(&partial)?;
    fs::rename(&partial, &tree)?;
    eprintln!("lab: rootfs extracted in {:.1?}", started.elapsed());
    Ok(tree)
}

fn cache_key() -> Result<String> {
    let recipe = format!("{RECIPE}\n{SUITE}\n{}\n", ROOTFS_PACKAGES.join("\n"));
    let sum = cmd(["sha256sum"]).stdin(recipe).run()?;
    Ok(sum.chars().take(16).collect())
}

fn build(tarball: &Path) -> Result<()> {
    eprintln!("lab: building the node rootfs with mmdebstrap (about a minute)");
    let started = Instant::now();
    let partial = tarball.with_extension("partial.tar.zst");
    let include = format!("--include={}", ROOTFS_PACKAGES.join(","));
    let out = partial.display().to_string();
    cmd(["mmdebstrap", "--quiet", "--variant=apt", &include, SUITE, &out])
        .run()
        .context("mmdebstrap could not build the lab rootfs (is Debian's mirror reachable?)")?;
    fs::rename(&partial, tarball)?;
    eprintln!("lab: rootfs built in {:.1?}", started.elapsed());
    Ok(())
}

/// Makes the tree a template: nothing node-specific, nothing that reaches out of the lab.
fn customize(root: &Path) -> Result<()> {
    let at = |p: &str| root.join(p);
    // Per-node identity is written into each node's overlay at `up`.
    remove_if_exists(&at("etc/hostname"))?;
    fs::write(at("etc/machine-id"), "")?;
    remove_if_exists(&at("var/lib/dbus/machine-id"))?;
    symlink("/etc/machine-id", at("var/lib/dbus/machine-id"))?;
    for entry in fs::read_dir(at("etc/ssh"))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("ssh_host_") {
            fs::remove_file(&path)?;
        }
    }
    fs::write(
        at("etc/ssh/sshd_config.d/cias-lab.conf"),
        "# cias lab: root by key only, one ed25519 host key per node, no DNS lookups.\n\
         PermitRootLogin prohibit-password\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UseDNS no\n\
         HostKey /etc/ssh/ssh_host_ed25519_key\n",
    )?;
    // Nothing may reach out of the lab: no name servers, no package sources, no apt timers.
    fs::write(at("etc/resolv.conf"), "# cias lab: no DNS, names are in /etc/hosts\n")?;
    fs::write(at("etc/apt/sources.list"), "# cias lab: no package sources (the lab has no route out)\n")?;
    for unit in ["apt-daily.timer", "apt-daily-upgrade.timer", "fstrim.timer", "e2scrub_all.timer"] {
        let link = at("etc/systemd/system").join(unit);
        remove_if_exists(&link)?;
        symlink("/dev/null", link)?;
    }
    // Persistent journal, so `lab logs` works after a power-off too.
    fs::create_dir_all(at("var/log/journal"))?;
    Ok(())
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}
