//! How large a manifest may be, and the smallest and largest value of every duration in it.
//!
//! A manifest is read by a daemon that runs everything else: a file of 50 MB, a million jobs
//! or a health check every 0 s would take it down. Each bound is checked when the manifest is
//! validated and reported at the offending value. Pure.

use std::time::Duration;

/// A `coco.yaml` larger than this is refused before it is parsed.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// Jobs one project may declare.
pub const MAX_JOBS: usize = 1000;
/// Apps one project may declare.
pub const MAX_APPS: usize = 100;
/// Tries of one run (`attempts`): with `retry_delay: 0s` each is a new process at once.
pub const MAX_ATTEMPTS: u32 = 1000;

/// The longest duration anything may be set to: 10 years (a longer one is a typo, and would
/// overflow the clock arithmetic of fire and retry times).
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 31_557_600);

/// The smallest and largest value a duration setting may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: Duration,
    pub max: Duration,
    /// Why the minimum, shown with it.
    pub why: &'static str,
}

/// `jobs.*.retry_delay`: `0s` retries at once; a retry starts a new process and spends an
/// attempt, so a failing job starts at most `attempts` times.
pub const RETRY_DELAY: Bounds = Bounds {
    min: Duration::ZERO,
    max: MAX_DURATION,
    why: "",
};

/// `jobs.*.timeout`.
pub const JOB_TIMEOUT: Bounds = Bounds {
    min: Duration::from_secs(1),
    max: MAX_DURATION,
    why: "leave it out for none",
};

/// `apps.*.health.interval`.
pub const HEALTH_INTERVAL: Bounds = Bounds {
    min: Duration::from_millis(100),
    max: Duration::from_secs(86_400),
    why: "checking more often only loads the app and the daemon",
};

/// `apps.*.health.timeout`.
pub const HEALTH_TIMEOUT: Bounds = Bounds {
    min: Duration::from_millis(100),
    max: Duration::from_secs(86_400),
    why: "a shorter check fails on any busy host",
};

/// `jobs.*.defer_delay`: the wait after a run asks to run later (exit 75).
pub const DEFER_DELAY: Bounds = Bounds {
    min: super::MIN_DEFER_DELAY,
    max: MAX_DURATION,
    why: "a job exiting 75 would otherwise run again at once, without end",
};

/// `jobs.*.defer_max`: `0s` makes exit 75 an error at once.
pub const DEFER_MAX: Bounds = Bounds {
    min: Duration::ZERO,
    max: MAX_DURATION,
    why: "",
};

/// What is wrong with `value` for a setting with `bounds`, if anything.
pub fn duration_problem(value: Duration, bounds: Bounds) -> Option<String> {
    let show = |d: Duration| humantime::format_duration(d).to_string();
    if value < bounds.min {
        let why = if bounds.why.is_empty() {
            String::new()
        } else {
            format!(" ({})", bounds.why)
        };
        Some(format!("must be at least {}{why}", show(bounds.min)))
    } else if value > bounds.max {
        Some(format!("must be at most {}", show(bounds.max)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_checked_against_both_bounds() {
        assert_eq!(
            duration_problem(Duration::ZERO, HEALTH_INTERVAL).as_deref(),
            Some("must be at least 100ms (checking more often only loads the app and the daemon)")
        );
        assert_eq!(
            duration_problem(Duration::from_millis(100), HEALTH_INTERVAL),
            None
        );
        assert_eq!(
            duration_problem(Duration::from_secs(86_401), HEALTH_INTERVAL).as_deref(),
            Some("must be at most 1day")
        );
        assert_eq!(duration_problem(Duration::ZERO, RETRY_DELAY), None);
        assert_eq!(
            duration_problem(MAX_DURATION + Duration::from_secs(1), RETRY_DELAY).as_deref(),
            Some("must be at most 10years")
        );
    }
}
