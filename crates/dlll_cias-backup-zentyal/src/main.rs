//! `dlll_cias-backup-zentyal`: backs up the router VM (VMID 100) to `mfs-backup` and keeps a
//! local copy of its newest archive at `/var/lib/vz/dump/zentyal.tar.vma`, which is what a new
//! master restores the router from when MooseFS itself is down (SPEC section 4). Run by cron
//! on every node (`--local-copy`, Mondays 04:00) and once by the installer.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use std::sync::Arc;

use cias_core::host::{Command, DryRunHost, Host, LocalHost};
use cias_core::proxmox::pvesh::{self, VmResource};

const DUMP_DIR: &str = "/mnt/mfs/dump";
const LOCAL_COPY: &str = "/var/lib/vz/dump/zentyal.tar.vma";

/// Back up the router VM and keep a local copy of its newest backup.
///
/// Without options both happen: a backup (only on the node running VM 100) then the copy.
#[derive(Debug, clap::Parser)]
#[command(name = "dlll_cias-backup-zentyal", version)]
struct Cli {
    /// Run `vzdump 100` to the mfs-backup storage (on the node that runs VM 100).
    #[arg(long)]
    backup: bool,
    /// Copy the newest router archive from /mnt/mfs/dump to /var/lib/vz/dump/zentyal.tar.vma.
    #[arg(long)]
    local_copy: bool,
    /// Print the commands that would change something; change nothing.
    #[arg(long)]
    dry_run: bool,
}

fn backup(host: &dyn Host, node: &str) -> Result<()> {
    let vms: Vec<VmResource> =
        pvesh::parse("pvesh get /cluster/resources", &host.run(&pvesh::vm_resources_command())?.stdout)?;
    match vms.iter().find(|v| v.vmid == 100) {
        Some(vm) if vm.node == node => {
            let vzdump = Command::from_argv(&[
                "vzdump",
                "100",
                "--storage",
                "mfs-backup",
                "--mode",
                "snapshot",
                "--compress",
                "0",
            ])
            .timeout(Duration::from_secs(6 * 3600));
            host.run(&vzdump)?;
            println!("router backup written to {DUMP_DIR}");
        }
        Some(vm) => println!("VM 100 runs on node {}: its backup is made there", vm.node),
        None => anyhow::bail!("there is no VM 100 (router) in the cluster"),
    }
    Ok(())
}

/// Copies the newest archive next to the old copy, then renames it over (a crash never leaves a
/// half-written copy where a restore would look).
fn local_copy(host: &dyn Host) -> Result<()> {
    let listing = host.run(&Command::query_argv(&[
        "find",
        DUMP_DIR,
        "-maxdepth",
        "1",
        "-name",
        "vzdump-qemu-100-*.vma*",
    ]))?;
    let mut archives: Vec<&str> = listing.stdout.lines().filter(|l| !l.ends_with(".log")).collect();
    archives.sort();
    let newest =
        archives.last().with_context(|| format!("no router backup (vzdump-qemu-100-*) in {DUMP_DIR} yet"))?;
    let partial = format!("{LOCAL_COPY}.partial");
    host.run(&Command::from_argv(&["mkdir", "-p", "/var/lib/vz/dump"]))?;
    host.run(&Command::from_argv(&["cp", newest, &partial]).timeout(Duration::from_secs(3600)))?;
    host.run(&Command::from_argv(&["mv", &partial, LOCAL_COPY]))?;
    println!("{newest} copied to {LOCAL_COPY}");
    Ok(())
}

fn main() -> ExitCode {
    let cli = <Cli as clap::Parser>::parse();
    let both = !cli.backup && !cli.local_copy;
    let node = cias_core::paths::node_name().unwrap_or_default();
    let local: Arc<dyn Host> = Arc::new(LocalHost::new(node.clone()));
    let host: Arc<dyn Host> = if cli.dry_run {
        Arc::new(DryRunHost::reading_from(local).with_sink(|h, c| println!("[{h}] $ {c}")))
    } else {
        local
    };
    let result = (|| {
        if cli.backup || both {
            backup(host.as_ref(), &node)?;
        }
        if cli.local_copy || both {
            local_copy(host.as_ref())?;
        }
        Ok::<_, anyhow::Error>(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dlll_cias-backup-zentyal: {e:#}");
            ExitCode::FAILURE
        }
    }
}
