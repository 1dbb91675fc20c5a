//! A run of a job (one [`RunRecord`]) and its transitions: claimed, reported, ended,
//! cancelled. Plain data the store keeps as it is; the store applies these transitions
//! inside its atomic steps, it never decides them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::history;
use super::state::{self, Outcome, Reason, RunState};

/// One run of a job (a `queue` document): created by an enqueue, claimed by a worker, ended
/// by the worker (or taken back from a lost one). Timestamps are kept to the millisecond.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunRecord {
    /// A ULID (unique key; sorts by creation time).
    pub id: String,
    /// `project.job`.
    pub job: String,
    pub project: String,
    /// Arguments (a JSON object; numbers keep the text they were given in).
    #[schema(value_type = Object)]
    pub args: serde_json::Value,
    /// The key of job and args (`queue::dedupe_key`): at most one run per key is pending,
    /// running, failed or deferred (`RunState::BLOCKING`).
    pub dedupe: String,
    pub state: RunState,
    /// Higher is claimed first.
    pub priority: i32,
    /// Tries started so far (a deferral gives its try back).
    pub attempt: u32,
    /// Tries allowed.
    pub attempts: u32,
    /// How many runs of this job may run at once, across all workers (copied from the job at
    /// enqueue; 0 is taken as 1).
    pub max_parallel: u32,
    pub retry_delay_ms: u64,
    /// The job's `defer_delay` and `defer_max` (copied at enqueue; records from before
    /// they existed read the defaults).
    #[serde(default = "default_defer_delay_ms")]
    pub defer_delay_ms: u64,
    #[serde(default = "default_defer_max_ms")]
    pub defer_max_ms: u64,
    pub timeout_ms: Option<u64>,
    pub created: DateTime<Utc>,
    /// Not claimed before this instant.
    pub not_before: DateTime<Utc>,
    /// When the latest try started / ended.
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    /// The worker of the latest try.
    pub worker: Option<String>,
    pub pid: Option<u32>,
    /// The latest sign of life of its worker while running.
    pub heartbeat: Option<DateTime<Utc>>,
    pub progress: Option<f64>,
    pub progress_message: Option<String>,
    pub exit_code: Option<i32>,
    /// Why the latest try ended other than by exit 0 / 75 (`Reason`'s text: `exit`,
    /// `signal`, `timeout`, `killed`, `zombie`, `lost 3 times with its worker`, …); none
    /// while it did not, or has not ended.
    pub reason: Option<Reason>,
    /// The run that enqueued this one (a `then:` chain).
    pub parent: Option<String>,
    /// The run this one restarts (`coco restart`).
    #[serde(default)]
    pub restart_of: Option<String>,
    /// Claimable even while its project or the whole queue is paused.
    pub force: bool,
    /// Tries lost with their worker in a row (`state::Streaks`).
    #[serde(default)]
    pub lost: u32,
    /// Claims so far (each try's, counting those lost with their worker): the fence of the
    /// try's output writes ([`crate::store::Queue::put_output`]), raised past a lost try when
    /// it is taken back so that its stalled worker cannot write over the retry.
    #[serde(default)]
    pub claims: u32,
    /// Deferrals in a row, and when the first of them happened.
    #[serde(default)]
    pub deferrals: u32,
    #[serde(default)]
    pub deferred_since: Option<DateTime<Utc>>,
    /// Every state the run entered, oldest first — bounded: the first and the latest
    /// entries (`queue::history`).
    pub history: Vec<StateChange>,
    /// How many entries were folded away from the middle of `history`.
    #[serde(default)]
    pub history_folded: u64,
}

pub(crate) fn default_defer_delay_ms() -> u64 {
    duration_ms(crate::manifest::DEFAULT_DEFER_DELAY)
}

pub(crate) fn default_defer_max_ms() -> u64 {
    duration_ms(crate::manifest::DEFAULT_DEFER_MAX)
}

/// `duration` in whole milliseconds, saturating.
fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// One entry of [`RunRecord::history`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(description = "One entry of a run's `history`.")]
pub struct StateChange {
    pub state: RunState,
    pub at: DateTime<Utc>,
    pub note: Option<String>,
}

impl RunRecord {
    /// Why its latest try ended, as stored and shown (see [`Reason`]).
    pub fn reason_text(&self) -> Option<String> {
        self.reason.map(String::from)
    }

    /// Its retry delay.
    pub fn retry_delay(&self) -> Duration {
        Duration::from_millis(self.retry_delay_ms)
    }

    /// What the job allows this run, with `max_lost` from the reaper's configuration.
    pub fn limits(&self, max_lost: u32) -> state::Limits {
        state::Limits {
            attempts: self.attempts,
            retry_delay: self.retry_delay(),
            defer_delay: Duration::from_millis(self.defer_delay_ms),
            defer_max: Duration::from_millis(self.defer_max_ms),
            max_lost,
        }
    }

    /// Its series of worker losses and deferrals so far.
    pub fn streaks(&self) -> state::Streaks {
        state::Streaks {
            lost: self.lost,
            deferrals: self.deferrals,
            deferred_since: self.deferred_since,
        }
    }

    /// Append `change` to the history, keeping it bounded.
    fn record(&mut self, change: StateChange) {
        history::push(&mut self.history, &mut self.history_folded, change);
    }

    /// Every timestamp truncated to the millisecond (what every backend keeps).
    pub fn truncated_to_ms(mut self) -> Self {
        let ms =
            |t: DateTime<Utc>| DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t);
        self.created = ms(self.created);
        self.not_before = ms(self.not_before);
        self.started = self.started.map(ms);
        self.finished = self.finished.map(ms);
        self.heartbeat = self.heartbeat.map(ms);
        self.deferred_since = self.deferred_since.map(ms);
        for change in &mut self.history {
            change.at = ms(change.at);
        }
        self
    }

    /// Apply a claim by `worker` at `now`: `running`, one more attempt, fresh try fields.
    pub fn claimed(mut self, worker: &str, now: DateTime<Utc>) -> Self {
        self.state = RunState::Running;
        self.attempt += 1;
        self.claims += 1;
        self.worker = Some(worker.to_string());
        self.started = Some(now);
        self.finished = None;
        self.heartbeat = Some(now);
        self.pid = None;
        self.progress = None;
        self.progress_message = None;
        self.exit_code = None;
        self.reason = None;
        let note = format!("attempt {} on {worker}", self.attempt);
        self.record(StateChange {
            state: RunState::Running,
            at: now,
            note: Some(note),
        });
        self.truncated_to_ms()
    }

    /// Take the `Some` fields of `report` (pid, progress) over the stored ones.
    pub fn apply(&mut self, report: &LiveReport) {
        if let Some(pid) = report.pid {
            self.pid = Some(pid);
        }
        if let Some(progress) = report.progress {
            self.progress = Some(progress);
        }
        if let Some(message) = &report.progress_message {
            self.progress_message = Some(message.clone());
        }
    }

    /// Apply the end of a try.
    pub fn ended(mut self, end: &RunEnd) -> Self {
        self.state = end.next.state;
        self.attempt = end.next.attempt;
        if let Some(not_before) = end.next.not_before {
            self.not_before = not_before;
        }
        self.finished = Some(end.at);
        self.exit_code = end.exit_code;
        self.apply(&end.report);
        self.reason = end.next.reason;
        let streaks = end.next.streaks;
        self.lost = streaks.lost;
        self.deferrals = streaks.deferrals;
        self.deferred_since = streaks.deferred_since;
        self.record(StateChange {
            state: end.next.state,
            at: end.at,
            note: end.note.clone(),
        });
        self.truncated_to_ms()
    }

    /// How this (running) run's try ends with `outcome` at `now`, per the state machine
    /// (for a lost worker, see [`RunRecord::zombie_end`]).
    pub fn end(&self, outcome: Outcome, exit_code: Option<i32>, now: DateTime<Utc>) -> RunEnd {
        self.end_under(outcome, exit_code, now, state::DEFAULT_MAX_LOST)
    }

    fn end_under(
        &self,
        outcome: Outcome,
        exit_code: Option<i32>,
        now: DateTime<Utc>,
        max_lost: u32,
    ) -> RunEnd {
        let next = state::after_try(&state::Ended {
            outcome,
            attempt: self.attempt,
            limits: self.limits(max_lost),
            streaks: self.streaks(),
            now,
        });
        RunEnd {
            next,
            at: now,
            exit_code,
            note: None,
            report: LiveReport::default(),
        }
    }

    /// The end of this (running) run because an operator killed it.
    pub fn kill_end(&self, now: DateTime<Utc>) -> RunEnd {
        RunEnd {
            note: Some("killed by an operator".to_string()),
            ..self.end(Outcome::Killed, None, now)
        }
    }

    /// Take this (not running) run out of the queue: `killed` or `removed` at `now`.
    pub fn cancelled(mut self, cancel: Cancel, now: DateTime<Utc>) -> Self {
        let (state, reason, note) = match cancel {
            Cancel::Kill => (
                RunState::Killed,
                Reason::Killed,
                "killed by an operator before it ran again",
            ),
            Cancel::Remove => (RunState::Removed, Reason::Removed, "removed by an operator"),
        };
        self.state = state;
        self.finished = Some(now);
        self.reason = Some(reason);
        self.record(StateChange {
            state,
            at: now,
            note: Some(note.to_string()),
        });
        self.truncated_to_ms()
    }

    /// The end of this (running) run because its worker was lost: tried again without
    /// spending an attempt, unless this is its `max_lost`th loss in a row. The note counts
    /// the losses (`coco detail` shows each).
    pub fn zombie_end(&self, now: DateTime<Utc>, max_lost: u32) -> RunEnd {
        let worker = self.worker.as_deref().unwrap_or("?");
        let end = self.end_under(Outcome::WorkerLost, None, now, max_lost);
        let lost = end.next.streaks.lost;
        let then = if end.next.state == RunState::Error {
            "the run ends"
        } else {
            "retried without spending an attempt"
        };
        RunEnd {
            note: Some(format!(
                "lost with worker {worker} (stopped heartbeating), loss {lost} of {} in a row: {then}",
                max_lost.max(1)
            )),
            ..end
        }
    }
}

/// What a worker reports about a running try (the store's `Queue::report_run`): `Some` fields replace
/// the stored value, `None` leaves it as is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveReport {
    pub pid: Option<u32>,
    /// Fraction done, 0.0 to 1.0.
    pub progress: Option<f64>,
    pub progress_message: Option<String>,
}

/// How a try ended, as the store's `Queue::finish_run` writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEnd {
    /// From [`state::after_try`]: the new state (never `running`; `pending` only when handed
    /// back at shutdown or taken back from a lost worker), attempts spent, `not_before` for
    /// a retry or deferral, reason, streaks.
    pub next: state::Next,
    /// When it ended (`finished`).
    pub at: DateTime<Utc>,
    pub exit_code: Option<i32>,
    /// Note for the history entry.
    pub note: Option<String>,
    /// The try's last pid and progress not reported yet (`Some` fields replace the stored
    /// ones), so a short run needs no separate `Queue::report_run`.
    pub report: LiveReport,
}

impl RunEnd {
    /// Refuse an end whose state is not one a try can end in (`running`; `pending` only for
    /// a try handed back at shutdown).
    pub fn check(&self) -> Result<(), ImpossibleEnd> {
        let handed_back =
            self.next.state == RunState::Pending && self.next.reason == Some(Reason::Shutdown);
        match self.next.state {
            RunState::Pending if handed_back => Ok(()),
            RunState::Pending | RunState::Running => Err(ImpossibleEnd {
                state: self.next.state,
            }),
            _ => Ok(()),
        }
    }
}

/// A [`RunEnd`] whose state no try can end in (see [`RunEnd::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a try cannot end in state {state}")]
pub struct ImpossibleEnd {
    pub state: RunState,
}

/// What an operator does to one run (the store's `Queue::cancel_run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// `coco kill`: a running run's try ends `killed` (its worker sees that at its next
    /// heartbeat and ends the process group); a waiting run (pending, failed, deferred)
    /// becomes `killed` at once.
    Kill,
    /// `coco remove`: a waiting run becomes `removed` (kept for history); not for running runs.
    Remove,
}

impl Cancel {
    /// May a run in `state` be cancelled this way?
    pub fn applies_to(self, state: RunState) -> bool {
        match self {
            Cancel::Kill => state.is_claimable() || state == RunState::Running,
            Cancel::Remove => state.is_claimable(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::RunRecord;
    use crate::manifest::Job;
    use crate::queue::{NewRun, new_run};

    /// The fields issue 11 added to a run, which older records lack.
    pub(crate) const ADDED: [&str; 7] = [
        "defer_delay_ms",
        "defer_max_ms",
        "lost",
        "claims",
        "deferrals",
        "deferred_since",
        "history_folded",
    ];

    pub(crate) fn plain_run() -> RunRecord {
        let now = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        new_run(
            &Job::with_command(&["true"]),
            NewRun::new("p.j", "p", json!({}), now),
        )
    }

    #[test]
    fn a_run_stored_before_the_added_fields_reads_with_their_defaults() {
        let run = plain_run();
        let mut doc = serde_json::to_value(&run).unwrap();
        for key in ADDED {
            assert!(doc.as_object_mut().unwrap().remove(key).is_some(), "{key}");
        }
        let back: RunRecord = serde_json::from_value(doc).unwrap();
        assert_eq!(back, run);
    }
}
