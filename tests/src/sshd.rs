//! A real OpenSSH server on 127.0.0.1, with throw-away host and client keys.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cias_core::host::SshTarget;
use tempfile::TempDir;

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
        let dir = tempfile::Builder::new().prefix("cias-sshd-").tempdir()?;
        keygen(&dir.path().join("host_key"))?;
        keygen(&dir.path().join("client_key"))?;
        std::fs::copy(dir.path().join("client_key.pub"), dir.path().join("authorized_keys"))?;
        // sshd insists on its privilege-separation directory.
        std::fs::create_dir_all("/run/sshd")?;
        let port = free_port()?;
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
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
        let server = Self { dir, port, child };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(out) = self.child.try_wait()? {
                bail!("sshd exited with {:?}: {}", out.status, self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("sshd did not listen on port {} within 10 s: {}", self.port, self.log())
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
    duct::cmd!("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cias-test", "-f", path)
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
