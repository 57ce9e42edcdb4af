//! The VMs leave: `qm migrate` on this node (only the owner can start a migration), a few at
//! a time, each with its own progress line.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use cias_core::escape::Move;
use cias_core::vm_recovery;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::Ctx;

/// One migration's end: its index in the moves, how long it took, and its error if it failed.
type Outcome = (usize, Duration, Result<(), String>);

/// Migrates every move, `ctx.parallel` at once; fails after all were tried if any failed.
pub fn migrate_all(ctx: &mut Ctx, moves: &[Move]) -> Result<()> {
    if moves.is_empty() {
        return Ok(());
    }
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("a valid template");
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    let host = ctx.host.clone();
    std::thread::scope(|s| {
        for _ in 0..ctx.parallel.min(moves.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(m) = moves.get(i) else { break };
                let bar = bars.add(ProgressBar::new_spinner().with_style(style.clone()));
                bar.set_message(format!("{m}: migrating"));
                bar.enable_steady_tick(Duration::from_millis(200));
                let started = Instant::now();
                let vmid = m.vmid.to_string();
                let mut args = vec!["migrate", vmid.as_str(), m.to.as_str()];
                if m.online {
                    args.push("--online");
                }
                let done = vm_recovery::qm(host.as_ref(), &args).map_err(|e| e.to_string());
                let took = started.elapsed();
                bar.finish_with_message(match &done {
                    Ok(()) => format!("{m}: done in {:.1}s", took.as_secs_f64()),
                    Err(e) => format!("{m}: FAILED - {e}"),
                });
                outcomes.lock().expect("no panics while locked").push((i, took, done));
            });
        }
    });
    let mut outcomes = outcomes.into_inner().expect("no panics while locked");
    outcomes.sort_by_key(|o| o.0);
    let mut failed = Vec::new();
    for (i, took, done) in outcomes {
        match done {
            Ok(()) => ctx.tl.note(&format!("moved {} in {:.1}s", moves[i], took.as_secs_f64())),
            Err(e) => {
                ctx.tl.note(&format!("FAILED to move {} - {e}", moves[i]));
                failed.push(moves[i].vmid);
            }
        }
    }
    if !failed.is_empty() {
        bail!("VMs not moved: {failed:?}");
    }
    Ok(())
}
