//! When a supervised app is started again (pure): the restart policy, and an exponential
//! backoff so that a crash-looping app never becomes a restart storm.
//!
//! The first restart waits [`FIRST`], each further one twice as long, up to [`MAX`]. An app
//! that stayed up for [`RESET_AFTER`] starts the count again.

use std::time::Duration;

use crate::manifest::RestartPolicy;

/// The wait before the first restart in a row.
pub const FIRST: Duration = Duration::from_millis(100);

/// The longest wait.
pub const MAX: Duration = Duration::from_secs(30);

/// Up this long, an app's next crash counts as the first again.
pub const RESET_AFTER: Duration = Duration::from_secs(10);

/// The wait before restart number `in_a_row` (1 for the first restart after a good run).
pub fn delay(in_a_row: u32) -> Duration {
    let doublings = in_a_row.saturating_sub(1).min(20);
    FIRST.saturating_mul(1 << doublings).min(MAX)
}

/// The restarts in a row once a process that ran for `uptime` ended: the count goes on, or
/// starts again after a long enough run.
pub fn in_a_row(previous: u32, uptime: Duration) -> u32 {
    if uptime >= RESET_AFTER {
        1
    } else {
        previous.saturating_add(1)
    }
}

/// Does `policy` restart a process that ended, successfully or not?
pub fn restarts(policy: RestartPolicy, success: bool) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => !success,
        RestartPolicy::Never => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_100ms_to_30s() {
        let delays: Vec<u128> = (1..=11).map(|n| delay(n).as_millis()).collect();
        assert_eq!(
            delays,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000
            ]
        );
        assert_eq!(delay(0), FIRST);
        assert_eq!(delay(u32::MAX), MAX);
    }

    #[test]
    fn a_long_run_resets_the_count() {
        assert_eq!(in_a_row(5, Duration::from_secs(1)), 6);
        assert_eq!(in_a_row(5, RESET_AFTER), 1);
        assert_eq!(in_a_row(0, Duration::ZERO), 1);
    }

    #[test]
    fn policies() {
        assert!(restarts(RestartPolicy::Always, true));
        assert!(restarts(RestartPolicy::Always, false));
        assert!(!restarts(RestartPolicy::OnFailure, true));
        assert!(restarts(RestartPolicy::OnFailure, false));
        assert!(!restarts(RestartPolicy::Never, false));
    }

    #[test]
    fn a_crash_loop_restarts_a_handful_of_times_a_minute_at_most() {
        // Crashing at once, forever: how many restarts fit in the first minute?
        let mut elapsed = Duration::ZERO;
        let mut restarts = 0;
        while elapsed < Duration::from_secs(60) {
            restarts += 1;
            elapsed += delay(restarts);
        }
        assert!(restarts <= 11, "{restarts}");
    }
}
