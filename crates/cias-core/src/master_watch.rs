//! A cluster without a master (SPEC section 7, "never master" nodes). When the master dies and
//! every quorate node left was installed with priority 0, nobody takes the role: those nodes
//! run no VRRP instance. Each of them notices (`dlll_cias-watch master`, every minute) and
//! tells the administrator once, instead of leaving the cluster silently without storage.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::state_file::StateFile;

/// How long no master may answer before a never-master node says so: a takeover has the
/// VIPs within seconds and MooseFS within a second more, so this is no false alarm. Shorter
/// than cron's minute, so the second look that finds no master tells (cron starts jobs up to
/// a second late: a full minute would often wait for a third look, measured in the lab).
pub const GRACE: Duration = Duration::from_secs(45);

/// What one look found, saved between cron runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Absence {
    /// Since when (unix ms) no master answered; `None` while one does.
    pub since_ms: Option<u64>,
    /// Whether the administrator was told about this absence.
    pub told: bool,
}

/// What the watch reports after one look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// A master answers, as before.
    Present,
    /// No master answers, for this long so far (under [`GRACE`], or already told).
    Missing(Duration),
    /// No master for [`GRACE`] or more: tell the administrator (once per absence).
    Tell(Duration),
    /// A master answers again after this long without one.
    Back(Duration),
}

/// `/run/dlll-cias/no-master.json`, kept between cron runs.
impl StateFile for Absence {
    const NAME: &'static str = "no-master.json";
}

impl Absence {
    /// One look at `now_ms`: whether a master answered.
    pub fn observe(&mut self, master_answers: bool, now_ms: u64) -> Finding {
        let missing_for = |since: u64| Duration::from_millis(now_ms.saturating_sub(since));
        match (master_answers, self.since_ms) {
            (true, None) => Finding::Present,
            (true, Some(since)) => {
                *self = Self::default();
                Finding::Back(missing_for(since))
            }
            (false, None) => {
                self.since_ms = Some(now_ms);
                Finding::Missing(Duration::ZERO)
            }
            (false, Some(since)) if missing_for(since) >= GRACE && !self.told => {
                self.told = true;
                Finding::Tell(missing_for(since))
            }
            (false, Some(since)) => Finding::Missing(missing_for(since)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_once_after_the_grace_and_notices_the_return() {
        let mut a = Absence::default();
        assert_eq!(a.observe(true, 0), Finding::Present);
        assert_eq!(a.observe(false, 1_000), Finding::Missing(Duration::ZERO));
        assert_eq!(a.observe(false, 31_000), Finding::Missing(Duration::from_secs(30)));
        assert_eq!(a.observe(false, 60_500), Finding::Tell(Duration::from_millis(59_500)), "a cron minute");
        assert_eq!(a.observe(false, 121_000), Finding::Missing(Duration::from_secs(120)), "told once");
        assert_eq!(a.observe(true, 181_000), Finding::Back(Duration::from_secs(180)));
        assert_eq!(a, Absence::default());
        assert_eq!(a.observe(false, 200_000), Finding::Missing(Duration::ZERO), "a new absence starts over");
    }

    #[test]
    fn survives_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("no-master.json");
        let mut a = Absence::default();
        a.observe(false, 5);
        a.save(&file).unwrap();
        assert_eq!(Absence::load(&file), a);
        assert_eq!(Absence::load(&dir.path().join("none.json")), Absence::default());
    }
}
