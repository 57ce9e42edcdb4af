//! `dlll_cias-backup-zentyal`: backs up the router VM (VMID 100) to `mfs-backup` and keeps a
//! local copy of its newest complete archive in `/var/lib/vz/dump` under its vzdump name,
//! which is what a new master restores the router from when MooseFS itself is down (SPEC
//! section 4). Run by cron on every node (`--local-copy`, Mondays 04:00) and once by the
//! installer.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

use cias_core::backups::{self, Archive};
use cias_core::host::{is_mounted, Command, DryRunHost, Host, LocalHost};
use cias_core::notify;
use cias_core::paths::{self, LOCAL_DUMP_DIR, SHARED_DUMP_DIR};
use cias_core::proxmox::pvesh::{self, VmResource};
use cias_core::settings::ClusterSettings;
use cias_core::takeover::ROUTER_VMID;

/// The name older versions gave the local copy (qmrestore cannot read it: no vzdump name).
const OLD_LOCAL_COPY: &str = "/var/lib/vz/dump/zentyal.tar.vma";
/// A copy of a large archive onto a slow disk.
const COPY_LIMIT: Duration = Duration::from_secs(3 * 3600);
/// Alert key: no fresh router backup to restore from.
const STALE: &str = "router-copy-old";

/// Back up the router VM and keep a local copy of its newest complete backup.
///
/// Without options both happen: a backup (only on the node running VM 100) then the copy.
///
/// The copy takes the newest complete archive in /mnt/mfs/dump (never one vzdump is still
/// writing), copies it under a temporary name, checks its size, that it reads to its end
/// (gzip/lzop/zstd -t, or vma verify) and its SHA-256, then renames it to its vzdump name in
/// /var/lib/vz/dump (qmrestore needs that name) and removes older local copies. While MooseFS
/// is not mounted it changes nothing, and mails the administrator once the local copy is older
/// than backups.local_copy_max_age_days (at most once per alerts.repeat_after_mins).
#[derive(Debug, Parser)]
#[command(
    name = "dlll_cias-backup-zentyal",
    version = cias_core::VERSION,
    after_help = concat!(
        cias_core::exit_status_help!(),
        "\n\nLog: the journal (journalctl -t dlll_cias-backup-zentyal) and /data/cias/nodes/<node>/backup.log."
    )
)]
struct Cli {
    /// Run `vzdump 100` to the mfs-backup storage (on the node that runs VM 100).
    #[arg(long)]
    backup: bool,
    /// Copy the newest router archive from /mnt/mfs/dump to /var/lib/vz/dump.
    #[arg(long)]
    local_copy: bool,
    /// Print the commands that would change something; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Cluster settings.
    #[arg(long, value_name = "FILE", default_value_os_t = paths::default_settings_file())]
    config: PathBuf,
    #[command(flatten)]
    verbosity: cias_core::logging::Verbosity,
}

fn backup(host: &dyn Host, node: &str) -> Result<String> {
    let vms: Vec<VmResource> =
        pvesh::parse("pvesh get /cluster/resources", &host.run(&pvesh::vm_resources_command())?.stdout)?;
    match vms.iter().find(|v| v.vmid == ROUTER_VMID) {
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
            Ok(format!("router backup written to {SHARED_DUMP_DIR}"))
        }
        Some(vm) => Ok(format!("VM 100 runs on node {}: its backup is made there", vm.node)),
        None => bail!("there is no VM 100 (router) in the cluster"),
    }
}

/// The newest router archive already here, if any.
fn local_newest(host: &dyn Host) -> Result<Option<Archive>> {
    Ok(backups::list(host, LOCAL_DUMP_DIR, ROUTER_VMID, Duration::from_secs(30))?.pop())
}

/// Mails the administrator when the newest router backup a restore could use is too old.
fn tell_if_stale(
    host: &dyn Host,
    settings: &ClusterSettings,
    newest: Option<&Archive>,
    why: &str,
) -> Result<()> {
    let limit = Duration::from_secs(u64::from(settings.backups.local_copy_max_age_days) * 86400);
    let age = match newest {
        Some(a) => Some(backups::age(host, &a.path, cias_core::clock::unix_secs())?),
        None => None,
    };
    if age.is_some_and(|a| a <= limit) {
        notify::alert_over(STALE);
        return Ok(());
    }
    let what = match (newest, age) {
        (Some(a), Some(age)) => format!("{} is {} old", a.path, backups::human(age)),
        _ => format!("there is no router backup in {LOCAL_DUMP_DIR}"),
    };
    let body = format!(
        "{what}, and {why}. If MooseFS goes down, this node can only restore the router (VM 100) from \
         that copy.\n\nCheck the backup job cias-router (Datacenter > Backup) and that /mnt/mfs is mounted, \
         then run dlll_cias-backup-zentyal --local-copy on {}.",
        host.name()
    );
    tracing::warn!("{what}, and {why}");
    notify::alert(
        settings,
        STALE,
        &format!("DLLL-CIAS: {}'s copy of the router backup is old", host.name()),
        &body,
    );
    Ok(())
}

/// Copies `source` to the local dump directory, checked before it takes its name (a dry run
/// shows the copy and the rename; the checks read a copy it did not make).
fn copy_checked(host: &dyn Host, source: &Archive, dry_run: bool) -> Result<String> {
    let target = format!("{LOCAL_DUMP_DIR}/{}", source.file_name());
    let partial = format!("{LOCAL_DUMP_DIR}/.{}.partial", source.file_name());
    host.run(&Command::from_argv(&["mkdir", "-p", LOCAL_DUMP_DIR]))?;
    host.run(
        &Command::from_argv(&["cp", "--preserve=timestamps", &source.path, &partial]).timeout(COPY_LIMIT),
    )?;
    let checked = (|| -> Result<()> {
        if dry_run {
            return Ok(());
        }
        let size = |path: &str| -> Result<String> {
            Ok(host.run(&Command::query_argv(&["stat", "-c", "%s", path]))?.stdout.trim().to_string())
        };
        let (want, got) = (size(&source.path)?, size(&partial)?);
        if want != got {
            bail!("the copy has {got} bytes, the archive {want}");
        }
        let readable = host.execute(&source.readable_command(&partial))?;
        if !readable.success() {
            bail!("the copy does not read to its end: {}", readable.stderr.trim());
        }
        let sums =
            host.run(&Command::query_argv(&["sha256sum", &source.path, &partial]).timeout(COPY_LIMIT))?;
        let sums: Vec<&str> = sums.stdout.lines().filter_map(|l| l.split_whitespace().next()).collect();
        if sums.len() != 2 || sums[0] != sums[1] {
            bail!("the copy's SHA-256 differs from the archive's");
        }
        Ok(())
    })();
    if let Err(e) = checked {
        let _ = host.execute(&Command::from_argv(&["rm", "-f", &partial]));
        return Err(e.context(format!("copy of {} not kept", source.path)));
    }
    host.run(&Command::from_argv(&["mv", &partial, &target]))?;
    Ok(target)
}

fn local_copy(host: &dyn Host, settings: &ClusterSettings, dry_run: bool) -> Result<String> {
    if !is_mounted(host, paths::MFS_MOUNT)? {
        tell_if_stale(
            host,
            settings,
            local_newest(host)?.as_ref(),
            "MooseFS is not mounted to copy a newer one",
        )?;
        return Ok(format!("{} is not mounted: nothing copied", paths::MFS_MOUNT));
    }
    let newest = backups::list(host, SHARED_DUMP_DIR, ROUTER_VMID, Duration::from_secs(60))?
        .pop()
        .with_context(|| format!("no complete router backup (vzdump-qemu-100-*) in {SHARED_DUMP_DIR} yet"))?;
    let outcome = match local_newest(host)? {
        Some(here) if here.file_name() == newest.file_name() => format!("{} is here already", here.path),
        _ => {
            let copied = copy_checked(host, &newest, dry_run)?;
            // Older copies go only once the new one is in place.
            let mut old: Vec<String> =
                backups::list(host, LOCAL_DUMP_DIR, ROUTER_VMID, Duration::from_secs(30))?
                    .into_iter()
                    .map(|a| a.path)
                    .filter(|p| *p != copied)
                    .collect();
            old.push(OLD_LOCAL_COPY.into());
            for path in &old {
                host.run(&Command::from_argv(&["rm", "-f", path]))?;
            }
            tracing::info!("{} copied to {copied} (checked: size, readable, SHA-256)", newest.path);
            format!("{} copied to {copied}", newest.path)
        }
    };
    tell_if_stale(host, settings, local_newest(host)?.as_ref(), "no newer router backup is on MooseFS")?;
    Ok(outcome)
}

fn run(cli: &Cli) -> Result<ExitCode> {
    let node = paths::node_name().context("cannot read this node's host name")?;
    let settings = ClusterSettings::load(&cli.config)?;
    let local: Arc<dyn Host> = Arc::new(LocalHost::new(node.clone()));
    let host: Arc<dyn Host> = if cli.dry_run {
        Arc::new(DryRunHost::reading_from(local).with_sink(|h, c| println!("[{h}] $ {c}")))
    } else {
        cias_core::logging::also_to_file(&paths::node_dir(&node).join("backup.log"))
            .context("cannot open the backup log")?;
        local
    };
    let both = !cli.backup && !cli.local_copy;
    if cli.backup || both {
        tracing::info!("{}", backup(host.as_ref(), &node)?);
    }
    if cli.local_copy || both {
        tracing::info!("{}", local_copy(host.as_ref(), &settings, cli.dry_run)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    cias_core::docs::write_if_asked::<Cli>();
    let cli = Cli::parse();
    cias_core::logging::start("dlll_cias-backup-zentyal", cli.verbosity, cias_core::logging::Terminal::Echo);
    cias_core::exit::finish("dlll_cias-backup-zentyal", run(&cli))
}
