//! Commands on another node over SSH (ssh2), never a prompt.
//!
//! Login is by key (every session once a node is set up) or by password (first contact in the
//! extension scenario: the installer logs in to the master once with the root password the
//! administrator gave, installs its own key, and pins the master's host key). The host key is
//! checked against a pinned known_hosts file or, on first contact, against the fingerprint the
//! administrator confirmed ([`scan_host_key`] reads it to show it).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use ssh2::{CheckResult, HashType, KnownHostFileKind, MethodType, Session};

use super::{remote_line, Command, Host, HostError, Output};
use crate::settings::Secret;

/// Host key algorithms, best first. ed25519 leads so that the key shown is the one
/// administrators read with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` and the one the
/// lab pins. Set here rather than left to libssh2, whose order varies between versions and puts
/// host certificates (whose fingerprint is not the key's) first; names it lacks are skipped.
const HOST_KEY_ORDER: &str =
    "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256,ssh-rsa";

/// How to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshAuth {
    /// A private key file (OpenSSH format, no passphrase: cron and keepalived run without a
    /// person).
    Key(PathBuf),
    /// A password (first contact only). `Debug` shows `Secret(***)`.
    Password(Secret),
}

/// Which host key to trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// The key pinned for the target's address and port in this OpenSSH known_hosts file.
    Pinned(PathBuf),
    /// First contact: only a key whose OpenSSH SHA256 fingerprint (`SHA256:` and unpadded
    /// base64, as `ssh-keygen -lf` prints it) is this one.
    ExpectFingerprint(String),
}

/// How to reach a node.
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// The node's name, for messages.
    pub name: String,
    /// Address or resolvable name.
    pub address: String,
    pub port: u16,
    pub user: String,
    pub auth: SshAuth,
    pub host_key: HostKeyPolicy,
    pub connect_timeout: Duration,
}

impl SshTarget {
    /// Root on port 22 with `key`, the host key pinned in `known_hosts`, a 10 s connect timeout.
    pub fn root(name: &str, address: &str, key: PathBuf, known_hosts: PathBuf) -> Self {
        Self {
            name: name.into(),
            address: address.into(),
            port: 22,
            user: "root".into(),
            auth: SshAuth::Key(key),
            host_key: HostKeyPolicy::Pinned(known_hosts),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A server's host key, read before logging in (see [`scan_host_key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedKey {
    address: String,
    port: u16,
    /// The public key blob as the server sent it (SSH wire format, starting with its type).
    blob: Vec<u8>,
    fingerprint: String,
}

impl ScannedKey {
    /// `SHA256:...`, exactly as `ssh-keygen -lf` prints it for this key.
    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// The key type, e.g. `ssh-ed25519`.
    pub fn key_type(&self) -> &str {
        // The blob starts with the type name as an SSH string: a 4-byte big-endian length, then
        // the name.
        let len = self.blob.get(..4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
        self.blob.get(4..4 + len).and_then(|name| std::str::from_utf8(name).ok()).unwrap_or("unknown")
    }

    /// An OpenSSH known_hosts line pinning this key for `names` (host names or addresses; none:
    /// the scanned address), each written `[name]:port` unless the port is 22, as ssh and
    /// libssh2 look them up.
    pub fn known_hosts_line(&self, names: &[&str]) -> String {
        let scanned = [self.address.as_str()];
        let hosts: Vec<String> = (if names.is_empty() { &scanned[..] } else { names })
            .iter()
            .map(|n| if self.port == 22 { n.to_string() } else { format!("[{n}]:{}", self.port) })
            .collect();
        format!("{} {} {}", hosts.join(","), self.key_type(), STANDARD.encode(&self.blob))
    }

    /// Appends [`Self::known_hosts_line`] to `known_hosts` (created if missing) unless it is
    /// already there. Appending trusts this key besides any other pinned for the names.
    pub fn append_to(&self, known_hosts: &Path, names: &[&str]) -> std::io::Result<()> {
        let line = self.known_hosts_line(names);
        let context =
            |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", known_hosts.display()));
        let existing = match std::fs::read_to_string(known_hosts) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
            Err(e) => return Err(context(e)),
        };
        if existing.lines().any(|l| l.trim() == line) {
            return Ok(());
        }
        let separator = if existing.is_empty() || existing.ends_with('\n') { "" } else { "\n" };
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).open(known_hosts).map_err(context)?;
        file.write_all(format!("{separator}{line}\n").as_bytes()).map_err(context)
    }
}

/// Connects to `address:port`, reads the server's host key without logging in, and hangs up:
/// the installer shows the fingerprint to the administrator, then pins the key.
pub fn scan_host_key(address: &str, port: u16, timeout: Duration) -> Result<ScannedKey, HostError> {
    let session = handshake(address, address, port, timeout)?;
    let scanned = scanned_key(&session, address, address, port)?;
    let _ = session.disconnect(None, "host key scanned", None);
    Ok(scanned)
}

/// The key `session`'s server showed; `host` names it in messages.
fn scanned_key(session: &Session, host: &str, address: &str, port: u16) -> Result<ScannedKey, HostError> {
    let missing = || HostError::Connect { host: host.into(), reason: "the server sent no host key".into() };
    let (blob, _) = session.host_key().ok_or_else(missing)?;
    let hash = session.host_key_hash(HashType::Sha256).ok_or_else(missing)?;
    Ok(ScannedKey {
        address: address.into(),
        port,
        blob: blob.to_vec(),
        fingerprint: format!("SHA256:{}", STANDARD_NO_PAD.encode(hash)),
    })
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
    /// Connects, checks the host key as `target.host_key` says, and logs in.
    pub fn connect(target: SshTarget) -> Result<Self, HostError> {
        let session = handshake(&target.name, &target.address, target.port, target.connect_timeout)?;
        check_host_key(&session, &target)?;
        log_in(&session, &target)?;
        Ok(Self { target, session: Mutex::new(session) })
    }

    fn session_err(&self, cmd: &Command) -> impl Fn(String) -> HostError + '_ {
        let command = cmd.to_string();
        move |reason| HostError::Session { host: self.target.name.clone(), command: command.clone(), reason }
    }
}

/// TCP connection and SSH handshake; `name` is the host as messages call it.
fn handshake(name: &str, address: &str, port: u16, timeout: Duration) -> Result<Session, HostError> {
    let connect_err = |reason: String| HostError::Connect { host: name.into(), reason };
    let addr = (address, port)
        .to_socket_addrs()
        .map_err(|e| connect_err(format!("cannot resolve {address} - {e}")))?
        .next()
        .ok_or_else(|| connect_err(format!("{address} has no address")))?;
    let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|e| connect_err(format!("{addr} - {e}")))?;
    let mut session = Session::new().map_err(|e| connect_err(e.to_string()))?;
    session.set_tcp_stream(tcp);
    session.set_timeout(duration_ms(timeout));
    session.method_pref(MethodType::HostKey, HOST_KEY_ORDER).map_err(|e| connect_err(e.to_string()))?;
    session.handshake().map_err(|e| connect_err(format!("ssh handshake with {addr} - {e}")))?;
    Ok(session)
}

fn check_host_key(session: &Session, target: &SshTarget) -> Result<(), HostError> {
    match &target.host_key {
        HostKeyPolicy::Pinned(file) => check_pinned(session, target, file),
        HostKeyPolicy::ExpectFingerprint(expected) => {
            let key = scanned_key(session, &target.name, &target.address, target.port)?;
            if key.fingerprint == expected.trim() {
                return Ok(());
            }
            Err(HostError::Connect {
                host: target.name.clone(),
                reason: format!(
                    "its {} host key at {} is {}, but the expected fingerprint is {}; refusing to log in. \
                     Check that this is the right node (on it: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)",
                    key.key_type(),
                    target.address,
                    key.fingerprint,
                    expected.trim()
                ),
            })
        }
    }
}

fn check_pinned(session: &Session, target: &SshTarget, file: &Path) -> Result<(), HostError> {
    let known_hosts = file.display().to_string();
    let unknown =
        || HostError::HostKeyUnknown { host: target.name.clone(), known_hosts: known_hosts.clone() };
    let (key, _) = session.host_key().ok_or_else(unknown)?;
    let mut pinned = session.known_hosts().map_err(|_| unknown())?;
    if !file.exists() {
        return Err(unknown());
    }
    pinned.read_file(file, KnownHostFileKind::OpenSSH).map_err(|e| HostError::Connect {
        host: target.name.clone(),
        reason: format!("cannot read {known_hosts} - {e}"),
    })?;
    match pinned.check_port(&target.address, target.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(HostError::HostKeyChanged { host: target.name.clone(), known_hosts }),
        CheckResult::NotFound | CheckResult::Failure => Err(unknown()),
    }
}

fn log_in(session: &Session, target: &SshTarget) -> Result<(), HostError> {
    let refused = |with: String, reason: String| HostError::Auth {
        host: target.name.clone(),
        user: target.user.clone(),
        key: with,
        reason,
    };
    match &target.auth {
        SshAuth::Key(key) => session
            .userauth_pubkey_file(&target.user, None, key, None)
            .map_err(|e| refused(format!("key {}", key.display()), e.message().to_string())),
        SshAuth::Password(password) => {
            let with = || "a password".to_string();
            // Ask first: a server without password login would only say "failed".
            let methods =
                session.auth_methods(&target.user).map_err(|e| refused(with(), e.message().to_string()))?;
            if !methods.split(',').any(|m| m == "password") {
                return Err(refused(
                    with(),
                    format!(
                        "the server does not offer password login (it offers: {methods}); allow it in \
                         its sshd_config (PasswordAuthentication yes, and PermitRootLogin yes for root)"
                    ),
                ));
            }
            session
                .userauth_password(&target.user, password.expose())
                .map_err(|e| refused(with(), format!("{}; check the password", e.message())))
        }
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
        let limit = cmd.timeout_value();
        let line = remote_line(cmd);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ed25519_key(port: u16) -> ScannedKey {
        let mut blob = vec![0, 0, 0, 11];
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&[0, 0, 0, 32]);
        blob.extend_from_slice(&[7; 32]);
        ScannedKey { address: "10.254.0.1".into(), port, blob, fingerprint: "SHA256:abc".into() }
    }

    #[test]
    fn known_hosts_lines_carry_the_port_only_when_it_is_not_22() {
        let blob = "AAAAC3NzaC1lZDI1NTE5AAAAIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH";
        assert_eq!(
            ed25519_key(22).known_hosts_line(&["10.254.0.1", "pve1"]),
            format!("10.254.0.1,pve1 ssh-ed25519 {blob}")
        );
        assert_eq!(ed25519_key(22).known_hosts_line(&[]), format!("10.254.0.1 ssh-ed25519 {blob}"));
        assert_eq!(
            ed25519_key(2222).known_hosts_line(&["10.254.0.1"]),
            format!("[10.254.0.1]:2222 ssh-ed25519 {blob}")
        );
    }

    #[test]
    fn appending_a_pinned_line_twice_writes_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        std::fs::write(&file, "other ssh-ed25519 AAAA").unwrap();
        let key = ed25519_key(22);
        key.append_to(&file, &["pve1"]).unwrap();
        key.append_to(&file, &["pve1"]).unwrap();
        let line = key.known_hosts_line(&["pve1"]);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("other ssh-ed25519 AAAA\n{line}\n"));
    }

    #[test]
    fn a_password_never_shows_in_debug() {
        let mut target = SshTarget::root("master", "10.254.0.1", "/k".into(), "/kh".into());
        target.auth = SshAuth::Password(Secret::new("hunter2"));
        let shown = format!("{target:?}");
        assert!(!shown.contains("hunter2") && shown.contains("Password(Secret(***))"), "{shown}");
    }
}
