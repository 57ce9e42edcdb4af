//! `cargo xtask lab ...`: the command line over [`Lab`].

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::disks::DiskSpec;
use super::{faults, node, ssh, Lab, LabConfig, Node};

#[derive(Debug, Args)]
pub struct LabArgs {
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Debug, Subcommand)]
enum LabCommand {
    /// Build and boot a fresh lab (tears down any earlier one first).
    Up {
        /// Number of nodes (node1..nodeN).
        #[arg(long, default_value_t = 3)]
        nodes: u8,
        /// Size of each node's two sparse disks.
        #[arg(long, default_value_t = 4096)]
        disk_size_mib: u64,
        /// Give a disk content before first boot: NODE:DISK=blank|ext4|gpt (repeatable).
        #[arg(long = "disk")]
        disks: Vec<DiskSpec>,
        /// Plain Debian nodes, without the Proxmox VE stand-in.
        #[arg(long)]
        no_proxmox: bool,
        /// Nodes without the Debian packages the toolkit depends on (keepalived, MooseFS, ...);
        /// `apt install ./dlll-cias_*.deb` in a node pulls them from the lab's package cache.
        #[arg(long)]
        no_toolkit: bool,
    },
    /// Remove everything the lab made (safe twice, and after a crash).
    Down,
    /// Per node: up or down, VIPs, running services, mounts.
    Status,
    /// Kill every process of NODE at once (pulled plug).
    PowerOff { node: Node },
    /// Boot NODE again with its disks and files as they were.
    PowerOn { node: Node },
    /// Set NODE's links down; its processes keep running.
    Cut { node: Node },
    /// Drop traffic between groups, links up: `lab partition node1,node2 / node3`.
    Partition {
        #[arg(required = true, num_args = 1..)]
        groups: Vec<String>,
    },
    /// The uplink target (the driver's LAN address) stops answering these nodes' pings; their
    /// other traffic goes on. `lab heal` undoes it.
    UplinkCut {
        #[arg(required = true, num_args = 1..)]
        nodes: Vec<Node>,
    },
    /// The lab's NAS (10.253.1.1, the QDevice arbiter): `off` pulls its plug, `on` boots it.
    Nas {
        #[arg(value_parser = ["on", "off"])]
        power: String,
    },
    /// Undo every cut, uplink cut and partition.
    Heal,
    /// Run a command inside NODE: `lab exec node1 -- ip addr`.
    Exec {
        node: Node,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// SSH to NODE from the driver namespace (a command, or an interactive shell).
    Ssh {
        node: Node,
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// NODE's journal; extra journalctl arguments after `--`.
    Logs {
        node: Node,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Messages the lab's SMTP server received.
    Mail,
}

pub fn run(args: LabArgs) -> Result<ExitCode> {
    match args.command {
        LabCommand::Up { nodes, disk_size_mib, disks, no_proxmox, no_toolkit } => {
            let config = LabConfig {
                nodes,
                disk_size_mib,
                disks,
                proxmox: !no_proxmox,
                toolkit_deps: !no_toolkit,
                ..LabConfig::default()
            };
            let lab = Lab::up(&config)?;
            print_status(&lab)?;
        }
        LabCommand::Down => Lab::down()?,
        LabCommand::Status => print_status(&Lab::attach()?)?,
        LabCommand::PowerOff { node } => Lab::attach()?.power_off(node)?,
        LabCommand::PowerOn { node } => Lab::attach()?.power_on(node)?,
        LabCommand::Cut { node } => Lab::attach()?.cut(node)?,
        LabCommand::Partition { groups } => Lab::attach()?.partition(&faults::parse_groups(&groups)?)?,
        LabCommand::UplinkCut { nodes } => Lab::attach()?.cut_uplink(&nodes)?,
        LabCommand::Heal => Lab::attach()?.heal()?,
        LabCommand::Nas { power } => {
            Lab::attach()?;
            if power == "on" {
                super::nas::power_on()?
            } else {
                super::nas::power_off()?
            }
        }
        LabCommand::Exec { node, command } => {
            Lab::attach()?.node(&node.name())?;
            return exit_code(node::exec_cmd(node, &command)?.interactive()?);
        }
        LabCommand::Ssh { node, command } => {
            Lab::attach()?.node(&node.name())?;
            return exit_code(ssh::from_driver(node, &command).interactive()?);
        }
        LabCommand::Logs { node, args } => {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            print!("{}", Lab::attach()?.logs(node, &args)?);
        }
        LabCommand::Mail => {
            for mail in Lab::attach()?.mail()? {
                let header = |name| mail.header(name).unwrap_or_default();
                println!("{} -> {}: {}", header("X-MailFrom"), header("X-RcptTo"), header("Subject"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(lab: &Lab) -> Result<()> {
    for status in lab.status_all()? {
        print!("{status}");
    }
    Ok(())
}

fn exit_code(status: i32) -> Result<ExitCode> {
    Ok(ExitCode::from(u8::try_from(status).unwrap_or(1)))
}
