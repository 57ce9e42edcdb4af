//! The MooseFS master's list of chunkservers. A chunkserver that stops stays on it as
//! "disconnected" (in temporary maintenance when it stopped cleanly), and while it does the
//! master copies no endangered chunk anywhere (measured: 42 chunks stayed at one copy for 10
//! minutes after a node's escape stopped its chunkserver; replication began the moment it was
//! removed from the list). A node that leaves for good is therefore taken off the list, as the
//! MooseFS web UI's "remove" does (`mfscli -CRC/IP/PORT`).

use std::time::{Duration, Instant};

use crate::host::{Command, Host, HostError};
use crate::paths;

/// The chunkserver port of every node.
pub const PORT: u16 = 9422;

/// What the master answered to a removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// Not on the list (never was, or removed before).
    NotListed,
    /// Still connected: it has not stopped yet.
    StillActive,
}

/// `mfscli -CRC` always exits 0; its one line says what happened (mfscli 3.0.117).
pub fn parse_removal(stdout: &str) -> Option<Removal> {
    if stdout.contains("has been removed") {
        Some(Removal::Removed)
    } else if stdout.contains("hasn't been found") {
        Some(Removal::NotListed)
    } else if stdout.contains("still active") {
        Some(Removal::StillActive)
    } else {
        None
    }
}

/// Takes the chunkserver of `ip` off the master's list, waiting up to `limit` for it to be
/// disconnected. `Ok(None)` when it is off the list; else why not, from mfscli's own answer
/// (still active at the end, or no answer it knows: e.g. the master was unreachable).
pub fn remove(host: &dyn Host, ip: &str, limit: Duration) -> Result<Option<String>, HostError> {
    let argv = ["mfscli", "-H", paths::MFS_MASTER_HOST, &format!("-CRC/{ip}/{PORT}")];
    let started = Instant::now();
    loop {
        let out = host.execute(&Command::from_argv(&argv))?;
        match parse_removal(&out.stdout) {
            Some(Removal::Removed | Removal::NotListed) => return Ok(None),
            Some(Removal::StillActive) if started.elapsed() < limit => {
                std::thread::sleep(Duration::from_secs(1))
            }
            Some(Removal::StillActive) => {
                return Ok(Some(format!("the MooseFS master still lists chunkserver {ip} as active")))
            }
            None => {
                let said = format!("{}{}", out.stdout, out.stderr);
                return Ok(Some(format!("`mfscli -CRC/{ip}/{PORT}` gave no known answer: {}", said.trim())));
            }
        }
    }
}

/// How many chunks lack copies, as the master counts them (`mfscli -SIC`, "all chunks
/// matrix"): the classes that are a problem.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChunkHealth {
    /// No valid copy left: the files they belong to lost data.
    pub missing: u64,
    /// One copy left while their goal asks for more: one more disk lost loses them.
    pub endangered: u64,
    /// Fewer copies than their goal (the master is replicating them).
    pub undergoal: u64,
}

/// The read-only query of the chunk classes (plain output, `;`-separated, numbers unscaled).
pub fn chunk_health_command() -> Command {
    Command::query_argv(&["mfscli", "-H", paths::MFS_MASTER_HOST, "-n", "-p", "-s", ";", "-SIC"])
}

/// Reads [`chunk_health_command`]'s output: lines `all chunks matrix:;chunkclass
/// undergoal:;N` (mfscli 3.0.117, measured in the lab). `None` when no class is there (the
/// master did not answer).
pub fn parse_chunk_health(stdout: &str) -> Option<ChunkHealth> {
    let mut health = ChunkHealth::default();
    let mut seen = false;
    for line in stdout.lines().filter(|l| l.starts_with("all chunks matrix:")) {
        let fields: Vec<&str> = line.split(';').map(str::trim).collect();
        let (Some(class), Some(count)) = (fields.get(1), fields.get(2).and_then(|n| n.parse().ok())) else {
            continue;
        };
        let slot = match *class {
            "chunkclass missing:" => &mut health.missing,
            "chunkclass endangered:" => &mut health.endangered,
            "chunkclass undergoal:" => &mut health.undergoal,
            _ => continue,
        };
        *slot = count;
        seen = true;
    }
    seen.then_some(health)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_classes_as_the_master_lists_them() {
        // mfscli 3.0.117 -n -p -s ';' -SIC on the lab's healthy 3-node cluster.
        let healthy = "all chunks matrix:;goal/copies/chunks:;0;2;3\n\
                       all chunks matrix:;goal/copies/chunks:;2;2;46\n\
                       all chunks matrix:;chunkclass missing:;0\n\
                       all chunks matrix:;chunkclass endangered:;0\n\
                       all chunks matrix:;chunkclass undergoal:;0\n\
                       all chunks matrix:;chunkclass stable:;46\n\
                       all chunks matrix:;chunkclass overgoal:;0\n\
                       all chunks matrix:;chunkclass pending deletion:;3\n";
        assert_eq!(parse_chunk_health(healthy), Some(ChunkHealth::default()));
        // The same lines with counts a lost node's disks leave.
        let degraded = healthy
            .replace("missing:;0", "missing:;1")
            .replace("endangered:;0", "endangered:;45")
            .replace("undergoal:;0", "undergoal:;46");
        assert_eq!(
            parse_chunk_health(&degraded),
            Some(ChunkHealth { missing: 1, endangered: 45, undergoal: 46 })
        );
        let master_gone = "Working master servers not found !!! - maybe you are using wrong port number or wrong dns name\n";
        assert_eq!(parse_chunk_health(master_gone), None);
    }

    #[test]
    fn the_masters_answers_as_measured() {
        assert_eq!(parse_removal("Chunkserver 10.254.1.3/9422 has been removed\n"), Some(Removal::Removed));
        assert_eq!(
            parse_removal("Chunkserver 10.254.9.9/9422 hasn't been found\n"),
            Some(Removal::NotListed)
        );
        assert_eq!(
            parse_removal("Chunkserver 10.254.1.1/9422 can't be removed because is still active\n"),
            Some(Removal::StillActive)
        );
        assert_eq!(parse_removal("can't connect to master\n"), None);
    }
}
