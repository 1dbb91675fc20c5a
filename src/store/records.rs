//! The records the store keeps besides runs (those are [`crate::queue::run`]'s): plain
//! data, serde-encoded, and the answers of the store's methods.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{AppState, MemberKind, StoreResult};
use crate::access::{Holder, Role};
use crate::queue::run::RunRecord;
use crate::queue::state::RunState;

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

impl ProjectRecord {
    /// The manifest with its `jobs` emptied (`{}`; every job is in its own [`JobRecord`]):
    /// what a worker reads with a claimed run, at a size that does not grow with the
    /// project's jobs (see [`Catalog::get_project_and_job`](super::Catalog::get_project_and_job)).
    pub fn manifest_without_jobs(&self) -> serde_json::Value {
        manifest_without_jobs(&self.manifest)
    }
}

/// A job's fire times to write while its definition has `hash` (see
/// [`Fires::set_fire_times`](super::Fires::set_fire_times)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FireTimes {
    /// The job's id.
    pub job: String,
    pub hash: String,
    pub last_fire: Option<DateTime<Utc>>,
    pub next_fire: Option<DateTime<Utc>>,
}

/// `manifest` with its `jobs` (if it is an object holding them) replaced by `{}`.
pub fn manifest_without_jobs(manifest: &serde_json::Value) -> serde_json::Value {
    match manifest {
        serde_json::Value::Object(fields) => serde_json::Value::Object(
            fields
                .iter()
                .map(|(key, value)| match key.as_str() {
                    "jobs" => (key.clone(), serde_json::Value::Object(Default::default())),
                    _ => (key.clone(), value.clone()),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

impl JobRecord {
    /// The job definition stored in this record.
    pub fn job(&self) -> Result<crate::manifest::Job, serde_json::Error> {
        serde::Deserialize::deserialize(&self.definition)
    }
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

/// The answer to [`Queue::enqueue`](crate::store::Queue::enqueue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// The run was added (its id).
    Queued(String),
    /// Refused: this run (id) of the same job and arguments is still pending, running,
    /// failed or deferred.
    Duplicate(String),
}

/// The answer to [`Queue::cancel_run`](crate::store::Queue::cancel_run).
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

/// Operator switches every worker and daemon follows ([`Fleet::control`](crate::store::Fleet::control)).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Control {
    /// `coco pause` without a project: no new runs at all (except forced ones).
    pub paused_all: bool,
    /// Projects paused one by one, sorted.
    pub paused_projects: Vec<String>,
    /// `coco halt`: every worker and daemon started before this instant stops.
    pub halt_before: Option<DateTime<Utc>>,
    /// Restarts asked for, by app id (`project.app`): the app's process started before that
    /// instant is replaced by its daemon.
    pub app_restarts: std::collections::BTreeMap<String, DateTime<Utc>>,
}

impl Control {
    /// What claims must leave alone under these switches.
    pub fn paused(&self) -> Paused {
        Paused {
            all: self.paused_all,
            projects: self.paused_projects.clone(),
        }
    }

    /// Must app `id`'s process that started at `started` be replaced?
    pub fn restarts_app(&self, id: &str, started: DateTime<Utc>) -> bool {
        self.app_restarts
            .get(id)
            .is_some_and(|asked| started < *asked)
    }

    /// Must a process that started at `started` stop?
    pub fn halts(&self, started: DateTime<Utc>) -> bool {
        self.halt_before.is_some_and(|before| started < before)
    }
}

/// What the daemon supervising an app reports about it (`coco apps`); the record also says
/// which daemon owns the app, so that two daemons never both run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppStatus {
    /// `project.app`.
    pub id: String,
    /// The daemon supervising it (its name).
    pub owner: String,
    /// The owner's host and pid there.
    pub host: String,
    pub owner_pid: u32,
    /// `starting`, `running` (no health check), `healthy`, `unhealthy`, `backoff`,
    /// `exited` or `stopped`.
    pub state: AppState,
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
    /// The fencing token of the owner's hold: raised on every change of owner, and every
    /// write on the owner's behalf is conditional on it ([`crate::store::Fleet::renew_app`]).
    #[serde(default)]
    pub token: u64,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problems {
    /// The daemon that found them (its name).
    pub source: String,
    pub at: DateTime<Utc>,
    /// `path:line:column: message`, one each.
    pub problems: Vec<String>,
}

/// A recorded schedule fire whose outcome was never settled: the scheduler that recorded
/// it stopped before enqueueing its run (or before saying so). See
/// [`Fires::unsettled_fires`](crate::store::Fires::unsettled_fires).
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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

/// Which records [`Journal::list_log`](crate::store::Journal::list_log) returns: the newest `limit` matching, oldest first.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberRecord {
    /// Unique name (workers: `--name`, default `HOST-PID`).
    pub name: String,
    /// `worker` or `daemon`.
    pub kind: MemberKind,
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
    /// The coco version it runs (empty: recorded by a coco before versions were).
    #[serde(default)]
    pub version: String,
    /// Its lease: silent for longer than this, it is lost (0: recorded before leases were;
    /// readers then allow the default zombie interval).
    #[serde(default)]
    pub lease_ms: u64,
    /// The apps it holds (filled in by the readers from the app statuses, not stored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<String>,
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

/// An API token (`coco token create`): never its secret, only the secret's SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Unique name (see [`crate::access::check_name`]).
    pub name: String,
    pub role: Role,
    /// The projects it is limited to; empty: every project.
    pub projects: Vec<String>,
    /// [`crate::access::secret_hash`] of the secret (unique).
    pub hash: String,
    pub created: DateTime<Utc>,
    /// When it stops being accepted; `None`: never.
    pub expires: Option<DateTime<Utc>>,
    /// When a request last came with it.
    pub last_used: Option<DateTime<Utc>>,
}

impl TokenRecord {
    /// What it holds, for [`crate::access::authorize`].
    pub fn holder(&self) -> Holder<'_> {
        Holder {
            role: self.role,
            projects: &self.projects,
            expires: self.expires,
        }
    }

    /// Timestamps truncated to the millisecond (what every backend keeps).
    pub fn truncated_to_ms(mut self) -> Self {
        fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
            DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
        }
        self.created = ms(self.created);
        self.expires = self.expires.map(ms);
        self.last_used = self.last_used.map(ms);
        self
    }
}

/// Which runs [`Queue::list_runs`](crate::store::Queue::list_runs) returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    pub state: Option<RunState>,
    pub project: Option<String>,
    /// `project.job`.
    pub job: Option<String>,
    /// At most this many (the newest).
    pub limit: Option<usize>,
    /// Only runs older than this place in the newest-first order (the next page).
    pub before: Option<RunCursor>,
}

/// A place in the newest-first order of runs ([`RunFilter::before`]): runs are listed by
/// `created`, then `id`, both descending, so the runs after a run are those created before
/// it, or at the same millisecond with a smaller id.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCursor {
    pub created: DateTime<Utc>,
    pub id: String,
}

impl RunCursor {
    /// The place of `run`.
    pub fn of(run: &RunRecord) -> Self {
        Self {
            created: run.created,
            id: run.id.clone(),
        }
    }
}

/// A run just claimed, with what its worker needs to start it.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub run: RunRecord,
    /// Its project and job as stored at the claim (`None`: gone since it was enqueued).
    pub project: Option<ProjectRecord>,
    pub job: Option<JobRecord>,
}

/// What [`Queue::finish_and_claim`](crate::store::Queue::finish_and_claim) did.
#[derive(Debug)]
pub struct Stepped {
    /// The finished run, as [`Queue::finish_run`](crate::store::Queue::finish_run) returns it (`None`: nothing was to finish,
    /// or it was no longer the worker's).
    pub finished: Option<RunRecord>,
    /// The next run claimed, if one was asked for and could be; an error here leaves the
    /// finish done.
    pub claimed: StoreResult<Option<Claimed>>,
}

/// What [`Queue::claim_run`](crate::store::Queue::claim_run) may not pick: runs marked `force` are claimed regardless.
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::manifest_without_jobs;

    #[test]
    fn a_manifest_without_jobs_keeps_everything_else() {
        let manifest = json!({
            "name": "p",
            "environment": {"env": {"A": "1"}},
            "jobs": {"a": {"command": ["true"]}, "b": {"command": ["false"]}},
            "apps": {"web": {"command": ["serve"]}},
        });
        assert_eq!(
            manifest_without_jobs(&manifest),
            json!({
                "name": "p",
                "environment": {"env": {"A": "1"}},
                "jobs": {},
                "apps": {"web": {"command": ["serve"]}},
            })
        );
    }

    #[test]
    fn a_manifest_that_is_not_an_object_is_kept_as_it_is() {
        assert_eq!(manifest_without_jobs(&json!([1, 2])), json!([1, 2]));
        assert_eq!(manifest_without_jobs(&json!({"a": 1})), json!({"a": 1}));
    }
}
