//! The stand-in's `watchdog-mux` and its softdog, on a socket in a temp dir with a watchdog
//! second of 100 ms (60 s client timeout = 6 s, 10 s device timeout = 1 s). Under that test
//! timing the softdog only reports the reset it would do.
#![allow(clippy::disallowed_methods)]

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use cias_core::watchdog::Watchdog;

const SECOND: Duration = Duration::from_millis(100);

struct Mux {
    dir: tempfile::TempDir,
    child: Child,
}

impl Mux {
    fn start() -> Mux {
        let dir = tempfile::tempdir().unwrap();
        let mux = Mux::spawn(dir);
        let socket = mux.socket();
        wait_for("the socket", Duration::from_secs(5), || socket.exists());
        mux
    }

    fn spawn(dir: tempfile::TempDir) -> Mux {
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_pve-standin"))
            .arg("watchdog-mux")
            .env("PVE_STANDIN_WATCHDOG_RUN", dir.path())
            .env("PVE_STANDIN_WATCHDOG_SECOND_MS", SECOND.as_millis().to_string())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        Mux { dir, child }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("watchdog-mux.sock")
    }

    fn active(&self) -> bool {
        self.dir.path().join("watchdog-mux.active").is_dir()
    }

    /// What the multiplexer and its softdog printed.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap()
    }

    fn wait_log(&self, line: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        wait_for(line, limit, || self.log().lines().any(|l| l == line));
        start.elapsed()
    }

    fn terminate(&mut self) -> i32 {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        self.child.wait().unwrap().code().unwrap()
    }
}

impl Drop for Mux {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        sleep(Duration::from_millis(20));
    }
}

const DRIVER: &str = "Watchdog driver 'Software Watchdog', version 0";
const RESET: &str = "softdog: Initiating system reboot";

#[test]
fn a_client_that_feeds_and_disarms_leaves_the_node_running() {
    let mut mux = Mux::start();
    let mut client = UnixStream::connect(mux.socket()).unwrap();
    wait_for("the active marker", Duration::from_secs(2), || mux.active());
    for _ in 0..20 {
        client.write_all(b"\0").unwrap();
        sleep(SECOND * 2);
    }
    client.write_all(b"V").unwrap();
    drop(client);
    wait_for("the marker gone", Duration::from_secs(2), || !mux.active());
    // The core's client the same way: connect, then a clean stop.
    Watchdog::connect(mux.socket()).unwrap().disarm().unwrap();
    sleep(SECOND * 30);
    assert_eq!(mux.terminate(), 0);
    sleep(SECOND * 15);
    assert_eq!(mux.log(), format!("{DRIVER}\ngot terminate request\nclean exit\n"));
    assert!(!mux.socket().exists());
}

#[test]
fn a_client_closing_without_the_magic_byte_resets_the_node_after_the_device_timeout() {
    let mux = Mux::start();
    let mut client = Watchdog::connect(mux.socket()).unwrap();
    client.feed().unwrap();
    sleep(SECOND * 3);
    drop(client);
    let after = mux.wait_log(RESET, SECOND * 30);
    assert!(after >= SECOND * 8 && after <= SECOND * 13, "reset {after:?} after the close");
    assert_eq!(
        mux.log(),
        format!(
            "{DRIVER}\nclient did not stop watchdog - disable watchdog updates\n\
             exit watchdog-mux with active connections\nwatchdog: watchdog0: watchdog did not stop!\n\
             {RESET}\nsoftdog: test timing - the node stays on\n"
        )
    );
    assert!(mux.active(), "the marker stays: a restarted multiplexer refuses to run");
}

#[test]
fn a_silent_client_is_warned_then_resets_the_node() {
    let mux = Mux::start();
    let mut client = UnixStream::connect(mux.socket()).unwrap();
    mux.wait_log("client watchdog is about to expire", SECOND * 60);
    client.write_all(b"\0").unwrap();
    mux.wait_log("client watchdog was updated before expiring", SECOND * 5);
    let silent = mux.wait_log("client watchdog expired - disable watchdog updates", SECOND * 80);
    assert!(silent >= SECOND * 58, "expired after {silent:?}");
    mux.wait_log(RESET, SECOND * 15);
    drop(client);
}

#[test]
fn a_restart_is_refused_while_clients_were_connected() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("watchdog-mux.active")).unwrap();
    let mut mux = Mux::spawn(dir);
    assert_eq!(mux.child.wait().unwrap().code(), Some(1));
    assert_eq!(mux.log(), "watchdog active - unable to restart watchdog-mux\n");
    assert!(!Path::new(&mux.socket()).exists());
}
