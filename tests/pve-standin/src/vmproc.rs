//! A running VM: a process on its node that holds its disk open and appends a heartbeat
//! record (`HB vmid node counter unix_ms`) to it every second, fsync'd, and `DOWN ...` last
//! when it is stopped cleanly. Tests read the disk to prove a VM never ran on two nodes at
//! once, to measure what a recovery lost, and to tell a clean stop from a power cut.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::{now_ms, Env};
use crate::{nic, router, vmconf, Failure, Result};

fn pid_file(env: &Env, vmid: u32) -> PathBuf {
    env.pids.join(format!("{vmid}.pid"))
}

/// The VM process's pid when VMID runs on this node.
pub fn running(env: &Env, vmid: u32) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file(env, vmid)).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let expected = format!("vm-run\0{vmid}\0");
    String::from_utf8_lossy(&cmdline).contains(&expected).then_some(pid)
}

/// VMIDs running on this node.
pub fn local_running(env: &Env) -> Result<Vec<u32>> {
    let Ok(entries) = std::fs::read_dir(&env.pids) else { return Ok(Vec::new()) };
    let mut vmids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".pid")?.parse().ok())
        .filter(|vmid| running(env, *vmid).is_some())
        .collect();
    vmids.sort_unstable();
    Ok(vmids)
}

/// Starts VMID's process on this node and waits until it runs.
pub fn start(env: &Env, vmid: u32) -> Result<()> {
    if running(env, vmid).is_some() {
        return Err(Failure::die(format!("VM {vmid} already running")));
    }
    let config = vmconf::load(env, &env.node, vmid)?;
    nic::require_bridges(&config)?;
    if vmid == router::VMID && nic::nets(&config).is_empty() {
        return Err(Failure::die("VM 100 (the router) has no net0: it needs its LAN NIC"));
    }
    let exe = std::env::current_exe()?;
    let exe = exe.to_string_lossy();
    let unit = format!("pve-standin-vm-{vmid}");
    let under_systemd = Path::new("/run/systemd/system").exists();
    let mut cmd = if under_systemd {
        // Under the node's systemd, so `lab power-off` and reboots treat it like qemu.
        // A transient unit does not inherit this environment: pass the stand-in's own on.
        let mut c = Command::new("systemd-run");
        c.args(["--quiet", "--collect", &format!("--unit={unit}")]);
        for (key, value) in std::env::vars().filter(|(k, _)| k.starts_with("PVE_STANDIN_")) {
            c.arg(format!("--setenv={key}={value}"));
        }
        // When the VM process dies, however it dies, its NIC goes with it (as qemu's tap does).
        c.arg(format!("--property=ExecStopPost={exe} vm-cleanup {vmid}"));
        c.args([&*exe, "vm-run", &vmid.to_string()]);
        c
    } else {
        let mut c = Command::new(&*exe);
        c.args(["vm-run", &vmid.to_string()]);
        c
    };
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if running(env, vmid).is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Like qm's own start timeout, a failed start leaves no process behind: one that came up
    // later would run a VM whose start was reported failed (and maybe recovered elsewhere).
    if under_systemd {
        let _ = Command::new("systemctl").args(["kill", "--signal=SIGKILL", &unit]).status();
        let _ = Command::new("systemctl").args(["stop", &unit]).status();
    } else {
        let _ = child.kill();
    }
    let _ = child.wait();
    let _ = std::fs::remove_file(pid_file(env, vmid));
    unplug(env, vmid);
    Err(Failure::die(format!("start failed: VM {vmid} did not come up")))
}

/// Stops VMID's process (SIGTERM, then SIGKILL after 10 s).
pub fn stop(env: &Env, vmid: u32) -> Result<()> {
    let Some(pid) = running(env, vmid) else { return Ok(()) };
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(env, vmid).is_some() {
        if Instant::now() > deadline {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(pid_file(env, vmid));
    unplug(env, vmid);
    Ok(())
}

/// What goes away with the VM process: the router's services, the NICs.
fn unplug(env: &Env, vmid: u32) {
    if vmid == router::VMID {
        router::stop(env);
    }
    nic::unplug(vmid);
}

/// `pve-standin vm-cleanup VMID`: what goes away with a VM process (its unit's ExecStopPost).
pub fn cleanup(env: &Env, args: &[String]) -> Result<u8> {
    let vmid: u32 =
        args.first().and_then(|a| a.parse().ok()).ok_or_else(|| Failure::die("usage: vm-cleanup VMID"))?;
    if running(env, vmid).is_none() {
        let _ = std::fs::remove_file(pid_file(env, vmid));
        unplug(env, vmid);
    }
    Ok(0)
}

/// `pve-standin vm-run VMID`: the VM itself.
pub fn run(env: &Env, args: &[String]) -> Result<u8> {
    let vmid: u32 =
        args.first().and_then(|a| a.parse().ok()).ok_or_else(|| Failure::die("usage: vm-run VMID"))?;
    let config = vmconf::load(env, &env.node, vmid)?;
    let (storage, volume) =
        vmconf::first_disk(&config).ok_or_else(|| Failure::die(format!("VM {vmid} has no disk")))?;
    let disk = vmconf::disk_file(env, &storage, &volume)?;
    if let Some(dir) = disk.parent() {
        std::fs::create_dir_all(dir)?;
    }
    nic::plug(env, vmid, &config)?;
    if vmid == router::VMID {
        router::start(env, &disk)?;
    }
    nic::announce(vmid);
    let mut counter = last_counter(&disk, vmid);
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&disk)?;
    std::fs::create_dir_all(&env.pids)?;
    std::fs::write(pid_file(env, vmid), std::process::id().to_string())?;
    // SIGTERM is a clean stop (an ACPI shutdown the guest obeys): it writes a last `DOWN`
    // record. A power cut (SIGKILL) leaves the disk as the last heartbeat left it.
    let stopping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, std::sync::Arc::clone(&stopping))?;
    loop {
        counter += 1;
        writeln!(file, "HB {vmid} {} {counter} {}", env.node, now_ms())?;
        file.sync_data()?;
        for _ in 0..10 {
            if stopping.load(std::sync::atomic::Ordering::Relaxed) {
                writeln!(file, "DOWN {vmid} {} {counter} {}", env.node, now_ms())?;
                file.sync_data()?;
                return Ok(0);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The last heartbeat counter written to `disk`, so a migrated or recovered VM continues.
fn last_counter(disk: &Path, vmid: u32) -> u64 {
    let text = std::fs::read_to_string(disk).unwrap_or_default();
    text.lines()
        .rev()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 5 && f[0] == "HB" && f[1] == vmid.to_string()).then(|| f[3].parse().ok()).flatten()
        })
        .next()
        .unwrap_or(0)
}
