//! `dlll_cias-vmid-map`: translate between VMIDs, internal VM addresses and port forwards
//! (SPEC section 3). Reads the cluster settings only to show external IPs.

mod report;

use std::io::{self, BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cias_core::netplan::{ports::PortBlock, Vmid};
use cias_core::paths;
use cias_core::settings::ClusterSettings;
use clap::Parser;

/// Translate between VMIDs, internal VM addresses and port-forward blocks.
///
/// A VM's VMID is X*1000 + A*100 + B (X 0..250, A 1..5, B 1..99): its internal address is
/// 10.X.A.B, and the router forwards external ports AB00..AB99 of VM-management IP number X to
/// it: AB80 -> 80 (http), AB43 -> 443 (https), AB22 -> 22 (ssh), AB89 -> 3389 (rdp).
/// VMID 100 is the router itself.
#[derive(Debug, Parser)]
#[command(
    name = "dlll_cias-vmid-map",
    version = cias_core::VERSION,
    after_help = concat!("Examples:\n  dlll_cias-vmid-map 10501\n  dlll_cias-vmid-map --ip 10.10.5.1 --json\n  dlll_cias-vmid-map --port 15122 --index 9\n  dlll_cias-vmid-map --list\n\n", cias_core::exit_status_help!())
)]
struct Cli {
    /// The VMID to describe (e.g. 10501).
    #[arg(value_name = "VMID", required_unless_present_any = ["ip", "port", "list"], conflicts_with_all = ["ip", "port", "list"])]
    vmid: Option<String>,

    /// Describe the VM with this internal address (e.g. 10.10.5.1).
    #[arg(long, value_name = "IP", conflicts_with_all = ["port", "list"])]
    ip: Option<String>,

    /// Describe the VM an external port forwards to (use with --index).
    #[arg(long, value_name = "PORT", requires = "index", conflicts_with = "list")]
    port: Option<u32>,

    /// The VM-management IP index X the port belongs to (0..250).
    #[arg(long, value_name = "X", requires = "port")]
    index: Option<u32>,

    /// Print every valid VMID with its internal address.
    #[arg(long)]
    list: bool,

    /// Print JSON instead of text (one object; an array with --list).
    #[arg(long)]
    json: bool,

    /// Cluster settings, for external IPs [default: /data/cias/cias.yaml, when present].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    cias_core::docs::write_if_asked::<Cli>();
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = run(&cli, &mut out).and_then(|()| out.flush().context("writing output"));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `dlll_cias-vmid-map --list | head` is not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(io::stderr(), "dlll_cias-vmid-map: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: &Cli, out: &mut impl Write) -> Result<()> {
    let settings = load_settings(cli.config.as_ref())?;
    if cli.list {
        return report::list(out, cli.json);
    }
    let (vmid, port) = match (&cli.vmid, &cli.ip, cli.port) {
        (Some(vmid), _, _) => (vmid.parse::<Vmid>()?, None),
        (_, Some(ip), _) => {
            let ip: Ipv4Addr = ip.parse().with_context(|| format!("'{ip}' is not an IPv4 address"))?;
            (Vmid::from_ip(ip)?, None)
        }
        (_, _, Some(port)) => {
            let forward = PortBlock::resolve(cli.index.unwrap_or_default(), port)?;
            (forward.vmid, Some((port, forward)))
        }
        _ => unreachable!("clap requires one of VMID, --ip, --port, --list"),
    };
    let info = report::VmInfo::new(vmid, settings.as_ref());
    if cli.json {
        report::json(out, &info)
    } else {
        report::text(out, &info, port)
    }
}

/// The settings named by `--config` (must load), else the default file when it exists.
fn load_settings(explicit: Option<&PathBuf>) -> Result<Option<ClusterSettings>> {
    let file = match explicit {
        Some(file) => file.clone(),
        None => {
            let default = paths::default_settings_file();
            if !default.exists() {
                return Ok(None);
            }
            default
        }
    };
    Ok(Some(ClusterSettings::load(&file)?))
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}
