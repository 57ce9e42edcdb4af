//! `dlll_cias-watch`: the jobs cron runs on every node (SPEC section 4). The master-only jobs
//! are installed everywhere and do nothing unless this node holds the master VIP, so the role
//! can move without anyone editing crontabs.
//!
//! - `vmids`: the master writes which VMID lives on which node, and whether it runs, to
//!   `/mnt/mfs/cias/pve_master_vmid.conf`; a new master reads it to know which VMs to start.
//! - `uplink`, `nodes`: not part of this version (they exit 3 and say so).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use anyhow::{Context, Result};
use cias_core::host::{Command, Host, LocalHost};
use cias_core::paths;
use cias_core::proxmox::pvesh::{self, VmResource};
use cias_core::settings::ClusterSettings;
use clap::Parser;

/// Cron jobs of a DLLL-CIAS node.
#[derive(Debug, Parser)]
#[command(name = "dlll_cias-watch", version)]
enum Cli {
    /// On the master: write the VMID map /mnt/mfs/cias/pve_master_vmid.conf (every minute).
    Vmids,
    /// Uplink check (not in this version).
    Uplink,
    /// Node liveness check of the master (not in this version).
    Nodes,
}

fn vmids(host: &dyn Host) -> Result<()> {
    let settings = ClusterSettings::load(&paths::default_settings_file())?;
    if !cias_core::host::holds_address(host, &settings.internal.master_vip.to_string())? {
        return Ok(());
    }
    let vms: Vec<VmResource> =
        pvesh::parse("pvesh get /cluster/resources", &host.run(&pvesh::vm_resources_command())?.stdout)?;
    // Never overwrite a good map with what a node without quorum sees.
    if vms.iter().any(|v| v.status == "unknown") {
        return Ok(());
    }
    let text = cias_core::takeover::vmid_map_text(&vms);
    let partial = format!("{}.partial", paths::VMID_MAP_FILE);
    host.run(&Command::write_file(&partial, text, "0644"))?;
    host.run(&Command::from_argv(&["mv", &partial, paths::VMID_MAP_FILE]))?;
    Ok(())
}

fn main() -> ExitCode {
    let result = match Cli::parse() {
        Cli::Vmids => paths::node_name()
            .context("cannot read this node's host name")
            .and_then(|node| vmids(&LocalHost::new(node))),
        Cli::Uplink | Cli::Nodes => {
            eprintln!("dlll_cias-watch: this check is not part of this version; nothing was done");
            return ExitCode::from(3);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dlll_cias-watch: {e:#}");
            ExitCode::from(2)
        }
    }
}
