//! The records the store keeps: plain data, serde-encoded; a run's transitions.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{StoreError, StoreResult};
use crate::queue::history;
use crate::queue::state::{self, Outcome, Reason, RunState};

/// The applied manifest of one project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectRecord {
    /// Project name (unique key).
    pub name: String,
    /// Hash of the applied, resolved manifest (see `manifest::Project::hash`).
    pub hash: String,
    /// The resolved manifest as applied, as a JSON document.
    pub manifest: serde_json::Value,
    /// The `coco.yaml` it was read from.
    pub source: String,
    /// False once the project's folder or manifest disappeared from the home.
    pub active: bool,
    pub applied_at: DateTime<Utc>,
}

/// The stored definition of one job (`project.job`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// `project.job` (unique key).
    pub id: String,
    pub project: String,
    pub name: String,
    /// The resolved job definition as a JSON document.
    pub definition: serde_json::Value,
    /// Hash of `definition`.
    pub hash: String,
    /// False once the job was removed from its manifest; its run history is kept.
    pub active: bool,
    /// Next cron instant to fire, for scheduled active jobs.
    pub next_fire: Option<DateTime<Utc>>,
    /// Last instant fired.
    pub last_fire: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// The stored (desired) definition of one app server (`project.app`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppRecord {
    /// `project.app` (unique key).
    pub id: String,
    pub project: String,
    pub name: String,
    pub definition: serde_json::Value,
    pub hash: String,
    pub active: bool,
    pub updated_at: DateTime<Utc>,
}

/// One run of a job (a `queue` document): created by an enqueue, claimed by a worker, ended
/// by the worker (or taken back from a lost one). Timestamps are kept to the millisecond.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// A ULID (unique key; sorts by creation time).
    pub id: String,
    /// `project.job`.
    pub job: String,
    pub project: String,
    /// Arguments (a JSON object).
    pub args: serde_json::Value,
    /// [`crate::queue::dedupe_key`] of job and args: at most one run per key is in a
    /// [`RunState::BLOCKING`] state.
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
    /// Why the latest try ended other than by exit 0 / 75 ([`Reason`]'s text: `exit`,
    /// `signal`, `timeout`, `killed`, `zombie`, `lost 3 times with its worker`, …).
    pub reason: Option<String>,
    /// The run that enqueued this one (a `then:` chain).
    pub parent: Option<String>,
    /// The run this one restarts (`coco restart`).
    #[serde(default)]
    pub restart_of: Option<String>,
    /// Claimable even while its project or the whole queue is paused.
    pub force: bool,
    /// Tries lost with their worker in a row (see [`state::Streaks`]).
    #[serde(default)]
    pub lost: u32,
    /// Deferrals in a row, and when the first of them happened.
    #[serde(default)]
    pub deferrals: u32,
    #[serde(default)]
    pub deferred_since: Option<DateTime<Utc>>,
    /// Every state the run entered, oldest first — bounded: the first and the latest
    /// entries (see [`crate::queue::history`]).
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateChange {
    pub state: RunState,
    pub at: DateTime<Utc>,
    pub note: Option<String>,
}

impl RunRecord {
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
        self.reason = end.next.reason.map(|reason| reason.to_string());
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
        let (state, note) = match cancel {
            Cancel::Kill => (
                RunState::Killed,
                "killed by an operator before it ran again",
            ),
            Cancel::Remove => (RunState::Removed, "removed by an operator"),
        };
        self.state = state;
        self.finished = Some(now);
        self.reason = Some(state.as_str().to_string());
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

/// What a worker reports about a running try ([`Queue::report_run`]): `Some` fields replace
/// the stored value, `None` leaves it as is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveReport {
    pub pid: Option<u32>,
    /// Fraction done, 0.0 to 1.0.
    pub progress: Option<f64>,
    pub progress_message: Option<String>,
}

/// How a try ended, as written by [`Queue::finish_run`].
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
    /// ones), so a short run needs no separate [`Queue::report_run`].
    pub report: LiveReport,
}

impl RunEnd {
    /// Refuse an end whose state is not one a try can end in (`running`; `pending` only for
    /// a try handed back at shutdown).
    pub fn check(&self, id: &str) -> StoreResult<()> {
        let handed_back =
            self.next.state == RunState::Pending && self.next.reason == Some(Reason::Shutdown);
        match self.next.state {
            RunState::Pending if handed_back => Ok(()),
            RunState::Pending | RunState::Running => Err(StoreError::invalid(
                format!("finishing run {id}"),
                format!("a try cannot end in state {}", self.next.state),
            )),
            _ => Ok(()),
        }
    }
}

/// The answer to [`Queue::enqueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// The run was added (its id).
    Queued(String),
    /// Refused: this run (id) of the same job and arguments is still pending, running,
    /// failed or deferred.
    Duplicate(String),
}

/// What an operator does to one run ([`Queue::cancel_run`]).
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

/// The answer to [`Queue::cancel_run`].
#[derive(Debug, Clone, PartialEq)]
pub enum Cancelled {
    /// Done: the run as it is now.
    Done(RunRecord),
    /// The run's state does not allow it (or it changed under us and no longer does): the
    /// run as it is.
    Refused(RunRecord),
    /// No run has this id.
    Missing,
}

/// Operator switches every worker and daemon follows ([`Fleet::control`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Control {
    /// `coco pause` without a project: no new runs at all (except forced ones).
    pub paused_all: bool,
    /// Projects paused one by one, sorted.
    pub paused_projects: Vec<String>,
    /// `coco halt`: every worker and daemon started before this instant stops.
    pub halt_before: Option<DateTime<Utc>>,
}

impl Control {
    /// What claims must leave alone under these switches.
    pub fn paused(&self) -> Paused {
        Paused {
            all: self.paused_all,
            projects: self.paused_projects.clone(),
        }
    }

    /// Must a process that started at `started` stop?
    pub fn halts(&self, started: DateTime<Utc>) -> bool {
        self.halt_before.is_some_and(|before| started < before)
    }
}

/// What the daemon supervising an app reports about it (`coco apps`); the record also says
/// which daemon owns the app, so that two daemons never both run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppStatus {
    /// `project.app`.
    pub id: String,
    /// The daemon supervising it (its name).
    pub owner: String,
    /// The owner's host and pid there.
    pub host: String,
    pub owner_pid: u32,
    /// `starting`, `healthy`, `unhealthy`, `backoff`, `exited` or `stopped`.
    pub state: String,
    /// The definition hash the process was started from.
    pub hash: String,
    pub pid: Option<u32>,
    /// When the current process started.
    pub started: Option<DateTime<Utc>>,
    /// Restarts since the owner took the app.
    pub restarts: u32,
    /// The latest health check: what it said, whether it passed, when.
    pub health: Option<String>,
    pub healthy: Option<bool>,
    pub checked: Option<DateTime<Utc>>,
    /// The owner's latest sign of life.
    pub heartbeat: DateTime<Utc>,
}

impl AppStatus {
    /// Timestamps cut to whole milliseconds, as the stores keep them.
    pub fn truncated_to_ms(mut self) -> AppStatus {
        let ms =
            |t: DateTime<Utc>| DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t);
        self.started = self.started.map(ms);
        self.checked = self.checked.map(ms);
        self.heartbeat = ms(self.heartbeat);
        self
    }
}

/// The manifest problems one daemon currently sees (`coco status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problems {
    /// The daemon that found them (its name).
    pub source: String,
    pub at: DateTime<Utc>,
    /// `path:line:column: message`, one each.
    pub problems: Vec<String>,
}

/// A recorded schedule fire whose outcome was never settled: the scheduler that recorded
/// it stopped before enqueueing its run (or before saying so). See
/// [`Fires::unsettled_fires`].
#[derive(Debug, Clone, PartialEq)]
pub struct Fire {
    /// `project.job`.
    pub job: String,
    pub instant: DateTime<Utc>,
    /// When it was recorded (or last taken over).
    pub fired_at: DateTime<Utc>,
}

/// A release of a project, recorded by `coco release` (`coco releases`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    pub project: String,
    /// `X.Y.Z`, also the git tag.
    pub version: String,
    /// The tagged commit (full hash).
    pub commit: String,
    pub at: DateTime<Utc>,
    /// Who released it: the release tag's tagger as git recorded it, `Name <email>`.
    pub by: String,
}

/// One log record of a coco process, kept in the store's `log` collection at or above
/// `logging.mongodb` (`coco log`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// A ULID: records sort by id in the order their processes made them.
    pub id: String,
    pub at: DateTime<Utc>,
    /// `DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL` (core4's names).
    pub level: String,
    /// 10, 20, 30, 40, 50 for those levels (Python's numbers), for "at or above" queries.
    pub levelno: u8,
    pub message: String,
    pub host: String,
    /// The process that logged it: a daemon's or worker's name.
    pub source: String,
    pub project: Option<String>,
    /// `project.job`.
    pub job: Option<String>,
    pub run: Option<String>,
    /// `project.app`.
    pub app: Option<String>,
}

/// Which records [`Journal::list_log`] returns: the newest `limit` matching, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    pub project: Option<String>,
    pub job: Option<String>,
    pub run: Option<String>,
    pub app: Option<String>,
    /// Records at or above this `levelno`.
    pub min_levelno: Option<u8>,
    /// Records at or after this time.
    pub since: Option<DateTime<Utc>>,
    pub limit: Option<usize>,
}

/// One live coco process that works on the store (`coco alive`): a worker or a daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Unique name (workers: `--name`, default `HOST-PID`).
    pub name: String,
    /// `worker` or `daemon`.
    pub kind: String,
    pub host: String,
    pub pid: u32,
    pub started: DateTime<Utc>,
    /// Its latest sign of life.
    pub heartbeat: DateTime<Utc>,
    /// Runs at once (workers).
    pub slots: u32,
    /// Ids of the runs it is running.
    pub running: Vec<String>,
    /// Why it takes no new runs right now (paused, overloaded), if so.
    pub holding: Option<String>,
}

impl MemberRecord {
    /// Timestamps truncated to the millisecond (what every backend keeps).
    pub fn truncated_to_ms(mut self) -> Self {
        let ms =
            |t: DateTime<Utc>| DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t);
        self.started = ms(self.started);
        self.heartbeat = ms(self.heartbeat);
        self
    }
}

/// Which runs [`Queue::list_runs`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    pub state: Option<RunState>,
    pub project: Option<String>,
    /// `project.job`.
    pub job: Option<String>,
    /// At most this many (the newest).
    pub limit: Option<usize>,
}

/// A run just claimed, with what its worker needs to start it.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub run: RunRecord,
    /// Its project and job as stored at the claim (`None`: gone since it was enqueued).
    pub project: Option<ProjectRecord>,
    pub job: Option<JobRecord>,
}

/// What [`Queue::finish_and_claim`] did.
#[derive(Debug)]
pub struct Stepped {
    /// The finished run, as [`Queue::finish_run`] returns it (`None`: nothing was to finish,
    /// or it was no longer the worker's).
    pub finished: Option<RunRecord>,
    /// The next run claimed, if one was asked for and could be; an error here leaves the
    /// finish done.
    pub claimed: StoreResult<Option<Claimed>>,
}

/// What [`Queue::claim_run`] may not pick: runs marked `force` are claimed regardless.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Paused {
    /// The whole queue is paused (halt).
    pub all: bool,
    /// These projects are paused.
    pub projects: Vec<String>,
}

impl Paused {
    /// May `run` be claimed under these pauses?
    pub fn allows(&self, run: &RunRecord) -> bool {
        run.force || (!self.all && !self.projects.contains(&run.project))
    }
}
