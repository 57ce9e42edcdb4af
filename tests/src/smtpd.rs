//! A real SMTP server on 127.0.0.1: Debian's aiosmtpd (python3-aiosmtpd) storing every message
//! in a Maildir, optionally offering STARTTLS with a throw-away self-signed certificate.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;
pub use xtask::lab::smtp::Mail;

/// An aiosmtpd child process; killed when dropped.
#[derive(Debug)]
pub struct Smtpd {
    dir: TempDir,
    port: u16,
    child: duct::Handle,
}

impl Smtpd {
    /// A plain SMTP server (no STARTTLS), like a local relay on port 25.
    pub fn start() -> Result<Self> {
        Self::spawn(false)
    }

    /// A server that offers STARTTLS with a self-signed certificate and refuses mail until the
    /// client has switched to TLS: a delivered message proves the client used STARTTLS.
    pub fn start_tls_required() -> Result<Self> {
        Self::spawn(true)
    }

    fn spawn(tls: bool) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("cias-smtpd-").tempdir()?;
        // aiosmtpd's Mailbox creates new/cur/tmp only when it creates the Maildir itself.
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(dir.path().join("maildir").join(sub))?;
        }
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let listen = format!("127.0.0.1:{port}");
        let maildir = dir.path().join("maildir").display().to_string();
        // Debian's python, where python3-aiosmtpd lives (PATH may find another).
        let mut argv = vec!["-m", "aiosmtpd", "--nosetuid", "--listen", &listen];
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());
        if tls {
            self_signed_certificate(&cert, &key)?;
            argv.extend(["--tlscert", &cert_arg, "--tlskey", &key_arg]);
        }
        argv.extend(["--class", "aiosmtpd.handlers.Mailbox", &maildir]);
        let child = duct::cmd("/usr/bin/python3", &argv)
            .stderr_path(dir.path().join("smtpd.log"))
            .stdout_null()
            .unchecked()
            .start()
            .context("starting aiosmtpd (is python3-aiosmtpd installed? cargo xtask test does it)")?;
        let server = Self { dir, port, child };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(out) = self.child.try_wait()? {
                bail!("aiosmtpd exited with {:?}: {}", out.status, self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("aiosmtpd did not listen on port {} within 20 s: {}", self.port, self.log())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("smtpd.log")).unwrap_or_default()
    }

    /// Every message stored so far.
    pub fn messages(&self) -> Result<Vec<Mail>> {
        let mut mails = Vec::new();
        let new: PathBuf = self.dir.path().join("maildir").join("new");
        for entry in std::fs::read_dir(&new)? {
            let entry = entry?;
            let raw = String::from_utf8_lossy(&std::fs::read(entry.path())?).into_owned();
            mails.push(Mail { raw, received: entry.metadata()?.modified()? });
        }
        mails.sort_by_key(|m| m.received);
        Ok(mails)
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn self_signed_certificate(cert: &std::path::Path, key: &std::path::Path) -> Result<()> {
    duct::cmd!(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=relay.invalid",
        "-keyout",
        key,
        "-out",
        cert
    )
    .stdout_null()
    .stderr_null()
    .run()
    .context("openssl req (is openssl installed?)")?;
    Ok(())
}
