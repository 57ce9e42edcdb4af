//! The uplink watch (SPEC section 4). Every node pings the uplink targets every 3 minutes
//! (`dlll_cias-watch uplink`); when none answers, one power-off is scheduled
//! `uplink.shutdown_after_mins` later, and the link coming back cancels it. At the deadline
//! the node stops its VMs cleanly and powers off; the master first hands its role (and the
//! router) to a node whose uplink answers.
//!
//! [`decide`] turns what one look saw into the next state and one step; the state lasts across
//! reboots (`/var/lib/dlll-cias/uplink.json`), so a node that comes back without its uplink
//! schedules afresh (never sooner than a full period after it came back) and a node that comes
//! back with it says the loss is over.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::host::{Command, Host, HostError};
use crate::netplan::vmid::ROUTER_VMID;
use crate::node_watch::span;

/// The transient systemd timer (and its service) that powers the node off at the deadline.
pub const POWER_OFF_UNIT: &str = "dlll-cias-uplink-power-off";

/// How long after its time a pending power-off is still believed under way (a master waits up
/// to 15 minutes for a successor, then as long for the other nodes' VMs).
const STALLED_AFTER: Duration = Duration::from_secs(40 * 60);

/// The uplink as the last look left it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Uplink {
    /// A target answered (or nothing was ever missed).
    #[default]
    Up,
    /// No target has answered since `since`; the power-off is due at `at` (unix seconds).
    Lost { since: u64, at: u64 },
    /// No target answers since `since`, and the administrator cancelled the power-off: no
    /// other is scheduled until the link has come back once.
    Held { since: u64 },
}

impl crate::state_file::StateFile for Uplink {
    const NAME: &'static str = "uplink.json";

    fn file() -> std::path::PathBuf {
        std::path::Path::new(crate::paths::LASTING_STATE_DIR).join(Self::NAME)
    }
}

/// What one look saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Look {
    /// Some target answered.
    pub answered: bool,
    /// Whether the router VM runs somewhere in the cluster (`None`: cannot tell, e.g. without
    /// quorum). The nodes reach the outside through it, so with the router down the outside
    /// cannot answer whatever the uplink does: that is the takeover's to heal, not a reason to
    /// power the cluster off.
    pub router_running: Option<bool>,
    /// The power-off timer (or the power-off itself) is active on this node.
    pub pending: bool,
    /// Unix seconds.
    pub now: u64,
}

/// What to do after a look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing; the text says why (for the journal).
    Keep(String),
    /// Schedule the power-off at `at` (wall message, mail). `again` when one had been
    /// scheduled before and is gone (a reboot).
    Schedule { since: u64, at: u64, again: bool },
    /// Cancel the scheduled power-off (wall message, mail).
    Cancel { why: String },
    /// The uplink answers again after the administrator had held the power-off (mail).
    Back { down_for: Duration },
}

/// The next state and step after `look`, with `after` the configured time to the power-off.
pub fn decide(state: &Uplink, look: &Look, after: Duration) -> (Uplink, Step) {
    let down_for = |since: u64| Duration::from_secs(look.now.saturating_sub(since));
    if look.answered {
        let step = match state {
            Uplink::Up => Step::Keep("the uplink answers".into()),
            Uplink::Lost { since, .. } => {
                Step::Cancel { why: format!("the uplink answers again, after {}", span(down_for(*since))) }
            }
            Uplink::Held { since } => Step::Back { down_for: down_for(*since) },
        };
        return (Uplink::Up, step);
    }
    if look.router_running == Some(false) {
        let why = format!(
            "nothing answers, but the router (VM {}) runs nowhere: the outside cannot answer through it, \
             which is not an uplink loss",
            ROUTER_VMID
        );
        let step = match state {
            Uplink::Lost { .. } => Step::Cancel { why },
            _ => Step::Keep(format!("{why}; no power-off")),
        };
        return (Uplink::Up, step);
    }
    match *state {
        Uplink::Up => {
            let at = look.now + after.as_secs();
            (Uplink::Lost { since: look.now, at }, Step::Schedule { since: look.now, at, again: false })
        }
        // A power-off still pending well after its time has stalled (it failed, or waits on
        // something): it is scheduled again rather than trusted for ever.
        Uplink::Lost { since, at } if look.pending && look.now <= at + STALLED_AFTER.as_secs() => (
            state.clone(),
            Step::Keep(format!("no answer for {}; power-off at {}", span(down_for(since)), utc(at))),
        ),
        Uplink::Lost { since, .. } => {
            // The timer is gone (the node rebooted, or someone stopped it by hand) or stalled. A full
            // period from now, never sooner, so a node is never powered off as it boots.
            let at = look.now + after.as_secs();
            (Uplink::Lost { since, at }, Step::Schedule { since, at, again: true })
        }
        Uplink::Held { since } => (
            state.clone(),
            Step::Keep(format!(
                "no answer for {}; the power-off was cancelled by the administrator",
                span(down_for(since))
            )),
        ),
    }
}

/// The administrator cancels the scheduled power-off (`dlll_cias-watch uplink --cancel`).
pub fn hold(state: &Uplink) -> (Uplink, Step) {
    match *state {
        Uplink::Lost { since, .. } => (
            Uplink::Held { since },
            Step::Cancel {
                why: "cancelled by the administrator; none is scheduled again until the uplink has come back"
                    .into(),
            },
        ),
        _ => (state.clone(), Step::Keep("no power-off is scheduled".into())),
    }
}

/// Whether the power-off run at the deadline goes on: the loss stands and nothing cancels it
/// now (otherwise [`decide`] says what to do instead).
pub fn still_due(state: &Uplink, look: &Look) -> bool {
    matches!(state, Uplink::Lost { .. }) && !look.answered && look.router_running != Some(false)
}

/// The wall message when the power-off is scheduled.
pub fn scheduled_message(node: &str, targets: &[std::net::Ipv4Addr], since: u64, at: u64) -> String {
    format!(
        "DLLL-CIAS: {node} has had no uplink since {} (no answer from {}). It powers off at {}, \
         its VMs stopped cleanly first (the master hands its role over before), unless the link \
         comes back. To keep it running: dlll_cias-watch uplink --cancel",
        utc(since),
        targets_text(targets),
        utc(at)
    )
}

/// The targets as a person reads them: `a, b, c`.
pub fn targets_text(targets: &[std::net::Ipv4Addr]) -> String {
    targets.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
}

/// The command that pings `target` (3 tries over about a second; any reply counts).
pub fn ping_command(target: std::net::Ipv4Addr) -> Command {
    Command::query_argv(&["ping", "-n", "-q", "-c", "3", "-i", "0.3", "-W", "1", &target.to_string()])
}

/// Whether any target answers a ping from `host`, all asked at once.
pub fn any_answers(host: &dyn Host, targets: &[std::net::Ipv4Addr]) -> Result<bool, HostError> {
    let answers: Vec<Result<bool, HostError>> = std::thread::scope(|s| {
        let asks: Vec<_> = targets
            .iter()
            .map(|&t| s.spawn(move || host.execute(&ping_command(t)).map(|o| o.success())))
            .collect();
        asks.into_iter().map(|a| a.join().unwrap_or(Ok(false))).collect()
    });
    let mut found = false;
    for answer in answers {
        found |= answer?;
    }
    Ok(found)
}

/// Whether the power-off timer or the power-off it starts is active on `host`.
pub fn pending(host: &dyn Host) -> Result<bool, HostError> {
    let units = [format!("{POWER_OFF_UNIT}.timer"), format!("{POWER_OFF_UNIT}.service")];
    let out = host.execute(&Command::query_argv(&["systemctl", "is-active", &units[0], &units[1]]))?;
    Ok(out.stdout.lines().any(|l| matches!(l.trim(), "active" | "activating" | "reloading")))
}

/// Starts the transient timer that runs `dlll_cias-watch uplink --power-off` at `at`.
pub fn schedule_command(now: u64, at: u64) -> Command {
    Command::from_argv(&[
        "systemd-run",
        "--quiet",
        &format!("--unit={POWER_OFF_UNIT}"),
        &format!("--on-active={}s", at.saturating_sub(now).max(1)),
        "--timer-property=AccuracySec=1s",
        // Unloaded once it fired: an elapsed timer would still count as pending.
        "--timer-property=RemainAfterElapse=no",
        "--description=dlll-cias: power-off after the uplink was lost",
        &format!("{}/dlll_cias-watch", crate::paths::BIN_DIR),
        "uplink",
        "--power-off",
    ])
}

/// Stops the power-off timer (no error when there is none).
pub fn cancel_command() -> Command {
    Command::from_argv(&["systemctl", "stop", &format!("{POWER_OFF_UNIT}.timer")])
}

/// `HH:MM UTC` of unix seconds `t`, for messages.
pub fn utc(t: u64) -> String {
    format!("{:02}:{:02} UTC", t / 3600 % 24, t / 60 % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario_log::assert_log;

    const AFTER: Duration = Duration::from_secs(15 * 60);

    fn look(now: u64, answered: bool, pending: bool) -> Look {
        Look { answered, router_running: Some(true), pending, now }
    }

    /// Runs looks 3 minutes apart from 10:00 UTC, each `(answered, pending)`, and returns the
    /// last state and the readable log of what each look decided.
    fn scenario(start: &Uplink, looks: &[(bool, bool)]) -> (Uplink, String) {
        let mut state = start.clone();
        let mut log = String::new();
        for (i, &(answered, pending)) in looks.iter().enumerate() {
            let now = 36_000 + 180 * i as u64;
            let (next, step) = decide(&state, &look(now, answered, pending), AFTER);
            log += &format!("{} answered={answered} pending={pending}: {step:?}\n", utc(now));
            state = next;
        }
        (state, log)
    }

    #[test]
    fn a_loss_schedules_one_power_off_and_the_link_coming_back_cancels_it() {
        let (state, log) = scenario(
            &Uplink::Up,
            &[(true, false), (false, false), (false, true), (false, true), (true, true)],
        );
        assert_eq!(state, Uplink::Up);
        assert_log(
            &log,
            r#"
        10:00 UTC answered=true pending=false: Keep("the uplink answers")
        10:03 UTC answered=false pending=false: Schedule { since: 36180, at: 37080, again: false }
        10:06 UTC answered=false pending=true: Keep("no answer for 3 min; power-off at 10:18 UTC")
        10:09 UTC answered=false pending=true: Keep("no answer for 6 min; power-off at 10:18 UTC")
        10:12 UTC answered=true pending=true: Cancel { why: "the uplink answers again, after 9 min" }
        "#,
        );
    }

    #[test]
    fn after_a_reboot_without_uplink_a_full_period_starts_again() {
        let lost = Uplink::Lost { since: 30_000, at: 30_900 };
        let (state, step) = decide(&lost, &look(40_000, false, false), AFTER);
        assert_eq!(state, Uplink::Lost { since: 30_000, at: 40_900 });
        assert_eq!(step, Step::Schedule { since: 30_000, at: 40_900, again: true });
    }

    #[test]
    fn a_power_off_pending_long_after_its_time_is_scheduled_again() {
        let lost = Uplink::Lost { since: 30_000, at: 30_900 };
        let (_, step) = decide(&lost, &look(30_900 + 39 * 60, false, true), AFTER);
        assert!(matches!(step, Step::Keep(_)), "under way: {step:?}");
        let now = 30_900 + 41 * 60;
        let (state, step) = decide(&lost, &look(now, false, true), AFTER);
        assert_eq!(step, Step::Schedule { since: 30_000, at: now + 900, again: true });
        assert_eq!(state, Uplink::Lost { since: 30_000, at: now + 900 });
    }

    #[test]
    fn a_reboot_with_the_uplink_back_ends_the_loss() {
        let lost = Uplink::Lost { since: 30_000, at: 30_900 };
        let (state, step) = decide(&lost, &look(40_000, true, false), AFTER);
        assert_eq!(state, Uplink::Up);
        assert!(matches!(step, Step::Cancel { .. }), "{step:?}");
    }

    #[test]
    fn a_held_power_off_is_not_scheduled_again_until_the_link_came_back() {
        let (held, step) = hold(&Uplink::Lost { since: 36_000, at: 36_900 });
        assert_eq!(held, Uplink::Held { since: 36_000 });
        assert!(matches!(step, Step::Cancel { .. }));
        let (state, log) = scenario(&held, &[(false, false), (false, false), (true, false), (false, false)]);
        assert_eq!(state, Uplink::Lost { since: 36_540, at: 37_440 });
        assert_log(
            &log,
            r#"
        10:00 UTC answered=false pending=false: Keep("no answer for 0 s; the power-off was cancelled by the administrator")
        10:03 UTC answered=false pending=false: Keep("no answer for 3 min; the power-off was cancelled by the administrator")
        10:06 UTC answered=true pending=false: Back { down_for: 360s }
        10:09 UTC answered=false pending=false: Schedule { since: 36540, at: 37440, again: false }
        "#,
        );
    }

    #[test]
    fn with_the_router_down_nothing_answering_is_not_an_uplink_loss() {
        let router_down = Look { answered: false, router_running: Some(false), pending: false, now: 36_000 };
        let (state, step) = decide(&Uplink::Up, &router_down, AFTER);
        assert_eq!(state, Uplink::Up);
        assert!(matches!(step, Step::Keep(ref why) if why.contains("runs nowhere")), "{step:?}");
        let (state, step) = decide(&Uplink::Lost { since: 35_000, at: 35_900 }, &router_down, AFTER);
        assert_eq!(state, Uplink::Up);
        assert!(matches!(step, Step::Cancel { .. }), "a scheduled power-off is cancelled: {step:?}");
        let unknown = Look { router_running: None, ..router_down };
        assert!(matches!(decide(&Uplink::Up, &unknown, AFTER).1, Step::Schedule { .. }));
    }

    #[test]
    fn the_power_off_run_goes_on_only_while_the_loss_stands() {
        let lost = Uplink::Lost { since: 1, at: 2 };
        assert!(still_due(&lost, &look(3, false, true)));
        assert!(!still_due(&lost, &look(3, true, true)), "the link came back");
        let router_down = Look { router_running: Some(false), ..look(3, false, true) };
        assert!(!still_due(&lost, &router_down), "the router stopped: not an uplink loss");
        assert!(!still_due(&Uplink::Held { since: 1 }, &look(3, false, true)), "cancelled");
        assert!(!still_due(&Uplink::Up, &look(3, false, true)));
    }

    #[test]
    fn the_message_says_when_and_how_to_cancel() {
        let text = scheduled_message("node2", &["10.254.255.250".parse().unwrap()], 36_000, 36_900);
        assert!(text.contains("since 10:00 UTC (no answer from 10.254.255.250)"), "{text}");
        assert!(text.contains("powers off at 10:15 UTC"), "{text}");
        assert!(text.contains("dlll_cias-watch uplink --cancel"), "{text}");
    }

    #[test]
    fn the_timer_fires_at_the_deadline() {
        let cmd = schedule_command(100, 1000);
        assert!(cmd.argv().contains(&"--on-active=900s".to_string()), "{cmd}");
        assert!(cmd.argv().ends_with(&["uplink".to_string(), "--power-off".to_string()]), "{cmd}");
    }
}
