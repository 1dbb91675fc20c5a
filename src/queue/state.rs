//! The run state machine: pure functions over data, `now` is always a parameter.
//!
//! ```text
//! pending ──claim──► running ──► complete                      (exit 0)
//!    ▲                  │   ├──► deferred ──(not_before)──┐     (exit 75: attempt not spent,
//!    │                  │   │                             │      back-off; error after defer_max)
//!    │                  │   ├──► failed ────(not_before)──┤     (attempts left)
//!    │                  │   ├──► error                    │     (no attempts left)
//!    │                  │   ├──► killed                   │     (operator: coco kill)
//!    │                  │   └──► pending                  │     (handed back at shutdown, or
//!    │                  │                                 │      its worker lost: attempt not
//!    │                  │                                 │      spent; error after max_lost)
//!    └──────────────────┴─────────────────────────────────┘ claimable again
//!
//! pending, failed, deferred ──► killed   (coco kill)
//!                           └─► removed  (coco remove)
//! ```
//!
//! A `failed` or `deferred` run is claimed again once its `not_before` has passed; there is
//! no separate promotion back to `pending`. `complete`, `error`, `killed` and `removed` are
//! final; a final run is never claimed and never blocks a new enqueue of the same work.
//!
//! Neither a deferral nor a lost worker spends an attempt, so each is bounded on its own
//! ([`Streaks`]): deferrals in a row wait longer and longer ([`defer_delay`]) and end as
//! `error` after the job's `defer_max`; losses in a row end as `error` at `worker.max_lost`.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Exit code by which a job asks to be run again later without spending an attempt
/// (`EX_TEMPFAIL` from `sysexits.h`).
pub const EXIT_DEFER: i32 = 75;

/// Where a run is in its life.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
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
    /// Its worker stopped heartbeating (a zombie): not the job's failure, so it runs again
    /// without spending an attempt — unless the run keeps losing its worker.
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

    /// `Exited(75)` is `Deferred`; everything else as is.
    fn normalized(self) -> Self {
        match self {
            Outcome::Exited(code) => Outcome::from_exit_code(code),
            other => other,
        }
    }
}

/// Why a try ended other than by a plain exit 0 / 75: the run's `reason`, stored as its
/// text ([`std::fmt::Display`] writes it, [`std::str::FromStr`] reads it back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Reason {
    /// A non-zero exit.
    Exit,
    /// A signal nobody coco sent.
    Signal,
    Timeout,
    /// An operator killed it.
    Killed,
    /// Its worker was lost; the run is tried again.
    Zombie,
    /// Handed back at its worker's shutdown.
    Shutdown,
    /// Its command could not be worked out or started.
    Setup,
    /// An operator removed it before it ran again (`coco remove`).
    Removed,
    /// Lost with its worker this many times in a row (`worker.max_lost`): it ends as error.
    LostTooOften(u32),
    /// Deferred again after deferring for its job's `defer_max`: it ends as error.
    DeferredTooLong(Duration),
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Exit => f.write_str("exit"),
            Reason::Signal => f.write_str("signal"),
            Reason::Timeout => f.write_str("timeout"),
            Reason::Killed => f.write_str("killed"),
            Reason::Zombie => f.write_str("zombie"),
            Reason::Shutdown => f.write_str("shutdown"),
            Reason::Setup => f.write_str("setup"),
            Reason::Removed => f.write_str("removed"),
            Reason::LostTooOften(1) => f.write_str("lost 1 time with its worker"),
            Reason::LostTooOften(times) => write!(f, "lost {times} times with its worker"),
            Reason::DeferredTooLong(max) => write!(
                f,
                "{DEFERRED_TOO_LONG}{})",
                humantime::format_duration(*max)
            ),
        }
    }
}

const DEFERRED_TOO_LONG: &str = "deferred for longer than defer_max (";

/// A stored `reason` that names no [`Reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown end reason {0:?}")]
pub struct UnknownReason(pub String);

impl std::str::FromStr for Reason {
    type Err = UnknownReason;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let plain = [
            Reason::Exit,
            Reason::Signal,
            Reason::Timeout,
            Reason::Killed,
            Reason::Zombie,
            Reason::Shutdown,
            Reason::Setup,
            Reason::Removed,
        ];
        if let Some(reason) = plain.into_iter().find(|r| r.to_string() == text) {
            return Ok(reason);
        }
        let unknown = || UnknownReason(text.to_owned());
        if let Some(lost) = text.strip_prefix("lost ") {
            let times = lost
                .strip_suffix(" times with its worker")
                .or_else(|| lost.strip_suffix(" time with its worker"))
                .ok_or_else(unknown)?;
            return times
                .parse()
                .map(Reason::LostTooOften)
                .map_err(|_| unknown());
        }
        let max = text
            .strip_prefix(DEFERRED_TOO_LONG)
            .and_then(|rest| rest.strip_suffix(')'))
            .ok_or_else(unknown)?;
        humantime::parse_duration(max)
            .map(Reason::DeferredTooLong)
            .map_err(|_| unknown())
    }
}

/// In the API's document a reason is its text, as stored: one of the plain words, or
/// `lost N time(s) with its worker`, or `deferred for longer than defer_max (DURATION)`.
impl utoipa::PartialSchema for Reason {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .description(Some(
                "Why the latest try ended other than by exit 0 / 75: `exit`, `signal`, \
                 `timeout`, `killed`, `zombie`, `shutdown`, `setup`, `removed`, \
                 `lost N time(s) with its worker` or `deferred for longer than defer_max \
                 (DURATION)`.",
            ))
            .examples([
                serde_json::json!("exit"),
                serde_json::json!("lost 3 times with its worker"),
            ])
            .into()
    }
}

impl utoipa::ToSchema for Reason {}

impl From<Reason> for String {
    fn from(reason: Reason) -> String {
        reason.to_string()
    }
}

impl TryFrom<String> for Reason {
    type Error = UnknownReason;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// The default of `worker.max_lost`: a run lost with its worker this many times in a row
/// ends as error (a job that kills its own worker, out of memory say, is not retried
/// forever).
pub const DEFAULT_MAX_LOST: u32 = 3;

/// Deferral delays double from `defer_delay` up to this (or `defer_delay`, if longer).
pub const DEFER_DELAY_CAP: Duration = Duration::from_secs(300);

/// What a run is allowed: its job's limits (copied into the run at enqueue) and the
/// reaper's `worker.max_lost`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Tries allowed (the job's `attempts`; 0 is taken as 1).
    pub attempts: u32,
    /// How long to wait before a failed run is claimable again.
    pub retry_delay: Duration,
    /// The wait after a run's first deferral; it doubles with each further one in a row,
    /// up to [`DEFER_DELAY_CAP`] (or `defer_delay`, if longer).
    pub defer_delay: Duration,
    /// How long a run may keep deferring (from the end of its first deferral in a row): a
    /// deferral after that ends it as error.
    pub defer_max: Duration,
    /// Losses of its worker in a row that end a run as error (the reaper's
    /// `worker.max_lost`; 0 is taken as 1).
    pub max_lost: u32,
}

/// What a run carries from try to try besides its attempts: its unbroken series of worker
/// losses and of deferrals (each reset by a try that ends otherwise).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streaks {
    /// Tries lost with their worker in a row.
    pub lost: u32,
    /// Deferrals in a row.
    pub deferrals: u32,
    /// When the first of those deferrals happened.
    pub deferred_since: Option<DateTime<Utc>>,
}

/// What the state machine needs to know about a try that ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ended {
    pub outcome: Outcome,
    /// Tries started so far, this one included (1 for the first try).
    pub attempt: u32,
    pub limits: Limits,
    /// The run's streaks before this try ended.
    pub streaks: Streaks,
    pub now: DateTime<Utc>,
}

/// The run's next state after a try ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Next {
    pub state: RunState,
    /// Tries spent (a deferral, a hand-back and a lost worker give their try back).
    pub attempt: u32,
    /// For `failed`, `deferred` and `pending`: when the run may be claimed again.
    pub not_before: Option<DateTime<Utc>>,
    /// Why it ended, when that is not a plain exit 0 / 75.
    pub reason: Option<Reason>,
    /// The run's streaks after this try.
    pub streaks: Streaks,
}

/// `now + delay`, saturating at the end of time.
fn after(now: DateTime<Utc>, delay: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(delay)
        .ok()
        .and_then(|delay| now.checked_add_signed(delay))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The wait after a deferral when `earlier` deferrals came right before it (pure):
/// `defer_delay` doubled `earlier` times, capped at [`DEFER_DELAY_CAP`] (or `defer_delay`,
/// if longer).
pub fn defer_delay(defer_delay: Duration, earlier: u32) -> Duration {
    let cap = DEFER_DELAY_CAP.max(defer_delay);
    2u32.checked_pow(earlier)
        .and_then(|factor| defer_delay.checked_mul(factor))
        .map_or(cap, |delay| delay.min(cap))
}

/// Decide what happens to a run whose try ended.
///
/// - exit 0 → `complete`;
/// - exit 75 / deferred → `deferred` after the back-off [`defer_delay`], the attempt not
///   spent — but `error` once the run has been deferring (in a row) for `defer_max`; the
///   last wait is cut short so that the last try starts at that deadline;
/// - killed → `killed`, whatever attempts are left;
/// - handed back at a worker's shutdown → `pending` now, the attempt not spent;
/// - lost worker → `pending` now, the attempt not spent, unless this is the `max_lost`th
///   loss in a row: then `error`;
/// - any other failure (non-zero exit, signal, timeout) → `failed` at `now + retry_delay`
///   while `attempt < attempts`, else `error`.
///
/// A try lost with its worker keeps the run's deferral streak, a deferral its loss streak;
/// a hand-back keeps both; any other end resets both.
pub fn after_try(ended: &Ended) -> Next {
    let Ended {
        attempt,
        limits,
        streaks,
        now,
        ..
    } = *ended;
    let given_back = attempt.saturating_sub(1);
    let next = |state, attempt, not_before, reason| Next {
        state,
        attempt,
        not_before,
        reason,
        streaks: Streaks::default(),
    };
    match ended.outcome.normalized() {
        Outcome::Exited(0) => next(RunState::Complete, attempt, None, None),
        Outcome::Deferred => {
            let since = streaks.deferred_since.unwrap_or(now);
            let deadline = after(since, limits.defer_max);
            if now >= deadline {
                return next(
                    RunState::Error,
                    attempt,
                    None,
                    Some(Reason::DeferredTooLong(limits.defer_max)),
                );
            }
            let wait = defer_delay(limits.defer_delay, streaks.deferrals);
            Next {
                streaks: Streaks {
                    deferrals: streaks.deferrals.saturating_add(1),
                    deferred_since: Some(since),
                    ..streaks
                },
                ..next(
                    RunState::Deferred,
                    given_back,
                    Some(after(now, wait).min(deadline)),
                    None,
                )
            }
        }
        Outcome::Killed => next(RunState::Killed, attempt, None, Some(Reason::Killed)),
        Outcome::HandedBack => Next {
            streaks,
            ..next(
                RunState::Pending,
                given_back,
                Some(now),
                Some(Reason::Shutdown),
            )
        },
        Outcome::WorkerLost => {
            let lost = streaks.lost.saturating_add(1);
            let streaks = Streaks { lost, ..streaks };
            if lost >= limits.max_lost.max(1) {
                Next {
                    streaks,
                    ..next(
                        RunState::Error,
                        attempt,
                        None,
                        Some(Reason::LostTooOften(lost)),
                    )
                }
            } else {
                Next {
                    streaks,
                    ..next(
                        RunState::Pending,
                        given_back,
                        Some(now),
                        Some(Reason::Zombie),
                    )
                }
            }
        }
        failure @ (Outcome::Exited(_) | Outcome::Signalled | Outcome::TimedOut) => {
            let reason = match failure {
                Outcome::Signalled => Reason::Signal,
                Outcome::TimedOut => Reason::Timeout,
                _ => Reason::Exit,
            };
            if attempt < limits.attempts.max(1) {
                next(
                    RunState::Failed,
                    attempt,
                    Some(after(now, limits.retry_delay)),
                    Some(reason),
                )
            } else {
                next(RunState::Error, attempt, None, Some(reason))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000).unwrap()
    }

    fn limits(attempts: u32) -> Limits {
        Limits {
            attempts,
            retry_delay: Duration::from_secs(30),
            defer_delay: Duration::from_secs(10),
            defer_max: Duration::from_secs(3600),
            max_lost: 3,
        }
    }

    fn ended_with(outcome: Outcome, attempt: u32, limits: Limits, streaks: Streaks) -> Next {
        after_try(&Ended {
            outcome,
            attempt,
            limits,
            streaks,
            now: now(),
        })
    }

    fn ended(outcome: Outcome, attempt: u32, attempts: u32) -> Next {
        ended_with(outcome, attempt, limits(attempts), Streaks::default())
    }

    fn secs(n: i64) -> DateTime<Utc> {
        now() + TimeDelta::seconds(n)
    }

    fn later() -> Option<DateTime<Utc>> {
        Some(secs(30))
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
                reason: None,
                streaks: Streaks::default(),
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
        ] {
            let next = ended(outcome, 1, 2);
            assert_eq!(next.state, RunState::Failed, "{outcome:?}");
            assert_eq!(next.attempt, 1, "{outcome:?}");
            assert_eq!(next.not_before, later(), "{outcome:?}");
        }
    }

    #[test]
    fn failure_without_attempts_left_errors() {
        for outcome in [Outcome::Exited(2), Outcome::Signalled, Outcome::TimedOut] {
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
        let reason = |next: Next| next.reason.map(|r| r.to_string());
        assert_eq!(
            reason(ended(Outcome::Exited(3), 1, 2)).as_deref(),
            Some("exit")
        );
        assert_eq!(
            reason(ended(Outcome::Signalled, 1, 1)).as_deref(),
            Some("signal")
        );
        assert_eq!(
            reason(ended(Outcome::TimedOut, 1, 2)).as_deref(),
            Some("timeout")
        );
        assert_eq!(
            reason(ended(Outcome::Killed, 1, 2)).as_deref(),
            Some("killed")
        );
        assert_eq!(
            reason(ended(Outcome::WorkerLost, 1, 1)).as_deref(),
            Some("zombie")
        );
        assert_eq!(
            reason(ended(Outcome::HandedBack, 1, 1)).as_deref(),
            Some("shutdown")
        );
        assert_eq!(reason(ended(Outcome::Deferred, 1, 1)), None);
        assert_eq!(reason(ended(Outcome::Exited(75), 1, 1)), None);
        assert_eq!(reason(ended(Outcome::Exited(0), 1, 1)), None);
        assert_eq!(Reason::Setup.to_string(), "setup");
        assert_eq!(
            Reason::LostTooOften(3).to_string(),
            "lost 3 times with its worker"
        );
        assert_eq!(
            Reason::LostTooOften(1).to_string(),
            "lost 1 time with its worker"
        );
        assert_eq!(
            Reason::DeferredTooLong(Duration::from_secs(90)).to_string(),
            "deferred for longer than defer_max (1m 30s)"
        );
    }

    #[test]
    fn reasons_round_trip_as_their_old_text() {
        let old = [
            ("exit", Reason::Exit),
            ("signal", Reason::Signal),
            ("timeout", Reason::Timeout),
            ("killed", Reason::Killed),
            ("zombie", Reason::Zombie),
            ("shutdown", Reason::Shutdown),
            ("setup", Reason::Setup),
            ("removed", Reason::Removed),
            ("lost 1 time with its worker", Reason::LostTooOften(1)),
            ("lost 3 times with its worker", Reason::LostTooOften(3)),
            (
                "deferred for longer than defer_max (1m 30s)",
                Reason::DeferredTooLong(Duration::from_secs(90)),
            ),
            (
                "deferred for longer than defer_max (1h 2m 3s 4ms)",
                Reason::DeferredTooLong(Duration::from_millis(3_723_004)),
            ),
        ];
        for (text, reason) in old {
            assert_eq!(reason.to_string(), text);
            assert_eq!(text.parse::<Reason>(), Ok(reason), "{text}");
            assert_eq!(serde_json::to_value(reason).unwrap(), text);
            assert_eq!(
                serde_json::from_value::<Reason>(text.into()).unwrap(),
                reason
            );
        }
        // Written before `lost 1 time` had its own wording: still read.
        assert_eq!(
            "lost 1 times with its worker".parse::<Reason>(),
            Ok(Reason::LostTooOften(1))
        );
        for bad in ["", "Exit", "lost many times with its worker", "deferred"] {
            assert!(bad.parse::<Reason>().is_err(), "{bad}");
        }
        assert!(serde_json::from_value::<Reason>("gone".into()).is_err());
    }

    #[test]
    fn defer_does_not_spend_an_attempt_and_waits_its_delay() {
        for outcome in [Outcome::Deferred, Outcome::Exited(EXIT_DEFER)] {
            // On the last attempt too: a deferral is not a failure.
            let next = ended(outcome, 3, 3);
            assert_eq!(
                next,
                Next {
                    state: RunState::Deferred,
                    attempt: 2,
                    not_before: Some(secs(10)),
                    reason: None,
                    streaks: Streaks {
                        lost: 0,
                        deferrals: 1,
                        deferred_since: Some(now()),
                    },
                }
            );
        }
        assert_eq!(Outcome::from_exit_code(75), Outcome::Deferred);
        assert_eq!(Outcome::from_exit_code(74), Outcome::Exited(74));
    }

    #[test]
    fn deferral_delays_double_up_to_the_cap() {
        let ten = Duration::from_secs(10);
        let delays: Vec<u64> = (0..8).map(|n| defer_delay(ten, n).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(defer_delay(ten, u32::MAX), DEFER_DELAY_CAP);
        // A delay above the cap stays as it is.
        let hour = Duration::from_secs(3600);
        assert_eq!(defer_delay(hour, 0), hour);
        assert_eq!(defer_delay(hour, 5), hour);
        // The state machine uses it: the third deferral in a row waits 40 s.
        let streaks = Streaks {
            deferrals: 2,
            deferred_since: Some(secs(-30)),
            ..Streaks::default()
        };
        let next = ended_with(Outcome::Deferred, 1, limits(1), streaks);
        assert_eq!(next.not_before, Some(secs(40)));
        assert_eq!(next.streaks.deferrals, 3);
        assert_eq!(next.streaks.deferred_since, Some(secs(-30)));
    }

    #[test]
    fn deferring_past_defer_max_errors_and_the_last_wait_ends_at_the_deadline() {
        let limits = Limits {
            defer_max: Duration::from_secs(60),
            ..limits(1)
        };
        let since = |ago: i64, deferrals: u32| Streaks {
            deferrals,
            deferred_since: Some(secs(-ago)),
            ..Streaks::default()
        };
        // 50 s into the series, the 4th deferral would wait 80 s: cut to the deadline.
        let next = ended_with(Outcome::Deferred, 1, limits, since(50, 3));
        assert_eq!(
            (next.state, next.not_before),
            (RunState::Deferred, Some(secs(10)))
        );
        // At the deadline, a deferral ends the run.
        let next = ended_with(Outcome::Deferred, 1, limits, since(60, 4));
        assert_eq!(
            (next.state, next.attempt, next.not_before),
            (RunState::Error, 1, None)
        );
        assert_eq!(
            next.reason,
            Some(Reason::DeferredTooLong(Duration::from_secs(60)))
        );
        // defer_max 0: no deferral at all.
        let never = Limits {
            defer_max: Duration::ZERO,
            ..limits
        };
        let next = ended_with(Outcome::Deferred, 1, never, Streaks::default());
        assert_eq!(next.state, RunState::Error);
    }

    #[test]
    fn a_try_ending_otherwise_resets_the_streaks() {
        let streaks = Streaks {
            lost: 2,
            deferrals: 4,
            deferred_since: Some(secs(-100)),
        };
        for outcome in [Outcome::Exited(0), Outcome::Exited(1), Outcome::TimedOut] {
            let next = ended_with(outcome, 1, limits(3), streaks);
            assert_eq!(next.streaks, Streaks::default(), "{outcome:?}");
        }
        // A deferral keeps the losses, a loss the deferrals, a hand-back both.
        let next = ended_with(Outcome::Deferred, 1, limits(3), streaks);
        assert_eq!((next.streaks.lost, next.streaks.deferrals), (2, 5));
        let next = ended_with(
            Outcome::WorkerLost,
            1,
            limits(3),
            Streaks { lost: 0, ..streaks },
        );
        assert_eq!((next.streaks.lost, next.streaks.deferrals), (1, 4));
        let next = ended_with(Outcome::HandedBack, 1, limits(3), streaks);
        assert_eq!(next.streaks, streaks);
    }

    #[test]
    fn a_lost_worker_gives_the_attempt_back_until_max_lost_in_a_row() {
        // With attempts 1 (the default), the first and second loss retry at once...
        for lost in [0, 1] {
            let streaks = Streaks {
                lost,
                ..Streaks::default()
            };
            let next = ended_with(Outcome::WorkerLost, 1, limits(1), streaks);
            assert_eq!(
                next,
                Next {
                    state: RunState::Pending,
                    attempt: 0,
                    not_before: Some(now()),
                    reason: Some(Reason::Zombie),
                    streaks: Streaks {
                        lost: lost + 1,
                        ..Streaks::default()
                    },
                }
            );
        }
        // ... the third ends the run.
        let streaks = Streaks {
            lost: 2,
            ..Streaks::default()
        };
        let next = ended_with(Outcome::WorkerLost, 1, limits(5), streaks);
        assert_eq!(
            (next.state, next.attempt, next.reason),
            (RunState::Error, 1, Some(Reason::LostTooOften(3)))
        );
        // max_lost 1: the first loss ends it; 0 is taken as 1.
        for max_lost in [0, 1] {
            let limits = Limits {
                max_lost,
                ..limits(5)
            };
            let next = ended_with(Outcome::WorkerLost, 1, limits, Streaks::default());
            assert_eq!(next.reason, Some(Reason::LostTooOften(1)));
        }
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
                reason: Some(Reason::Shutdown),
                streaks: Streaks::default(),
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
            limits: Limits {
                retry_delay: Duration::ZERO,
                ..limits(2)
            },
            streaks: Streaks::default(),
            now: now(),
        };
        assert_eq!(after_try(&e).not_before, Some(now()));
        e.limits.retry_delay = Duration::from_secs(u64::MAX);
        assert!(after_try(&e).not_before.is_some_and(|t| t > now()));
        e.outcome = Outcome::Deferred;
        e.limits.defer_delay = Duration::from_secs(u64::MAX);
        e.limits.defer_max = Duration::from_secs(u64::MAX);
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
