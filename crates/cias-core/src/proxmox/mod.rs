//! Proxmox VE's command-line tools: argv builders and pure parsers of their output.
//!
//! Runners live with the scenarios (they need a [`crate::host::Host`]); this module only
//! knows the formats, which follow Proxmox's sources (see `shared/reference/proxmox-cli.md`):
//! `pvesh` prints JSON on one line with booleans as 0/1; `pvecm status` is text and exits
//! 0 quorate / 2 not quorate / 1 error; `qm list` is a table with trailing spaces.

pub mod corosync;
pub mod pvecm;
pub mod pvesh;
pub mod pvesm;
pub mod qm;
pub mod task;

use thiserror::Error;

/// Output that does not have the shape Proxmox prints. Names the command and what was missing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unexpected output of `{command}` - {problem}")]
pub struct FormatError {
    pub command: &'static str,
    pub problem: String,
}

impl FormatError {
    fn new(command: &'static str, problem: impl Into<String>) -> Self {
        Self { command, problem: problem.into() }
    }
}
