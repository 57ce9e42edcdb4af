//! `dlll_cias-nas`: registers a NAS (issue 16, SPEC section 2): its address and host name in
//! the cluster's registry (never reused), its NFS export as Proxmox storage named after its
//! host name, and optionally the cluster's QDevice on it; or takes it away again.
#![allow(clippy::print_stdout)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use cias_core::exit::{BadInput, Refused};
use cias_core::host::{Command, DryRunHost, Host, LocalHost};
use cias_core::majority::{self, Takeover};
use cias_core::members::{self, host_of};
use cias_core::netplan::{Hostname, NodeAddress, NodeKind, Registry, RegistryEntry};
use cias_core::paths;
use cias_core::proxmox::pvesm;
use cias_core::registry_file;
use cias_core::settings::ClusterSettings;
use clap::{Parser, Subcommand};

/// Register a NAS with the cluster, or take it away.
///
/// A NAS has an address 10.253.R.N and the host name `nas.<rack>.<slot>.<R>-<N>.<domain>`
/// (SPEC section 2); both go into the cluster's address registry and are never given out
/// again. Its NFS export named after that host name (the last part of the path) becomes the
/// Proxmox storage of the same name, shared by every node (`pvesm add nfs`). A NAS that does
/// not answer, or exports nothing, is refused. With --qdevice the NAS also becomes the
/// cluster's QDevice (corosync-qnetd must run there): a two-node cluster then takes over by
/// itself. Every step is skipped when already done, so a re-run changes nothing.
#[derive(Debug, Parser)]
#[command(
    name = "dlll_cias-nas",
    version = cias_core::VERSION,
    after_help = concat!(
        "Examples:\n  dlll_cias-nas add 10.253.1.1 --rack master-rack --slot c --qdevice\n  \
         dlll_cias-nas add 10.253.1.2 --rack r2 --slot a --export /volume1/backup --dry-run\n  \
         dlll_cias-nas list\n  dlll_cias-nas remove 10.253.1.2\n\n",
        cias_core::exit_status_help!()
    )
)]
struct Cli {
    #[command(subcommand)]
    command: Action,
    /// Show what would be run; change nothing.
    #[arg(long, global = true)]
    dry_run: bool,
    /// The cluster settings.
    #[arg(long, global = true, value_name = "FILE", default_value_os_t = paths::default_settings_file())]
    config: PathBuf,
    #[command(flatten)]
    verbosity: cias_core::logging::Verbosity,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Register the NAS at IP: registry, Proxmox storage, optionally the QDevice.
    Add {
        /// Its address, 10.253.R.N (R 1..5, N 1..254).
        ip: Ipv4Addr,
        /// Its rack, for the host name.
        #[arg(long)]
        rack: String,
        /// Its slot, for the host name.
        #[arg(long)]
        slot: String,
        /// The export to use [default: the one whose last path part is the NAS's host name].
        #[arg(long, value_name = "PATH")]
        export: Option<String>,
        /// What the storage holds (Proxmox content types).
        #[arg(long, default_value = "backup,iso,vztmpl")]
        content: String,
        /// Also make the NAS the cluster's QDevice (pvecm qdevice setup; two-node clusters).
        #[arg(long)]
        qdevice: bool,
    },
    /// Take the NAS away: its storage, the QDevice if it is on it; its registry entry stays
    /// (retired: the address and host name are never given out again).
    Remove {
        /// Its address or host name.
        nas: String,
    },
    /// The NASes of the registry and their storages as this node sees them.
    List,
}

fn main() -> ExitCode {
    cias_core::docs::write_if_asked::<Cli>();
    let cli = Cli::parse();
    cias_core::logging::start("dlll_cias-nas", cli.verbosity, cias_core::logging::Terminal::Echo);
    cias_core::exit::finish("dlll_cias-nas", run(&cli).map(|()| ExitCode::SUCCESS))
}

fn run(cli: &Cli) -> Result<()> {
    cias_core::exit::require_root("dlll_cias-nas")?;
    let settings = ClusterSettings::load(&cli.config)?;
    let local: Arc<dyn Host> =
        Arc::new(LocalHost::new(paths::node_name().context("cannot read this node's host name")?));
    let host = DryRunHost::printing_if(cli.dry_run, local.clone());
    let registry =
        registry_file::parse(&registry_file::read_shared_if(local.as_ref(), registry_file::SHARED)?)?;
    match &cli.command {
        Action::Add { ip, rack, slot, export, content, qdevice } => {
            let address = NodeAddress::from_ip(NodeKind::Nas, *ip).map_err(|e| BadInput(e.to_string()))?;
            let hostname =
                Hostname::new(address, rack, slot, &settings.domain).map_err(|e| BadInput(e.to_string()))?;
            check_registry(&registry, &hostname)?;
            let scan = local.run(
                &Command::query_argv(&["pvesm", "scan", "nfs", &ip.to_string()])
                    .timeout(Duration::from_secs(30)),
            );
            let exports = match scan {
                Ok(out) => pvesm::parse_scan_nfs(&out.stdout),
                Err(e) => return Err(Refused(format!("the NAS at {ip} does not answer: {e}")).into()),
            };
            let export = pick_export(&exports, &hostname.to_string(), export.as_deref()).map_err(Refused)?;
            add(cli, &local, host.as_ref(), &hostname, &export, content)?;
            if *qdevice {
                set_qdevice(cli, host.as_ref(), *ip)?;
            }
            Ok(())
        }
        Action::Remove { nas } => remove(cli, &local, host.as_ref(), &registry, nas),
        Action::List => {
            let rows = pvesm::parse_status(&local.run(&Command::query_argv(&["pvesm", "status"]))?.stdout);
            for e in registry.entries.iter().filter(|e| e.kind == NodeKind::Nas) {
                let storage =
                    rows.iter().find(|r| r.id == e.hostname).map_or("no storage", |r| r.status.as_str());
                let state = if e.removed { "removed" } else { storage };
                println!("{:<15} {:<40} {state}", e.ip, e.hostname);
            }
            Ok(())
        }
    }
}

/// Refuses an address or host name the registry has for anything else (or had: never reused).
fn check_registry(registry: &Registry, hostname: &Hostname) -> Result<()> {
    let name = hostname.to_string();
    let conflict = registry.entries.iter().find(|e| e.ip == hostname.ip() || e.hostname == name);
    match conflict {
        None => Ok(()),
        Some(e) if e.hostname == name && e.ip == hostname.ip() && !e.removed => Ok(()),
        Some(e) if e.removed => Err(Refused(format!(
            "{} was {} (removed): addresses and host names are never reused",
            e.ip, e.hostname
        ))
        .into()),
        Some(e) => {
            Err(Refused(format!("{} / {name}: the registry has {} for {}", hostname.ip(), e.ip, e.hostname))
                .into())
        }
    }
}

/// The export to use: the one given (it must be exported), else the one named after the host
/// name (the last part of its path).
fn pick_export(exports: &[(String, String)], hostname: &str, given: Option<&str>) -> Result<String, String> {
    let listed: Vec<&str> = exports.iter().map(|(p, _)| p.as_str()).collect();
    if listed.is_empty() {
        return Err("the NAS exports nothing (pvesm scan nfs lists no export)".into());
    }
    let found = match given {
        Some(path) => listed.iter().find(|p| **p == path),
        None => listed.iter().find(|p| p.rsplit('/').next() == Some(hostname)),
    };
    found.map(|p| p.to_string()).ok_or_else(|| match given {
        Some(path) => format!("the NAS does not export {path}; it exports {}", listed.join(", ")),
        None => format!(
            "the NAS exports nothing named after its host name {hostname}; it exports {} (name one with --export)",
            listed.join(", ")
        ),
    })
}

/// Registry, then storage, then the storage's check on every online member.
fn add(
    cli: &Cli,
    local: &Arc<dyn Host>,
    host: &dyn Host,
    hostname: &Hostname,
    export: &str,
    content: &str,
) -> Result<()> {
    let name = hostname.to_string();
    if !cli.dry_run {
        registry_file::update(local.as_ref(), registry_file::SHARED, false, |r| match r.record(hostname) {
            Ok(()) => Ok(()),
            Err(_) if r.entries.iter().any(|e| e.hostname == name && !e.removed) => Ok(()),
            Err(e) => Err(anyhow::Error::from(Refused(e.to_string()))),
        })?;
    }
    say(cli, &format!("registry: {} {name}", hostname.ip()));
    let rows = pvesm::parse_status(&local.run(&Command::query_argv(&["pvesm", "status"]))?.stdout);
    if rows.iter().any(|r| r.id == name) {
        let cfg = local.run(&Command::query_argv(&["cat", pvesm::STORAGE_CFG]))?.stdout;
        let ip = hostname.ip().to_string();
        match pvesm::nfs_target(&cfg, &name) {
            Some((server, path)) if server == ip && path == export => {
                println!("storage {name}: already there")
            }
            other => {
                let what = other.map_or("not an NFS storage".into(), |(s, p)| format!("{s}:{p}"));
                return Err(Refused(format!("storage {name} exists but is {what}, not {ip}:{export}")).into());
            }
        }
    } else {
        let ip = hostname.ip().to_string();
        host.run(&Command::from_argv(&[
            "pvesm",
            "add",
            "nfs",
            &name,
            "--server",
            &ip,
            "--export",
            export,
            "--content",
            content,
        ]))?;
        say(cli, &format!("storage {name}: added ({ip}:{export}, {content})"));
    }
    if cli.dry_run {
        return Ok(());
    }
    let view = members::view(local.as_ref())?;
    for node in view.nodes.iter().filter(|n| n.online) {
        // A member that cannot be asked is said, not fatal: the storage is the cluster's anyway.
        let asked = host_of(local, &view, &node.name)
            .ok_or_else(|| "no address".to_string())
            .and_then(|m| m.run(&Command::query_argv(&["pvesm", "status"])).map_err(|e| e.to_string()));
        let status = match asked {
            Ok(out) => pvesm::parse_status(&out.stdout)
                .into_iter()
                .find(|r| r.id == name)
                .map_or("missing".to_string(), |r| r.status),
            Err(e) => format!("not asked ({e})"),
        };
        println!("  {}: {status}", node.name);
        if status != "active" {
            tracing::warn!("storage {name} is {status} on {}", node.name);
        }
    }
    Ok(())
}

/// Makes the NAS the QDevice when the cluster has two nodes and none; says why not otherwise.
fn set_qdevice(cli: &Cli, host: &dyn Host, ip: Ipv4Addr) -> Result<()> {
    let votes = majority::read_votes(host).context("cannot read the cluster's votes (corosync.conf)")?;
    match (votes.qdevice_host, votes.nodes) {
        (Some(h), _) if h == IpAddr::V4(ip) => println!("QDevice: already on this NAS"),
        (Some(h), _) => {
            return Err(Refused(format!("the cluster's QDevice is on {h}: remove it first (pvecm qdevice remove)")).into())
        }
        (None, 2) => {
            host.run(&Command::from_argv(&["pvecm", "qdevice", "setup", &ip.to_string()]).timeout(Duration::from_secs(300)))?;
            say(cli, &format!("QDevice: set up on {ip}"));
        }
        (None, n) => {
            return Err(Refused(format!(
                "the cluster has {n} node(s): Proxmox supports a QDevice with an even node count, and only two need one"
            ))
            .into())
        }
    }
    if let Some(takeover) = Takeover::read(host) {
        println!("{}", takeover.summary());
    }
    Ok(())
}

fn remove(cli: &Cli, local: &Arc<dyn Host>, host: &dyn Host, registry: &Registry, nas: &str) -> Result<()> {
    let entry: &RegistryEntry = registry
        .entries
        .iter()
        .find(|e| e.kind == NodeKind::Nas && (e.hostname == nas || e.ip.to_string() == nas))
        .ok_or_else(|| BadInput(format!("no NAS {nas} in the registry (dlll_cias-nas list)")))?;
    if entry.removed {
        println!("{} {} was removed already: nothing to do", entry.ip, entry.hostname);
        return Ok(());
    }
    let rows = pvesm::parse_status(&local.run(&Command::query_argv(&["pvesm", "status"]))?.stdout);
    if rows.iter().any(|r| r.id == entry.hostname) {
        host.run(&Command::from_argv(&["pvesm", "remove", &entry.hostname]))?;
        say(cli, &format!("storage {}: removed", entry.hostname));
    }
    let votes = majority::read_votes(local.as_ref());
    if votes.and_then(|v| v.qdevice_host) == Some(IpAddr::V4(entry.ip)) {
        host.run(&Command::from_argv(&["pvecm", "qdevice", "remove"]).timeout(Duration::from_secs(300)))?;
        say(cli, "QDevice: removed");
        if let Some(advice) = Takeover::read(local.as_ref()).and_then(Takeover::advice) {
            tracing::warn!("{advice}");
        }
    }
    if !cli.dry_run {
        let hostname = entry.hostname.clone();
        registry_file::update(local.as_ref(), registry_file::SHARED, false, |r| {
            r.retire(&hostname).map_err(anyhow::Error::from)
        })?;
    }
    say(cli, &format!("registry: {} {} retired (never given out again)", entry.ip, entry.hostname));
    Ok(())
}

/// What was done, on the terminal and in the log; nothing in a dry run, which shows the commands.
fn say(cli: &Cli, done: &str) {
    if !cli.dry_run {
        println!("{done}");
        tracing::info!("{done}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exports(paths: &[&str]) -> Vec<(String, String)> {
        paths.iter().map(|p| (p.to_string(), "10.254.0.0/16".to_string())).collect()
    }

    #[test]
    fn the_export_named_after_the_host_name_is_picked() {
        let list = exports(&["/srv/other", "/volume1/nas.r.a.1-1.example.com"]);
        assert_eq!(
            pick_export(&list, "nas.r.a.1-1.example.com", None).unwrap(),
            "/volume1/nas.r.a.1-1.example.com"
        );
        assert_eq!(pick_export(&list, "nas.r.a.1-1.example.com", Some("/srv/other")).unwrap(), "/srv/other");
        let err = pick_export(&list, "nas.r.a.1-2.example.com", None).unwrap_err();
        assert!(
            err.contains("nothing named after its host name nas.r.a.1-2.example.com")
                && err.contains("/srv/other"),
            "{err}"
        );
        assert!(pick_export(&list, "x", Some("/nope")).unwrap_err().contains("does not export /nope"));
        assert!(pick_export(&[], "x", None).unwrap_err().contains("exports nothing"));
    }

    #[test]
    fn registry_conflicts_are_refused_and_a_rerun_is_not() {
        let mut registry = Registry::default();
        let nas = |n, slot: &str| {
            Hostname::new(NodeAddress::new(NodeKind::Nas, 1, n).unwrap(), "r", slot, "example.com").unwrap()
        };
        registry.record(&nas(1, "a")).unwrap();
        assert!(check_registry(&registry, &nas(1, "a")).is_ok(), "a re-run");
        let other_slot = check_registry(&registry, &nas(1, "b")).unwrap_err().to_string();
        assert!(
            other_slot.contains("the registry has 10.253.1.1 for nas.r.a.1-1.example.com"),
            "{other_slot}"
        );
        registry.retire("nas.r.a.1-1.example.com").unwrap();
        let reused = check_registry(&registry, &nas(1, "a")).unwrap_err().to_string();
        assert!(reused.contains("never reused"), "{reused}");
        assert!(check_registry(&registry, &nas(2, "a")).is_ok());
    }
}
