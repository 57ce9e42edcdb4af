//! The reconcile loop (`dlll_cias-fence run`, the `dlll-cias-fence` service): one look and
//! its repairs every second, the verdict keepalived's check reads, the members last seen, and
//! the watchdog fed while quorate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cias_core::clock::boot_ms;
use cias_core::fence::LastSeen;
use cias_core::host::{Host, LocalHost};
use cias_core::reconcile::{Action, Reconciler, Verdict, WatchdogUse};
use cias_core::settings::ClusterSettings;
use cias_core::state_file::StateFile;
use cias_core::watchdog::{Watchdog, MUX_SOCKET};

use crate::observe::observe;
use crate::repair;

fn carry_out(host: &dyn Host, settings: &ClusterSettings, action: Action) -> Result<String> {
    match action {
        Action::DropVips => repair::drop_vips(host, settings),
        Action::KillMaster => repair::kill_cut_off_master(host),
        Action::Demote => repair::demote(host),
        Action::RestartMaster => repair::restart_master(host),
        Action::StopVms => repair::stop_vms(host),
        Action::Rejoined => repair::rejoined(host, settings),
        Action::PublishBase => repair::publish_base(host),
        Action::RestartMetalogger => repair::restart_metalogger(host),
        Action::ClearHandover => repair::clear_handover(host),
    }
}

/// The connection to Proxmox's watchdog multiplexer, armed while quorate.
#[derive(Default)]
struct Guard {
    watchdog: Option<Watchdog>,
    /// The last failure to arm was logged (not every second).
    told: bool,
}

impl Guard {
    fn apply(&mut self, wanted: WatchdogUse) {
        match wanted {
            WatchdogUse::Feed => {
                if self.watchdog.is_none() {
                    match Watchdog::connect(MUX_SOCKET) {
                        Ok(w) => {
                            tracing::warn!(
                                "watchdog armed ({MUX_SOCKET}): if this loop stops, the node resets"
                            );
                            (self.watchdog, self.told) = (Some(w), false);
                        }
                        Err(e) if !self.told => {
                            tracing::error!("{e}: this node's self-fence has no watchdog behind it");
                            self.told = true;
                        }
                        Err(_) => {}
                    }
                }
                if let Some(Err(e)) = self.watchdog.as_mut().map(Watchdog::feed) {
                    tracing::error!("{e}");
                    self.watchdog = None;
                }
            }
            WatchdogUse::Starve => {}
            WatchdogUse::Disarm => self.disarm("the self-fence is complete"),
        }
    }

    fn disarm(&mut self, why: &str) {
        if let Some(w) = self.watchdog.take() {
            match w.disarm() {
                Ok(()) => tracing::warn!("watchdog disarmed: {why}"),
                Err(e) => tracing::error!("{e}"),
            }
        }
    }
}

/// Alert key: the loop cannot start (see `report_start_failure`).
pub const START_FAILED: &str = "fence-start";

pub fn run(config: &std::path::Path) -> Result<()> {
    let settings = ClusterSettings::load(config)?;
    let node = cias_core::paths::node_name().context("cannot read this node's host name")?;
    let host = LocalHost::new(node.clone());
    cias_core::logging::also_to_file(&cias_core::paths::node_dir(&node).join("fence.log"))?;
    cias_core::notify::alert_over(START_FAILED);
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone()).context("cannot handle signals")?;
    }
    let delay = Duration::from_secs(u64::from(settings.fencing.delay_secs));
    let (seen_file, verdict_file) = (LastSeen::file(), Verdict::file());
    let mut seen = LastSeen::load(&seen_file);
    let mut loop_state = Reconciler::new(delay);
    let mut guard = Guard::default();
    let mut unfit: Option<String> = None;
    let mut remount_due: Option<Instant> = None;
    let mut remount_attempts = 0;
    tracing::warn!("reconcile loop started on {node} (fence delay {}s)", delay.as_secs());
    while !stop.load(Ordering::Relaxed) {
        let tick_started = Instant::now();
        let (observed, online) = observe(&host, &settings, &node);
        if observed.quorate {
            seen.record(online.iter().map(String::as_str), observed.now_ms);
            if let Err(e) = seen.save(&seen_file) {
                tracing::error!("cannot write {} - {e}", seen_file.display());
            }
        }
        let tick = loop_state.tick(&observed);
        if tick.unfit != unfit {
            match &tick.unfit {
                Some(why) => tracing::warn!("this node may not hold the master role: {why}"),
                None => tracing::warn!("this node may hold the master role again"),
            }
            unfit = tick.unfit.clone();
        }
        let verdict = Verdict { at_ms: boot_ms(), unfit: tick.unfit.clone() };
        if let Err(e) = verdict.save(&verdict_file) {
            tracing::error!("cannot write {} - {e}", verdict_file.display());
        }
        for action in tick.actions {
            if action == Action::StopVms {
                (remount_due, remount_attempts) = (Some(tick_started), 0);
            }
            match carry_out(&host, &settings, action) {
                Ok(outcome) => tracing::warn!("{}: {outcome}", action.describe()),
                Err(e) => {
                    tracing::error!("{} failed - {e:#}", action.describe());
                    loop_state.failed(action);
                }
            }
        }
        guard.apply(loop_state.watchdog());
        // The fence unmounted MooseFS; back in the quorum it is mounted again, retried every
        // few seconds (it fails while no master runs, e.g. during the takeover that follows).
        if observed.quorate && remount_due.is_some_and(|due| tick_started >= due) {
            remount_due =
                repair::remount(&host, remount_attempts).then(|| tick_started + repair::REMOUNT_RETRY);
            remount_attempts = if remount_due.is_some() { remount_attempts + 1 } else { 0 };
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick_started.elapsed()));
    }
    guard.disarm("the loop was stopped on purpose");
    tracing::warn!("reconcile loop stopped");
    Ok(())
}
