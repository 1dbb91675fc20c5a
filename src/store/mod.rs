//! The state store: the single source of truth every coco process shares.
//!
//! One [`Store`] trait, two backends that pass one conformance suite
//! (`conformance.rs`, run by `tests/it/store.rs`):
//!
//! - [`embedded`]: SQLite in WAL mode under `folder.state` (default `~/.coco/`), zero setup,
//!   safe for several processes at once (the CLI and a running daemon).
//! - [`mongo`]: the official `mongodb` driver; many hosts share one database. Only widely
//!   implemented operations are used (CRUD, find-and-modify, unique indexes), so it also runs
//!   on MongoDB-compatible servers such as FerretDB.
//!
//! Records are plain data ([`ProjectRecord`], [`JobRecord`], [`AppRecord`], [`RunRecord`]);
//! definitions and arguments are kept as JSON documents so the store never needs to know the
//! manifest's Rust types.
//!
//! The queue methods ([`Store::enqueue`], [`Store::claim_run`], [`Store::heartbeat`],
//! [`Store::finish_run`], [`Store::take_back_zombies`]) are the atomic steps of a run's life
//! (see [`crate::queue::state`] for the states): each happens exactly once however many
//! processes and hosts share the store. The embedded store does each in one `BEGIN
//! IMMEDIATE` transaction; the MongoDB store wins each by inserting a unique marker document
//! (see `mongo.rs`).
//! Collections (tables): `projects`, `jobs`, `apps`, `queue`, `workers` (every live worker and
//! daemon, for `coco alive`), `log`, `locks`, `fires`, `outputs` (the output tail of each
//! run's latest try), `control` (pauses and halt requests);
//! [`Store::ensure_schema`] creates them and their indexes idempotently.

pub mod conformance;
pub mod embedded;
pub mod embedded_file;
pub mod mongo;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::queue::history;
use crate::queue::state::{self, Outcome, Reason, RunState};

/// Names of every collection (MongoDB) / table (SQLite) coco keeps.
pub const COLLECTIONS: &[&str] = &[
    "projects",
    "jobs",
    "apps",
    "app_status",
    "queue",
    "workers",
    "log",
    "locks",
    "fires",
    "outputs",
    "control",
    "problems",
    "releases",
];

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

/// What a worker reports about a running try ([`Store::report_run`]): `Some` fields replace
/// the stored value, `None` leaves it as is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveReport {
    pub pid: Option<u32>,
    /// Fraction done, 0.0 to 1.0.
    pub progress: Option<f64>,
    pub progress_message: Option<String>,
}

/// How a try ended, as written by [`Store::finish_run`].
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
    /// ones), so a short run needs no separate [`Store::report_run`].
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
            RunState::Pending | RunState::Running => Err(StoreError::Invalid {
                doing: format!("finishing run {id}"),
                message: format!("a try cannot end in state {}", self.next.state),
            }),
            _ => Ok(()),
        }
    }
}

/// The answer to [`Store::enqueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// The run was added (its id).
    Queued(String),
    /// Refused: this run (id) of the same job and arguments is still pending, running,
    /// failed or deferred.
    Duplicate(String),
}

/// What an operator does to one run ([`Store::cancel_run`]).
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

/// The answer to [`Store::cancel_run`].
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

/// Operator switches every worker and daemon follows ([`Store::control`]).
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
/// [`Store::unsettled_fires`].
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

/// Which records [`Store::list_log`] returns: the newest `limit` matching, oldest first.
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

/// Which runs [`Store::list_runs`] returns.
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

/// What [`Store::finish_and_claim`] did.
#[derive(Debug)]
pub struct Stepped {
    /// The finished run, as [`Store::finish_run`] returns it (`None`: nothing was to finish,
    /// or it was no longer the worker's).
    pub finished: Option<RunRecord>,
    /// The next run claimed, if one was asked for and could be; an error here leaves the
    /// finish done.
    pub claimed: StoreResult<Option<Claimed>>,
}

/// [`Store::claim_run`], then the claimed run's project and job.
async fn claim_with_definitions<S: Store + ?Sized>(
    store: &S,
    worker: &str,
    now: DateTime<Utc>,
    paused: &Paused,
) -> StoreResult<Option<Claimed>> {
    let Some(run) = store.claim_run(worker, now, paused).await? else {
        return Ok(None);
    };
    let (project, job) = store.get_project_and_job(&run.project, &run.job).await?;
    Ok(Some(Claimed { run, project, job }))
}

/// What [`Store::claim_run`] may not pick: runs marked `force` are claimed regardless.
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

/// What went wrong talking to the store, and while doing what.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("embedded store {path}: {doing}: {source}")]
    Sqlite {
        path: PathBuf,
        doing: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("MongoDB store {url}: {doing}: {source}")]
    Mongo {
        /// The URL with its password redacted.
        url: String,
        doing: String,
        #[source]
        source: Box<mongodb::error::Error>,
    },
    /// The file is not one coco may use (another program's, or another schema version).
    #[error("embedded store {path}: {problem}")]
    Refused {
        path: PathBuf,
        problem: embedded_file::FileProblem,
    },
    #[error("store record {what}: {message}")]
    Corrupt { what: String, message: String },
    #[error("{doing}: {message}")]
    Invalid { doing: String, message: String },
    #[error("embedded store {path}: {doing}: {source}")]
    Io {
        path: PathBuf,
        doing: String,
        #[source]
        source: std::io::Error,
    },
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The state store. Every method is one short, self-contained operation; none keeps
/// state in memory between calls.
#[async_trait]
pub trait Store: Send + Sync {
    /// `"embedded"` or `"mongodb"`, and where: for messages (never contains a password).
    fn describe(&self) -> String;

    /// Create every collection/table and index coco needs. Idempotent: safe on every start
    /// and from several processes at once.
    async fn ensure_schema(&self) -> StoreResult<()>;

    /// All projects, active or not, sorted by name.
    async fn list_projects(&self) -> StoreResult<Vec<ProjectRecord>>;
    async fn get_project(&self, name: &str) -> StoreResult<Option<ProjectRecord>>;
    /// Insert or replace the project with this name.
    async fn put_project(&self, record: &ProjectRecord) -> StoreResult<()>;

    /// Jobs (active or not) sorted by id, optionally only those of one project.
    async fn list_jobs(&self, project: Option<&str>) -> StoreResult<Vec<JobRecord>>;
    async fn get_job(&self, id: &str) -> StoreResult<Option<JobRecord>>;
    /// Insert or replace the job with this id.
    async fn put_job(&self, record: &JobRecord) -> StoreResult<()>;

    /// Project `project` and job `job` at once: what a worker reads to start a run (one
    /// round trip where the backend allows).
    async fn get_project_and_job(
        &self,
        project: &str,
        job: &str,
    ) -> StoreResult<(Option<ProjectRecord>, Option<JobRecord>)> {
        Ok((self.get_project(project).await?, self.get_job(job).await?))
    }

    /// How many jobs are stored and their latest `updated_at`: a cheap sign that some job
    /// changed (every apply writes `updated_at`), for the scheduler's periodic look.
    async fn jobs_marker(&self) -> StoreResult<(u64, Option<DateTime<Utc>>)>;

    /// Apps (active or not) sorted by id, optionally only those of one project.
    async fn list_apps(&self, project: Option<&str>) -> StoreResult<Vec<AppRecord>>;
    async fn get_app(&self, id: &str) -> StoreResult<Option<AppRecord>>;
    /// Insert or replace the app with this id.
    async fn put_app(&self, record: &AppRecord) -> StoreResult<()>;

    /// Set a job's `last_fire` and `next_fire` (nothing else), only while its definition
    /// still has `hash`. Returns false, changing nothing, when the job is missing or was
    /// re-applied with another definition (whose fire times apply computed anew).
    async fn set_fire_times(
        &self,
        id: &str,
        hash: &str,
        last_fire: Option<DateTime<Utc>>,
        next_fire: Option<DateTime<Utc>>,
    ) -> StoreResult<bool>;

    /// Write `status` if its owner holds the app already, or nobody does, or the holder's
    /// heartbeat is older than `stale_before` (it is taken over). True if written: the caller
    /// owns the app. Of concurrent claims of a free app exactly one wins.
    async fn claim_app(&self, status: &AppStatus, stale_before: DateTime<Utc>)
    -> StoreResult<bool>;

    /// Forget app `id`'s status if `owner` holds it (the app was stopped or removed).
    async fn release_app(&self, id: &str, owner: &str) -> StoreResult<()>;

    /// Every app status, by id.
    async fn list_app_status(&self) -> StoreResult<Vec<AppStatus>>;

    /// Replace what `problems.source` recorded before; an empty list removes the record.
    async fn put_problems(&self, problems: &Problems) -> StoreResult<()>;

    /// Every daemon's current manifest problems, by source.
    async fn list_problems(&self) -> StoreResult<Vec<Problems>>;

    /// Record a release; a second record of the same project and version replaces it.
    async fn put_release(&self, release: &ReleaseRecord) -> StoreResult<()>;

    /// Releases, newest first, of one project or all.
    async fn list_releases(&self, project: Option<&str>) -> StoreResult<Vec<ReleaseRecord>>;

    /// Append log records (ids unique; a record already stored is kept as it is).
    async fn append_log(&self, records: &[LogRecord]) -> StoreResult<()>;

    /// Log records per `filter`, oldest first.
    async fn list_log(&self, filter: &LogFilter) -> StoreResult<Vec<LogRecord>>;

    /// Delete log records older than `before`; returns how many.
    async fn prune_log(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    /// Record that `job` fired for `instant`. Returns true for the first caller only, across
    /// every process and host sharing the store (a unique key on `(job, instant)`).
    /// The fire starts unsettled: see [`Store::settle_fire`].
    async fn record_fire(&self, job: &str, instant: DateTime<Utc>) -> StoreResult<bool>;

    /// Say what became of a recorded fire (`enqueued RUN`, `skipped: …`).
    async fn settle_fire(
        &self,
        job: &str,
        instant: DateTime<Utc>,
        outcome: &str,
    ) -> StoreResult<()>;

    /// Fires recorded (or taken over) before `recorded_before` and never settled, oldest
    /// first, at most 100.
    async fn unsettled_fires(&self, recorded_before: DateTime<Utc>) -> StoreResult<Vec<Fire>>;

    /// Delete settled fires of instants before `before`; returns how many. (A fire only
    /// matters while some scheduler may still handle its instant.)
    async fn prune_fires(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    /// Take over an unsettled fire as read by [`Store::unsettled_fires`]: true for one caller
    /// only (its `fired_at` becomes `now`, so a taker that stops too is taken over later).
    async fn retake_fire(&self, fire: &Fire, now: DateTime<Utc>) -> StoreResult<bool>;

    // The queue. Every method is safe with many processes on many hosts at once.

    /// Add a `pending` run — unless a run with the same `dedupe` key is in a blocking state
    /// (pending, running, failed, deferred): then nothing is added and that run's id is
    /// returned. Of concurrent enqueues of one key exactly one is queued.
    async fn enqueue(&self, run: &RunRecord) -> StoreResult<Enqueued>;

    async fn get_run(&self, id: &str) -> StoreResult<Option<RunRecord>>;

    /// Runs matching `filter`, newest (by `created`, then id) first.
    async fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRecord>>;

    /// How many runs match the state, project and job of `filter` (its limit is ignored),
    /// without reading them.
    async fn count_runs(&self, filter: &RunFilter) -> StoreResult<u64>;

    /// Claim the next run for `worker`: among claimable runs (pending, failed, deferred)
    /// with `not_before <= now` that `paused` allows, the highest priority, then the oldest,
    /// whose job has fewer than `max_parallel` runs running. It becomes `running` (attempt
    /// + 1, worker, started and heartbeat `now`). Each claimable state is claimed exactly
    /// once, however many workers claim at once. `None`: nothing to do.
    async fn claim_run(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        paused: &Paused,
    ) -> StoreResult<Option<RunRecord>>;

    /// A worker's step between two runs: end the try `finish` (run id and end, exactly as
    /// [`Store::finish_run`]) if given; then, if `claim` is given (`now` and the pauses),
    /// claim the next run for `worker` (exactly as [`Store::claim_run`]) and read its
    /// project and job. The embedded store does all of it in one transaction, one round trip
    /// per run for a busy worker; the default does the calls one after the other. An error
    /// ending the try is returned as such; one claiming is returned in
    /// [`Stepped::claimed`], the end kept.
    async fn finish_and_claim(
        &self,
        worker: &str,
        finish: Option<(&str, &RunEnd)>,
        claim: Option<(DateTime<Utc>, &Paused)>,
    ) -> StoreResult<Stepped> {
        let finished = match finish {
            Some((id, end)) => self.finish_run(id, worker, end).await?,
            None => None,
        };
        let claimed = match claim {
            Some((now, paused)) => claim_with_definitions(self, worker, now, paused).await,
            None => Ok(None),
        };
        Ok(Stepped { finished, claimed })
    }

    /// Record that `worker` is alive and still running `runs`; returns those of them that
    /// are indeed still running and owned by `worker` (a run missing from the answer was
    /// taken back or ended: stop it).
    async fn heartbeat(
        &self,
        worker: &str,
        runs: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<String>>;

    /// Record `report` (pid, progress) for run `id` and refresh its heartbeat, if it is still
    /// running and owned by `worker`: returns whether it was.
    async fn report_run(
        &self,
        id: &str,
        worker: &str,
        report: &LiveReport,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// End the try of run `id` if it is still running and owned by `worker`, releasing its
    /// job slot (an `end` in state pending or running is refused with
    /// [`StoreError::Invalid`]). Returns the updated run, or `None` when it was not (any more) `worker`'s
    /// to end (taken back as a zombie, ended already).
    async fn finish_run(
        &self,
        id: &str,
        worker: &str,
        end: &RunEnd,
    ) -> StoreResult<Option<RunRecord>>;

    /// Take back every running run whose latest heartbeat is older than `now -
    /// zombie_after` ([`RunRecord::zombie_end`]): `pending` again at once without spending
    /// an attempt, reason `zombie` — or, at its `max_lost`th loss in a row, `error`, reason
    /// `lost N times with its worker`. Each is taken back exactly once however many reapers
    /// run; returns the runs this call took back, updated.
    async fn take_back_zombies(
        &self,
        now: DateTime<Utc>,
        zombie_after: Duration,
        max_lost: u32,
    ) -> StoreResult<Vec<RunRecord>>;

    /// Kill or remove run `id` (see [`Cancel`]), exactly once even against a worker claiming
    /// or finishing it at the same moment. A killed running run keeps its worker's output;
    /// the worker notices at its next heartbeat and ends the process group.
    async fn cancel_run(
        &self,
        id: &str,
        cancel: Cancel,
        now: DateTime<Utc>,
    ) -> StoreResult<Cancelled>;

    /// The operator switches (pauses, halt).
    async fn control(&self) -> StoreResult<Control>;

    /// Pause (`paused`) or resume starting new runs of `project`, or of everything (`None`).
    /// Resuming everything does not resume projects paused one by one.
    async fn set_paused(&self, project: Option<&str>, paused: bool) -> StoreResult<()>;

    /// Ask every worker and daemon started before `before` to stop.
    async fn halt(&self, before: DateTime<Utc>) -> StoreResult<()>;

    /// Insert or replace the record of a live worker or daemon (by name).
    async fn put_member(&self, member: &MemberRecord) -> StoreResult<()>;

    /// Forget a worker or daemon that stopped.
    async fn remove_member(&self, name: &str) -> StoreResult<()>;

    /// Every recorded worker and daemon, sorted by name.
    async fn list_members(&self) -> StoreResult<Vec<MemberRecord>>;

    /// Keep `text` as the output (tail) of run `id`'s latest try, replacing what was kept.
    async fn put_output(&self, id: &str, text: &str) -> StoreResult<()>;

    /// The output (tail) kept for run `id`, if any.
    async fn get_output(&self, id: &str) -> StoreResult<Option<String>>;

    /// The ids of runs that start with `prefix` (exactly: run ids are upper-case ULIDs),
    /// sorted, at most `limit` of them: how a short id the operator typed is resolved.
    async fn run_ids_starting_with(&self, prefix: &str, limit: usize) -> StoreResult<Vec<String>>;
}

/// The first string after every string that starts with `prefix`, for a range query
/// `prefix <= id < prefix_end(prefix)` (pure). Ids are ASCII, so appending the largest
/// character is enough.
pub fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// Where the state lives, as resolved from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreLocation {
    /// SQLite file (`<folder.state>/coco.db`).
    Embedded { path: PathBuf },
    /// MongoDB server and database.
    Mongo { url: String, database: String },
}

/// Open the store at `location` for a command that only reads: nothing is created,
/// initialised or migrated (the embedded store opens its file read-only, a missing file reads
/// as empty: see [`embedded::EmbeddedStore::open_to_read`]; MongoDB reads what is there).
pub async fn open_to_read(location: &StoreLocation) -> StoreResult<Arc<dyn Store>> {
    Ok(match location {
        StoreLocation::Embedded { path } => {
            Arc::new(embedded::EmbeddedStore::open_to_read(path).await?)
        }
        StoreLocation::Mongo { url, database } => {
            Arc::new(mongo::MongoStore::connect(url, database).await?)
        }
    })
}

/// Open (and prepare: create, initialise or migrate the schema) the store at `location`.
pub async fn open(location: &StoreLocation) -> StoreResult<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match location {
        StoreLocation::Embedded { path } => Arc::new(embedded::EmbeddedStore::open(path).await?),
        StoreLocation::Mongo { url, database } => {
            Arc::new(mongo::MongoStore::connect(url, database).await?)
        }
    };
    store.ensure_schema().await?;
    Ok(store)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::RunRecord;
    use crate::manifest::Job;
    use crate::queue::{NewRun, new_run};

    /// The fields issue 11 added to a run, which older records lack.
    pub(crate) const ADDED: [&str; 6] = [
        "defer_delay_ms",
        "defer_max_ms",
        "lost",
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
