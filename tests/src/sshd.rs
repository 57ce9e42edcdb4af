//! A real OpenSSH server on 127.0.0.1, with throw-away host and client keys.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cias_core::host::SshTarget;
use tempfile::TempDir;

/// What a test needs of sshd beyond the defaults (key login for root, one ed25519 host key).
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Also serve an ECDSA host key (`host_key_ecdsa`), listed before the ed25519 one.
    pub ecdsa_host_key: bool,
    /// Let root log in with a password. The tests only ever try wrong ones: no account's
    /// password is set or changed.
    pub password_login: bool,
}

/// An sshd child process; killed when dropped.
#[derive(Debug)]
pub struct Sshd {
    dir: TempDir,
    port: u16,
    child: duct::Handle,
}

impl Sshd {
    /// Starts sshd on a free loopback port, accepting root with a fresh ed25519 client key.
    pub fn start() -> Result<Self> {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("cias-sshd-").tempdir()?;
        // sshd takes the first value it reads for a keyword: these come before the defaults.
        let mut extra = String::new();
        if options.ecdsa_host_key {
            keygen_typed(&dir.path().join("host_key_ecdsa"), "ecdsa")?;
            extra += &format!("HostKey {}/host_key_ecdsa\n", dir.path().display());
        }
        if options.password_login {
            extra += "PermitRootLogin yes\nPasswordAuthentication yes\n";
        }
        keygen(&dir.path().join("host_key"))?;
        keygen(&dir.path().join("client_key"))?;
        std::fs::copy(dir.path().join("client_key.pub"), dir.path().join("authorized_keys"))?;
        // sshd insists on its privilege-separation directory.
        std::fs::create_dir_all("/run/sshd")?;
        // A free port can be taken by another test's server between our look and sshd's bind
        // (seen in CI: this test then talked to the other server); a few tries with fresh ports.
        let mut tries = 0;
        loop {
            tries += 1;
            match Self::spawn(&dir, &extra, free_port()?) {
                Ok((child, port)) => return Ok(Self { dir, port, child }),
                Err(e) if tries < 3 => eprintln!("sshd: retrying on another port - {e:#}"),
                Err(e) => return Err(e),
            }
        }
    }

    /// Starts sshd on `port` and waits until its own log says it listens there.
    fn spawn(dir: &tempfile::TempDir, extra: &str, port: u16) -> Result<(duct::Handle, u16)> {
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "{extra}Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 UsePAM no\nStrictModes no\nPidFile {d}/sshd.pid\nUseDNS no\n",
                d = dir.path().display()
            ),
        )?;
        let sshd = which_sshd()?;
        let child = duct::cmd!(sshd, "-D", "-e", "-f", &config)
            .stderr_path(dir.path().join("sshd.log"))
            .stdout_null()
            .unchecked()
            .start()
            .context("starting sshd (is openssh-server installed?)")?;
        let log = || std::fs::read_to_string(dir.path().join("sshd.log")).unwrap_or_default();
        let listening = format!("Server listening on 127.0.0.1 port {port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if log().contains(&listening) && TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok((child, port));
            }
            if let Some(out) = child.try_wait()? {
                bail!("sshd exited with {:?}: {}", out.status, log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        bail!("sshd did not listen on port {port} within 10 s: {}", log())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// sshd's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// `ssh-keygen -lf` of the server's ed25519 host key: its `SHA256:...` fingerprint.
    pub fn fingerprint(&self) -> Result<String> {
        fingerprint_of(&self.dir.path().join("host_key.pub"))
    }

    /// A known_hosts file pinning this server's real host key.
    pub fn pinned_known_hosts(&self) -> Result<PathBuf> {
        let key = std::fs::read_to_string(self.dir.path().join("host_key.pub"))?;
        self.known_hosts_with("pinned", &key)
    }

    /// A known_hosts file holding `public_key` (an OpenSSH `.pub` line) for this server.
    pub fn known_hosts_with(&self, name: &str, public_key: &str) -> Result<PathBuf> {
        let mut fields = public_key.split_whitespace();
        let (kind, key) = (fields.next().context("key type")?, fields.next().context("key")?);
        let file = self.dir.path().join(format!("known_hosts.{name}"));
        std::fs::write(&file, format!("[127.0.0.1]:{} {kind} {key}\n", self.port))?;
        Ok(file)
    }

    /// Where a client logs in as root with the throw-away key, checking `known_hosts`.
    pub fn target(&self, known_hosts: PathBuf) -> SshTarget {
        let mut target =
            SshTarget::root("sshtest", "127.0.0.1", self.dir.path().join("client_key"), known_hosts);
        target.port = self.port;
        target.connect_timeout = Duration::from_secs(5);
        target
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Generates an ed25519 key pair at `path` and `path.pub`.
pub fn keygen(path: &Path) -> Result<()> {
    keygen_typed(path, "ed25519")
}

/// Generates a key pair of type `kind` (`ed25519`, `ecdsa`, `rsa`) at `path` and `path.pub`.
pub fn keygen_typed(path: &Path, kind: &str) -> Result<()> {
    duct::cmd!("ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "cias-test", "-f", path)
        .stdout_null()
        .run()
        .with_context(|| format!("ssh-keygen {}", path.display()))?;
    Ok(())
}

fn which_sshd() -> Result<&'static str> {
    ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("sshd not found: install openssh-server (cargo xtask test does)")
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The `SHA256:...` fingerprint `ssh-keygen -lf` prints for a public key file.
pub fn fingerprint_of(public_key: &Path) -> Result<String> {
    let out = duct::cmd!("ssh-keygen", "-l", "-E", "sha256", "-f", public_key).read()?;
    out.split_whitespace().nth(1).map(str::to_string).with_context(|| format!("ssh-keygen -lf said {out:?}"))
}
