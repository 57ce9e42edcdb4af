//! The root filesystems nodes boot (read-only lower layer of each node's overlay).
//!
//! Built once by mmdebstrap from Debian's packages, customised for the lab, and cached under
//! [`CACHE_DIR`] keyed on a hash of the package list and of `RECIPE`: a tarball (the portable
//! artifact) and its extracted tree (so a warm `lab up` skips the extraction).
//!
//! Two variants: [`Variant::Full`] has every package the toolkit depends on
//! (`cias_core::installed::PACKAGES`, the Debian package's `Depends:`); [`Variant::Plain`] lacks
//! them, as a fresh Proxmox VE node does, and comes with the lab's package cache: a local apt
//! repository of every `.deb` those packages need that the plain tree lacks, downloaded by the
//! same mmdebstrap run (so their versions fit the tree), mounted read-only in the nodes at
//! [`PACKAGES_NODE_PATH`] and listed as their one apt source. Only mmdebstrap on the host
//! reaches Debian's mirror; nothing inside the lab does.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use super::layout::{CACHE_DIR, STATE_DIR};
use super::run::cmd;

pub const SUITE: &str = "bookworm";

/// Installed in every node, with or without the toolkit's dependencies: systemd, what the lab
/// drives (sshd, ip, mkfs, sfdisk) and what an admin expects on a server (man pages too).
/// Services come from Debian's packages, installed but not configured (configuring them is the
/// toolkit's job).
pub const BASE_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "cron",
    "iproute2",
    "e2fsprogs",
    "fdisk",
    "procps",
    "netcat-openbsd",
    "curl",
    "man-db",
    // Proxmox VE has it (showmount, mount.nfs): its NFS storage checks a server with showmount.
    "nfs-common",
    // /etc/services and /etc/protocols, which RPC clients (showmount) need, as on Proxmox VE.
    "netbase",
];

/// Which root filesystem the nodes boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// [`BASE_PACKAGES`] and every package the toolkit depends on (keepalived, MooseFS, ...).
    Full,
    /// [`BASE_PACKAGES`] without the toolkit's dependencies, with the lab's package cache as
    /// apt source (`apt install ./dlll-cias_*.deb` pulls them from there).
    Plain,
}

/// The packages the toolkit's Debian package depends on: what the plain variant lacks.
pub fn toolkit_dependencies() -> &'static [&'static str] {
    cias_core::installed::PACKAGES
}

/// The packages mmdebstrap installs for `variant`.
pub fn packages(variant: Variant) -> Vec<&'static str> {
    let deps = toolkit_dependencies();
    let mut list: Vec<&'static str> = BASE_PACKAGES.iter().copied().filter(|p| !deps.contains(p)).collect();
    if variant == Variant::Full {
        list.extend(deps.iter().copied());
    }
    list
}

/// Where plain nodes see the package cache (read-only), and their apt source naming it.
pub const PACKAGES_NODE_PATH: &str = "/srv/cias-lab-packages";
const PACKAGES_SOURCE: &str = "etc/apt/sources.list.d/cias-lab-packages.list";

/// While a plain lab is up: a link to its package cache, which every boot of a node binds.
pub fn packages_link() -> PathBuf {
    Path::new(STATE_DIR).join("packages")
}

/// An extracted rootfs and, for the plain variant, its package cache.
#[derive(Debug, Clone)]
pub struct Rootfs {
    pub tree: PathBuf,
    pub packages: Option<PathBuf>,
}

/// Bump when [`customize`] changes, so cached trees are rebuilt.
const RECIPE: &str = "cias-lab rootfs recipe 2";

/// Returns the extracted, customised rootfs of `variant` (and its package cache), building or
/// extracting what is not cached.
pub fn ensure(variant: Variant) -> Result<Rootfs> {
    let key = cache_key(variant)?;
    let cache = Path::new(CACHE_DIR);
    let name = match variant {
        Variant::Full => format!("rootfs-{key}"),
        Variant::Plain => format!("rootfs-plain-{key}"),
    };
    let tree = cache.join(&name);
    let tarball = cache.join(format!("{name}.tar.zst"));
    let packages = (variant == Variant::Plain).then(|| cache.join(format!("packages-{key}")));
    // The cache is made by the tarball's own run: without it, tree and tarball are made again.
    if let Some(packages) = packages.as_ref().filter(|p| !p.is_dir()) {
        for stale in [&tree, &tarball] {
            if stale.is_dir() {
                fs::remove_dir_all(stale).with_context(|| format!("cannot remove {}", stale.display()))?;
            } else {
                remove_if_exists(stale)?;
            }
        }
        fs::create_dir_all(cache).with_context(|| format!("cannot create {}", cache.display()))?;
        build(variant, &tarball, Some(packages))?;
    }
    if tree.is_dir() {
        return Ok(Rootfs { tree, packages });
    }
    fs::create_dir_all(cache).with_context(|| format!("cannot create {}", cache.display()))?;
    if !tarball.exists() {
        build(variant, &tarball, packages.as_deref())?;
    }
    // Extract and customise beside the final name, then rename: a crash leaves no half tree.
    let partial = cache.join(format!("{name}.partial"));
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
    customize(&partial, variant)?;
    fs::rename(&partial, &tree)?;
    eprintln!("lab: rootfs extracted in {:.1?}", started.elapsed());
    Ok(Rootfs { tree, packages })
}

fn cache_key(variant: Variant) -> Result<String> {
    let mut recipe = format!("{RECIPE}\n{SUITE}\n{}\n", packages(variant).join("\n"));
    if variant == Variant::Plain {
        recipe += &format!("plain, package cache of: {}\n", toolkit_dependencies().join(" "));
    }
    let sum = cmd(["sha256sum"]).stdin(recipe).run()?;
    Ok(sum.chars().take(16).collect())
}

/// Runs mmdebstrap into `tarball`; with `packages`, the same run downloads what the toolkit's
/// dependencies need beyond the tree (with their recommends, as apt in a node installs them)
/// into that directory and indexes it as a flat apt repository.
fn build(variant: Variant, tarball: &Path, packages: Option<&Path>) -> Result<()> {
    eprintln!("lab: building the node rootfs ({variant:?}) with mmdebstrap (about a minute)");
    let started = Instant::now();
    let partial = tarball.with_extension("partial.tar.zst");
    let include = format!("--include={}", self::packages(variant).join(","));
    let out = partial.display().to_string();
    let mut argv = vec!["mmdebstrap".to_string(), "--quiet".into(), "--variant=apt".into(), include];
    let partial_packages = packages.map(|p| p.with_extension("partial"));
    if let Some(dir) = &partial_packages {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
        fs::create_dir_all(dir)?;
        argv.push("--customize-hook=chroot \"$1\" apt-get clean".into());
        argv.push(format!(
            "--customize-hook=chroot \"$1\" apt-get install --download-only --yes -qq \
             -o APT::Install-Recommends=true {}",
            toolkit_dependencies().join(" ")
        ));
        argv.push(format!("--customize-hook=sync-out /var/cache/apt/archives {}", dir.display()));
    }
    argv.extend([SUITE.to_string(), out]);
    cmd(&argv).run().context("mmdebstrap could not build the lab rootfs (is Debian's mirror reachable?)")?;
    if let (Some(dir), Some(packages)) = (&partial_packages, packages) {
        index(dir)?;
        fs::rename(dir, packages)?;
    }
    fs::rename(&partial, tarball)?;
    eprintln!("lab: rootfs built in {:.1?}", started.elapsed());
    Ok(())
}

/// Keeps only the `.deb` files of `dir` and writes their index, `Packages`.
fn index(dir: &Path) -> Result<()> {
    let mut debs = 0;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            debs += 1;
        } else if path.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
    }
    if debs == 0 {
        anyhow::bail!("mmdebstrap downloaded no package into {}", dir.display());
    }
    let index = duct::cmd!("dpkg-scanpackages", "--multiversion", ".")
        .dir(dir)
        .stderr_null()
        .read()
        .context("dpkg-scanpackages cannot index the lab's package cache")?;
    fs::write(dir.join("Packages"), index + "\n")?;
    Ok(())
}

/// Makes the tree a template: nothing node-specific, nothing that reaches out of the lab.
fn customize(root: &Path, variant: Variant) -> Result<()> {
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
    // Nothing may reach out of the lab: no name servers, no package sources (a plain tree: only
    // the lab's package cache), no apt timers.
    fs::write(at("etc/resolv.conf"), "# cias lab: no DNS, names are in /etc/hosts\n")?;
    fs::write(at("etc/apt/sources.list"), "# cias lab: no package sources (the lab has no route out)\n")?;
    if variant == Variant::Plain {
        fs::create_dir_all(at(PACKAGES_NODE_PATH.trim_start_matches('/')))?;
        fs::write(
            at(PACKAGES_SOURCE),
            format!("# cias lab: the lab's package cache (read-only)\ndeb [trusted=yes] file:{PACKAGES_NODE_PATH} ./\n"),
        )?;
    }
    // No other daily jobs either: they would take CPU from a measurement at random.
    for unit in
        ["apt-daily.timer", "apt-daily-upgrade.timer", "fstrim.timer", "e2scrub_all.timer", "man-db.timer"]
    {
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
