//! The kernel's softdog behind `/dev/watchdog`, as a process `watchdog-mux` starts with a pipe
//! for the device: every write is a keepalive; a close after a write that held `V` stops it;
//! any other close leaves it running ("watchdog did not stop!"). When it expires it does to the
//! lab node what a hardware reset does to a machine: every process of the node dies at once, the
//! network goes dark (the `lab power-off` semantics). It outlives the multiplexer (its unit has
//! `KillMode=process`), as the driver outlives a killed `watchdog-mux`.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::{Failure, Result};

/// For the stand-in's own tests only: the length of one of the watchdog's seconds, in ms.
const SECOND_VAR: &str = "PVE_STANDIN_WATCHDOG_SECOND_MS";

/// The inode of the machine's initial PID namespace (`PROC_PID_INIT_INO`, fixed in the kernel).
/// reboot(2) from there would reset the machine, not a lab node.
const INITIAL_PID_NS: &str = "pid:[4026531836]";

/// One second of the watchdog's timers (shorter only under [`SECOND_VAR`]).
pub fn second() -> Duration {
    let ms = std::env::var(SECOND_VAR).ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    Duration::from_millis(ms)
}

/// An open `/dev/watchdog`. Dropped without [`Device::close`], it keeps running.
#[derive(Debug)]
pub struct Device {
    pipe: ChildStdin,
    _driver: Child,
}

/// Opens the device with `timeout_s` (the driver starts counting at once).
pub fn open(timeout_s: u32) -> Result<Device> {
    let mut driver = Command::new(std::env::current_exe()?)
        .args(["softdog", &timeout_s.to_string()])
        .stdin(Stdio::piped())
        .spawn()?;
    let pipe = driver.stdin.take().ok_or_else(|| Failure::die("watchdog open: no pipe"))?;
    Ok(Device { pipe, _driver: driver })
}

impl Device {
    pub fn keepalive(&mut self) {
        if let Err(e) = self.pipe.write_all(b"\0") {
            eprintln!("watchdog update failed: {e}");
        }
    }

    /// The magic close: the driver stops.
    pub fn close(mut self) {
        if let Err(e) = self.pipe.write_all(b"V") {
            eprintln!("write magic watchdog close: {e}");
        }
    }
}

/// `pve-standin softdog TIMEOUT_S`: the driver, fed on stdin.
pub fn run(args: &[String]) -> Result<u8> {
    let timeout_s: u32 = args
        .first()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| Failure::with_code("usage: pve-standin softdog TIMEOUT_S", 2))?;
    let timeout = second() * timeout_s;
    let (writes, received) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while let Ok(n @ 1..) = stdin.read(&mut buf) {
            if writes.send(buf[..n].contains(&b'V')).is_err() {
                return;
            }
        }
    });
    let mut deadline = Instant::now() + timeout;
    let mut release_allowed = false;
    loop {
        match received.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(magic) => {
                deadline = Instant::now() + timeout;
                release_allowed = magic;
            }
            Err(RecvTimeoutError::Disconnected) if release_allowed => return Ok(0),
            Err(RecvTimeoutError::Disconnected) => {
                eprintln!("watchdog: watchdog0: watchdog did not stop!");
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                break;
            }
            Err(RecvTimeoutError::Timeout) => break,
        }
    }
    eprintln!("softdog: Initiating system reboot");
    power_off_node()
}

/// Ends the lab node this process runs in, and refuses anywhere else.
fn power_off_node() -> Result<u8> {
    if std::env::var_os(SECOND_VAR).is_some() {
        return Err(Failure::with_code("softdog: test timing - the node stays on", 3));
    }
    let pid_ns = std::fs::read_link("/proc/self/ns/pid")?.to_string_lossy().into_owned();
    let init_env = std::fs::read("/proc/1/environ").unwrap_or_default();
    let in_nspawn = init_env.split(|&b| b == 0).any(|v| v == b"container=systemd-nspawn");
    if pid_ns == INITIAL_PID_NS || !in_nspawn {
        return Err(Failure::with_code(
            format!("softdog: not a lab node (PID namespace {pid_ns}, nspawn container: {in_nspawn}) - staying on"),
            1,
        ));
    }
    // A dead machine's NICs go dark with it: nothing answers for its addresses (a VIP) any more.
    for link in std::fs::read_dir("/sys/class/net")?.flatten() {
        let name = link.file_name().to_string_lossy().into_owned();
        if name != "lo" {
            let _ = Command::new("ip").args(["link", "set", "dev", &name, "down"]).status();
        }
    }
    // Outside the initial PID namespace reboot(2) ends only that namespace: the kernel kills its
    // PID 1, and every process of the namespace with it; nspawn reports a power-off (exit 0).
    rustix::system::reboot(rustix::system::RebootCommand::PowerOff)
        .map_err(|e| Failure::die(format!("softdog: reboot(2) failed: {e}")))?;
    Ok(0)
}
