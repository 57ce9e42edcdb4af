//! `dlll_cias-router`: the router's management after install (issue 16): VM-management IPs
//! added or removed, and the port forwards of a VM from its VMID (SPEC section 3), through the
//! router's own scripts over SSH ([`cias_core::router`]). Idempotent: the router lists what it
//! has and only the difference is called. Runs on any node.
#![allow(clippy::print_stdout)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use cias_core::exit::{BadInput, Refused};
use cias_core::host::{Command, DryRunHost, Host, HostError, LocalHost};
use cias_core::members::{self, host_of};
use cias_core::netplan::ports::Service;
use cias_core::netplan::Vmid;
use cias_core::paths;
use cias_core::router::{self, Change, Forward};
use cias_core::settings::{ClusterSettings, Secrets};
use clap::{Parser, Subcommand};

/// Manage the router (VM 100) after install: its VM-management IPs and the VMs' port forwards.
///
/// A VM's forwards follow its VMID X*1000 + A*100 + B: external ports AB00..AB99 of
/// VM-management IP number X go to 10.X.A.B; AB80 -> 80 (http), AB43 -> 443 (https),
/// AB22 -> 22 (ssh), AB89 -> 3389 (rdp); other last two digits are free (--port).
/// The router is asked what it has (list_ip_vm.sh, list_port_forwards.sh) and only what
/// differs is changed (setup_ip_vm.sh, remove_ip_vm.sh, setup_port_forward.sh,
/// remove_port_forward.sh, as `cias` over SSH with the password setup gave the router): a
/// re-run changes nothing. VM-management IPs are also written into the cluster settings
/// (/data/cias/cias.yaml) of every online node and the shared mirror.
#[derive(Debug, Parser)]
#[command(
    name = "dlll_cias-router",
    version = cias_core::VERSION,
    after_help = concat!(
        "Examples:\n  dlll_cias-router show\n  dlll_cias-router add-ip 192.168.56.106\n  \
         dlll_cias-router forward 10501\n  dlll_cias-router forward 10501 --service ssh --port 10:8080\n  \
         dlll_cias-router forward 10501 --remove\n  dlll_cias-router remove-ip 192.168.56.106 --dry-run\n\n",
        cias_core::exit_status_help!()
    )
)]
struct Cli {
    #[command(subcommand)]
    command: Action,
    /// Show the router calls and file writes that would run; change nothing.
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
    /// What the router has: its VM-management IPs and every port forward.
    Show,
    /// Add a VM-management IP as the next index X (VMIDs X*1000 + ... use it).
    AddIp {
        /// An unused address of the external network.
        ip: Ipv4Addr,
    },
    /// Remove the last VM-management IP (refused while a VM's VMID uses its index, and for
    /// index 0); its forwards go with it.
    RemoveIp { ip: Ipv4Addr },
    /// Set (or with --remove take away) the port forwards of a VM.
    Forward {
        /// The VM's VMID (e.g. 10501; not 100, the router itself).
        vmid: String,
        /// Services to forward: http, https, ssh, rdp (comma-separated or repeated) [default: all four].
        #[arg(long = "service", value_name = "NAME", value_delimiter = ',')]
        services: Vec<String>,
        /// A custom forward: the external port's last two digits and the VM's port (e.g. 10:8080).
        #[arg(long = "port", value_name = "SUFFIX:PORT")]
        ports: Vec<String>,
        /// Remove these forwards instead.
        #[arg(long)]
        remove: bool,
    },
}

fn main() -> ExitCode {
    cias_core::docs::write_if_asked::<Cli>();
    let cli = Cli::parse();
    cias_core::logging::start("dlll_cias-router", cli.verbosity, cias_core::logging::Terminal::Echo);
    cias_core::exit::finish("dlll_cias-router", run(&cli).map(|()| ExitCode::SUCCESS))
}

fn run(cli: &Cli) -> Result<()> {
    cias_core::exit::require_root("dlll_cias-router")?;
    let settings = ClusterSettings::load(&cli.config)?;
    let changes_settings = matches!(cli.command, Action::AddIp { .. } | Action::RemoveIp { .. });
    if changes_settings && cli.config != paths::default_settings_file() {
        return Err(BadInput(
            "add-ip and remove-ip change the cluster's settings (every node's /data/cias/cias.yaml): run them without --config".into(),
        )
        .into());
    }
    let local: Arc<dyn Host> =
        Arc::new(LocalHost::new(paths::node_name().context("cannot read this node's host name")?));
    let secrets = Secrets::load(&Path::new(paths::MANAGEMENT_DIR).join(paths::SECRETS_FILE))?;
    let password = secrets.router_login_password.as_ref().ok_or_else(|| {
        BadInput(
            "the secrets file has no router_login_password (setup sets it when it installs the router)"
                .into(),
        )
    })?;
    let session: Arc<dyn Host> =
        Arc::new(router::login(&settings, password).context("cannot log in to the router")?);
    let router = DryRunHost::printing_if(cli.dry_run, session);
    let ext = &settings.external;
    let (mask, gateway) = (ext.network.netmask(), ext.gateway);
    let vm_ips = router::parse_vm_ips(&list(router.as_ref(), router::LIST_VM_IPS)?)?;
    let forwards = router::parse_forwards(&list(router.as_ref(), router::LIST_FORWARDS)?)?;
    let changes = match &cli.command {
        Action::Show => {
            for (index, ip) in &vm_ips {
                println!("VM-management IP {index}: {ip}");
            }
            for f in &forwards {
                println!("forward {f}");
            }
            return Ok(());
        }
        Action::AddIp { ip } => {
            let updated = with_vm_ip(&settings, *ip)?;
            let index = updated.external.router_vm_ips.iter().position(|a| a == ip).expect("just added");
            let index = u8::try_from(index).expect("at most 251 indexes");
            let changes = router::vm_ip_changes(&vm_ips, index, *ip, true).map_err(Refused)?;
            apply(router.as_ref(), &changes, mask, gateway, cli.dry_run)?;
            save_everywhere(&local, &updated, cli.dry_run)?;
            return Ok(());
        }
        Action::RemoveIp { ip } => {
            let (updated, index) = without_vm_ip(local.as_ref(), &settings, *ip)?;
            let ip_change = router::vm_ip_changes(&vm_ips, index, *ip, false).map_err(Refused)?;
            let mut changes: Vec<Change> =
                forwards.iter().filter(|f| f.external_ip == *ip).map(|f| Change::RemoveForward(*f)).collect();
            changes.extend(ip_change);
            apply(router.as_ref(), &changes, mask, gateway, cli.dry_run)?;
            save_everywhere(&local, &updated, cli.dry_run)?;
            return Ok(());
        }
        Action::Forward { vmid, services, ports, remove } => {
            let wanted = wanted_forwards(&settings, vmid, services, ports)?;
            router::check_distinct(&wanted).map_err(BadInput)?;
            router::forward_changes(&forwards, &wanted, *remove)
        }
    };
    apply(router.as_ref(), &changes, mask, gateway, cli.dry_run)
}

/// A listing script's output; a router without it (its image predates this interface) is a
/// refusal that names the script.
fn list(router: &dyn Host, script: &str) -> Result<String> {
    match router.run(&Command::query_argv(&[script])) {
        Ok(out) => Ok(out.stdout),
        Err(HostError::Failed { status, .. }) if status == "exit status 127" => Err(Refused(format!(
            "the router has no {script}: its image lacks the toolkit's router interface (see dlll_cias-router --help)"
        ))
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// Calls the router's scripts for `changes`, in order; says when there is nothing to do.
/// (A dry run's router shows each call instead.)
fn apply(
    router: &dyn Host,
    changes: &[Change],
    mask: Ipv4Addr,
    gateway: Ipv4Addr,
    dry_run: bool,
) -> Result<()> {
    if changes.is_empty() {
        println!("nothing to change: the router already has it");
        tracing::info!("nothing to change on the router");
    }
    for change in changes {
        router.run(&change.command(mask, gateway)).with_context(|| format!("router: {change}"))?;
        if !dry_run {
            println!("router: {change}");
            tracing::info!("router: {change}");
        }
    }
    Ok(())
}

/// The forwards `vmid` should have: the named services (all four when none is named and no
/// custom port is given) and the custom `SUFFIX:PORT` ones, on its VM-management IP.
fn wanted_forwards(
    settings: &ClusterSettings,
    vmid: &str,
    services: &[String],
    ports: &[String],
) -> Result<Vec<Forward>> {
    let number: u64 = vmid.parse().map_err(|_| BadInput(format!("'{vmid}' is not a VMID")))?;
    let vmid = Vmid::new(number).map_err(|e| BadInput(e.to_string()))?;
    let index = vmid.external_index();
    let external_ip = settings.vm_management_ip(index).ok_or_else(|| {
        BadInput(format!(
            "VM {number} uses VM-management IP index {index}, which has no address: add one with `dlll_cias-router add-ip IP`"
        ))
    })?;
    let services = services
        .iter()
        .map(|name| {
            Service::ALL
                .into_iter()
                .find(|s| s.name() == name.as_str())
                .ok_or_else(|| BadInput(format!("unknown service '{name}': http, https, ssh or rdp")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let services = if services.is_empty() && ports.is_empty() { Service::ALL.to_vec() } else { services };
    let mut wanted = router::service_forwards(vmid, external_ip, &services);
    for port in ports {
        let bad = || {
            BadInput(format!(
                "--port {port}: expected SUFFIX:PORT, the last two digits (0-99) and the VM's port"
            ))
        };
        let (suffix, vm_port) = port.split_once(':').ok_or_else(bad)?;
        let suffix: u16 = suffix.parse().ok().filter(|s| *s < 100).ok_or_else(bad)?;
        let vm_port: u16 = vm_port.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
        wanted.push(router::forward(vmid, external_ip, suffix, vm_port));
    }
    Ok(wanted)
}

/// The settings with `ip` as the next VM-management IP (unchanged when it is one already),
/// refused when the settings rules refuse it.
fn with_vm_ip(settings: &ClusterSettings, ip: Ipv4Addr) -> Result<ClusterSettings> {
    let mut updated = settings.clone();
    if !updated.external.router_vm_ips.contains(&ip) {
        updated.external.router_vm_ips.push(ip);
    }
    let problems = updated.problems();
    if let Some(p) = problems.first() {
        return Err(BadInput(format!("{ip} cannot be a VM-management IP: {}: {}", p.field, p.message)).into());
    }
    Ok(updated)
}

/// The settings without `ip`, which must be the last VM-management IP and not index 0, and
/// whose index no VM uses; and its index.
fn without_vm_ip(
    local: &dyn Host,
    settings: &ClusterSettings,
    ip: Ipv4Addr,
) -> Result<(ClusterSettings, u8)> {
    let ips = &settings.external.router_vm_ips;
    let index = ips
        .iter()
        .position(|a| *a == ip)
        .ok_or_else(|| BadInput(format!("{ip} is not a VM-management IP")))?;
    if index == 0 || index + 1 != ips.len() {
        return Err(Refused(format!(
            "{ip} is index {index}: only the last index can go (index 0 never), or every VM after it would change its external IP"
        ))
        .into());
    }
    let index = u8::try_from(index).expect("at most 251 indexes");
    let users: Vec<u32> = members::view(local)?
        .vms
        .iter()
        .map(|v| v.vmid)
        .filter(|&id| Vmid::new(u64::from(id)).is_ok_and(|v| v.external_index() == index))
        .collect();
    if !users.is_empty() {
        return Err(
            Refused(format!("VMs {users:?} use index {index} ({ip}): move or renumber them first")).into()
        );
    }
    let mut updated = settings.clone();
    updated.external.router_vm_ips.pop();
    Ok((updated, index))
}

/// Writes the settings to every online member's management directory and the shared mirror.
fn save_everywhere(local: &Arc<dyn Host>, settings: &ClusterSettings, dry_run: bool) -> Result<()> {
    let text = settings.to_yaml()?;
    let view = members::view(local.as_ref())?;
    let file = format!("{}/{}", paths::MANAGEMENT_DIR, paths::SETTINGS_FILE);
    for node in &view.nodes {
        let host = match (node.online, host_of(local, &view, &node.name)) {
            (true, Some(host)) => DryRunHost::printing_if(dry_run, host),
            _ => {
                tracing::warn!("{} is offline: its settings keep the old VM-management IPs; run this again when it is back", node.name);
                continue;
            }
        };
        host.run(&Command::write_file(&file, &text, "0644"))
            .with_context(|| format!("{}: writing {file}", node.name))?;
    }
    let shared = format!("{}/{}", paths::SHARED_MANAGEMENT_DIR, paths::SETTINGS_FILE);
    DryRunHost::printing_if(dry_run, local.clone()).run(&Command::write_file(&shared, &text, "0644"))?;
    if !dry_run {
        println!("settings: VM-management IPs {:?}", settings.external.router_vm_ips);
    }
    Ok(())
}
