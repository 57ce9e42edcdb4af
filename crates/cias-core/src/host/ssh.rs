//! Commands on another node over SSH (ssh2): key authentication only, the host key checked
//! against a pinned known_hosts file, never a prompt.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ssh2::{CheckResult, KnownHostFileKind, Session};

use super::{quote, Command, Host, HostError, Output, SAFE_PATH};

/// How to reach a node.
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// The node's name, for messages.
    pub name: String,
    /// Address or resolvable name.
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Private key (OpenSSH format, no passphrase: cron and keepalived run without a person).
    pub key: PathBuf,
    /// Pinned host keys, OpenSSH known_hosts format.
    pub known_hosts: PathBuf,
    pub connect_timeout: Duration,
}

impl SshTarget {
    /// Root on port 22 with a 10 s connect timeout.
    pub fn root(name: &str, address: &str, key: PathBuf, known_hosts: PathBuf) -> Self {
        Self {
            name: name.into(),
            address: address.into(),
            port: 22,
            user: "root".into(),
            key,
            known_hosts,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// An authenticated SSH session to one node; commands run one at a time over it.
pub struct SshHost {
    target: SshTarget,
    session: Mutex<Session>,
}

impl std::fmt::Debug for SshHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SshHost({}@{}:{})", self.target.user, self.target.address, self.target.port)
    }
}

impl SshHost {
    /// Connects, checks the host key against the pinned file, and logs in with the key.
    pub fn connect(target: SshTarget) -> Result<Self, HostError> {
        let connect_err = |reason: String| HostError::Connect { host: target.name.clone(), reason };
        let addr = (target.address.as_str(), target.port)
            .to_socket_addrs()
            .map_err(|e| connect_err(format!("cannot resolve {} - {e}", target.address)))?
            .next()
            .ok_or_else(|| connect_err(format!("{} has no address", target.address)))?;
        let tcp = TcpStream::connect_timeout(&addr, target.connect_timeout)
            .map_err(|e| connect_err(format!("{addr} - {e}")))?;
        let mut session = Session::new().map_err(|e| connect_err(e.to_string()))?;
        session.set_tcp_stream(tcp);
        session.set_timeout(duration_ms(target.connect_timeout));
        session.handshake().map_err(|e| connect_err(format!("ssh handshake - {e}")))?;
        check_host_key(&session, &target)?;
        session.userauth_pubkey_file(&target.user, None, &target.key, None).map_err(|e| HostError::Auth {
            host: target.name.clone(),
            user: target.user.clone(),
            key: target.key.display().to_string(),
            reason: e.message().to_string(),
        })?;
        Ok(Self { target, session: Mutex::new(session) })
    }

    fn session_err(&self, cmd: &Command) -> impl Fn(String) -> HostError + '_ {
        let command = cmd.to_string();
        move |reason| HostError::Session { host: self.target.name.clone(), command: command.clone(), reason }
    }
}

fn check_host_key(session: &Session, target: &SshTarget) -> Result<(), HostError> {
    let known_hosts = target.known_hosts.display().to_string();
    let unknown =
        || HostError::HostKeyUnknown { host: target.name.clone(), known_hosts: known_hosts.clone() };
    let (key, _) = session.host_key().ok_or_else(unknown)?;
    let mut pinned = session.known_hosts().map_err(|_| unknown())?;
    if !target.known_hosts.exists() {
        return Err(unknown());
    }
    pinned.read_file(&target.known_hosts, KnownHostFileKind::OpenSSH).map_err(|e| HostError::Connect {
        host: target.name.clone(),
        reason: format!("cannot read {known_hosts} - {e}"),
    })?;
    match pinned.check_port(&target.address, target.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(HostError::HostKeyChanged { host: target.name.clone(), known_hosts }),
        CheckResult::NotFound | CheckResult::Failure => Err(unknown()),
    }
}

fn duration_ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl Host for SshHost {
    fn name(&self) -> &str {
        &self.target.name
    }

    fn execute(&self, cmd: &Command) -> Result<Output, HostError> {
        let fail = self.session_err(cmd);
        let session = self.session.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // The remote side runs a shell line: the one place argv becomes text. coreutils'
        // `timeout` ends the remote command itself (closing the channel would not).
        let limit = cmd.timeout_value();
        let line = format!(
            "env -u IFS -u ENV -u BASH_ENV -u CDPATH PATH={SAFE_PATH} LC_ALL=C timeout --kill-after=5 {:.3}s {}",
            limit.as_secs_f64().max(0.001),
            quote::join(cmd.argv())
        );
        let started = Instant::now();
        let timed_out =
            || HostError::Timeout { host: self.target.name.clone(), command: cmd.to_string(), after: limit };
        session.set_blocking(true);
        session.set_timeout(duration_ms(self.target.connect_timeout));
        let mut channel = session.channel_session().map_err(|e| fail(e.to_string()))?;
        channel.exec(&line).map_err(|e| fail(e.to_string()))?;
        if let Some(bytes) = cmd.stdin_bytes() {
            channel.write_all(&bytes).map_err(|e| fail(format!("writing stdin - {e}")))?;
        }
        channel.send_eof().map_err(|e| fail(e.to_string()))?;

        // Read stdout and stderr together so a chatty stream never stalls the other.
        session.set_blocking(false);
        // Backstop in case the remote `timeout` cannot act (e.g. the node hangs).
        let deadline = started + limit + Duration::from_secs(10);
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut buf = [0u8; 16 * 1024];
        loop {
            let mut progressed = false;
            for (stream_id, sink) in [(0, &mut stdout), (1, &mut stderr)] {
                match channel.stream(stream_id).read(&mut buf) {
                    Ok(0) => {}
                    Ok(n) => {
                        sink.extend_from_slice(&buf[..n]);
                        progressed = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(fail(format!("reading output - {e}"))),
                }
            }
            if channel.eof() && !progressed {
                break;
            }
            if Instant::now() > deadline {
                let _ = channel.close();
                return Err(timed_out());
            }
            if !progressed {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        session.set_blocking(true);
        channel.wait_close().map_err(|e| fail(e.to_string()))?;
        let code = match channel.exit_signal().ok().and_then(|s| s.exit_signal) {
            Some(_) => None,
            None => Some(channel.exit_status().map_err(|e| fail(e.to_string()))?),
        };
        // 124 is `timeout`'s answer when the limit struck; after --kill-after it dies of KILL.
        if matches!(code, Some(124) | None) && started.elapsed() >= limit {
            return Err(timed_out());
        }
        Ok(Output {
            code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }
}
