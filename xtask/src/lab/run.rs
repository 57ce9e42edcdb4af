//! Running host programs with errors that say what ran and what it printed.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context, Result};

/// What a finished command returned. `status` is -1 when it was killed by a signal.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// A host command line, run with captured output.
#[derive(Debug, Clone)]
pub struct Cmd {
    argv: Vec<String>,
    stdin: Option<Vec<u8>>,
    env: Vec<(String, String)>,
}

pub fn cmd<S: AsRef<str>>(argv: impl IntoIterator<Item = S>) -> Cmd {
    Cmd { argv: argv.into_iter().map(|s| s.as_ref().to_string()).collect(), stdin: None, env: Vec::new() }
}

impl Cmd {
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(input.into());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Cmd {
        self.env.push((key.into(), value.into()));
        self
    }

    fn expression(&self) -> Result<duct::Expression> {
        let (program, args) = self.argv.split_first().context("empty command line")?;
        let mut expr = duct::cmd(program, args);
        for (k, v) in &self.env {
            expr = expr.env(k, v);
        }
        Ok(match &self.stdin {
            Some(input) => expr.stdin_bytes(input.clone()),
            None => expr.stdin_null(),
        })
    }

    /// Runs to the end; fails only if the program cannot be started.
    ///
    /// Output goes through files, not pipes: a daemon started by the command (e.g. `mfsmount`)
    /// inherits them and would hold a pipe open, so reading to its end would wait for the
    /// daemon. With files, the command is done when its own process exits.
    pub fn output(&self) -> Result<Output> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = std::env::temp_dir().join(format!("cias-lab-{}-{n}", std::process::id()));
        let (out_path, err_path) = (base.with_extension("out"), base.with_extension("err"));
        let result = self
            .expression()?
            .stdout_path(&out_path)
            .stderr_path(&err_path)
            .unchecked()
            .run()
            .with_context(|| format!("cannot start `{self}`"));
        let read = |path: &Path| {
            let text = fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned());
            let _ = fs::remove_file(path);
            text.unwrap_or_default()
        };
        let (stdout, stderr) = (read(&out_path), read(&err_path));
        Ok(Output { status: result?.status.code().unwrap_or(-1), stdout, stderr })
    }

    /// Runs to the end and returns stdout; a non-zero exit is an error quoting stderr.
    pub fn run(&self) -> Result<String> {
        let out = self.output()?;
        if !out.success() {
            bail!("`{self}` exited with {}: {}", out.status, out.stderr.trim());
        }
        Ok(out.stdout)
    }

    /// Runs with this process's terminal (stdin, stdout, stderr); returns the exit status.
    pub fn interactive(&self) -> Result<i32> {
        let (program, args) = self.argv.split_first().context("empty command line")?;
        let mut expr = duct::cmd(program, args);
        for (k, v) in &self.env {
            expr = expr.env(k, v);
        }
        let out = expr.unchecked().run().with_context(|| format!("cannot start `{self}`"))?;
        Ok(out.status.code().unwrap_or(-1))
    }

    /// Starts the command in its own session and returns at once; it outlives this process.
    /// Its output goes to `log`.
    pub fn spawn_detached(&self, log: &Path) -> Result<()> {
        let mut argv = vec!["setsid".to_string(), "-f".into()];
        argv.extend(self.argv.iter().cloned());
        let (program, args) = argv.split_first().context("empty command line")?;
        let mut expr = duct::cmd(program, args);
        for (k, v) in &self.env {
            expr = expr.env(k, v);
        }
        let log_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let status = expr
            .stdin_null()
            .stderr_file(log_file.try_clone()?)
            .stdout_file(log_file)
            .unchecked()
            .run()
            .with_context(|| format!("cannot start `{self}`"))?;
        if !status.status.success() {
            bail!("`setsid -f {self}` failed, see {}", log.display());
        }
        Ok(())
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.argv.join(" "))
    }
}
