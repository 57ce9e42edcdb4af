//! The two clocks the toolkit uses. Fencing decisions count on [`boot_ms`], which only moves
//! forward and keeps counting while the machine is suspended (CLOCK_BOOTTIME): a wall clock
//! that NTP steps back or forward would make a node fence too late or a new master recover
//! VMs too early. [`unix_secs`] is only for names and messages a person reads.

/// Milliseconds since this machine booted (CLOCK_BOOTTIME). Values are comparable only on
/// one machine and within one boot: they are kept in `/run`, which a reboot empties.
pub fn boot_ms() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    t.tv_sec as u64 * 1000 + t.tv_nsec as u64 / 1_000_000
}

/// Seconds since the Unix epoch (wall clock), for file names and messages.
pub fn unix_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_time_moves_forward() {
        let a = boot_ms();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = boot_ms();
        assert!(b >= a + 20 && b < a + 5_000, "{a} -> {b}");
    }
}
