//! `qm list`: the VMs of the local node.

use super::FormatError;
use crate::host::Command;

pub fn list_command() -> Command {
    Command::query_argv(&["qm", "list"])
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalVm {
    pub vmid: u32,
    pub name: String,
    pub status: String,
    pub mem_mb: u64,
    pub pid: u32,
}

/// Parses `qm list` (empty output: no VMs). Names may contain no spaces (Proxmox forbids them).
pub fn parse_list(text: &str) -> Result<Vec<LocalVm>, FormatError> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("VMID"))
        .map(|line| {
            let bad = || FormatError::new("qm list", format!("bad line '{}'", line.trim_end()));
            let words: Vec<&str> = line.split_whitespace().collect();
            let [vmid, name, status, mem, _bootdisk, pid] = words[..] else { return Err(bad()) };
            Ok(LocalVm {
                vmid: vmid.parse().map_err(|_| bad())?,
                name: name.to_string(),
                status: status.to_string(),
                mem_mb: mem.parse().map_err(|_| bad())?,
                pid: pid.parse().map_err(|_| bad())?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_table() {
        let vms = parse_list(include_str!("../../testdata/proxmox/qm-list.txt")).unwrap();
        assert_eq!(vms.len(), 2);
        assert_eq!(
            vms[0],
            LocalVm { vmid: 100, name: "web01".into(), status: "running".into(), mem_mb: 4096, pid: 12345 }
        );
        assert_eq!(vms[1].status, "stopped");
    }

    #[test]
    fn no_vms_prints_nothing() {
        assert_eq!(parse_list("").unwrap(), []);
    }
}
