//! The run state machine: pure functions over data, `now` is always a parameter.
//!
//! ```text
//! pending ──claim──► running ──► complete                      (exit 0)
//!    ▲                  │   ├──► deferred ──(not_before)──┐     (exit 75: attempt not spent)
//!    │                  │   ├──► failed ────(not_before)──┤     (attempts left)
//!    │                  │   ├──► error                    │     (no attempts left)
//!    │                  │   ├──► killed                   │     (operator: coco kill)
//!    │                  │   └──► pending                  │     (handed back at shutdown:
//!    │                  │                                 │      attempt not spent)
//!    └──────────────────┴─────────────────────────────────┘ claimable again
//!
//! pending, failed, deferred ──► killed   (coco kill)
//!                           └─► removed  (coco remove)
//! ```
//!
//! A `failed` or `deferred` run is claimed again once its `not_before` has passed; there is
//! no separate promotion back to `pending`. `complete`, `error`, `killed` and `removed` are
//! final; a final run is never claimed and never blocks a new enqueue of the same work.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Exit code by which a job asks to be run again later without spending an attempt
/// (`EX_TEMPFAIL` from `sysexits.h`).
pub const EXIT_DEFER: i32 = 75;

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Waiting to be claimed (from `not_before` on).
    Pending,
    /// Claimed by a worker, which heartbeats it.
    Running,
    /// Exited 0. Final.
    Complete,
    /// Failed with attempts left: claimed again from `not_before` on.
    Failed,
    /// Asked to be run later (exit 75): claimed again from `not_before` on.
    Deferred,
    /// Failed with no attempts left. Final.
    Error,
    /// Killed by an operator. Final.
    Killed,
    /// Taken out of the queue by an operator before it ran (again); kept for history. Final.
    Removed,
}

impl RunState {
    /// Every state, in lifecycle order.
    pub const ALL: [RunState; 8] = [
        RunState::Pending,
        RunState::Running,
        RunState::Complete,
        RunState::Failed,
        RunState::Deferred,
        RunState::Error,
        RunState::Killed,
        RunState::Removed,
    ];

    /// The states a worker may claim (once `not_before` has passed).
    pub const CLAIMABLE: [RunState; 3] = [RunState::Pending, RunState::Failed, RunState::Deferred];

    /// The states that refuse a second enqueue of the same job and arguments.
    pub const BLOCKING: [RunState; 4] = [
        RunState::Pending,
        RunState::Running,
        RunState::Failed,
        RunState::Deferred,
    ];

    /// The lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Complete => "complete",
            RunState::Failed => "failed",
            RunState::Deferred => "deferred",
            RunState::Error => "error",
            RunState::Killed => "killed",
            RunState::Removed => "removed",
        }
    }

    /// Parse a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Does a run in this state refuse a duplicate enqueue (same job and arguments)?
    pub fn blocks_duplicate(self) -> bool {
        Self::BLOCKING.contains(&self)
    }

    /// May a worker claim a run in this state (once its `not_before` has passed)?
    pub fn is_claimable(self) -> bool {
        Self::CLAIMABLE.contains(&self)
    }

    /// Is this state final (the run never changes again)?
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Complete | RunState::Error | RunState::Killed | RunState::Removed
        )
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one try of a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The process exited with this code (75 is treated as [`Outcome::Deferred`]).
    Exited(i32),
    /// The process died of a signal nobody coco sent.
    Signalled,
    /// coco stopped it after its `timeout`.
    TimedOut,
    /// The process exited 75: run again later, the attempt is not spent.
    Deferred,
    /// An operator killed it.
    Killed,
    /// Its worker stopped heartbeating (a zombie).
    WorkerLost,
    /// Its worker shut down (signal, `coco halt`) and stopped it: it runs again, the
    /// attempt is not spent.
    HandedBack,
}

impl Outcome {
    /// The outcome of a process that exited with `code`.
    pub fn from_exit_code(code: i32) -> Self {
        if code == EXIT_DEFER {
            Outcome::Deferred
        } else {
            Outcome::Exited(code)
        }
    }

    /// The `reason` recorded on the run, if the outcome needs one.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Outcome::Exited(0) | Outcome::Deferred => None,
            Outcome::Exited(code) if code == EXIT_DEFER => None,
            Outcome::Exited(_) => Some("exit"),
            Outcome::Signalled => Some("signal"),
            Outcome::TimedOut => Some("timeout"),
            Outcome::Killed => Some("killed"),
            Outcome::WorkerLost => Some("zombie"),
            Outcome::HandedBack => Some("shutdown"),
        }
    }
}

/// What the state machine needs to know about a try that ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ended {
    pub outcome: Outcome,
    /// Tries started so far, this one included (1 for the first try).
    pub attempt: u32,
    /// Tries allowed (the job's `attempts`; 0 is taken as 1).
    pub attempts: u32,
    /// How long to wait before a retry or a deferred run is claimable again.
    pub retry_delay: Duration,
    pub now: DateTime<Utc>,
}

/// The run's next state after a try ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Next {
    pub state: RunState,
    /// Tries spent (a deferral gives its try back).
    pub attempt: u32,
    /// For `failed` and `deferred`: when the run may be claimed again.
    pub not_before: Option<DateTime<Utc>>,
    /// Why it ended, when that is not a plain exit 0 / 75 (`exit`, `signal`, `timeout`,
    /// `killed`, `zombie`).
    pub reason: Option<&'static str>,
}

/// Decide what happens to a run whose try ended.
///
/// - exit 0 → `complete`;
/// - exit 75 / deferred → `deferred` at `now + retry_delay`, the attempt not spent;
/// - killed → `killed`, whatever attempts are left;
/// - handed back at a worker's shutdown → `pending` now, the attempt not spent;
/// - any other failure (non-zero exit, signal, timeout, lost worker) → `failed` at
///   `now + retry_delay` while `attempt < attempts`, else `error`.
pub fn after_try(ended: &Ended) -> Next {
    let later = TimeDelta::from_std(ended.retry_delay)
        .ok()
        .and_then(|delay| ended.now.checked_add_signed(delay))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let reason = ended.outcome.reason();
    let next = |state, attempt, not_before| Next {
        state,
        attempt,
        not_before,
        reason,
    };
    match Outcome::normalized(ended.outcome) {
        Outcome::Exited(0) => next(RunState::Complete, ended.attempt, None),
        Outcome::Deferred => next(
            RunState::Deferred,
            ended.attempt.saturating_sub(1),
            Some(later),
        ),
        Outcome::Killed => next(RunState::Killed, ended.attempt, None),
        Outcome::HandedBack => next(
            RunState::Pending,
            ended.attempt.saturating_sub(1),
            Some(ended.now),
        ),
        Outcome::Exited(_) | Outcome::Signalled | Outcome::TimedOut | Outcome::WorkerLost => {
            if ended.attempt < ended.attempts.max(1) {
                next(RunState::Failed, ended.attempt, Some(later))
            } else {
                next(RunState::Error, ended.attempt, None)
            }
        }
    }
}

impl Outcome {
    /// `Exited(75)` is `Deferred`; everything else as is.
    fn normalized(self) -> Self {
        match self {
            Outcome::Exited(code) => Outcome::from_exit_code(code),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000).unwrap()
    }

    fn ended(outcome: Outcome, attempt: u32, attempts: u32) -> Next {
        after_try(&Ended {
            outcome,
            attempt,
            attempts,
            retry_delay: Duration::from_secs(30),
            now: now(),
        })
    }

    fn later() -> Option<DateTime<Utc>> {
        Some(now() + TimeDelta::seconds(30))
    }

    #[test]
    fn exit_zero_completes() {
        let next = ended(Outcome::Exited(0), 1, 3);
        assert_eq!(
            next,
            Next {
                state: RunState::Complete,
                attempt: 1,
                not_before: None,
                reason: None
            }
        );
        // Even on the last attempt.
        assert_eq!(ended(Outcome::Exited(0), 3, 3).state, RunState::Complete);
    }

    #[test]
    fn failure_with_attempts_left_retries_after_the_delay() {
        for outcome in [
            Outcome::Exited(1),
            Outcome::Exited(-1),
            Outcome::Exited(255),
            Outcome::Signalled,
            Outcome::TimedOut,
            Outcome::WorkerLost,
        ] {
            let next = ended(outcome, 1, 2);
            assert_eq!(next.state, RunState::Failed, "{outcome:?}");
            assert_eq!(next.attempt, 1, "{outcome:?}");
            assert_eq!(next.not_before, later(), "{outcome:?}");
        }
    }

    #[test]
    fn failure_without_attempts_left_errors() {
        for outcome in [
            Outcome::Exited(2),
            Outcome::Signalled,
            Outcome::TimedOut,
            Outcome::WorkerLost,
        ] {
            let next = ended(outcome, 2, 2);
            assert_eq!(
                (next.state, next.attempt, next.not_before),
                (RunState::Error, 2, None),
                "{outcome:?}"
            );
            // More tries than allowed (attempts lowered since) also errors.
            assert_eq!(ended(outcome, 5, 2).state, RunState::Error);
        }
    }

    #[test]
    fn zero_attempts_means_one() {
        assert_eq!(ended(Outcome::Exited(1), 1, 0).state, RunState::Error);
    }

    #[test]
    fn reasons_name_the_outcome() {
        assert_eq!(ended(Outcome::Exited(3), 1, 2).reason, Some("exit"));
        assert_eq!(ended(Outcome::Signalled, 1, 1).reason, Some("signal"));
        assert_eq!(ended(Outcome::TimedOut, 1, 2).reason, Some("timeout"));
        assert_eq!(ended(Outcome::Killed, 1, 2).reason, Some("killed"));
        assert_eq!(ended(Outcome::WorkerLost, 1, 1).reason, Some("zombie"));
        assert_eq!(ended(Outcome::Deferred, 1, 1).reason, None);
        assert_eq!(ended(Outcome::Exited(75), 1, 1).reason, None);
        assert_eq!(ended(Outcome::Exited(0), 1, 1).reason, None);
    }

    #[test]
    fn defer_does_not_spend_an_attempt() {
        for outcome in [Outcome::Deferred, Outcome::Exited(EXIT_DEFER)] {
            // On the last attempt too: deferral never turns into an error.
            let next = ended(outcome, 3, 3);
            assert_eq!(
                next,
                Next {
                    state: RunState::Deferred,
                    attempt: 2,
                    not_before: later(),
                    reason: None
                }
            );
        }
        assert_eq!(Outcome::from_exit_code(75), Outcome::Deferred);
        assert_eq!(Outcome::from_exit_code(74), Outcome::Exited(74));
    }

    #[test]
    fn a_run_handed_back_at_shutdown_is_pending_again_with_its_attempt_back() {
        let next = ended(Outcome::HandedBack, 1, 1);
        assert_eq!(
            next,
            Next {
                state: RunState::Pending,
                attempt: 0,
                not_before: Some(now()),
                reason: Some("shutdown"),
            }
        );
    }

    #[test]
    fn killed_is_final_whatever_attempts_are_left() {
        let next = ended(Outcome::Killed, 1, 5);
        assert_eq!((next.state, next.not_before), (RunState::Killed, None));
        assert!(next.state.is_final());
    }

    #[test]
    fn zero_delay_retries_now_and_huge_delay_does_not_overflow() {
        let mut e = Ended {
            outcome: Outcome::Exited(1),
            attempt: 1,
            attempts: 2,
            retry_delay: Duration::ZERO,
            now: now(),
        };
        assert_eq!(after_try(&e).not_before, Some(now()));
        e.retry_delay = Duration::from_secs(u64::MAX);
        assert!(after_try(&e).not_before.is_some_and(|t| t > now()));
    }

    #[test]
    fn blocking_claimable_and_final_states() {
        use RunState::*;
        let blocking: Vec<_> = RunState::ALL
            .into_iter()
            .filter(|s| s.blocks_duplicate())
            .collect();
        assert_eq!(blocking, [Pending, Running, Failed, Deferred]);
        let claimable: Vec<_> = RunState::ALL
            .into_iter()
            .filter(|s| s.is_claimable())
            .collect();
        assert_eq!(claimable, [Pending, Failed, Deferred]);
        let finals: Vec<_> = RunState::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(finals, [Complete, Error, Killed, Removed]);
        for s in RunState::ALL {
            assert_ne!(s.blocks_duplicate(), s.is_final(), "{s}");
        }
    }

    #[test]
    fn names_round_trip_and_serde_is_lowercase() {
        for s in RunState::ALL {
            assert_eq!(RunState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(RunState::parse("Pending"), None);
        assert_eq!(
            serde_json::from_str::<RunState>("\"deferred\"").unwrap(),
            RunState::Deferred
        );
    }
}
