//! `qm`: list, config, create, start, stop, shutdown, migrate, unlock, set.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::args::{param_error, Args};
use crate::cluster::{read_json, Env};
use crate::{task, vmconf, vmproc, Failure, Result};

pub fn main(env: &Env, raw: &[String]) -> Result<u8> {
    let args = Args::parse(raw)?;
    let command = args.positional.first().cloned().unwrap_or_default();
    if command == "list" {
        return list(env);
    }
    let vmid: u32 =
        args.pos(1, "vmid")?.parse().map_err(|_| param_error("vmid", "type check ('integer') failed"))?;
    match command.as_str() {
        "config" => {
            for (k, v) in vmconf::load(env, &env.node, vmid)? {
                println!("{k}: {v}");
            }
            Ok(0)
        }
        "create" => create(env, vmid, &args),
        "start" => {
            let config = local(env, vmid)?;
            if let Some(lock) = config.get("lock") {
                return Err(Failure::die(format!("VM is locked ({lock})")));
            }
            env.require_quorum()?;
            vmproc::start(env, vmid)?;
            Ok(0)
        }
        "stop" | "shutdown" => {
            local(env, vmid)?;
            env.require_quorum()?;
            vmproc::stop(env, vmid)?;
            Ok(0)
        }
        "unlock" => {
            let mut config = local(env, vmid)?;
            config.remove("lock");
            vmconf::save(env, &env.node, vmid, &config)?;
            Ok(0)
        }
        "set" => {
            let mut config = local(env, vmid)?;
            vmconf::apply_options(&mut config, &args.options)?;
            vmconf::save(env, &env.node, vmid, &config)?;
            Ok(0)
        }
        "migrate" => migrate(env, vmid, &args),
        other => Err(Failure::die(format!("unknown command 'qm {other}'"))),
    }
}

fn local(env: &Env, vmid: u32) -> Result<vmconf::VmConfig> {
    vmconf::load(env, &env.node, vmid)
}

/// `qm list`: local VMs only, nothing at all when there are none, trailing spaces kept.
fn list(env: &Env) -> Result<u8> {
    let Ok(entries) = std::fs::read_dir(env.qemu_dir(&env.node)) else { return Ok(0) };
    let mut vmids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".conf")?.parse().ok())
        .collect();
    vmids.sort_unstable();
    if vmids.is_empty() {
        return Ok(0);
    }
    println!(
        "{:>10} {:<20} {:<10} {:<10} {:>12} {:<10}",
        "VMID", "NAME", "STATUS", "MEM(MB)", "BOOTDISK(GB)", "PID"
    );
    for vmid in vmids {
        let config = local(env, vmid)?;
        let pid = vmproc::running(env, vmid);
        let name = config.get("name").cloned().unwrap_or_else(|| format!("VM {vmid}"));
        let disk_gb = config
            .get("scsi0")
            .and_then(|d| {
                d.split(',').find_map(|o| o.strip_prefix("size=")?.strip_suffix('G')?.parse::<f64>().ok())
            })
            .unwrap_or(0.0);
        println!(
            "{vmid:>10} {name:<20} {:<10} {:<10} {disk_gb:>12.2} {:<10}",
            if pid.is_some() { "running" } else { "stopped" },
            vmconf::memory_mib(&config),
            pid.unwrap_or(0)
        );
    }
    Ok(0)
}

/// `qm create VMID [--name N] [--memory MiB] [--scsi0 STORAGE:SIZE_GB] [--onboot 1]`.
fn create(env: &Env, vmid: u32, args: &Args) -> Result<u8> {
    vmconf::check_unused(env, vmid)
        .map_err(|f| Failure::die(format!("unable to create VM {vmid} - {}", f.message)))?;
    env.require_quorum()?;
    let mut config = vmconf::VmConfig::new();
    vmconf::apply_options(&mut config, &args.options)?;
    if let Some(spec) = args.opt("scsi0") {
        let (storage, size) = spec.split_once(':').ok_or_else(|| param_error("scsi0", "invalid format"))?;
        let size_gb: u64 =
            size.parse().map_err(|_| param_error("scsi0", "invalid format - size in GiB expected"))?;
        let volume = format!("{vmid}/vm-{vmid}-disk-0.raw");
        let file = vmconf::disk_file(env, storage, &volume)?;
        std::fs::create_dir_all(file.parent().expect("disk has a directory"))?;
        std::fs::File::create(&file)?;
        config.insert("scsi0".into(), format!("{storage}:{volume},size={size_gb}G"));
    }
    vmconf::save(env, &env.node, vmid, &config)?;
    Ok(0)
}

/// Seconds per GiB of RAM an online migration takes (`.standin/settings.json`, default 1).
fn migrate_secs_per_gib(env: &Env) -> f64 {
    read_json::<serde_json::Value>(&env.root.join(".standin/settings.json"))
        .ok()
        .flatten()
        .and_then(|s| s["migrate_secs_per_gib"].as_f64())
        .unwrap_or(1.0)
}

/// `qm migrate VMID TARGET [--online]`, shared disks only.
fn migrate(env: &Env, vmid: u32, args: &Args) -> Result<u8> {
    let plan = migrate_checks(env, vmid, args.pos(2, "target")?, args.flag("online"))?;
    task::foreground(env, "qmigrate", &vmid.to_string(), || migrate_work(env, &plan))
}

/// A migration that passed its checks.
pub struct Migration {
    vmid: u32,
    target: String,
    target_ip: String,
    config: vmconf::VmConfig,
    was_running: bool,
}

/// The checks before the migration task starts (`qm migrate` and
/// `POST /nodes/N/qemu/VMID/migrate` share them).
pub fn migrate_checks(env: &Env, vmid: u32, target: &str, online: bool) -> Result<Migration> {
    let target = target.to_string();
    let config = local(env, vmid)?;
    if target == env.node {
        return Err(Failure::die("target is local node."));
    }
    let cluster = env.my_cluster()?;
    let Some(target_ip) = cluster.as_ref().and_then(|c| c.member(&target)).map(|n| n.ip.clone()) else {
        return Err(Failure::die(format!("no such cluster node '{target}'")));
    };
    let was_running = vmproc::running(env, vmid).is_some();
    if was_running && !online {
        return Err(Failure::die("can't migrate running VM without --online"));
    }
    if let Some(lock) = config.get("lock") {
        return Err(Failure::die(format!("VM is locked ({lock})")));
    }
    env.require_quorum()?;
    if !env.quorum()?.online.contains(&target) {
        return Err(Failure::die(format!(
            "migration aborted - Can't connect to destination address using public key (node '{target}')"
        )));
    }
    if let Some((storage, _)) = vmconf::first_disk(&config) {
        let shared =
            crate::storage::find(env, &storage)?.section.props.get("shared").is_some_and(|v| v == "1");
        if !shared {
            return Err(Failure::die(format!("migration aborted - can't live migrate attached local disks without with-local-disks option (storage '{storage}')")));
        }
    }
    Ok(Migration { vmid, target, target_ip, config, was_running })
}

/// The migration task itself: its log on stdout.
pub fn migrate_work(env: &Env, plan: &Migration) -> Result<()> {
    let Migration { vmid, target, target_ip, config, was_running } = plan;
    let (vmid, was_running) = (*vmid, *was_running);
    {
        let started = Instant::now();
        task::log(&format!("starting migration of VM {vmid} to node '{target}' ({target_ip})"));
        if was_running {
            let gib = vmconf::memory_mib(config) as f64 / 1024.0;
            task::log("starting online/live migration");
            std::thread::sleep(Duration::from_secs_f64(gib * migrate_secs_per_gib(env)));
            vmproc::stop(env, vmid)?;
        }
        std::fs::create_dir_all(env.qemu_dir(target))?;
        std::fs::rename(vmconf::path(env, &env.node, vmid), vmconf::path(env, target, vmid))?;
        if was_running {
            let status = Command::new(&env.ssh)
                .args(crate::SSH_OPTIONS)
                .args([&format!("root@{target_ip}"), "qm", "start", &vmid.to_string()])
                .status()?;
            if !status.success() {
                return Err(Failure::die(format!("ERROR: failed to start VM {vmid} on node '{target}'")));
            }
        }
        task::log(&format!("migration finished successfully (duration {})", hms(started.elapsed())));
        Ok(())
    }
}

fn hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}
