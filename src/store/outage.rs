//! One voice for a store that does not answer: an outage is logged once when it starts and
//! once when it ends (with its length), never once per retry.
//!
//! The periodic callers (the worker's heartbeat, the supervisor's sync, the daemon's switch
//! reads) report each failure through [`failed`] and each answer through [`answered`]. A
//! failure of the unreachable kind ([`StoreError::is_unreachable`]) starts the outage; once
//! failures have lasted [`CONFIRM_AFTER`] it is logged (one warning), every failure otherwise
//! at debug level only; the first answer to a call begun after it started ends the outage
//! (one line, with how long it lasted). Other failures are the caller's to log. The
//! state is one per process: a process has one store.

use std::sync::Mutex;
use std::sync::PoisonError;

use std::time::Instant;

use super::StoreError;

/// An outage: since when the store has not answered, and whether that was logged (it is
/// once it lasted [`CONFIRM_AFTER`]: a blip — a connection cut as a server restarts, answered
/// at the next try — is no outage).
#[derive(Debug, Clone, Copy)]
struct Down {
    since: Instant,
    logged: bool,
}

static DOWN: Mutex<Option<Down>> = Mutex::new(None);

/// Failures for this long make an outage (and its two log lines).
pub const CONFIRM_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// A store call failed with `error`: an unreachable store starts (or continues) the outage;
/// anything else is logged by `otherwise`.
pub fn failed(error: &StoreError, otherwise: impl FnOnce()) {
    if !error.is_unreachable() {
        otherwise();
        return;
    }
    let mut down = DOWN.lock().unwrap_or_else(PoisonError::into_inner);
    let state = down.get_or_insert(Down {
        since: Instant::now(),
        logged: false,
    });
    if !state.logged && state.since.elapsed() >= CONFIRM_AFTER {
        state.logged = true;
        tracing::warn!(
            "the store does not answer (for {} now): {error}; going on with what may go on \
             (retrying with back-off; the end of the outage will be logged)",
            crate::fields::duration(state.since.elapsed())
        );
    } else {
        tracing::debug!("the store does not answer: {error}");
    }
}

/// A store call that began at `began` was answered: the end of an outage, if one was going
/// on and the call began after it started (a call in flight as the store went away proves
/// nothing).
pub fn answered(began: Instant) {
    let mut down = DOWN.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(state) = *down else {
        return;
    };
    if began <= state.since {
        return;
    }
    *down = None;
    let lasted = state.since.elapsed();
    if state.logged {
        tracing::warn!(
            outage = %crate::fields::duration(lasted),
            "the store answers again after {}",
            crate::fields::duration(lasted)
        );
    } else {
        tracing::debug!(
            "the store answers again after a blip of {}",
            crate::fields::duration(lasted)
        );
    }
}

/// The longest wait between two tries of a caller that retries at once otherwise.
pub const MAX_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// How long to wait before trying again after a failure that followed a wait of `previous`:
/// double it, at most [`MAX_RETRY`], spread by `jitter` (from 0 to 1: −25 % to +25 %) so that
/// the hosts of a fleet do not come back in step (pure).
pub fn retry_after(previous: std::time::Duration, jitter: f64) -> std::time::Duration {
    let doubled = previous
        .saturating_mul(2)
        .clamp(std::time::Duration::from_millis(100), MAX_RETRY);
    doubled.mul_f64(0.75 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// A jitter for [`retry_after`] from the kernel's randomness (ULIDs' generator).
pub fn jitter() -> f64 {
    f64::from(ulid::Ulid::new().random() as u16) / f64::from(u16::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn retries_back_off_doubling_to_a_cap_with_a_spread() {
        assert_eq!(retry_after(Duration::ZERO, 0.5), Duration::from_millis(100));
        assert_eq!(
            retry_after(Duration::from_millis(400), 0.5),
            Duration::from_millis(800)
        );
        assert_eq!(retry_after(Duration::from_secs(60), 0.5), MAX_RETRY);
        assert_eq!(
            retry_after(Duration::from_secs(60), 0.0),
            MAX_RETRY.mul_f64(0.75)
        );
        assert_eq!(
            retry_after(Duration::from_secs(60), 1.0),
            MAX_RETRY.mul_f64(1.25)
        );
        assert!((0.0..=1.0).contains(&jitter()));
    }
}
