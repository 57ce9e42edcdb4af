//! `watchdog-mux` as Proxmox VE runs it (pve-ha-manager's `src/watchdog-mux.c`): it owns the
//! node's watchdog ([`softdog`], 10 s) and serves clients on `/run/watchdog-mux.sock`. Every
//! write of a client feeds it; a client whose last byte was `V` may close ("magic close"). A
//! client that closes otherwise, or stays silent for more than 60 s, stops the feeding of the
//! device, so the node resets. `/run/watchdog-mux.active` exists while clients are connected, and
//! a multiplexer started while it exists refuses to run. As the original, it feeds the device
//! only after a whole second without client traffic, and prints the same messages.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use crate::softdog::{self, second};
use crate::{Failure, Result};

/// The device's timeout (seconds), set at open.
const WATCHDOG_TIMEOUT: u32 = 10;
/// A client silent for longer than this (seconds) lets the node reset.
const CLIENT_TIMEOUT: u32 = 60;
const CLIENT_WARNING: u32 = CLIENT_TIMEOUT - 10;

#[derive(Debug)]
struct Client {
    /// `None` once closed without the magic byte: it then counts as active for good.
    stream: Option<UnixStream>,
    fed: Instant,
    magic_close: bool,
    warned: bool,
}

/// Where the socket and the marker live: `/run`, or `PVE_STANDIN_WATCHDOG_RUN` in the
/// stand-in's own tests.
fn run_dir() -> PathBuf {
    std::env::var_os("PVE_STANDIN_WATCHDOG_RUN").map_or_else(|| PathBuf::from("/run"), PathBuf::from)
}

pub fn run() -> Result<u8> {
    let dir = run_dir();
    let marker = dir.join("watchdog-mux.active");
    if marker.exists() {
        return Err(Failure::with_code("watchdog active - unable to restart watchdog-mux", 1));
    }
    let device = softdog::open(WATCHDOG_TIMEOUT)?;
    eprintln!("Watchdog driver 'Software Watchdog', version 0");
    let socket = dir.join("watchdog-mux.sock");
    let _ = std::fs::remove_file(&socket);
    let result = UnixListener::bind(&socket)
        .map_err(|e| Failure::with_code(format!("socket bind: {e}"), 1))
        .and_then(|listener| serve(&listener, device, &marker));
    let _ = std::fs::remove_file(&socket);
    result
}

fn serve(listener: &UnixListener, mut device: softdog::Device, marker: &Path) -> Result<u8> {
    let terminate = signal_pipe(&[signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])?;
    let hangup = signal_pipe(&[signal_hook::consts::SIGHUP])?;
    let mut clients: Vec<Client> = Vec::new();
    let mut update_watchdog = true;
    let tick = second();
    loop {
        let ready = wait(&[listener.as_fd(), terminate.as_fd(), hangup.as_fd()], &clients, tick)?;
        if ready.is_empty() && update_watchdog {
            update_watchdog = check_timeouts(&mut clients, tick);
            if update_watchdog {
                device.keepalive();
            }
            continue;
        }
        if !update_watchdog {
            break;
        }
        let mut terminated = false;
        for source in ready {
            match source {
                Ready::Listener => {
                    let (stream, _) =
                        listener.accept().map_err(|e| Failure::with_code(format!("accept: {e}"), 1))?;
                    stream.set_nonblocking(true)?;
                    clients.push(Client {
                        stream: Some(stream),
                        fed: Instant::now(),
                        magic_close: false,
                        warned: false,
                    });
                    let _ = std::fs::DirBuilder::new().mode(0o600).create(marker);
                }
                Ready::Terminate => {
                    drain(&terminate);
                    eprintln!("got terminate request");
                    terminated = true;
                }
                Ready::Hangup => {
                    drain(&hangup);
                    eprintln!("got SIGHUP - ignored");
                }
                Ready::Client(i) => {
                    if !read_client(&mut clients[i])? {
                        update_watchdog = false;
                    }
                }
            }
        }
        // Magic-closed clients are gone; the others stay, as the original keeps them.
        clients.retain(|c| c.stream.is_some() || !c.magic_close);
        if clients.is_empty() {
            let _ = std::fs::remove_dir(marker);
        }
        if terminated {
            break;
        }
    }
    if clients.is_empty() {
        eprintln!("clean exit");
        device.close();
    } else {
        eprintln!("exit watchdog-mux with active connections");
        sync_journal();
    }
    Ok(0)
}

enum Ready {
    Listener,
    Terminate,
    Hangup,
    Client(usize),
}

/// Waits up to one second for the fixed sources (listener, terminate, hangup) and the open
/// clients; what is readable, in that order.
fn wait(fixed: &[BorrowedFd<'_>; 3], clients: &[Client], tick: Duration) -> Result<Vec<Ready>> {
    let open: Vec<usize> = (0..clients.len()).filter(|&i| clients[i].stream.is_some()).collect();
    let mut fds: Vec<PollFd<'_>> =
        fixed.iter().map(|fd| PollFd::from_borrowed_fd(*fd, PollFlags::IN)).collect();
    fds.extend(
        open.iter().filter_map(|&i| clients[i].stream.as_ref()).map(|s| PollFd::new(s, PollFlags::IN)),
    );
    let timeout = Timespec::try_from(tick).map_err(|e| Failure::die(e.to_string()))?;
    match poll(&mut fds, Some(&timeout)) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => return Ok(Vec::new()),
        Err(e) => return Err(Failure::with_code(format!("poll: {e}"), 1)),
    }
    let ready = fds.iter().enumerate().filter(|(_, fd)| !fd.revents().is_empty());
    Ok(ready
        .map(|(n, _)| match n {
            0 => Ready::Listener,
            1 => Ready::Terminate,
            2 => Ready::Hangup,
            _ => Ready::Client(open[n - 3]),
        })
        .collect())
}

/// Reads what a client wrote; false when it closed without the magic byte.
fn read_client(client: &mut Client) -> Result<bool> {
    let Some(stream) = client.stream.as_mut() else { return Ok(true) };
    let mut buf = [0u8; 4096];
    match stream.read(&mut buf) {
        Ok(0) => {
            client.stream = None;
            if !client.magic_close {
                eprintln!("client did not stop watchdog - disable watchdog updates");
                sync_journal();
                return Ok(false);
            }
        }
        Ok(n) => {
            client.magic_close = buf[n - 1] == b'V';
            client.fed = Instant::now();
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(Failure::with_code(format!("read: {e}"), 1)),
    }
    Ok(true)
}

/// Warns about clients silent for 50 s; false once one has been silent for more than 60 s.
fn check_timeouts(clients: &mut [Client], second: Duration) -> bool {
    let mut update = true;
    for client in clients.iter_mut() {
        let silent = client.fed.elapsed();
        if client.warned && silent <= second * CLIENT_WARNING {
            client.warned = false;
            eprintln!("client watchdog was updated before expiring");
        }
        if !client.warned && silent > second * CLIENT_WARNING {
            client.warned = true;
            eprintln!("client watchdog is about to expire");
            sync_journal();
        }
        if silent > second * CLIENT_TIMEOUT {
            update = false;
            eprintln!("client watchdog expired - disable watchdog updates");
        }
    }
    update
}

/// A socket that becomes readable when one of `signals` arrives (instead of its default action).
fn signal_pipe(signals: &[i32]) -> Result<UnixStream> {
    let (read, write) = UnixStream::pair()?;
    for &signal in signals {
        signal_hook::low_level::pipe::register(signal, write.try_clone()?)?;
    }
    read.set_nonblocking(true)?;
    Ok(read)
}

fn drain(mut pipe: &UnixStream) {
    let mut buf = [0u8; 64];
    while matches!(pipe.read(&mut buf), Ok(1..)) {}
}

/// As the original before a reset: the journal written out, without waiting for it.
fn sync_journal() {
    if let Ok(mut child) = Command::new("journalctl").arg("--sync").stderr(Stdio::null()).spawn() {
        std::thread::spawn(move || child.wait());
    }
}
