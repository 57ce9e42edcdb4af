//! The reconcile loop's decisions (SPEC section 8): every second, `dlll_cias-fence run` looks
//! at this node ([`Observed`]) and [`Reconciler::tick`] says what to repair, whatever broke it.
//! The invariants:
//!
//! - **The VIPs are held only while keepalived runs.** A keepalived that died (or was
//!   restarted) leaves its addresses behind, and another node takes them ~3 s later: two
//!   holders, two mfsmasters (measured). The loop removes them at once.
//! - **mfsmaster runs only on the VIP holder, while quorate and while keepalived runs**;
//!   anywhere else it is stopped and its files set aside (as keepalived's notify_backup does).
//!   Quorum loss kills it once confirmed ([`CONFIRM`]): a one-reading blip does nothing.
//! - **The VIP holder serves MooseFS.** An mfsmaster that served, then died or hangs, is
//!   restarted (`-a`) within seconds; when it cannot serve within [`GRACE`], this node gives
//!   the role up ([`Tick::unfit`] fails keepalived's check: FAULT, the VIPs go to another node).
//!   A master this node has not served as yet only a takeover starts (it first makes sure no
//!   other node runs one): a VIP holder whose takeover ended without one gives the role up.
//! - **Only a fit node may hold the role**: quorate, fully installed, keepalived running, not
//!   given up. keepalived's check (`dlll_cias-fence check`) reads the loop's verdict, so a
//!   node whose loop does not run cannot hold the role either.
//! - **Every node keeps a copy a master can start from**: a master promoted from metalogger
//!   files offers a full metadata file at once (not at its hourly dump), and a metalogger
//!   holding changelogs only is restarted to download it.
//! - **Self-fencing**: out of the quorate partition for the fence delay, every VM of this
//!   node is stopped. The watchdog is fed only while quorate; once the fence is complete it is
//!   disarmed (nothing is left to protect), and a loop that dies or hangs before that leaves
//!   it to reset the node.
//! - **No majority, no automatic takeover** ([`crate::majority`]): in a cluster where a
//!   node's loss leaves no majority (two nodes, no QDevice) nobody can take over, so a node
//!   out of quorum fences nothing: the serving master keeps the role and its mfsmaster, the
//!   other node only stays unfit (a VIP it won in the meantime goes), and the watchdog stays fed.
//!
//! Time is the boot clock ([`crate::clock::boot_ms`]), never the wall clock.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fence::STALE;
use crate::state_file::StateFile;

/// How long quorum must stay lost before the node acts: two readings one second apart, the
/// same as keepalived's `fall 2` on the check, so a one-reading blip (seen while a node
/// joins) neither drops the VIPs nor kills the master.
pub const CONFIRM: Duration = Duration::from_secs(2);

/// How long a VIP holder may go without a serving mfsmaster, restarting it, before it gives
/// the role up. A restart serves within a second (measured: 0.2-0.5 s), so several tries fit.
pub const GRACE: Duration = Duration::from_secs(12);

/// Time between two restarts of a master that does not serve.
pub const RESTART_EVERY: Duration = Duration::from_secs(4);

/// How long a node that gave the role up stays unfit: long enough for another node to take
/// over (and nopreempt keeps that one master afterwards), short enough that a cluster whose
/// other nodes are all gone gets this one back.
pub const COOLDOWN: Duration = Duration::from_secs(120);

/// How long a metalogger may hold changelogs only before it is restarted (it just started
/// over, and downloads by itself when the master has a copy to offer).
pub const BARE_GRACE: Duration = Duration::from_secs(5);

/// Time between two tries at giving a metalogger a full copy (publishing the master's, or
/// restarting the metalogger to download it): writing one takes a few seconds.
pub const BASE_RETRY: Duration = Duration::from_secs(10);

/// The longest a node outside the quorate partition may still run an mfsmaster, counted from
/// when the quorate side last saw it: [`CONFIRM`], a loop tick on each side, the skew between
/// the two sides noticing the split (a heartbeat period) and the kill itself, ~1.3 s to spare.
/// A new master starts its own only after that (or after asking the node).
pub const MASTER_FENCE_BOUND: Duration = Duration::from_secs(CONFIRM.as_secs() + 4);

/// How long a configuration newly saying "no automatic takeover" must stay so before a node
/// out of quorum stops fencing itself: `pvecm qdevice remove` writes corosync.conf first and
/// reloads corosync only after its other steps, so for a moment the running quorum may still
/// count the QDevice's vote for the other side.
pub const OFF_SETTLES: Duration = Duration::from_secs(60);

/// This node's mfsmaster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Master {
    /// Not running (its unit is inactive or failed).
    Stopped,
    /// Running (or starting) but not answering clients at the VIP.
    Running,
    /// Answering clients at the VIP.
    Serving,
}

/// What the loop sees on one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Boot clock, milliseconds.
    pub now_ms: u64,
    /// In the quorate Proxmox partition (any failure to ask counts as not).
    pub quorate: bool,
    /// A node's loss leaves the others a majority, so they may take over ([`crate::majority`];
    /// a configuration that cannot be read counts as yes: then quorum loss fences).
    pub automatic_takeover: bool,
    /// How far setup got here.
    pub install: Install,
    /// keepalived's main pid while it runs; `None` when it does not (or this node runs none:
    /// a "never master" node).
    pub keepalived: Option<u32>,
    /// This node holds the master VIP.
    pub holds_vip: bool,
    /// Read before the VIP: an mfsmaster seen running, then no VIP, really ran without it
    /// (a takeover starts mfsmaster only after the VIP arrived).
    pub master: Master,
    /// A takeover (`dlll_cias-switch-to-master`) runs here now.
    pub takeover_running: bool,
    /// A manual switch is taking this master's final metadata: its mfsmaster was stopped on
    /// purpose and must stay stopped.
    pub handing_over: bool,
    /// The master's data directory holds `metadata.mfs.back`, which metaloggers download.
    pub master_has_base: bool,
    /// This node's metalogger holds a metadata file (not only changelogs).
    pub metalogger_has_base: bool,
}

/// How far `dlll_cias-setup` got on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Install {
    Finished,
    /// The first node's setup is running: it holds the VIP to bring MooseFS up, and its
    /// mfsmaster is not started yet (nothing to restart).
    FirstRunning,
    /// Not finished, and not running as the first node's: may not hold the role.
    Unfinished,
}

/// A repair the loop makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// keepalived died or restarted and left its addresses: remove them.
    DropVips,
    /// Quorum is lost: kill this node's mfsmaster at once (a clean stop takes ~4 s).
    KillMaster,
    /// An mfsmaster runs here without the right to: stop it and set its files aside.
    Demote,
    /// The VIP holder's mfsmaster does not serve: restart it (`-a`: from the newest metadata).
    RestartMaster,
    /// Out of quorum for the fence delay: stop every VM here and cut the MooseFS mount.
    StopVms,
    /// Back in the quorum after fencing: mount MooseFS again, take over again if the VIP
    /// stayed here.
    Rejoined,
    /// The serving master has no `metadata.mfs.back` (promoted from metalogger files): write
    /// one, so metaloggers that start over can download a full copy.
    PublishBase,
    /// This node's metalogger holds changelogs only: restart it to download a full copy.
    RestartMetalogger,
    /// The manual switch that marked this node as handing over is past (the VIP left): the
    /// mark goes, or it would keep this node from restarting its master when it is master
    /// again.
    ClearHandover,
}

impl Action {
    /// How the loop's log names it.
    pub fn describe(self) -> &'static str {
        match self {
            Action::DropVips => "remove the VIPs keepalived left behind",
            Action::KillMaster => "kill mfsmaster (quorum lost)",
            Action::Demote => "stop mfsmaster and set its files aside (this node may not run it)",
            Action::RestartMaster => "restart mfsmaster (the VIP holder does not serve)",
            Action::StopVms => "stop every VM and cut the MooseFS mount (fence delay reached)",
            Action::Rejoined => "quorum regained: mount MooseFS again",
            Action::PublishBase => "offer the metaloggers a full metadata copy",
            Action::RestartMetalogger => "restart the metalogger (it holds no metadata file)",
            Action::ClearHandover => "forget the finished handover to a manual switch",
        }
    }
}

/// What to do with the watchdog after this tick's actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogUse {
    /// Quorate: keep it fed (arm it first if it is not).
    Feed,
    /// Out of quorum, fence not complete: stop feeding, so a loop that dies now still fences.
    Starve,
    /// Out of quorum and fenced: nothing left to protect, close it without a reset.
    Disarm,
}

/// The outcome of one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    pub actions: Vec<Action>,
    /// Why this node may not hold the role now (`None`: it may); keepalived's check fails
    /// while this is set.
    pub unfit: Option<String>,
}

/// The loop's memory between ticks.
#[derive(Debug, Clone)]
pub struct Reconciler {
    fence_delay: Duration,
    quorate: bool,
    /// Out of quorum in a cluster without automatic takeover: nothing to fence.
    standing_alone: bool,
    /// While the configuration says "no automatic takeover": from when that counts (boot
    /// clock). At once when it said so from this loop's first look; a change to "off" seen
    /// by this loop counts only [`OFF_SETTLES`] later.
    off_counts_from: Option<u64>,
    /// The configuration said "automatic takeover" at some look of this loop.
    seen_automatic: bool,
    lost_since: Option<u64>,
    master_killed: bool,
    vms_stopped: bool,
    keepalived_pid: Option<u32>,
    /// VIPs a dead keepalived left are still held (their removal has not shown yet).
    vips_left: bool,
    /// The VIP holder's mfsmaster served since this node took the VIP.
    served: bool,
    unserved_since: Option<u64>,
    last_restart: Option<u64>,
    gave_up_until: Option<u64>,
    last_publish: Option<u64>,
    bare_metalogger_since: Option<u64>,
    last_metalogger_restart: Option<u64>,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Whether something last done at `last` may be done again at `now`.
fn due(last: Option<u64>, now: u64, every: Duration) -> bool {
    last.is_none_or(|t| now - t >= ms(every))
}

impl Reconciler {
    pub fn new(fence_delay: Duration) -> Self {
        Self {
            fence_delay: fence_delay.max(CONFIRM),
            quorate: false,
            standing_alone: false,
            off_counts_from: None,
            seen_automatic: false,
            lost_since: None,
            master_killed: false,
            vms_stopped: false,
            keepalived_pid: None,
            vips_left: false,
            served: false,
            unserved_since: None,
            last_restart: None,
            gave_up_until: None,
            last_publish: None,
            bare_metalogger_since: None,
            last_metalogger_restart: None,
        }
    }

    /// Decides this tick's repairs from what was observed.
    pub fn tick(&mut self, o: &Observed) -> Tick {
        let now = o.now_ms;
        let mut actions = self.fence(o);

        let restarted = matches!((self.keepalived_pid, o.keepalived), (Some(a), Some(b)) if a != b);
        self.keepalived_pid = o.keepalived;
        // VIPs found left behind stay suspect until they are seen gone (a removal may fail):
        // a new keepalived wins an election only seconds after it starts.
        self.vips_left &= o.holds_vip;
        let vip_rightful = o.holds_vip && o.keepalived.is_some() && !restarted && !self.vips_left;
        if o.holds_vip && !vip_rightful {
            self.vips_left = true;
            actions.push(Action::DropVips);
        }

        let entitled = vip_rightful && !self.master_killed;
        if o.master != Master::Stopped && !entitled && !actions.contains(&Action::KillMaster) {
            actions.push(if self.master_killed { Action::KillMaster } else { Action::Demote });
        }

        let given_up = self.gave_up_until.is_some_and(|until| now < until);
        if !given_up {
            self.gave_up_until = None;
        }
        if o.handing_over && !o.holds_vip {
            actions.push(Action::ClearHandover);
        }
        let handing_over = o.handing_over && o.holds_vip;
        // Out of quorum without automatic takeover, only the master that served keeps serving.
        if entitled
            && (o.quorate || (self.standing_alone && self.served_alone(o)))
            && !given_up
            && o.install == Install::Finished
            && !handing_over
        {
            self.keep_serving(o, &mut actions);
        } else if !entitled {
            // Whatever served before served another term: after a lost VIP or a quorum loss
            // only a takeover may start mfsmaster again (it checks the other nodes first).
            (self.served, self.unserved_since, self.last_restart) = (false, None, None);
        }
        self.keep_a_copy(o, &mut actions);
        Tick { actions, unfit: self.unfit(o) }
    }

    /// Quorum: kill the master once the loss is confirmed, the VMs after the fence delay.
    fn fence(&mut self, o: &Observed) -> Vec<Action> {
        self.quorate = o.quorate;
        if o.automatic_takeover {
            (self.off_counts_from, self.seen_automatic) = (None, true);
        } else if self.off_counts_from.is_none() {
            let settle = if self.seen_automatic { ms(OFF_SETTLES) } else { 0 };
            self.off_counts_from = Some(o.now_ms + settle);
        }
        let off = self.off_counts_from.is_some_and(|t| o.now_ms >= t);
        self.standing_alone = !o.quorate && off;
        if o.quorate || self.standing_alone {
            let fenced = self.master_killed;
            (self.lost_since, self.master_killed, self.vms_stopped) = (None, false, false);
            return if fenced { vec![Action::Rejoined] } else { vec![] };
        }
        let out_for = o.now_ms.saturating_sub(*self.lost_since.get_or_insert(o.now_ms));
        let mut actions = vec![];
        if out_for >= ms(CONFIRM) && !self.master_killed {
            self.master_killed = true;
            actions.push(Action::KillMaster);
        }
        if out_for >= ms(self.fence_delay) && !self.vms_stopped {
            self.vms_stopped = true;
            actions.push(Action::StopVms);
        }
        actions
    }

    /// The rightful VIP holder: restart a master that does not serve, give up after GRACE.
    fn keep_serving(&mut self, o: &Observed, actions: &mut Vec<Action>) {
        let now = o.now_ms;
        if o.master == Master::Serving {
            (self.served, self.unserved_since, self.last_restart) = (true, None, None);
            if !o.master_has_base && due(self.last_publish, now, BASE_RETRY) {
                self.last_publish = Some(now);
                actions.push(Action::PublishBase);
            }
            return;
        }
        let since = *self.unserved_since.get_or_insert(now);
        if !self.served {
            // Only a takeover starts a master this node has not served as: it makes sure no
            // other node still runs one and takes the newest copy first. Without one (it failed,
            // or refused), this node gives the role up; keepalived starts one within a moment
            // of the VIP arriving, hence two readings.
            if o.takeover_running {
                self.unserved_since = None;
            } else if now - since >= 2_000 {
                self.give_up(now);
            }
            return;
        }
        if now - since >= ms(GRACE) {
            self.give_up(now);
            return;
        }
        // Two readings first: a master that was just started needs a moment to listen.
        if now - since >= 1_000 && due(self.last_restart, now, RESTART_EVERY) {
            self.last_restart = Some(now);
            actions.push(Action::RestartMaster);
        }
    }

    fn give_up(&mut self, now: u64) {
        self.gave_up_until = Some(now + ms(COOLDOWN));
        (self.unserved_since, self.last_restart) = (None, None);
    }

    /// Every installed quorate node's metalogger holds a copy a master can start from.
    fn keep_a_copy(&mut self, o: &Observed, actions: &mut Vec<Action>) {
        if o.metalogger_has_base || !o.quorate || o.install != Install::Finished {
            self.bare_metalogger_since = None;
            return;
        }
        let since = *self.bare_metalogger_since.get_or_insert(o.now_ms);
        if o.now_ms - since >= ms(BARE_GRACE) && due(self.last_metalogger_restart, o.now_ms, BASE_RETRY) {
            self.last_metalogger_restart = Some(o.now_ms);
            actions.push(Action::RestartMetalogger);
        }
    }

    /// Standing alone, this node is the master that served: it holds the VIP and its master
    /// served (seen by this loop, or serving now: a loop restarted while it stands alone).
    fn served_alone(&self, o: &Observed) -> bool {
        o.holds_vip && (self.served || o.master == Master::Serving)
    }

    fn unfit(&self, o: &Observed) -> Option<String> {
        // The VIP may arrive by VRRP before quorum loss fails keepalived's check: only the
        // master that served keeps it.
        if self.standing_alone && !self.served_alone(o) {
            return Some("not in the quorate partition (automatic takeover is off: no majority)".into());
        }
        if !o.quorate && !self.standing_alone {
            return Some("not in the quorate partition".into());
        }
        if o.install == Install::Unfinished {
            return Some("not fully installed (dlll_cias-setup has not finished here)".into());
        }
        if o.keepalived.is_none() {
            return Some("keepalived does not run".into());
        }
        self.gave_up_until.filter(|until| o.now_ms < *until).map(|_| {
            format!(
                "no mfsmaster served here (restarted for {}s, or no takeover started one): the role is left \
                 to another node for {}s",
                GRACE.as_secs(),
                COOLDOWN.as_secs()
            )
        })
    }

    /// An action could not be carried out: it is decided again on the next tick.
    pub fn failed(&mut self, action: Action) {
        match action {
            Action::KillMaster => self.master_killed = false,
            Action::StopVms => self.vms_stopped = false,
            _ => {}
        }
    }

    /// What to do with the watchdog, after this tick's actions (and their failures).
    pub fn watchdog(&self) -> WatchdogUse {
        match (self.quorate || self.standing_alone, self.vms_stopped) {
            (true, _) => WatchdogUse::Feed,
            (false, true) => WatchdogUse::Disarm,
            (false, false) => WatchdogUse::Starve,
        }
    }
}

/// The loop's verdict of its last tick, `/run/dlll-cias/reconcile.json`: keepalived's check
/// reads it every second.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// When the loop wrote it (boot clock).
    pub at_ms: u64,
    /// Why this node may not hold the role (`None`: it may).
    pub unfit: Option<String>,
}

impl StateFile for Verdict {
    const NAME: &'static str = "reconcile.json";
}

impl Verdict {
    /// Whether this node may hold the role at `now_ms`: only on a fresh verdict that says so
    /// (a loop that stopped writing vouches for nothing). The error says why not.
    pub fn allows_role(&self, now_ms: u64) -> Result<(), String> {
        let age = Duration::from_millis(now_ms.saturating_sub(self.at_ms));
        if self.at_ms == 0 || age > STALE {
            return Err(format!(
                "the reconcile loop (dlll-cias-fence) has not looked for {}s",
                age.as_secs()
            ));
        }
        self.unfit.clone().map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod scenarios;
