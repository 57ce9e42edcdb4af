//! A stand-in for Proxmox VE's command-line tools, for the lab (never shipped).
//!
//! One multi-call binary: installed as `pvecm`, `pvesh`, `qm`, `qmrestore`, `vzdump`, `pvesm`,
//! `pveversion` and ifupdown2's `ifreload`, it answers with the formats, exit codes and error
//! texts of the real tools (see `shared/reference/proxmox-cli.md`). As `pve-firewall` it is the
//! VM firewall's anti-spoofing part, in nftables ([`firewall`]). A running VM's NICs are veth
//! pairs into a network namespace `vm<vmid>` ([`nic`]). As `watchdog-mux` it is
//! the node's watchdog multiplexer, whose expiry powers the lab node off. `pve-standin heartbeat` is
//! the per-node membership service that gives the cluster real quorum from the lab network;
//! `pve-standin vm-run VMID` is a running VM; `pve-standin make-router-archive PATH` writes the
//! router VM's factory archive. State lives in the cluster file system directory (`/etc/pve`, shared by
//! all lab nodes) and in `/run/pve-standin` (per node).
#![allow(clippy::disallowed_methods, clippy::print_stdout, clippy::print_stderr)]

mod args;
mod cluster;
mod firewall;
mod fwcompile;
mod fwconf;
mod heartbeat;
mod ifreload;
mod nic;
mod output;
mod pvecm;
mod pvesh;
mod qm;
mod qnetd;
mod router;
mod sectioncfg;
mod softdog;
mod storage;
mod task;
mod vmconf;
mod vmproc;
mod watchdog_mux;

use std::process::ExitCode;

/// A failure the real tool reports with this text and exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    /// A Perl `die`: the message and exit 255.
    pub fn die(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: 255 }
    }

    pub fn with_code(message: impl Into<String>, code: u8) -> Self {
        Self { message: message.into(), code }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::die(format!("{e:#}"))
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::die(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

/// SSH between lab nodes (the root key login Proxmox sets up between members). Host keys are
/// not checked here: the lab pins them by lab address, and members talk by ring address.
pub const SSH_OPTIONS: &[&str] = &[
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "ConnectTimeout=5",
    "-o",
    "LogLevel=ERROR",
];

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().collect();
    let invoked = argv.first().map(|a| a.rsplit('/').next().unwrap_or(a).to_string()).unwrap_or_default();
    let tool = if invoked == "pve-standin" && argv.len() > 1 { argv.remove(1) } else { invoked };
    let rest = &argv[1..];
    let env = cluster::Env::from_process();
    let result = match tool.as_str() {
        "pvecm" => pvecm::main(&env, rest),
        "pvesh" => pvesh::main(&env, rest),
        "qm" => qm::main(&env, rest),
        "qmrestore" => storage::qmrestore(&env, rest),
        "vzdump" => storage::vzdump(&env, rest),
        "pvesm" => storage::pvesm(&env, rest),
        "vma" => storage::vma(rest),
        "pveversion" => {
            println!("pve-manager/8.2.4/faa83925c9641325 (running kernel: 6.8.8-2-pve)");
            Ok(0)
        }
        "heartbeat" => heartbeat::run(&env),
        "qnetd" => qnetd::run(),
        "vm-run" => vmproc::run(&env, rest),
        "vm-cleanup" => vmproc::cleanup(&env, rest),
        "task-done" => task::done(&env, rest),
        "router-call" => router::call(&env, rest),
        "ifreload" => ifreload::main(rest),
        "pve-firewall" => firewall::main(&env, rest),
        "watchdog-mux" => watchdog_mux::run(),
        "softdog" => softdog::run(rest),
        "make-router-archive" => storage::make_router_archive(rest),
        other => Err(Failure::with_code(format!("pve-standin: unknown tool '{other}'"), 2)),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            let message = failure.message.trim_end();
            if !message.is_empty() {
                eprintln!("{message}");
            }
            ExitCode::from(failure.code)
        }
    }
}
