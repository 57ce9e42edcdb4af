//! Proxmox task identifiers (UPIDs) and task status.

use serde::Deserialize;

use super::FormatError;

/// `UPID:node:PIDhex:PSTARThex:STARThex:type:id:user:`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upid {
    pub node: String,
    pub kind: String,
    pub id: String,
    pub user: String,
    raw: String,
}

impl Upid {
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        let raw = text.trim();
        let bad = || FormatError::new("task", format!("'{raw}' is not a UPID"));
        let parts: Vec<&str> = raw.split(':').collect();
        // 8 fields and the trailing empty one after the last ':'.
        let ["UPID", node, pid, pstart, start, kind, id, user, ""] = parts[..] else { return Err(bad()) };
        let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
        if node.is_empty() || !hex(pid) || !hex(pstart) || !hex(start) {
            return Err(bad());
        }
        Ok(Self { node: node.into(), kind: kind.into(), id: id.into(), user: user.into(), raw: raw.into() })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

/// `pvesh get /nodes/NODE/tasks/UPID/status --output-format json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TaskStatus {
    /// `running` or `stopped`.
    pub status: String,
    /// `OK`, `WARNINGS: N` or the error; absent while running.
    #[serde(default)]
    pub exitstatus: Option<String>,
    pub upid: String,
}

impl TaskStatus {
    pub fn finished(&self) -> bool {
        self.status == "stopped"
    }

    /// Finished without error (warnings count as success, as in Proxmox's GUI).
    pub fn succeeded(&self) -> bool {
        self.finished() && self.exitstatus.as_deref().is_some_and(|s| s == "OK" || s.starts_with("WARNINGS"))
    }
}

/// The last line of a task log: `TASK OK`, `TASK WARNINGS: N` or `TASK ERROR: msg`.
pub fn log_result(log: &str) -> Option<Result<(), String>> {
    let last = log.lines().rev().find(|l| !l.trim().is_empty())?.trim();
    if last == "TASK OK" || last.starts_with("TASK WARNINGS") {
        Some(Ok(()))
    } else {
        last.strip_prefix("TASK ERROR: ").map(|e| Err(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upid_sample() {
        let upid = Upid::parse("UPID:pve1:0000A112:00BC614E:665A6B00:qmigrate:100:root@pam:\n").unwrap();
        assert_eq!((upid.node.as_str(), upid.kind.as_str(), upid.id.as_str()), ("pve1", "qmigrate", "100"));
        assert_eq!(upid.user, "root@pam");
        assert!(Upid::parse("UPID:pve1:zz:00BC614E:665A6B00:qmigrate:100:root@pam:").is_err());
        assert!(Upid::parse("TASK OK").is_err());
    }

    #[test]
    fn task_status_sample() {
        let status: TaskStatus = super::super::pvesh::parse(
            "pvesh get task status",
            include_str!("../../testdata/proxmox/task-status.json"),
        )
        .unwrap();
        assert!(status.succeeded());
        let running: TaskStatus = serde_json::from_str(r#"{"status":"running","upid":"x"}"#).unwrap();
        assert!(!running.finished() && !running.succeeded());
        let failed: TaskStatus =
            serde_json::from_str(r#"{"status":"stopped","exitstatus":"migration aborted","upid":"x"}"#)
                .unwrap();
        assert!(!failed.succeeded());
    }

    #[test]
    fn task_log_endings() {
        assert_eq!(log_result("starting\nTASK OK\n"), Some(Ok(())));
        assert_eq!(log_result("x\nTASK WARNINGS: 2\n"), Some(Ok(())));
        assert_eq!(log_result("x\nTASK ERROR: migration aborted\n"), Some(Err("migration aborted".into())));
        assert_eq!(log_result("still running\n"), None);
    }
}
