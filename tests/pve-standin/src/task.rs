//! Tasks: UPIDs, task logs ending in `TASK OK` / `TASK ERROR: msg`, and task status records
//! for `/nodes/N/tasks/UPID/status`.

use std::path::PathBuf;

use serde_json::json;

use crate::cluster::{now_ms, read_json, write_json, Env};
use crate::{Failure, Result};

pub fn upid(node: &str, kind: &str, id: &str) -> String {
    let secs = now_ms() / 1000;
    let pid = std::process::id();
    format!("UPID:{node}:{pid:08X}:{:08X}:{secs:08X}:{kind}:{id}:root@pam:", secs & 0xffff_ffff)
}

fn record_path(env: &Env, upid: &str) -> PathBuf {
    env.root.join(".standin/tasks").join(upid.replace(':', "_"))
}

pub fn record(env: &Env, upid: &str, node: &str, kind: &str, id: &str, exit: Option<&str>) -> Result<()> {
    let mut status = json!({
        "id": id, "node": node, "pid": std::process::id(), "pstart": 0, "starttime": now_ms() / 1000,
        "status": if exit.is_some() { "stopped" } else { "running" }, "type": kind, "upid": upid, "user": "root@pam",
    });
    if let Some(exit) = exit {
        status["exitstatus"] = json!(exit);
    }
    write_json(&record_path(env, upid), &status)
}

pub fn status(env: &Env, upid: &str) -> Result<serde_json::Value> {
    read_json(&record_path(env, upid))?.ok_or_else(|| Failure::die(format!("no such task '{upid}'")))
}

/// Runs `work` as a foreground task: its log on stdout, then `TASK OK` or `TASK ERROR: msg`.
/// The error also goes to stderr and the exit code is 255, like `qm migrate`.
pub fn foreground(env: &Env, kind: &str, id: &str, work: impl FnOnce() -> Result<()>) -> Result<u8> {
    let upid = upid(&env.node, kind, id);
    record(env, &upid, &env.node, kind, id, None)?;
    match work() {
        Ok(()) => {
            println!("TASK OK");
            record(env, &upid, &env.node, kind, id, Some("OK"))?;
            Ok(0)
        }
        Err(failure) => {
            println!("TASK ERROR: {}", failure.message);
            record(env, &upid, &env.node, kind, id, Some(&failure.message))?;
            Err(failure)
        }
    }
}

/// Runs `work` as a task started through `pvesh create` (pve-common's `fork_worker` in CLI
/// mode): the task log goes to stdout, `TASK OK` is not printed, a failure prints its message
/// on stderr; either way the caller prints the UPID and exits 0. The outcome is in the status.
pub fn cli_worker(env: &Env, kind: &str, id: &str, work: impl FnOnce() -> Result<()>) -> Result<String> {
    let upid = upid(&env.node, kind, id);
    record(env, &upid, &env.node, kind, id, None)?;
    let exit = match work() {
        Ok(()) => "OK".to_string(),
        Err(failure) => {
            let message = failure.message.trim_end().replace('\n', " ");
            eprintln!("{message}");
            message
        }
    };
    record(env, &upid, &env.node, kind, id, Some(&exit))?;
    Ok(upid)
}

/// A task log line with Proxmox's timestamp prefix.
pub fn log(line: &str) {
    println!("{} {line}", chrono::Local::now().format("%Y-%m-%d %H:%M:%S"));
}

/// `pve-standin task-done UPID NODE TYPE OK(1|0)`: marks a background task finished.
pub fn done(env: &Env, args: &[String]) -> Result<u8> {
    let [upid, node, kind, ok] = args else {
        return Err(Failure::die("usage: task-done UPID NODE TYPE 1|0"));
    };
    let exit = if ok == "1" { "OK" } else { "some migrations failed" };
    record(env, upid, node, kind, "", Some(exit))?;
    Ok(0)
}
