//! `pve-firewall`, the Proxmox VE firewall service (pve-firewall's
//! `src/PVE/Service/pve_firewall.pm` over `PVE::Daemon`), for VM anti-spoofing: [`fwconf`]
//! reads the files, [`fwcompile`] makes this node's nftables table, this module applies it.
//!
//! - `pve-firewall start`: under systemd (parent pid 1) it forks the daemon, which writes
//!   `/run/pve-firewall.pid` (the unit is `Type=forking` with that `PIDFile`, as Proxmox's);
//!   run by hand it asks systemd (`systemctl start pve-firewall`); `--debug` stays in the
//!   foreground. The daemon compiles and applies every 10 s (`updatetime`), at once on SIGHUP,
//!   and removes the table on SIGTERM ("clear PVE-generated firewall rules").
//! - `stop`, `restart`: likewise (`restart` under systemd is the unit's reload: SIGHUP).
//! - `status`: `Status: enabled/running`, `disabled/stopped`, ... with ` (pending changes)` when
//!   the live table differs from what the files give now; file problems on stderr.
//! - `compile`: prints the table (where Proxmox prints its ipset/iptables/ebtables command
//!   lists), then `detected changes` or `no changes`, and `firewall disabled` when it is.
//!
//! A starting VM applies the rules itself before its NIC joins the bridge (when the service
//! runs), so a VM is filtered from its first frame; the service's round does the rest
//! (`qm set --net0 ...,firewall=1` on a running VM, edited `.fw` files). The daemon logs each
//! warning and error once while it lasts, on stderr (the unit's journal).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::args::Args;
use crate::cluster::{now_ms, Env};
use crate::fwcompile::{self, Compiled, TABLE};
use crate::fwconf::{self, FwFile, Kind};
use crate::{vmconf, Failure, Result};

const UNIT: &str = "pve-firewall";

/// `/run/pve-firewall.pid`, the unit's `PIDFile` (`PVE_STANDIN_FIREWALL_RUN` replaces `/run`
/// in the stand-in's own tests).
fn pid_file() -> PathBuf {
    std::env::var_os("PVE_STANDIN_FIREWALL_RUN")
        .map_or_else(|| PathBuf::from("/run"), PathBuf::from)
        .join("pve-firewall.pid")
}
/// pve-firewall's `updatetime`.
const PERIOD: Duration = Duration::from_secs(10);

pub fn main(env: &Env, raw: &[String]) -> Result<u8> {
    let args = Args::parse(raw)?;
    let by_systemd = std::os::unix::process::parent_id() == 1;
    match args.positional.first().map(String::as_str) {
        Some("start") if args.flag("debug") => daemon(env),
        Some("start") if by_systemd => fork_daemon(),
        Some(command @ ("start" | "stop" | "restart")) if !by_systemd => systemctl(command),
        Some("stop") => stop(),
        Some("restart") => signal("HUP"),
        Some("status") => status(env),
        Some("compile") => compile_command(env),
        Some(other) => Err(Failure::with_code(format!("unknown command 'pve-firewall {other}'"), 255)),
        None => Err(Failure::with_code("ERROR: no command specified", 255)),
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Parses the files and compiles this node's table; the files' problems come first.
pub fn compile_local(env: &Env) -> Compiled {
    let fw_dir = env.root.join("firewall");
    let label = |p: &Path| p.display().to_string();
    let parse = |path: PathBuf, kind: Kind, cluster: Option<&FwFile>| {
        read(&path).and_then(|text| fwconf::parse(&label(&path), &text, kind, cluster))
    };
    let cluster = parse(fw_dir.join("cluster.fw"), Kind::Cluster, None);
    let host = parse(env.node_dir(&env.node).join("host.fw"), Kind::Host, cluster.as_ref());
    let mut vmids: Vec<u32> = std::fs::read_dir(env.qemu_dir(&env.node))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".conf")?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    vmids.sort_unstable();
    let loaded: Vec<(u32, vmconf::VmConfig, Option<FwFile>)> = vmids
        .into_iter()
        .filter_map(|vmid| {
            let config = vmconf::parse(&read(&vmconf::path(env, &env.node, vmid))?);
            let fw = parse(fw_dir.join(format!("{vmid}.fw")), Kind::Vm, cluster.as_ref());
            Some((vmid, config, fw))
        })
        .collect();
    let vms: Vec<fwcompile::Vm> = loaded
        .iter()
        .map(|(vmid, config, fw)| fwcompile::Vm { vmid: *vmid, config, fw: fw.as_ref() })
        .collect();
    let mut compiled = fwcompile::compile(cluster.as_ref(), host.as_ref(), &vms, now_ms() / 1000);
    let mut warnings: Vec<String> = [&cluster, &host]
        .into_iter()
        .chain(loaded.iter().map(|(_, _, fw)| fw))
        .flatten()
        .flat_map(|f| f.warnings.clone())
        .collect();
    warnings.append(&mut compiled.warnings);
    compiled.warnings = warnings;
    compiled
}

/// The digest of the live table (its comment), `None` when the node has none.
fn live_digest() -> Option<String> {
    let out =
        Command::new("nft").args(["list", "table", "bridge", TABLE]).stderr(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().find_map(|l| Some(l.trim().strip_prefix("comment \"")?.strip_suffix('"')?.to_string()))
}

fn nft(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().expect("stdin").write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Failure::die(format!("nft -f failed: {}", String::from_utf8_lossy(&out.stderr).trim())))
    }
}

/// One round, under the node's firewall lock: compile, and replace the live table when it
/// differs.
pub fn update(env: &Env) -> Result<Compiled> {
    std::fs::create_dir_all(&env.run)?;
    let lock = std::fs::File::create(env.run.join("firewall.lock"))?;
    lock.lock()?;
    let compiled = compile_local(env);
    if live_digest() != compiled.digest {
        nft(&fwcompile::script(compiled.table.as_deref()))?;
    }
    Ok(compiled)
}

/// The daemon's pid, when it runs.
fn running() -> Option<u32> {
    let pid: u32 = read(&pid_file())?.trim().parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// A round now, if the service runs (a VM's NIC is being plugged).
pub fn update_if_running(env: &Env) -> Result<()> {
    if running().is_some() {
        update(env)?;
    }
    Ok(())
}

fn systemctl(command: &str) -> Result<u8> {
    let status = Command::new("systemctl").args([command, UNIT]).status()?;
    Ok(u8::try_from(status.code().unwrap_or(1)).unwrap_or(1))
}

fn signal(name: &str) -> Result<u8> {
    if let Some(pid) = running() {
        Command::new("kill").args([format!("-{name}"), pid.to_string()]).status()?;
    }
    Ok(0)
}

/// `start` under systemd: the daemon is a child that outlives this process.
fn fork_daemon() -> Result<u8> {
    if let Some(pid) = running() {
        return Err(already_running(pid));
    }
    let exe = std::env::current_exe()?;
    let child = Command::new(exe)
        .args(["pve-firewall", "start", "--debug"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?;
    // systemd reads the PIDFile when this process exits.
    let deadline = Instant::now() + Duration::from_secs(5);
    while running() != Some(child.id()) {
        if Instant::now() > deadline {
            return Err(Failure::die("start failed - the daemon did not write its pid file"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(0)
}

fn already_running(pid: u32) -> Failure {
    Failure::with_code(
        format!("start failed - can't acquire lock '/var/run/pve-firewall.pid.lock' - daemon already started (pid = {pid})"),
        255,
    )
}

/// The daemon: a round every 10 s until SIGTERM.
fn daemon(env: &Env) -> Result<u8> {
    if let Some(pid) = running() {
        return Err(already_running(pid));
    }
    let (terminate, hangup) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&terminate))?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hangup))?;
    std::fs::write(pid_file(), format!("{}\n", std::process::id()))?;
    eprintln!("starting server");
    let mut logged: BTreeSet<String> = BTreeSet::new();
    while !terminate.load(Ordering::SeqCst) {
        let messages: BTreeSet<String> = match update(env) {
            Ok(c) => {
                c.warnings.into_iter().chain(c.errors.into_iter().map(|e| format!("error: {e}"))).collect()
            }
            Err(e) => [format!("status update error: {}", e.message)].into(),
        };
        for message in messages.difference(&logged) {
            eprintln!("{message}");
        }
        logged = messages;
        let round = Instant::now();
        while round.elapsed() < PERIOD
            && !terminate.load(Ordering::SeqCst)
            && !hangup.swap(false, Ordering::SeqCst)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    eprintln!("received signal TERM");
    eprintln!("clear PVE-generated firewall rules");
    if let Err(e) = nft(&fwcompile::script(None)) {
        eprintln!("{}", e.message);
    }
    let _ = std::fs::remove_file(pid_file());
    eprintln!("server stopped");
    Ok(0)
}

/// `stop` under systemd: SIGTERM, SIGKILL after 5 s.
fn stop() -> Result<u8> {
    let Some(pid) = running() else { return Ok(0) };
    let _ = signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    while running() == Some(pid) {
        if Instant::now() > deadline {
            eprintln!("server still running - send KILL");
            let _ = signal("KILL");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(pid_file());
    Ok(0)
}

fn status(env: &Env) -> Result<u8> {
    let run = running().is_some();
    let compiled = compile_local(env);
    for message in compiled.warnings.iter().chain(&compiled.errors) {
        eprintln!("{message}");
    }
    let enabled = compiled.table.is_some();
    let changes = run && live_digest() != compiled.digest;
    println!(
        "Status: {}/{}{}",
        if enabled { "enabled" } else { "disabled" },
        if run { "running" } else { "stopped" },
        if changes { " (pending changes)" } else { "" }
    );
    Ok(0)
}

fn compile_command(env: &Env) -> Result<u8> {
    let compiled = compile_local(env);
    for message in compiled.warnings.iter().chain(&compiled.errors) {
        eprintln!("{message}");
    }
    println!("nftables ruleset (table bridge {TABLE}):");
    print!("{}", compiled.table.as_deref().unwrap_or_default());
    println!();
    println!("{}", if live_digest() != compiled.digest { "detected changes" } else { "no changes" });
    if compiled.table.is_none() {
        println!("firewall disabled");
    }
    Ok(0)
}
