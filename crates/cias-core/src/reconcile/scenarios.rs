//! Scripted scenarios on a virtual clock, in the manner of pve-ha-manager's `src/test/`
//! folders: a small model of one node (keepalived, its VIP, mfsmaster, VMs, the watchdog)
//! receives faults at given seconds; the loop ticks every second and its repairs act on the
//! model. Each scenario compares the whole log with the one expected, so a change of
//! behaviour shows as a readable diff.

use super::*;
use crate::scenario_log::assert_log;

/// A fault or an outside change, at a given second.
#[derive(Debug, Clone, Copy)]
enum Event {
    /// mfsmaster crashes (OOM kill); a restart works.
    MasterCrashes,
    /// mfsmaster crashes and cannot start again (its data directory unreadable).
    MasterBreaks,
    /// mfsmaster stops answering but its process lives (a hang).
    MasterHangs,
    /// keepalived is SIGKILLed: its VIPs stay on the interfaces.
    KeepalivedKilled,
    /// systemd starts keepalived again, as a BACKUP.
    KeepalivedStarted(u32),
    QuorumLost,
    QuorumBack,
    /// keepalived made this node MASTER: the VIPs arrive (the takeover starts with them).
    BecomesMaster,
    /// The takeover started mfsmaster and it serves.
    TakeoverPromoted,
    TakeoverEnds,
    /// Someone starts mfsmaster here by hand.
    MasterStartedByHand,
    /// A manual switch stops this master's mfsmaster to take its final metadata.
    HandoverStarts,
    /// This node's metalogger starts over with no files (a cut-off former master's).
    MetaloggerStartsOver,
    /// The switched-to node won the election: this one lost the VIP.
    HandoverEnds,
    /// corosync.conf now gives the cluster no majority after a node's loss (QDevice removed).
    TakeoverTurnedOff,
}

struct World {
    now_ms: u64,
    quorate: bool,
    automatic_takeover: bool,
    install: Install,
    handing_over: bool,
    master_has_base: bool,
    metalogger_has_base: bool,
    keepalived: Option<u32>,
    vip: bool,
    master: Master,
    master_broken: bool,
    takeover_running: bool,
    vms_running: bool,
    /// Consecutive failed checks (keepalived: `fall 2` -> FAULT, the VIPs go).
    failed_checks: u32,
    watchdog: WatchdogUse,
}

impl World {
    fn serving_node() -> Self {
        World {
            now_ms: 0,
            quorate: true,
            automatic_takeover: true,
            install: Install::Finished,
            handing_over: false,
            master_has_base: true,
            metalogger_has_base: true,
            keepalived: Some(100),
            vip: true,
            master: Master::Serving,
            master_broken: false,
            takeover_running: false,
            vms_running: true,
            failed_checks: 0,
            watchdog: WatchdogUse::Feed,
        }
    }

    fn backup_node() -> Self {
        World { vip: false, master: Master::Stopped, ..Self::serving_node() }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::MasterCrashes => self.master = Master::Stopped,
            Event::MasterBreaks => (self.master, self.master_broken) = (Master::Stopped, true),
            Event::MasterHangs => self.master = Master::Running,
            Event::KeepalivedKilled => self.keepalived = None,
            Event::KeepalivedStarted(pid) => self.keepalived = Some(pid),
            Event::QuorumLost => self.quorate = false,
            Event::QuorumBack => self.quorate = true,
            Event::BecomesMaster => (self.vip, self.takeover_running) = (true, true),
            Event::TakeoverPromoted => (self.master, self.master_has_base) = (Master::Serving, false),
            Event::TakeoverEnds => self.takeover_running = false,
            Event::MasterStartedByHand => self.master = Master::Serving,
            Event::HandoverStarts => (self.handing_over, self.master) = (true, Master::Stopped),
            Event::HandoverEnds => self.vip = false,
            Event::MetaloggerStartsOver => self.metalogger_has_base = false,
            Event::TakeoverTurnedOff => self.automatic_takeover = false,
        }
    }

    fn observe(&self) -> Observed {
        Observed {
            now_ms: self.now_ms,
            quorate: self.quorate,
            automatic_takeover: self.automatic_takeover,
            install: self.install,
            keepalived: self.keepalived,
            holds_vip: self.vip,
            master: self.master,
            takeover_running: self.takeover_running,
            handing_over: self.handing_over,
            master_has_base: self.master_has_base,
            metalogger_has_base: self.metalogger_has_base,
        }
    }

    fn carry_out(&mut self, action: Action) {
        match action {
            Action::DropVips => self.vip = false,
            Action::KillMaster | Action::Demote => self.master = Master::Stopped,
            Action::RestartMaster if !self.master_broken => self.master = Master::Serving,
            Action::RestartMaster => self.master = Master::Stopped,
            Action::StopVms => self.vms_running = false,
            Action::Rejoined => {}
            Action::PublishBase => self.master_has_base = true,
            Action::RestartMetalogger => self.metalogger_has_base = true,
            Action::ClearHandover => self.handing_over = false,
        }
    }
}

/// Runs `script` for `secs` seconds of virtual time; returns the log: events (`!`), repairs
/// (`->`), role changes and watchdog changes, one line each.
fn run(mut world: World, fence_delay_secs: u64, script: &[(u64, Event)], secs: u64) -> String {
    let mut r = Reconciler::new(Duration::from_secs(fence_delay_secs));
    let mut log = String::new();
    let mut unfit: Option<String> = None;
    let mut watchdog = world.watchdog;
    for t in 0..=secs {
        world.now_ms = t * 1000;
        for (_, event) in script.iter().filter(|(at, _)| *at == t) {
            log += &format!("{t:>3} ! {event:?}\n");
            world.apply(*event);
        }
        let tick = r.tick(&world.observe());
        for action in &tick.actions {
            log += &format!("{t:>3}   -> {}\n", action.describe());
            world.carry_out(*action);
        }
        if tick.unfit != unfit {
            match &tick.unfit {
                Some(why) => log += &format!("{t:>3}   role: unfit ({why})\n"),
                None => log += &format!("{t:>3}   role: fit\n"),
            }
            unfit = tick.unfit.clone();
        }
        if r.watchdog() != watchdog {
            watchdog = r.watchdog();
            log += &format!("{t:>3}   watchdog: {watchdog:?}\n");
        }
        // keepalived runs the check every second and goes FAULT after two failures.
        if world.keepalived.is_some() {
            world.failed_checks = if unfit.is_some() { world.failed_checks + 1 } else { 0 };
            if world.failed_checks == 2 && world.vip {
                world.vip = false;
                log += &format!("{t:>3}   keepalived: FAULT, its VIPs removed\n");
            }
        }
    }
    log
}

#[test]
fn a_crashed_mfsmaster_is_restarted_within_seconds() {
    let log = run(World::serving_node(), 10, &[(3, Event::MasterCrashes)], 10);
    assert_log(
        &log,
        "
          3 ! MasterCrashes
          4   -> restart mfsmaster (the VIP holder does not serve)
        ",
    );
}

#[test]
fn a_hung_mfsmaster_is_restarted_too() {
    let log = run(World::serving_node(), 10, &[(3, Event::MasterHangs)], 6);
    assert_log(
        &log,
        "
          3 ! MasterHangs
          4   -> restart mfsmaster (the VIP holder does not serve)
        ",
    );
}

#[test]
fn a_master_that_cannot_serve_gives_the_role_up_and_stops_trying() {
    let log = run(World::serving_node(), 10, &[(2, Event::MasterBreaks)], 140);
    assert_log(
        &log,
        "
          2 ! MasterBreaks
          3   -> restart mfsmaster (the VIP holder does not serve)
          7   -> restart mfsmaster (the VIP holder does not serve)
         11   -> restart mfsmaster (the VIP holder does not serve)
         14   role: unfit (no mfsmaster served here (restarted for 12s, or no takeover started one): the role is left to another node for 120s)
         15   keepalived: FAULT, its VIPs removed
        134   role: fit
        ",
    );
}

#[test]
fn a_killed_keepalived_takes_its_vips_and_the_master_with_it() {
    let script = [(5, Event::KeepalivedKilled), (7, Event::KeepalivedStarted(200))];
    let log = run(World::serving_node(), 10, &script, 12);
    assert_log(
        &log,
        "
          5 ! KeepalivedKilled
          5   -> remove the VIPs keepalived left behind
          5   -> stop mfsmaster and set its files aside (this node may not run it)
          5   role: unfit (keepalived does not run)
          7 ! KeepalivedStarted(200)
          7   role: fit
        ",
    );
}

#[test]
fn a_keepalived_restarted_between_two_looks_is_caught_by_its_new_pid() {
    let script = [(5, Event::KeepalivedKilled), (5, Event::KeepalivedStarted(200))];
    let log = run(World::serving_node(), 10, &script, 8);
    assert_log(
        &log,
        "
          5 ! KeepalivedKilled
          5 ! KeepalivedStarted(200)
          5   -> remove the VIPs keepalived left behind
          5   -> stop mfsmaster and set its files aside (this node may not run it)
        ",
    );
}

#[test]
fn losing_quorum_kills_the_master_once_confirmed_fences_the_vms_then_disarms() {
    let script = [(3, Event::QuorumLost), (20, Event::QuorumBack)];
    let log = run(World::serving_node(), 10, &script, 22);
    assert_log(
        &log,
        "
          3 ! QuorumLost
          3   role: unfit (not in the quorate partition)
          3   watchdog: Starve
          4   keepalived: FAULT, its VIPs removed
          5   -> kill mfsmaster (quorum lost)
         13   -> stop every VM and cut the MooseFS mount (fence delay reached)
         13   watchdog: Disarm
         20 ! QuorumBack
         20   -> quorum regained: mount MooseFS again
         20   role: fit
         20   watchdog: Feed
        ",
    );
}

#[test]
fn a_one_reading_quorum_blip_does_nothing_but_starve_the_watchdog_once() {
    let script = [(3, Event::QuorumLost), (4, Event::QuorumBack)];
    let log = run(World::serving_node(), 10, &script, 8);
    assert_log(
        &log,
        "
          3 ! QuorumLost
          3   role: unfit (not in the quorate partition)
          3   watchdog: Starve
          4 ! QuorumBack
          4   role: fit
          4   watchdog: Feed
        ",
    );
}

#[test]
fn a_failed_vm_stop_is_retried_and_the_watchdog_stays_starved() {
    let mut r = Reconciler::new(Duration::from_secs(10));
    let mut seen = World::serving_node().observe();
    seen.quorate = false;
    seen.master = Master::Stopped;
    seen.holds_vip = false;
    for t in 0..=10 {
        seen.now_ms = t * 1000;
        let tick = r.tick(&seen);
        if tick.actions.contains(&Action::StopVms) {
            r.failed(Action::StopVms);
        }
    }
    assert_eq!(r.watchdog(), WatchdogUse::Starve, "not fenced: the watchdog must not be disarmed");
    seen.now_ms = 11_000;
    assert_eq!(r.tick(&seen).actions, vec![Action::StopVms], "tried again on the next tick");
    assert_eq!(r.watchdog(), WatchdogUse::Disarm);
}

#[test]
fn a_new_master_waits_for_its_takeover_and_then_watches_over_mfsmaster() {
    let script = [
        (2, Event::BecomesMaster),
        (6, Event::TakeoverPromoted),
        (9, Event::MasterCrashes),
        (30, Event::TakeoverEnds),
    ];
    let log = run(World::backup_node(), 10, &script, 32);
    assert_log(
        &log,
        "
          2 ! BecomesMaster
          6 ! TakeoverPromoted
          6   -> offer the metaloggers a full metadata copy
          9 ! MasterCrashes
         10   -> restart mfsmaster (the VIP holder does not serve)
         30 ! TakeoverEnds
        ",
    );
}

#[test]
fn a_takeover_that_never_promotes_leaves_the_role_after_it_ends() {
    // Refused (another node's mfsmaster would not stop, no copy to start from) or failed: the
    // loop must not start the master the takeover would not.
    let script = [(2, Event::BecomesMaster), (8, Event::TakeoverEnds)];
    let log = run(World::backup_node(), 10, &script, 12);
    assert_log(
        &log,
        "
          2 ! BecomesMaster
          8 ! TakeoverEnds
         10   role: unfit (no mfsmaster served here (restarted for 12s, or no takeover started one): the role is left to another node for 120s)
         11   keepalived: FAULT, its VIPs removed
        ",
    );
}

#[test]
fn after_a_quorum_blip_only_the_takeover_starts_the_master_again() {
    let script = [
        (3, Event::QuorumLost),
        (6, Event::QuorumBack),
        (6, Event::BecomesMaster),
        (9, Event::TakeoverPromoted),
        (10, Event::TakeoverEnds),
    ];
    let log = run(World::serving_node(), 10, &script, 12);
    assert_log(
        &log,
        "
          3 ! QuorumLost
          3   role: unfit (not in the quorate partition)
          3   watchdog: Starve
          4   keepalived: FAULT, its VIPs removed
          5   -> kill mfsmaster (quorum lost)
          6 ! QuorumBack
          6 ! BecomesMaster
          6   -> quorum regained: mount MooseFS again
          6   role: fit
          6   watchdog: Feed
          9 ! TakeoverPromoted
          9   -> offer the metaloggers a full metadata copy
         10 ! TakeoverEnds
        ",
    );
}

#[test]
fn a_backup_never_runs_mfsmaster() {
    let log = run(World::backup_node(), 10, &[(4, Event::MasterStartedByHand)], 6);
    assert_log(
        &log,
        "
          4 ! MasterStartedByHand
          4   -> stop mfsmaster and set its files aside (this node may not run it)
        ",
    );
}

#[test]
fn a_node_that_is_not_installed_never_holds_the_role() {
    let mut world = World::serving_node();
    world.install = Install::Unfinished;
    let log = run(world, 10, &[], 3);
    assert_log(
        &log,
        "
          0   role: unfit (not fully installed (dlll_cias-setup has not finished here))
          1   keepalived: FAULT, its VIPs removed
          2   -> stop mfsmaster and set its files aside (this node may not run it)
        ",
    );
}

#[test]
fn keepalived_s_check_passes_only_on_a_fresh_fit_verdict() {
    let fit = Verdict { at_ms: 10_000, unfit: None };
    assert_eq!(fit.allows_role(12_000), Ok(()));
    assert!(fit.allows_role(13_001).unwrap_err().contains("has not looked for 3s"), "a stale verdict");
    assert!(Verdict::default().allows_role(1_000).is_err(), "no verdict yet");
    let unfit = Verdict { at_ms: 10_000, unfit: Some("keepalived does not run".into()) };
    assert_eq!(unfit.allows_role(10_500), Err("keepalived does not run".into()));
}

#[test]
fn the_first_node_installing_holds_the_vip_before_it_has_an_mfsmaster() {
    let mut world = World::backup_node();
    (world.vip, world.install) = (true, Install::FirstRunning);
    assert_log(&run(world, 10, &[], 20), "");
}

#[test]
fn a_master_handing_over_to_a_manual_switch_keeps_its_mfsmaster_stopped() {
    let script = [
        (2, Event::HandoverStarts),
        (9, Event::HandoverEnds),
        (20, Event::BecomesMaster),
        (22, Event::TakeoverPromoted),
        (23, Event::TakeoverEnds),
        (25, Event::MasterCrashes),
    ];
    let log = run(World::serving_node(), 10, &script, 30);
    assert_log(
        &log,
        "
          2 ! HandoverStarts
          9 ! HandoverEnds
          9   -> forget the finished handover to a manual switch
         20 ! BecomesMaster
         22 ! TakeoverPromoted
         22   -> offer the metaloggers a full metadata copy
         23 ! TakeoverEnds
         25 ! MasterCrashes
         26   -> restart mfsmaster (the VIP holder does not serve)
        ",
    );
}

#[test]
fn a_promoted_master_offers_a_full_copy_and_a_bare_metalogger_fetches_one() {
    let script = [
        (1, Event::MetaloggerStartsOver),
        (2, Event::BecomesMaster),
        (4, Event::TakeoverPromoted),
        (9, Event::TakeoverEnds),
    ];
    let log = run(World::backup_node(), 10, &script, 12);
    assert_log(
        &log,
        "
          1 ! MetaloggerStartsOver
          2 ! BecomesMaster
          4 ! TakeoverPromoted
          4   -> offer the metaloggers a full metadata copy
          6   -> restart the metalogger (it holds no metadata file)
          9 ! TakeoverEnds
        ",
    );
}

#[test]
fn vips_left_behind_stay_suspect_until_they_are_gone() {
    let mut r = Reconciler::new(Duration::from_secs(10));
    let mut seen = World::serving_node().observe();
    assert_eq!(r.tick(&seen).actions, vec![]);
    seen.now_ms = 1_000;
    seen.keepalived = Some(200); // restarted between two looks
    assert_eq!(r.tick(&seen).actions, vec![Action::DropVips, Action::Demote]);
    r.failed(Action::DropVips); // `ip addr del` failed: the VIPs are still there
    seen.now_ms = 2_000;
    seen.master = Master::Stopped;
    assert_eq!(r.tick(&seen).actions, vec![Action::DropVips], "still not rightful: removed again");
    seen.now_ms = 3_000;
    seen.holds_vip = false;
    assert_eq!(r.tick(&seen).actions, vec![]);
    seen.now_ms = 8_000;
    seen.holds_vip = true; // the new keepalived won an election
    assert!(r.tick(&seen).actions.is_empty(), "a VIP it took itself is rightful");
}

#[test]
fn without_a_majority_the_master_keeps_serving_alone_and_nothing_is_fenced() {
    let world = World { automatic_takeover: false, ..World::serving_node() };
    let script = [(3, Event::QuorumLost), (30, Event::MasterCrashes), (40, Event::QuorumBack)];
    let log = run(world, 10, &script, 42);
    assert_log(
        &log,
        "
          3 ! QuorumLost
         30 ! MasterCrashes
         31   -> restart mfsmaster (the VIP holder does not serve)
         40 ! QuorumBack
        ",
    );
}

#[test]
fn without_a_majority_a_backup_out_of_quorum_never_takes_the_role_nor_fences() {
    let world = World { automatic_takeover: false, ..World::backup_node() };
    let script = [(3, Event::QuorumLost), (40, Event::QuorumBack)];
    let log = run(world, 10, &script, 42);
    assert_log(
        &log,
        "
          3 ! QuorumLost
          3   role: unfit (not in the quorate partition (automatic takeover is off: no majority))
         40 ! QuorumBack
         40   role: fit
        ",
    );
}

#[test]
fn without_a_majority_a_backup_that_wins_the_vip_by_the_race_gives_it_back_without_a_cooldown() {
    let world = World { automatic_takeover: false, ..World::backup_node() };
    // The master dies: VRRP makes this node master a moment before quorum loss fails its
    // check; the takeover refuses (no quorum). Later the administrator's `pvecm expected 1`.
    let script = [
        (3, Event::QuorumLost),
        (3, Event::BecomesMaster),
        (4, Event::TakeoverEnds),
        (30, Event::QuorumBack),
    ];
    let log = run(world, 10, &script, 32);
    assert_log(
        &log,
        "
          3 ! QuorumLost
          3 ! BecomesMaster
          3   role: unfit (not in the quorate partition (automatic takeover is off: no majority))
          4 ! TakeoverEnds
          4   keepalived: FAULT, its VIPs removed
         30 ! QuorumBack
         30   role: fit
        ",
    );
}

#[test]
fn a_configuration_that_just_turned_takeover_off_still_fences_for_a_minute() {
    // `pvecm qdevice remove` while the cluster splits: the running quorum may still give the
    // other side the QDevice's vote, so this side fences as before for OFF_SETTLES.
    let script = [(2, Event::TakeoverTurnedOff), (5, Event::QuorumLost), (30, Event::QuorumBack)];
    let log = run(World::serving_node(), 10, &script, 31);
    assert_log(
        &log,
        "
          2 ! TakeoverTurnedOff
          5 ! QuorumLost
          5   role: unfit (not in the quorate partition)
          5   watchdog: Starve
          6   keepalived: FAULT, its VIPs removed
          7   -> kill mfsmaster (quorum lost)
         15   -> stop every VM and cut the MooseFS mount (fence delay reached)
         15   watchdog: Disarm
         30 ! QuorumBack
         30   -> quorum regained: mount MooseFS again
         30   role: fit
         30   watchdog: Feed
        ",
    );
}

#[test]
fn a_loop_restarted_while_the_master_stands_alone_keeps_it_serving() {
    // A new loop (no memory) on the master of a two-node cluster whose other node is gone.
    let world = World { automatic_takeover: false, quorate: false, ..World::serving_node() };
    let log = run(world, 10, &[(20, Event::MasterCrashes)], 22);
    assert_log(
        &log,
        "
         20 ! MasterCrashes
         21   -> restart mfsmaster (the VIP holder does not serve)
        ",
    );
}
