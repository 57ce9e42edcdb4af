//! `dlll_cias-switch-to-master`: keepalived's `notify_master` hook and the manual switch
//! (scenarios 3 and 4). The installer points keepalived at this binary from the first
//! install on, so it must exist; until the takeover is delivered it refuses clearly and changes
//! nothing, and keepalived's VIP move still happens (keepalived does not wait for the hook).
#![allow(clippy::print_stderr)]

use std::process::ExitCode;

use clap::Parser;

/// Make this node the cluster master (not available in this version: does nothing).
#[derive(Debug, Parser)]
#[command(name = "dlll_cias-switch-to-master", version)]
struct Cli {
    /// Set by keepalived's notify_master hook.
    #[arg(long)]
    from_keepalived: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let caller = if cli.from_keepalived { "keepalived notify_master" } else { "manual switch" };
    eprintln!(
        "dlll_cias-switch-to-master ({caller}): the master takeover is not part of this version yet; \
         nothing was done - promote MooseFS and move the router by hand"
    );
    ExitCode::from(3)
}
