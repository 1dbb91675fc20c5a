//! The worker's own fence: runs never execute on two hosts at once.
//!
//! Another host takes a run back as a zombie once its heartbeat is `zombie_after` old. So a
//! worker that has not renewed its runs' heartbeat for `zombie_after − grace − MARGIN`
//! ([`fence_after`]) ends them itself — SIGTERM, the grace, SIGKILL — and they are gone
//! before any other host may take them back; the taken-back run is retried without spending
//! an attempt. A renewal is a heartbeat the store accepted (or, with no other run running, a
//! claim), dated from before the call, as the store dates it.
//!
//! Two lines hold it: the worker's loop stops its runs at the deadline
//! (`run::Stop::Fenced`), and the process guard, told each renewal's deadline
//! ([`crate::process::guard::Handle::renewed`]), ends them even when the worker itself is
//! stalled (SIGSTOP, a long pause) and cannot.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// What the signals and the kernel take, on top of the grace, before a run is gone.
pub const MARGIN: Duration = Duration::from_secs(1);

/// How long after its latest renewal a worker ends its runs (pure): `zombie_after − grace −
/// MARGIN`, at least a second.
pub fn fence_after(zombie_after: Duration, grace: Duration) -> Duration {
    zombie_after
        .saturating_sub(grace + MARGIN)
        .max(Duration::from_secs(1))
}

/// The latest renewal of one worker's runs, shared by its loop and its run tasks.
#[derive(Debug)]
pub struct Fence {
    base: Instant,
    after: Duration,
    /// Milliseconds after `base` of the latest renewal.
    renewed_ms: AtomicU64,
    /// The runs were ended for the current deadline (cleared when a renewal moves it).
    ended: AtomicBool,
}

impl Fence {
    /// A fence renewed now.
    pub(crate) fn new(after: Duration) -> Fence {
        Fence {
            base: Instant::now(),
            after,
            renewed_ms: AtomicU64::new(0),
            ended: AtomicBool::new(false),
        }
    }

    /// The runs' heartbeat was renewed by a store call that began at `at`: a later deadline,
    /// and the runs are no longer ended for it (an older renewal changes nothing).
    pub(crate) fn renew(&self, at: Instant) {
        let ms =
            u64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX);
        if self.renewed_ms.fetch_max(ms, Ordering::AcqRel) < ms {
            self.ended.store(false, Ordering::Release);
        }
    }

    /// Mark the runs ended for the current deadline.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::Release);
    }

    /// Is a deadline still to be acted on: runs, and not ended for this deadline yet?
    pub(crate) fn armed(&self, runs: bool) -> bool {
        runs && !self.ended.load(Ordering::Acquire)
    }

    /// The latest renewal.
    pub(crate) fn renewed(&self) -> Instant {
        self.base + Duration::from_millis(self.renewed_ms.load(Ordering::Acquire))
    }

    /// When the runs must be ended unless renewed before.
    pub(crate) fn deadline(&self) -> Instant {
        self.renewed() + self.after
    }

    /// Has the deadline passed?
    pub(crate) fn expired(&self) -> bool {
        Instant::now() >= self.deadline()
    }

    /// Time left before the deadline.
    pub(crate) fn remaining(&self) -> Duration {
        self.deadline().saturating_duration_since(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_end_a_grace_and_a_margin_before_they_may_be_taken_back() {
        let grace = Duration::from_secs(5);
        assert_eq!(
            fence_after(Duration::from_secs(60), grace),
            Duration::from_secs(54)
        );
        assert_eq!(
            fence_after(Duration::from_secs(20), grace),
            Duration::from_secs(14)
        );
        assert_eq!(
            fence_after(Duration::from_secs(3), grace),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_renewal_moves_the_deadline_and_rearms_it_and_an_older_one_does_neither() {
        let fence = Fence::new(Duration::from_secs(10));
        let start = fence.base;
        assert!(!fence.expired());
        fence.renew(start + Duration::from_secs(4));
        assert_eq!(fence.deadline(), start + Duration::from_secs(14));
        fence.renew(start + Duration::from_secs(1));
        assert_eq!(fence.deadline(), start + Duration::from_secs(14));
        assert!(fence.remaining() > Duration::from_secs(10));
        assert!(fence.armed(true) && !fence.armed(false));
        fence.end();
        assert!(!fence.armed(true), "ended for this deadline");
        fence.renew(start + Duration::from_secs(2));
        assert!(!fence.armed(true), "an older renewal does not re-arm it");
        fence.renew(start + Duration::from_secs(5));
        assert!(fence.armed(true), "a later one does");
        let stale = Fence::new(Duration::ZERO);
        assert!(stale.expired());
        assert_eq!(stale.remaining(), Duration::ZERO);
    }
}
