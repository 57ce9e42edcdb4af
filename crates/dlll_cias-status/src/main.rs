//! `dlll_cias-status`: is the cluster healthy? Gathers what every member says about itself
//! (one read-only SSH round each, in parallel) and what the cluster lists, and prints
//! `cias_core::health::assess`'s verdict. Changes nothing.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use cias_core::health::{self, Health, Limits, NodeReport, NodeView, Observed, Problem};
use cias_core::host::{Host, LocalHost};
use cias_core::majority::Takeover;
use cias_core::members::{self, host_of};
use cias_core::netplan::vmid::ROUTER_VMID;
use cias_core::paths;
use cias_core::proxmox::pvecm;
use cias_core::settings::ClusterSettings;
use cias_core::{backups, chunkservers};
use clap::Parser;
use serde::Serialize;

/// Is the DLLL-CIAS cluster healthy? Run it on any node; it changes nothing.
///
/// Looks at: quorum and members (pvesh get /cluster/status); on every online member, over
/// SSH: whether it holds the master and external VIPs, systemd's state of mfsmaster,
/// keepalived, the reconcile loop (dlll-cias-fence), the chunkserver and the metalogger,
/// whether /mnt/mfs is mounted, its dlll-cias version, its uplink watch, the age of its local
/// router copy; the router VM 100; the age of the VMID map and of the newest router backup;
/// the chunks the MooseFS master counts as missing, endangered or under their goal
/// (mfscli -SIC); whether a node's loss leaves a majority (automatic takeover: three nodes, or
/// two and a QDevice) and whether the QDevice votes (pvecm status).
/// Exactly one node may hold the master VIP, and mfsmaster must run there and nowhere else.
///
/// Each problem is printed with what to do. `--json` prints one object: {"health":
/// "healthy"|"degraded"|"broken", "seen_from", "quorate", "nodes": [{"name", "online",
/// "report": null | {"holds_master_vip", "holds_external_vip", "mfsmaster", "keepalived",
/// "fence", "chunkserver", "metalogger", "mounted", "version", "uplink",
/// "router_copy_age_secs"}}], "router": null | [STATUS, NODE], "vmid_map_age_secs",
/// "router_backup_age_secs", "chunks": null | {"missing", "endangered", "undergoal"},
/// "automatic_takeover": null | bool, "qdevice_voting": null | bool,
/// "problems": [{"severity", "what", "fix"}]}.
#[derive(Debug, Parser)]
#[command(
    name = "dlll_cias-status",
    version = cias_core::VERSION,
    after_help = "Exit status: 0 healthy, 1 degraded (something is missing, but storage, the router and the \
                  VMs are served), 2 broken (storage, the router or the master role is not served, or served \
                  twice), or the status could not be gathered."
)]
struct Cli {
    /// Print one JSON object (schema above) instead of the table.
    #[arg(long)]
    json: bool,
    /// The cluster settings.
    #[arg(long, value_name = "FILE", default_value_os_t = paths::default_settings_file())]
    config: PathBuf,
    #[command(flatten)]
    verbosity: cias_core::logging::Verbosity,
}

/// How long a member has to answer its round.
const ASK_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize)]
struct Status {
    health: Health,
    #[serde(flatten)]
    seen: Observed,
    problems: Vec<Problem>,
}

fn gather(local: &Arc<dyn Host>, settings: &ClusterSettings) -> Result<Observed> {
    let view = members::view(local.as_ref())?;
    let round = health::node_command(
        &settings.internal.master_vip.to_string(),
        &settings.external.master_ip.to_string(),
    )
    .timeout(ASK_LIMIT);
    let nodes = std::thread::scope(|s| {
        let asks: Vec<_> = view
            .nodes
            .iter()
            .map(|node| {
                let (round, view) = (&round, &view);
                s.spawn(move || {
                    let report = node
                        .online
                        .then(|| host_of(local, view, &node.name))
                        .flatten()
                        .and_then(|h| h.run(round).ok())
                        .map(|o| NodeReport::parse(&o.stdout));
                    NodeView { name: node.name.clone(), online: node.online, report }
                })
            })
            .collect();
        asks.into_iter().map(|a| a.join().expect("a round does not panic")).collect()
    });
    let now = cias_core::clock::unix_secs();
    let age = |path: &str| backups::age(local.as_ref(), path, now).ok().map(|d| d.as_secs());
    let router_backup = backups::list(local.as_ref(), paths::SHARED_DUMP_DIR, ROUTER_VMID, ASK_LIMIT)
        .ok()
        .and_then(|a| a.last().map(|a| format!("{}/{}", paths::SHARED_DUMP_DIR, a.file_name())));
    Ok(Observed {
        seen_from: local.name().to_string(),
        quorate: view.quorate,
        nodes,
        router: view.vm(ROUTER_VMID).map(|v| (v.status.clone(), v.node.clone())),
        // No file (or no answer from its storage) is no age.
        vmid_map_age_secs: age(paths::VMID_MAP_FILE),
        router_backup_age_secs: router_backup.and_then(|p| age(&p)),
        chunks: local
            .execute(&chunkservers::chunk_health_command().timeout(ASK_LIMIT))
            .ok()
            .and_then(|o| chunkservers::parse_chunk_health(&o.stdout)),
        automatic_takeover: Takeover::read(local.as_ref()).map(Takeover::automatic),
        qdevice_voting: local
            .execute(&pvecm::status_command().timeout(ASK_LIMIT))
            .ok()
            .and_then(|o| pvecm::parse_status(&o.stdout).ok())
            .and_then(|s| s.qdevice_voting),
    })
}

/// The table an administrator reads; colours only on a terminal.
fn show(status: &Status) {
    let colour = std::io::stdout().is_terminal();
    let paint =
        |code: &str, text: &str| if colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.into() };
    let verdict = match status.health {
        Health::Healthy => paint("1;32", "HEALTHY"),
        Health::Degraded => paint("1;33", "DEGRADED"),
        Health::Broken => paint("1;31", "BROKEN"),
    };
    let seen = &status.seen;
    let quorum = if seen.quorate { "quorate" } else { "NOT quorate" };
    println!("DLLL-CIAS cluster: {verdict} (seen from {}, {quorum})", seen.seen_from);
    for node in &seen.nodes {
        let Some(r) = &node.report else {
            let why = if node.online { "online, no answer" } else { "OFFLINE" };
            println!("  {:<12} {}", node.name, paint("31", why));
            continue;
        };
        let role = match (r.holds_master_vip, r.holds_external_vip) {
            (true, true) => "master",
            (true, false) => "master (no external VIP)",
            (false, _) => "-",
        };
        println!(
            "  {:<12} {role:<8} mfsmaster {:<8} keepalived {:<8} loop {:<8} chunkserver {:<8} metalogger {:<8} {} uplink {:<5} {}",
            node.name,
            r.mfsmaster,
            r.keepalived,
            r.fence,
            r.chunkserver,
            r.metalogger,
            if r.mounted { "mounted  " } else { "UNMOUNTED" },
            r.uplink,
            r.version,
        );
    }
    match &seen.router {
        Some((state, node)) => println!("Router VM {ROUTER_VMID}: {state} on {node}"),
        None => println!("Router VM {ROUTER_VMID}: not listed"),
    }
    let age = |a: Option<u64>| a.map_or("none".into(), |s| backups::human(Duration::from_secs(s)));
    println!(
        "VMID map: {} old; newest router backup: {} old",
        age(seen.vmid_map_age_secs),
        age(seen.router_backup_age_secs)
    );
    match seen.automatic_takeover {
        Some(true) => println!("Automatic takeover: on (a majority survives any node's loss)"),
        Some(false) => {
            println!("Automatic takeover: {}", paint("1;33", "OFF (no majority survives a node's loss)"))
        }
        None => println!("Automatic takeover: unknown (corosync.conf unreadable)"),
    }
    if seen.qdevice_voting == Some(false) {
        println!("QDevice: {}", paint("1;33", "NOT voting"));
    }
    match seen.chunks {
        Some(c) => println!(
            "Chunks: {} missing, {} with one copy only, {} under their goal",
            c.missing, c.endangered, c.undergoal
        ),
        None => println!("Chunks: the master did not say"),
    }
    if status.problems.is_empty() {
        return;
    }
    println!("Problems:");
    for p in &status.problems {
        let label = match p.severity {
            Health::Broken => paint("31", "broken  "),
            _ => paint("33", "degraded"),
        };
        println!("  [{label}] {}\n             -> {}", p.what, p.fix);
    }
}

fn main() -> ExitCode {
    cias_core::docs::write_if_asked::<Cli>();
    let cli = Cli::parse();
    cias_core::logging::start("dlll_cias-status", cli.verbosity, cias_core::logging::Terminal::Echo);
    let result = (|| -> Result<Status> {
        let settings = ClusterSettings::load(&cli.config)?;
        let node = paths::node_name().context("cannot read this node's host name")?;
        let local: Arc<dyn Host> = Arc::new(LocalHost::new(node));
        let seen = gather(&local, &settings)?;
        let days = u64::from(settings.backups.local_copy_max_age_days);
        let (health, problems) =
            health::assess(&seen, Limits { backup_max_age: Duration::from_secs(days * 86_400) });
        Ok(Status { health, seen, problems })
    })();
    match result {
        Ok(status) => {
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&status).expect("the status serializes"));
            } else {
                show(&status);
            }
            ExitCode::from(status.health.exit_code())
        }
        Err(e) => {
            // A status that cannot be gathered is no reason to believe the cluster is fine.
            eprintln!("dlll_cias-status: cannot tell: {e:#}");
            ExitCode::from(Health::Broken.exit_code())
        }
    }
}
