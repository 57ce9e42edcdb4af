//! Debian packages the test suite needs, installed on demand (CI machines start fresh).

use anyhow::{bail, Context, Result};

/// Packages the tests use for real: keepalived validates rendered configs, sshd serves the SSH
/// host tests, arping probes for duplicate addresses, libssl/pkg-config build ssh2's libssh2,
/// showmount answers for the stand-in's NFS checks.
pub const TEST_PACKAGES: &[&str] = &[
    "keepalived",
    "openssh-server",
    "openssh-client",
    "iproute2",
    "iputils-arping",
    "libssl-dev",
    "pkg-config",
    "zlib1g-dev",
    // showmount: the stand-in's `pvesm add|scan nfs` checks a server with it, as Proxmox does
    // (its format tests run on this machine, against loopback).
    "nfs-common",
];

/// Packages the lab host needs (see lab/README.md): nspawn to boot the nodes, mmdebstrap to
/// build their rootfs, dpkg-dev to index the lab's package cache (`dpkg-scanpackages`),
/// nftables for partitions, aiosmtpd as the lab's mail server, and the tools the lab drives
/// (losetup, nsenter, setsid, ip, ssh-keygen, mkfs.ext4, sfdisk).
pub const LAB_PACKAGES: &[&str] = &[
    "systemd-container",
    "mmdebstrap",
    "debian-archive-keyring",
    "dpkg-dev",
    "zstd",
    "nftables",
    "python3-aiosmtpd",
    "iproute2",
    "util-linux",
    "openssh-client",
    "e2fsprogs",
    "fdisk",
    // The lab's NAS: a userspace NFS server (the kernel here has none) and its portmapper.
    "nfs-ganesha",
    "nfs-ganesha-vfs",
    "rpcbind",
];

/// Installs the packages of `wanted` that dpkg does not list as installed.
pub fn ensure_packages(wanted: &[&str]) -> Result<()> {
    let missing: Vec<&str> = wanted.iter().copied().filter(|p| !is_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    duct::cmd!("apt-get", "update", "-qq")
        .run()
        .context("apt-get update failed (are you root on Debian?)")?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(&missing);
    let status = duct::cmd("apt-get", &args).env("DEBIAN_FRONTEND", "noninteractive").unchecked().run()?;
    if !status.status.success() {
        bail!("apt-get install {} failed", missing.join(" "));
    }
    Ok(())
}

fn is_installed(package: &str) -> bool {
    duct::cmd!("dpkg-query", "-W", "-f=${Status}", package)
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .read()
        .map(|s| s.contains("install ok installed"))
        .unwrap_or(false)
}
