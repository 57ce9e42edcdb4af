//! Planning: from the preflight facts, the answers and (when extending) the master's shared
//! settings, every decision of the run, shown to the administrator before anything changes.
//! A re-run after a failure skips this and continues from the saved node record.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use cias_core::disks::{self, LoopDevices, Verdict};
use cias_core::host::{DryRunHost, Host};
use cias_core::journal::Journal;
use cias_core::netplan::{NodeKind, Registry};
use cias_core::paths::{self, MANAGEMENT_DIR, SECRETS_FILE, SETTINGS_FILE, SHARED_MANAGEMENT_DIR};
use cias_core::settings::{self, ClusterSettings, Secret, Secrets};
use cias_core::templates::Templates;
use cias_core::vrrp::Priority;
use serde::Deserialize;

use crate::answers::{ask_optional_ip, confirm, missing, resolve, Answers, Asking};
use crate::ctx::Ctx;
use crate::node::{NodeRecord, PlannedDisk, Role};
use crate::steps::management::newest_router_archive;
use crate::steps::master_access;
use crate::{preflight, remote, steps, ui, Cli};

/// Passwords given in `--secrets-file` (never on the command line).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GivenSecrets {
    router_admin_password: Option<Secret>,
    master_root_password: Option<Secret>,
    smtp_password: Option<Secret>,
}

fn given_secrets(source: Option<&Path>) -> Result<GivenSecrets> {
    let Some(source) = source else { return Ok(GivenSecrets::default()) };
    let text = if source == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read the secrets from stdin")?;
        text
    } else {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(source)
            .with_context(|| format!("cannot read {}", source.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "{} is readable by others (mode {:04o}); it holds passwords: run `chmod 600 {}`",
                source.display(),
                mode & 0o777,
                source.display()
            );
        }
        std::fs::read_to_string(source).with_context(|| format!("cannot read {}", source.display()))?
    };
    // serde's message could quote a password: only say which file is wrong.
    serde_yaml::from_str(&text).map_err(|_| {
        anyhow::anyhow!(
            "{}: not a valid secrets file (keys: router_admin_password, master_root_password, smtp_password)",
            source.display()
        )
    })
}

/// A password: given, else asked twice at the terminal, else an error.
fn password(
    given: Option<Secret>,
    key: &str,
    prompt: &str,
    confirm_it: bool,
    asking: Asking,
) -> Result<Secret> {
    if let Some(p) = given {
        return Ok(p);
    }
    match asking {
        Asking::Terminal => {
            let mut input = dialoguer::Password::new().with_prompt(prompt);
            if confirm_it {
                input = input.with_confirmation("Again", "The passwords differ");
            }
            Ok(Secret::new(input.interact()?))
        }
        Asking::Never => Err(anyhow::anyhow!("missing password '{key}': give it in --secrets-file")),
    }
}

/// A fresh random password (hex) for what only the toolkit logs in to: the router's login
/// account, MooseFS mounts.
fn random_password() -> Result<Secret> {
    let mut bytes = [0u8; 18];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom")?;
    Ok(Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

fn dry_run_wrapped(cli: &Cli, host: Arc<dyn Host>) -> Arc<dyn Host> {
    if cli.dry_run {
        Arc::new(DryRunHost::reading_from(host).with_sink(ui::dry_run_command))
    } else {
        host
    }
}

/// The settings of a new cluster, from the answers (validated as a whole).
fn new_cluster_settings(
    a: &Answers,
    admin_default: Option<String>,
    wan: String,
    asking: Asking,
) -> Result<ClusterSettings> {
    // No defaults: every external address is the site's own, given or typed (a default
    // from the lab's example network would have been taken silently from an answers file).
    let ask_ip = |v, key, prompt| resolve(v, key, prompt, None, asking);
    let external_network =
        resolve(a.external_network, "external_network", "External network (CIDR)", None, asking)?;
    let mut vm_ips = a.router_vm_ips.clone();
    if vm_ips.is_empty() {
        vm_ips.push(ask_ip(None, "router_vm_ips", "Router VM-management IP (index 0)")?);
    }
    let settings = ClusterSettings {
        cluster_name: "DLLL-CIAS".into(),
        domain: resolve(a.domain.clone(), "domain", "DNS domain of the nodes", None, asking)?,
        admin_email: resolve(
            a.admin_email.clone(),
            "admin_email",
            "Administrator e-mail",
            admin_default,
            asking,
        )?,
        external: settings::ExternalNetwork {
            network: external_network,
            gateway: ask_ip(a.external_gateway, "external_gateway", "External gateway")?,
            master_ip: ask_ip(a.master_ip, "master_ip", "Master external IP (VIP)")?,
            router_proxmox_ip: ask_ip(
                a.router_proxmox_ip,
                "router_proxmox_ip",
                "Router Proxmox-management IP",
            )?,
            router_nas_ip: ask_ip(a.router_nas_ip, "router_nas_ip", "Router NAS-management IP")?,
            router_vm_ips: vm_ips,
        },
        internal: settings::InternalNetwork::default(),
        interfaces: settings::Interfaces { lan: "vmbr0".into(), wan },
        vrrp: settings::Vrrp::default(),
        moosefs: settings::MooseFs::default(),
        fencing: settings::Fencing::default(),
        placement: settings::Placement::default(),
        watch: settings::Watch::default(),
        alerts: settings::Alerts::default(),
        backups: settings::Backups::default(),
        smtp: settings::Smtp {
            host: a.smtp_host.clone().unwrap_or_else(|| settings::Smtp::default().host),
            port: a.smtp_port.unwrap_or(25),
            from: a.smtp_from.clone().unwrap_or_else(|| settings::Smtp::default().from),
            username: None,
        },
        uplink: settings::Uplink { targets: a.uplink_targets.clone(), ..Default::default() },
    };
    let problems = settings.new_cluster_problems();
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| format!("  {}: {}", p.field, p.message)).collect();
        bail!("the answers do not make a valid cluster:\n{}", list.join("\n"));
    }
    Ok(settings)
}

/// Plans a node that has never run setup. `None` when the administrator declines.
pub fn fresh(cli: &Cli, host: Arc<dyn Host>) -> Result<Option<Ctx>> {
    let asking = if cli.answers.is_none() && std::io::stdin().is_terminal() {
        Asking::Terminal
    } else {
        Asking::Never
    };
    let from_file = match &cli.answers {
        Some(file) => Answers::load(file)?,
        None => Answers::default(),
    };
    let a = from_file.overridden_by(cli.answer_flags.clone());
    let master_vip = cli.master.unwrap_or(settings::InternalNetwork::default().master_vip);
    let loops = if cli.loop_disks { LoopDevices::AreDisks } else { LoopDevices::Refused };

    ui::line("Preflight checks (nothing is changed):");
    let (facts, report) = preflight::check(host.as_ref(), master_vip, loops, &cli.wipe)?;
    for (what, value) in &report.facts {
        ui::line(&format!("  {what:<18} {value}"));
    }
    for w in &report.warnings {
        ui::warn(w);
    }
    if !report.errors.is_empty() {
        for e in &report.errors {
            ui::error(e);
        }
        // What this node lacks is input to fix before a run (exit 2), not a failed step.
        return Err(cias_core::exit::BadInput(format!(
            "preflight failed ({} problem(s)); nothing was changed",
            report.errors.len()
        ))
        .into());
    }
    let given = given_secrets(cli.secrets_file.as_deref())?;
    if let (Some(master), false) = (cli.master, facts.master_reachable) {
        bail!("the master at {master} (--master) does not answer SSH: check the address and the network; nothing was changed");
    }
    let role = if facts.master_reachable { Role::Extension } else { Role::First };

    // Questions every node answers.
    let mut priority =
        resolve(a.priority, "priority", "keepalived priority (0 = never master, 1..100)", Some(50), asking)?;
    Priority::new(priority)?;
    if facts.weak_hardware && priority != 0 {
        ui::warn(&format!("priority {priority} lowered to 0: this hardware must never be master"));
        priority = 0;
    }
    let rack = resolve(a.rack.clone(), "rack", "Rack name", Some("master-rack".to_string()), asking)?;
    let slot = resolve(a.slot.clone(), "slot", "Slot name", Some("a".to_string()), asking)?;
    let nics = if a.nics.is_empty() { facts.nics.clone() } else { a.nics.clone() };
    if let Some(unknown) = nics.iter().find(|n| !facts.nics.contains(n)) {
        bail!("--nic {unknown}: no such network interface here (found: {})", facts.nics.join(", "));
    }
    // Their names go into /etc/network/interfaces.
    for nic in &nics {
        cias_core::settings::check_interface_name(nic).map_err(|why| anyhow::anyhow!("--nic {why}"))?;
    }
    let wan = a.wan_interface.clone().unwrap_or_else(|| "vmbr0".to_string());

    let (settings, secrets, registry, master, master_known_host, master_root_password, router_archive) =
        match role {
            Role::First => {
                if priority == 0 {
                    bail!("the first node of a cluster becomes its master: priority 0 (never master) is not possible here");
                }
                let settings = new_cluster_settings(&a, facts.admin_email.clone(), wan, asking)?;
                let archive = match a.router_archive.clone() {
                    Some(file) => file,
                    None => PathBuf::from(
                        newest_router_archive(host.as_ref())?.ok_or_else(|| missing("router_archive"))?,
                    ),
                };
                if !host
                    .execute(&cias_core::host::Command::query_argv(&[
                        "test",
                        "-f",
                        &archive.to_string_lossy(),
                    ]))?
                    .success()
                {
                    bail!("router_archive {}: no such file", archive.display());
                }
                let secrets = Secrets {
                    router_admin_password: password(
                        given.router_admin_password,
                        "router_admin_password",
                        "Router administrator password",
                        true,
                        asking,
                    )?,
                    smtp_password: given.smtp_password,
                    router_login_password: Some(random_password()?),
                    moosefs_password: Some(random_password()?),
                };
                (settings, secrets, Registry::default(), None, None, None, Some(archive))
            }
            Role::Extension => {
                let vip = master_vip.to_string();
                let scanned = remote::scan(&vip)?;
                match &a.master_fingerprint {
                Some(expected) if *expected == scanned.fingerprint() => {}
                Some(expected) => bail!(
                    "the master at {vip} shows host key {} but master_fingerprint is {expected}: not the master you meant, or it was reinstalled; nothing was changed",
                    scanned.fingerprint()
                ),
                None => {
                    let question = format!("The master at {vip} has host key {}. Is this the master's key?", scanned.fingerprint());
                    if asking == Asking::Never {
                        return Err(missing("master_fingerprint"));
                    }
                    if !confirm(&question, false, asking)? {
                        bail!("the master's host key was not confirmed; nothing was changed");
                    }
                }
            }
                let root_password = password(
                    given.master_root_password,
                    "master_root_password",
                    &format!("Root password of the master ({vip})"),
                    false,
                    asking,
                )?;
                let session = remote::password_login_expecting(&vip, "root", &root_password, &scanned)?
                    .with_context(|| format!("the master ({vip}) refused the root password"))?;
                let master = dry_run_wrapped(cli, session);
                // A cluster installed before shared files were recorded: its files as they are.
                cias_core::shared_files::CLUSTER.adopt_unrecorded(master.as_ref())?;
                let read = |file: &str| -> Result<String> {
                    cias_core::shared_files::CLUSTER.verify(master.as_ref(), file)?;
                    Ok(master
                        .run(&cias_core::host::Command::query_argv(&[
                            "cat",
                            &format!("{SHARED_MANAGEMENT_DIR}/{file}"),
                        ]))?
                        .stdout)
                };
                let settings = ClusterSettings::parse(
                    &read(SETTINGS_FILE)?,
                    Path::new(&format!("{vip}:{SHARED_MANAGEMENT_DIR}/{SETTINGS_FILE}")),
                )?;
                let secrets: Secrets = serde_yaml::from_str(&read(SECRETS_FILE)?)
                    .map_err(|_| anyhow::anyhow!("the master's secrets file is damaged"))?;
                let registry = cias_core::registry_file::parse(&read(paths::REGISTRY_FILE)?)?;
                let mut settings = settings;
                settings.interfaces.wan = a.wan_interface.clone().unwrap_or(settings.interfaces.wan);
                let line = scanned.known_hosts_line(&[&vip, paths::MFS_MASTER_HOST]);
                (settings, secrets, registry, Some(master), Some(line), Some(root_password), None)
            }
        };

    let node_name = facts.node_name.clone();
    let mut preview = registry.clone();
    let entry = preview.claim_for_node(&node_name, NodeKind::Pve, &rack, &slot, &settings.domain)?;
    let disks: Vec<PlannedDisk> = disks::to_format(&facts.disks)
        .map(|d| PlannedDisk {
            device: d.path.clone(),
            name: d.name.clone(),
            wiped: matches!(d.verdict, Verdict::Wipe(_)),
        })
        .collect();
    let router_admin_user = match role {
        Role::First => Some(resolve(
            a.router_admin_user.clone(),
            "router_admin_user",
            "Router administrator account",
            None,
            asking,
        )?),
        Role::Extension => None,
    };
    // The second node of a cluster: without a QDevice it has no automatic takeover.
    let makes_two = role == Role::Extension && registry.active(NodeKind::Pve).count() == 1;
    let qdevice = match (a.qdevice, makes_two, asking) {
        (None, true, Asking::Terminal) => ask_optional_ip(
            "This node makes a two-node cluster: QDevice host (corosync-qnetd on the NAS or any small \
             machine; empty: none, and automatic takeover stays off)",
        )?,
        (given, _, _) => given,
    };
    if makes_two && qdevice.is_none() {
        ui::warn("after this join the cluster has two nodes and no QDevice: automatic takeover is OFF (see --qdevice)");
    }
    let record = NodeRecord {
        name: node_name,
        role,
        rack,
        slot,
        hostname: entry.hostname,
        ip: entry.ip,
        priority,
        nics,
        disks,
        router_admin_user,
        qdevice,
    };
    show_plan(&record, &settings, &facts.disks);
    // Answers from a file are still confirmed at a terminal; automation says --yes.
    if !cli.yes && !cli.dry_run {
        if !std::io::stdin().is_terminal() {
            return Err(cias_core::exit::Refused(
                "the plan above is not confirmed: without a terminal, run with --yes to proceed".into(),
            )
            .into());
        }
        if !confirm("Proceed with this plan?", false, Asking::Terminal)? {
            return Ok(None);
        }
    }
    Ok(Some(Ctx {
        local: host,
        master,
        dry_run: cli.dry_run,
        settings,
        secrets,
        node: record,
        master_root_password,
        templates: Templates::with_overrides(&Path::new(MANAGEMENT_DIR).join(paths::TEMPLATE_OVERRIDE_DIR)),
        router_archive,
        master_known_host,
        timings: Vec::new(),
    }))
}

/// Every address the run configures or talks to, as the plan shows it.
fn plan_addresses(node: &NodeRecord, settings: &ClusterSettings) -> Vec<(&'static str, String)> {
    let internal = &settings.internal;
    let mut lines = vec![
        ("this node (vmbr0)", format!("{}/8 ({})", node.ip, node.hostname)),
        ("master VIP, internal", format!("{} (cias-pve-master)", internal.master_vip)),
        ("router, internal gateway", internal.router_ip.to_string()),
    ];
    if let Some(qdevice) = node.qdevice {
        lines.push(("QDevice (corosync-qnetd host)", qdevice.to_string()));
    }
    if node.role == Role::First {
        let ext = &settings.external;
        let vm_ips: Vec<String> = ext.router_vm_ips.iter().map(ToString::to_string).collect();
        lines.extend([
            ("external network", ext.network.to_string()),
            ("external gateway", ext.gateway.to_string()),
            ("master VIP, external", format!("{} on {}", ext.master_ip, settings.interfaces.wan)),
            ("router, Proxmox management", ext.router_proxmox_ip.to_string()),
            ("router, NAS management", ext.router_nas_ip.to_string()),
            ("router, VM management", vm_ips.join(", ")),
            ("mail relay", format!("{}:{}", settings.smtp.host, settings.smtp.port)),
            ("uplink check pings", cias_core::uplink::targets_text(&settings.uplink_targets())),
        ]);
    }
    lines
}

fn show_plan(node: &NodeRecord, settings: &ClusterSettings, disks: &[disks::Disk]) {
    ui::line("");
    ui::line(&format!(
        "Plan: {} node {} at {} ({}), priority {}{}, NICs {} bridged into vmbr0",
        if node.role == Role::First { "install the FIRST" } else { "add" },
        node.name,
        node.ip,
        node.hostname,
        node.priority,
        if node.priority == 0 { " (never master)" } else { "" },
        node.nics.join(", ")
    ));
    ui::line("Addresses:");
    for (what, address) in plan_addresses(node, settings) {
        ui::line(&format!("  {what:<34} {address}"));
    }
    ui::line("Disks:");
    for d in disks {
        let what = match &d.verdict {
            Verdict::Format => "FORMAT (blank)".to_string(),
            Verdict::Wipe(why) => format!("WIPE and FORMAT (approved with --wipe; holds {why})"),
            Verdict::NeedsWipe(why) => format!("left alone: {why} (add --wipe {} to format it)", d.path),
            Verdict::Never(why) => format!("never: {why}"),
        };
        ui::line(&format!("  {:<14} {:>8} MiB  {what}", d.path, d.size / (1024 * 1024)));
    }
    ui::line("Steps:");
    for (i, step) in steps::for_role(node.role).iter().enumerate() {
        ui::line(&format!("  {:>2}. {}", i + 1, step.title));
    }
    ui::line("");
}

/// Continues an interrupted run with its saved decisions.
pub fn resume(cli: &Cli, host: Arc<dyn Host>, node: NodeRecord, journal: &Journal) -> Result<Ctx> {
    let settings = ClusterSettings::load(&Path::new(MANAGEMENT_DIR).join(SETTINGS_FILE))?;
    let secrets = Secrets::load(&Path::new(MANAGEMENT_DIR).join(SECRETS_FILE))?;
    ui::line(&format!("Continuing the setup of node {} ({}) where it stopped.", node.name, node.ip));
    let (master, master_root_password) = match node.role {
        Role::First => (None, None),
        Role::Extension => {
            let vip = cli.master.unwrap_or(settings.internal.master_vip).to_string();
            let session = remote::key_login(&vip, &master_access::pinned_file(&node.name))?;
            let password = if journal.is_done("cluster") {
                None
            } else {
                let asking = if std::io::stdin().is_terminal() { Asking::Terminal } else { Asking::Never };
                let given = given_secrets(cli.secrets_file.as_deref())?;
                Some(password(
                    given.master_root_password,
                    "master_root_password",
                    &format!("Root password of the master ({vip})"),
                    false,
                    asking,
                )?)
            };
            (Some(dry_run_wrapped(cli, session)), password)
        }
    };
    Ok(Ctx {
        local: host,
        master,
        dry_run: cli.dry_run,
        settings,
        secrets,
        node,
        master_root_password,
        templates: Templates::with_overrides(&Path::new(MANAGEMENT_DIR).join(paths::TEMPLATE_OVERRIDE_DIR)),
        router_archive: None,
        master_known_host: None,
        timings: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example files shipped in the package (dist/examples).
    fn example(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/examples").join(name)
    }

    #[test]
    fn the_shipped_examples_make_a_valid_cluster() {
        let first = Answers::load(&example("answers-first-node.yaml")).unwrap();
        let settings = new_cluster_settings(&first, None, "vmbr0".into(), Asking::Never).unwrap();
        assert_eq!(settings.external.master_ip.to_string(), "203.0.113.10");
        assert_eq!(settings.uplink_targets().len(), 3);
        let extension = Answers::load(&example("answers-extension.yaml")).unwrap();
        assert!(extension.master_fingerprint.is_some_and(|f| f.starts_with("SHA256:")));
        let text = std::fs::read_to_string(example("secrets.yaml")).unwrap();
        let secrets: GivenSecrets = serde_yaml::from_str(&text).unwrap();
        assert!(secrets.router_admin_password.is_some() && secrets.master_root_password.is_some());
    }
}
