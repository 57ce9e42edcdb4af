//! The lab's NAS: a small host of its own on the LAN (namespace [`NAS_NETNS`], address
//! [`NAS_IP`], the NAS range of SPEC section 2), with its own mount namespace, running
//! - an NFS server: Debian's nfs-ganesha (userspace; this machine's kernel has no NFS
//!   server) with rpcbind, exporting one directory named after its host name ([`export`]) to
//!   the Proxmox nodes' network;
//! - the QDevice arbiter, `pve-standin qnetd` (corosync-qnetd's role: real corosync-qnetd
//!   cannot serve the stand-in's nodes, which run no corosync).
//!
//! `lab nas off` pulls its plug (every process dies, its link goes down), `lab nas on` boots it.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::addr::{NAS_IP, NAS_NETNS};
use super::cgroup::Group;
use super::layout::STATE_DIR;
use super::network;

/// The NAS's host name by the plan's rules, as `dlll_cias-nas add 10.253.1.1 --rack master-rack
/// --slot nas` names it in the demo's domain: its export is named after it.
pub const HOSTNAME: &str = "nas.master-rack.nas.1-1.lab.example";

fn cgroup() -> Group {
    Group::new("nas")
}

fn dir() -> PathBuf {
    Path::new(STATE_DIR).join("nas")
}

/// ganesha's configuration: NFSv3 (with its MOUNT protocol, which `showmount` asks) and v4.
fn ganesha_conf(export_dir: &Path) -> String {
    format!(
        "NFS_CORE_PARAM {{ Protocols = 3, 4; }}\n\
         NFSV4 {{ Graceless = true; RecoveryRoot = {recovery}; }}\n\
         EXPORT {{\n  Export_Id = 1;\n  Path = {path};\n  Pseudo = /{HOSTNAME};\n  Access_Type = RW;\n  \
         Squash = No_Root_Squash;\n  Protocols = 3, 4;\n  FSAL {{ Name = VFS; }}\n  \
         CLIENT {{ Clients = 10.254.0.0/16; Access_Type = RW; }}\n}}\n",
        recovery = dir().join("recovery").display(),
        path = export_dir.display(),
    )
}

/// Starts the NAS's services (its network was made with the lab's fabric).
pub fn start() -> Result<()> {
    let dir = dir();
    let export_dir = PathBuf::from(export());
    fs::create_dir_all(&export_dir)?;
    fs::create_dir_all(dir.join("recovery"))?;
    let conf = dir.join("ganesha.conf");
    fs::write(&conf, ganesha_conf(&export_dir))?;
    let qnetd = super::standin::binary()?;
    // A private /run: rpcbind's socket and ganesha's state stay the NAS's own.
    let script = format!(
        "set -e\nmount -t tmpfs cias-lab-nas /run\nmkdir -p /run/rpcbind /run/ganesha\nrpcbind -w -f &\n\
         for i in $(seq 50); do [ -S /run/rpcbind.sock ] && break; sleep 0.1; done\n\
         ganesha.nfsd -F -f {conf} -L {log} -N NIV_EVENT -p /run/ganesha/ganesha.pid &\n{qnetd} qnetd &\nwait\n",
        conf = conf.display(),
        log = dir.join("ganesha.log").display(),
        qnetd = qnetd.display(),
    );
    let argv: Vec<String> =
        ["ip", "netns", "exec", NAS_NETNS, "unshare", "-m", "--propagation", "private", "sh", "-c", &script]
            .iter()
            .map(|s| s.to_string())
            .collect();
    cgroup().spawn(&argv, false, &dir.join("nas.log")).context("the lab's NAS did not start")
}

/// Pulls the NAS's plug: its services die, its link goes down.
pub fn power_off() -> Result<()> {
    cgroup().kill()?;
    network::set_nas_link(false)
}

/// Boots the NAS again.
pub fn power_on() -> Result<()> {
    network::set_nas_link(true)?;
    if !cgroup().populated() {
        start()?;
    }
    Ok(())
}

/// The export's path, as `showmount` lists it (ganesha shows the directory's own path).
pub fn export() -> String {
    dir().join(HOSTNAME).display().to_string()
}

/// Its address, for setup's answers and tests.
pub fn address() -> String {
    NAS_IP.to_string()
}
