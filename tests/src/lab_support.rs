//! One lab shared by the tests of a file: brought up once, used by one test at a time, torn
//! down by the last test to finish (or by the next `lab up`).

use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use xtask::lab::{Lab, LabConfig};

static LAB: Mutex<Option<Lab>> = Mutex::new(None);
static FINISHED: AtomicUsize = AtomicUsize::new(0);

/// Exclusive use of the shared lab for one test. Panics (the test fails, it is not skipped)
/// when the lab cannot start.
#[derive(Debug)]
pub struct LabSession {
    guard: MutexGuard<'static, Option<Lab>>,
    tests_in_file: usize,
}

/// Takes the shared lab, bringing it up if needed, with every node on and no cut or
/// partition left by an earlier test. `tests_in_file`: how many tests of the file use it (the
/// last one to finish tears it down).
pub fn shared_lab(tests_in_file: usize) -> LabSession {
    // A test that panicked still left a usable lab (or none): ignore the poison.
    let mut guard = LAB.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if guard.is_none() {
        let lab = Lab::up(&LabConfig::default()).unwrap_or_else(|e| panic!("the lab cannot start: {e:#}"));
        *guard = Some(lab);
    }
    let lab = guard.as_ref().expect("lab is up");
    let reset = || -> Result<()> {
        lab.heal()?;
        for &node in lab.nodes() {
            if !lab.is_up(node) {
                lab.power_on(node)?;
            }
        }
        Ok(())
    };
    reset().unwrap_or_else(|e| panic!("cannot reset the lab: {e:#}"));
    LabSession { guard, tests_in_file }
}

impl LabSession {
    /// Tears the lab down now (the next session brings up a new one).
    pub fn down(&mut self) -> Result<()> {
        *self.guard = None;
        Lab::down()
    }
}

impl Deref for LabSession {
    type Target = Lab;

    fn deref(&self) -> &Lab {
        self.guard.as_ref().expect("the lab was torn down in this session")
    }
}

impl Drop for LabSession {
    fn drop(&mut self) {
        if FINISHED.fetch_add(1, Ordering::SeqCst) + 1 == self.tests_in_file && self.guard.take().is_some() {
            if let Err(e) = Lab::down() {
                eprintln!("lab down after the last test failed: {e:#}");
            }
        }
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or fails after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check()? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        sleep(Duration::from_millis(100));
    }
}

/// The stand-in cluster the stand-in's own tests build by hand: `nodes[0]` creates it, the
/// others join one at a time (each once the cluster is quorate with it, as an installer must),
/// and a directory on the shared cluster file system stands in for MooseFS as storage
/// `shared_disks` with `content`. A cluster an earlier test made is only waited for.
pub fn standin_cluster(lab: &Lab, nodes: &[&str], content: &str) -> Result<()> {
    let run = |name: &str, argv: &[&str]| lab.exec(lab.node(name)?, argv);
    let ok = |name: &str, argv: &[&str]| -> Result<String> {
        let out = run(name, argv)?;
        if !out.success() {
            bail!("{name}: {argv:?} exited {}: {}{}", out.status, out.stdout, out.stderr);
        }
        Ok(out.stdout)
    };
    // Heartbeats reach each node at its own pace: every member is asked.
    let members = |count: usize, limit: Duration| -> Result<()> {
        for member in nodes.iter().take(count) {
            wait_for(&format!("{member} quorate with {count} members"), limit, || {
                let out = run(member, &["pvecm", "status"])?;
                Ok((out.success() && out.stdout.contains(&format!("Nodes:            {count}\n")))
                    .then_some(()))
            })?;
        }
        Ok(())
    };
    let first = nodes[0];
    if run(first, &["test", "-f", "/etc/pve/corosync.conf"])?.success() {
        // Nodes that were powered off need a moment to be heard.
        return members(nodes.len(), Duration::from_secs(20));
    }
    ok(first, &["pvecm", "create", "DLLL-CIAS"])?;
    let listed: serde_json::Value =
        serde_json::from_str(&ok(first, &["pvesh", "get", "/nodes", "--output-format", "json"])?)?;
    let fingerprint = listed[0]["ssl_fingerprint"].as_str().unwrap_or_default().to_string();
    let ip = lab.node(first)?.lan_ip().to_string();
    for (i, joiner) in nodes.iter().enumerate().skip(1) {
        let script = format!(
            "printf '%s\\n' {} | pvecm add {ip} --fingerprint {fingerprint}",
            xtask::lab::standin::ROOT_PASSWORD
        );
        let out = ok(joiner, &["sh", "-c", &script])?;
        if !out.contains(&format!("successfully added node '{joiner}' to cluster.")) {
            bail!("{joiner} did not join: {out}");
        }
        members(i + 1, Duration::from_secs(15))?;
    }
    if !ok(first, &["pvesm", "status"])?.contains("shared_disks") {
        ok(first, &["mkdir", "-p", "/etc/pve/.disks"])?;
        let add = ["pvesm", "add", "dir", "shared_disks", "--path", "/etc/pve/.disks", "--content", content];
        ok(first, &[&add[..], &["--shared", "1"]].concat())?;
    }
    Ok(())
}
