//! Running commands on a node: the only module that starts processes.
//!
//! A [`Command`] is an argv vector plus, optionally, a secret for its stdin and a timeout.
//! A [`Host`] runs it: [`LocalHost`] on this machine (duct), [`SshHost`] on another node (ssh2,
//! key or first-contact password auth, pinned host keys), [`PeerHost`] on another member of this
//! Proxmox cluster (OpenSSH with the cluster's keys, as Proxmox does), [`DryRunHost`] records
//! what would run. Scenario code is written
//! against `&dyn Host`, so the same code runs for real, as a dry run and in tests.
//!
//! Quoting happens once, at the SSH boundary ([`quote`]); secrets travel over stdin only.
//! Files are written through a host too, crash-safely: [`Command::write_file`] (`write.rs`).

mod dry_run;
mod local;
#[cfg(feature = "cluster")]
mod peer;
pub mod quote;
#[cfg(feature = "cluster")]
mod ssh;
mod write;

use std::fmt;
use std::time::Duration;

use thiserror::Error;

pub use dry_run::DryRunHost;
pub use local::LocalHost;
#[cfg(feature = "cluster")]
pub use peer::PeerHost;
#[cfg(feature = "cluster")]
pub use ssh::{scan_host_key, HostKeyPolicy, ScannedKey, SshAuth, SshHost, SshTarget};
pub use write::{ensure_file, swap_file, write_local_file, CHANGED_STATUS, NEW_FILE};

use crate::settings::Secret;

/// The PATH every command runs with, whatever the caller's environment holds.
pub const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Default limit for one command; long jobs (restores, formats) set their own.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// A command to run: program, arguments, optional stdin, timeout.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    argv: Vec<String>,
    stdin: Option<Stdin>,
    timeout: Duration,
    changes_state: bool,
}

/// What a command reads: a secret (never shown) or plain data such as a file's new content
/// (shown by a dry run, so the administrator sees exactly what would be written).
#[derive(Clone, PartialEq, Eq)]
enum Stdin {
    Secret(Secret),
    Data(String),
}

impl Command {
    /// A command that changes the node (the default): a dry run only records it. Outside this
    /// module commands are argv vectors ([`Command::from_argv`], [`Command::query_argv`]).
    fn new(program: impl Into<String>) -> Self {
        Self { argv: vec![program.into()], stdin: None, timeout: DEFAULT_TIMEOUT, changes_state: true }
    }

    /// A read-only command (a status query): a dry run may still run it, to plan from real state.
    fn query(program: impl Into<String>) -> Self {
        Self { changes_state: false, ..Self::new(program) }
    }

    fn arg(mut self, arg: impl Into<String>) -> Self {
        self.argv.push(arg.into());
        self
    }

    fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.argv.extend(args.into_iter().map(Into::into));
        self
    }

    /// Feeds `secret` (and a newline) to the command's stdin; it never appears in argv or logs.
    pub fn stdin_secret(mut self, secret: &Secret) -> Self {
        self.stdin = Some(Stdin::Secret(secret.clone()));
        self
    }

    /// Feeds `data` as it is to the command's stdin (not for secrets: a dry run prints it).
    pub fn stdin_data(mut self, data: impl Into<String>) -> Self {
        self.stdin = Some(Stdin::Data(data.into()));
        self
    }

    /// A state-changing command from a whole argv (`argv[0]` is the program).
    pub fn from_argv(argv: &[&str]) -> Self {
        let (program, args) = argv.split_first().expect("an argv names a program");
        Self::new(*program).args(args.iter().copied())
    }

    /// A read-only command from a whole argv.
    pub fn query_argv(argv: &[&str]) -> Self {
        Self { changes_state: false, ..Self::from_argv(argv) }
    }

    /// The plain data this command reads on stdin (`None` for no stdin or a secret).
    pub fn data(&self) -> Option<&str> {
        match &self.stdin {
            Some(Stdin::Data(d)) => Some(d),
            _ => None,
        }
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    pub fn changes_state(&self) -> bool {
        self.changes_state
    }

    /// `argv` run in place of this command: same stdin, same kind; `extra` more time (for the
    /// client that carries the command to another node).
    #[cfg(feature = "cluster")]
    fn carried_by(&self, argv: Vec<String>, extra: Duration) -> Command {
        Command {
            argv,
            stdin: self.stdin.clone(),
            timeout: self.timeout + extra,
            changes_state: self.changes_state,
        }
    }

    fn stdin_bytes(&self) -> Option<Vec<u8>> {
        match &self.stdin {
            Some(Stdin::Secret(s)) => Some(format!("{}\n", s.expose()).into_bytes()),
            Some(Stdin::Data(d)) => Some(d.clone().into_bytes()),
            None => None,
        }
    }

    fn timeout_value(&self) -> Duration {
        self.timeout
    }
}

/// The shell line another node runs for `cmd` over SSH (the one place argv becomes text): a
/// clean environment as [`LocalHost`] gives, and coreutils' `timeout`, which ends the remote
/// command itself (closing the connection would not).
#[cfg(feature = "cluster")]
fn remote_line(cmd: &Command) -> String {
    format!(
        "env -u IFS -u ENV -u BASH_ENV -u CDPATH PATH={SAFE_PATH} LC_ALL=C timeout --kill-after=5 {:.3}s {}",
        cmd.timeout.as_secs_f64().max(0.001),
        quote::join(cmd.argv())
    )
}

/// The command as a shell line (what an administrator would type); the secret is not shown.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.write_label().unwrap_or_else(|| quote::join(&self.argv)))?;
        match &self.stdin {
            Some(Stdin::Secret(_)) => f.write_str(" <<< (secret on stdin)")?,
            Some(Stdin::Data(d)) => write!(f, " <<< ({} bytes on stdin)", d.len())?,
            None => {}
        }
        Ok(())
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Command({self})")
    }
}

/// What a finished command left behind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// Exit code; `None` when a signal ended the command.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// A node that runs commands.
pub trait Host: fmt::Debug + Send + Sync {
    /// The node's name, used in every message about it.
    fn name(&self) -> &str;

    /// Runs `cmd` and returns its output whatever its exit status (e.g. `pvecm status` exits 2
    /// when not quorate, which callers read as an answer, not a failure).
    fn execute(&self, cmd: &Command) -> Result<Output, HostError>;

    /// Runs `cmd` and fails unless it exits 0.
    fn run(&self, cmd: &Command) -> Result<Output, HostError> {
        let output = self.execute(cmd)?;
        if output.success() {
            Ok(output)
        } else {
            Err(failure(self, cmd, &output))
        }
    }
}

/// The error of `cmd`, which ended with `output` on `host` without success.
fn failure(host: &(impl Host + ?Sized), cmd: &Command, output: &Output) -> HostError {
    HostError::Failed {
        host: host.name().to_string(),
        command: cmd.to_string(),
        status: match output.code {
            Some(code) => format!("exit status {code}"),
            None => "a signal".to_string(),
        },
        stderr: output.stderr.trim().to_string(),
    }
}

/// Whether `address:port` accepts a TCP connection from `host` within 3 s (read-only).
pub fn port_open(host: &dyn Host, address: &str, port: u16) -> Result<bool, HostError> {
    let probe = format!("exec 3<>/dev/tcp/{address}/{port}");
    Ok(host.execute(&Command::query("timeout").args(["3", "bash", "-c", &probe]))?.success())
}

/// Whether `host` has the IPv4 address `ip` on any interface (e.g. a keepalived VIP).
pub fn holds_address(host: &dyn Host, ip: &str) -> Result<bool, HostError> {
    let addrs = host.run(&Command::query("ip").args(["-o", "-4", "addr", "show"]))?.stdout;
    Ok(addrs.contains(&format!(" {ip}/")))
}

/// Who else answers for `ip` on `interface`'s network: ARP duplicate address detection
/// (`arping -D` of iputils-arping, sent from 0.0.0.0, so it works before this node has an
/// address there). `Some(MAC)` of a device that has the address, `None` when nobody answered.
pub fn address_owner(host: &dyn Host, interface: &str, ip: &str) -> Result<Option<String>, HostError> {
    let probe = Command::query("arping").args(["-D", "-c", "2", "-w", "3", "-I", interface, ip]);
    let output = host.execute(&probe)?;
    match (output.code, replier(&output.stdout)) {
        (Some(0), _) => Ok(None),
        (Some(1), Some(mac)) => Ok(Some(mac)),
        _ => Err(failure(host, &probe, &output)),
    }
}

/// The MAC address in arping's `Unicast reply from 10.254.1.2 [02:CA:5E:01:02:00]  0.6ms`.
fn replier(stdout: &str) -> Option<String> {
    let line = stdout.lines().find(|l| l.contains(" reply from "))?;
    let (_, rest) = line.split_once('[')?;
    Some(rest.split_once(']')?.0.to_string())
}

/// Leaves an empty mark file at `path` on `host` (its directory made as needed): the
/// toolkit's marks say something about a node by their presence alone.
pub fn set_mark(host: &dyn Host, path: &str) -> Result<(), HostError> {
    host.run(&Command::from_argv(&["install", "-D", "-m", "0644", "/dev/null", path]))?;
    Ok(())
}

/// Removes the mark file at `path` on `host` (nothing when there is none).
pub fn clear_mark(host: &dyn Host, path: &str) -> Result<(), HostError> {
    host.run(&Command::from_argv(&["rm", "-f", path]))?;
    Ok(())
}

/// Whether `path` is a mount point on `host`, read from /proc/mounts (never `stat`: a MooseFS
/// mount whose master is down blocks it).
pub fn is_mounted(host: &dyn Host, path: &str) -> Result<bool, HostError> {
    let mounts = host.run(&Command::query("cat").arg("/proc/mounts"))?.stdout;
    Ok(mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(path)))
}

/// Why a command did not run to success. Every variant names the host and the command.
#[derive(Debug, Error)]
pub enum HostError {
    #[error("`{command}` on {host} failed with {status} - {}", if stderr.is_empty() { "no stderr" } else { stderr.as_str() })]
    Failed { host: String, command: String, status: String, stderr: String },
    #[error("`{command}` on {host} timed out after {}s", after.as_secs())]
    Timeout { host: String, command: String, after: Duration },
    #[error("cannot start `{command}` on {host} - {reason}")]
    Spawn { host: String, command: String, reason: std::io::Error },
    #[error("cannot connect to {host} - {reason}")]
    Connect { host: String, reason: String },
    #[error("host key of {host} is not in {known_hosts}; refusing to connect (pin it first)")]
    HostKeyUnknown { host: String, known_hosts: String },
    #[error("host key of {host} does not match the one pinned in {known_hosts}; refusing to connect (the node was reinstalled, or someone is impersonating it)")]
    HostKeyChanged { host: String, known_hosts: String },
    #[error("cannot log in to {host} as {user} with {key} - {reason}")]
    Auth { host: String, user: String, key: String, reason: String },
    #[error("`{command}` on {host}: ssh session failed - {reason}")]
    Session { host: String, command: String, reason: String },
}
