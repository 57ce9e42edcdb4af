//! A client of Proxmox VE's `watchdog-mux`, which owns the node's hardware watchdog (softdog
//! by default, 10 s) and keeps it fed only while each of its clients behaves:
//!
//! - every write to the connection feeds the client's timer; a client silent for more than
//!   [`CLIENT_TIMEOUT`] stops the feeding, and the node resets 10 s later;
//! - a connection closed without `V` as its last byte does the same at once;
//! - a connection whose last byte was `V` ("magic close") ends cleanly.
//!
//! So a fence loop that crashes, hangs or is killed resets its node: [`Watchdog`] never writes
//! `V` on drop, only in [`Watchdog::disarm`].

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;

/// The socket `watchdog-mux` serves on every Proxmox VE node.
pub const MUX_SOCKET: &str = "/run/watchdog-mux.sock";

/// How long `watchdog-mux` waits for a client's next write before it lets the node reset.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How often [`Watchdog::feed`] really writes. `watchdog-mux` feeds the hardware only after a
/// whole second without any client traffic, so clients writing every second or faster can starve
/// it (and reset the node); every 5 s is far from both that and [`CLIENT_TIMEOUT`].
pub const FEED_INTERVAL: Duration = Duration::from_secs(5);

/// A write that the multiplexer does not answer within this is a failed write (a hung
/// multiplexer must not hang the fence loop with it).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum WatchdogError {
    #[error("cannot connect to the watchdog multiplexer at {path} - {reason}")]
    Connect { path: PathBuf, reason: std::io::Error },
    #[error("cannot {action} the watchdog at {path} - {reason}")]
    Write { action: &'static str, path: PathBuf, reason: std::io::Error },
}

/// An armed connection to `watchdog-mux`: from [`Watchdog::connect`] on, the node resets unless
/// it is fed or disarmed.
#[derive(Debug)]
pub struct Watchdog {
    stream: UnixStream,
    path: PathBuf,
    last_write: Instant,
    interval: Duration,
}

impl Watchdog {
    /// Connects (the multiplexer counts the connection as the first feed).
    pub fn connect(path: impl AsRef<Path>) -> Result<Watchdog, WatchdogError> {
        let path = path.as_ref().to_path_buf();
        let stream = UnixStream::connect(&path)
            .and_then(|s| s.set_write_timeout(Some(WRITE_TIMEOUT)).map(|()| s))
            .map_err(|source| WatchdogError::Connect { path: path.clone(), reason: source })?;
        Ok(Watchdog { stream, path, last_write: Instant::now(), interval: FEED_INTERVAL })
    }

    /// Feeds the watchdog if [`FEED_INTERVAL`] has passed since the last write: a loop may call
    /// this on every round.
    pub fn feed(&mut self) -> Result<(), WatchdogError> {
        if self.last_write.elapsed() < self.interval {
            return Ok(());
        }
        self.write(b"\0", "feed")?;
        self.last_write = Instant::now();
        Ok(())
    }

    /// Stops the watchdog cleanly (magic close): for a fence loop that stops on purpose.
    pub fn disarm(mut self) -> Result<(), WatchdogError> {
        self.write(b"V", "disarm")
    }

    fn write(&mut self, byte: &[u8], action: &'static str) -> Result<(), WatchdogError> {
        self.stream.write_all(byte).map_err(|source| WatchdogError::Write {
            action,
            path: self.path.clone(),
            reason: source,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::net::UnixListener;

    use super::*;

    /// A listener in a temp dir and a connected client that feeds on every call.
    fn connected() -> (tempfile::TempDir, UnixStream, Watchdog) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog-mux.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let mut client = Watchdog::connect(&path).unwrap();
        client.interval = Duration::ZERO;
        let (server, _) = listener.accept().unwrap();
        (dir, server, client)
    }

    fn everything_sent(mut server: UnixStream) -> Vec<u8> {
        let mut bytes = Vec::new();
        server.read_to_end(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn feeds_then_disarms_with_magic_close() {
        let (_dir, server, mut client) = connected();
        client.feed().unwrap();
        client.feed().unwrap();
        client.disarm().unwrap();
        assert_eq!(everything_sent(server), b"\0\0V");
    }

    #[test]
    fn a_dropped_client_closes_without_the_magic_byte() {
        let (_dir, server, mut client) = connected();
        client.feed().unwrap();
        drop(client);
        assert_eq!(everything_sent(server), b"\0");
    }

    #[test]
    fn feeds_at_most_once_per_interval() {
        let (_dir, server, mut client) = connected();
        client.interval = Duration::from_secs(3600);
        client.feed().unwrap();
        client.feed().unwrap();
        client.disarm().unwrap();
        assert_eq!(everything_sent(server), b"V", "the connection itself was the feed");
    }

    #[test]
    fn errors_name_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.sock");
        let e = Watchdog::connect(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("cannot connect to the watchdog multiplexer at {}", path.display())),
            "{e}"
        );

        let (_dir, server, mut client) = connected();
        drop(server);
        let e = (0..10).find_map(|_| client.feed().err()).expect("a closed peer fails the write");
        assert!(e.to_string().starts_with("cannot feed the watchdog at "), "{e}");
    }
}
