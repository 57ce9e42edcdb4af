//! A scenario's timeline (takeover, escape, removal): each event and step with the time it
//! started (since the command began) and how long it took, logged as it happens and mailed to
//! the administrator at the end.

use std::fmt::Write;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Timeline {
    start: Instant,
    lines: Vec<String>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Timeline {
    pub fn new() -> Self {
        Self { start: Instant::now(), lines: Vec::new() }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records an event (logged at once).
    pub fn note(&mut self, message: &str) {
        let line = format!("+{:>6.2}s  {message}", self.elapsed().as_secs_f64());
        tracing::info!("{line}");
        self.lines.push(line);
    }

    /// Runs one step and records when it started, how long it took and how it ended.
    pub fn step<T, E: std::fmt::Display>(
        &mut self,
        title: &str,
        work: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E> {
        let at = self.elapsed();
        let result = work(self);
        let took = self.elapsed() - at;
        let line = match &result {
            Ok(_) => format!("+{:>6.2}s  {title}: done in {:.2}s", at.as_secs_f64(), took.as_secs_f64()),
            Err(e) => format!(
                "+{:>6.2}s  {title}: FAILED after {:.2}s - {e:#}",
                at.as_secs_f64(),
                took.as_secs_f64()
            ),
        };
        if result.is_ok() {
            tracing::info!("{line}");
        } else {
            tracing::error!("{line}");
        }
        self.lines.push(line);
        result
    }

    /// The whole timeline, one line per event.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            let _ = writeln!(out, "{line}");
        }
        out
    }
}
