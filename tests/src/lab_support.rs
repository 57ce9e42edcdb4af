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
