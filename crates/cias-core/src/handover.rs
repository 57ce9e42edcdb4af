//! Handing the master role over on purpose (escape, uplink power-off): the manual switch runs
//! on the successor, which migrates the router live and takes MooseFS' final metadata; this
//! node waits until the master VIP and the router have left it.

use std::time::{Duration, Instant};

use crate::host::{holds_address, Command, Host, HostError};
use crate::members::{self, MembersError};
use crate::takeover::ROUTER_VMID;

/// How long the role may take to leave, with the router.
pub const LIMIT: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Members(#[from] MembersError),
    #[error("the master role or the router had not left {node} after {secs}s")]
    Stayed { node: String, secs: u64 },
}

/// The manual switch, as the successor runs it.
pub fn switch_command() -> Command {
    Command::from_argv(&["dlll_cias-switch-to-master"]).timeout(LIMIT)
}

/// Waits until `local` no longer holds `vip` and the router runs elsewhere (checked every 5 s,
/// at most [`LIMIT`]).
pub fn wait_gone(local: &dyn Host, vip: &str) -> Result<(), HandoverError> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let router_here = members::view(local)?.vm(ROUTER_VMID).is_some_and(|v| v.node == local.name());
        if !holds_address(local, vip)? && !router_here {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(HandoverError::Stayed { node: local.name().to_string(), secs: LIMIT.as_secs() });
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}
