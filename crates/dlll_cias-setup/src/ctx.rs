//! What every step works with: the node (real or dry run), the master when extending, and the
//! decisions taken (settings, secrets, node record).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use cias_core::host::{Command, Host, Output};
use cias_core::settings::{ClusterSettings, Secret, Secrets};
use cias_core::templates::Templates;

use crate::node::NodeRecord;

pub struct Ctx {
    /// This node; a `DryRunHost` in a dry run.
    pub local: Arc<dyn Host>,
    /// The master, when extending (logged in during planning).
    pub master: Option<Arc<dyn Host>>,
    pub dry_run: bool,
    pub settings: ClusterSettings,
    pub secrets: Secrets,
    pub node: NodeRecord,
    /// The master's root password (extension), needed only until key login is installed.
    pub master_root_password: Option<Secret>,
    pub templates: Templates,
    /// First node: the router's delivered archive, copied into the management directory.
    pub router_archive: Option<std::path::PathBuf>,
    /// Extension: the master's host key line to pin (scanned and confirmed while planning).
    pub master_known_host: Option<String>,
    /// Timeline of this run: (step title, how long it took).
    pub timings: Vec<(String, Duration)>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ctx({})", self.node.name)
    }
}

impl Ctx {
    /// Runs a state-changing command on this node; it must succeed.
    pub fn run(&self, argv: &[&str]) -> Result<Output> {
        Ok(self.local.run(&Command::from_argv(argv))?)
    }

    /// Runs a read-only command on this node (also in a dry run); it must succeed.
    pub fn query(&self, argv: &[&str]) -> Result<String> {
        Ok(self.local.run(&Command::query_argv(argv))?.stdout)
    }

    /// Runs a read-only command and returns whether it succeeded (a test, not a failure).
    pub fn test(&self, argv: &[&str]) -> Result<bool> {
        Ok(self.local.execute(&Command::query_argv(argv))?.success())
    }

    /// Writes a file on this node, crash-safely (shown in full by a dry run).
    pub fn write(&self, path: &str, text: &str, mode: &str) -> Result<()> {
        self.local.run(&Command::write_file(path, text, mode))?;
        Ok(())
    }

    /// Like [`Ctx::write`], replacing the file only if `check` passes on the new content
    /// (`cias_core::host::NEW_FILE` in it stands for that): a bad config never replaces a good one.
    pub fn write_checked(&self, path: &str, text: &str, mode: &str, check: &[&str]) -> Result<()> {
        self.local.run(&Command::write_file(path, text, mode).checked_by(check))?;
        Ok(())
    }

    /// Writes a file holding passwords (mode 0600, or `mode`; a dry run shows only that it
    /// would).
    pub fn write_secret(&self, path: &str, text: &Secret, mode: &str) -> Result<()> {
        self.local.run(&Command::write_secret_file(path, text, mode))?;
        Ok(())
    }

    /// The master, for extension steps.
    pub fn master(&self) -> Result<&dyn Host> {
        match &self.master {
            Some(m) => Ok(m.as_ref()),
            None => bail!("no connection to the master (extension steps need one)"),
        }
    }

    /// Polls `check` every half second until it holds or `limit` passes. A dry run does not
    /// wait: nothing it waits for would happen.
    pub fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        let start = Instant::now();
        loop {
            if check()? {
                tracing::info!("{what}: after {:.1}s", start.elapsed().as_secs_f64());
                return Ok(());
            }
            if start.elapsed() > limit {
                bail!("timed out after {}s waiting for {what}", limit.as_secs());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
