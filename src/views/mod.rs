//! The shapes the CLI's `--json` prints and the API answers: one type each, so the two
//! cannot drift apart (`tests/it/api.rs` holds them equal).

pub mod plan;
pub mod projects;
pub mod status;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::queue::run::RunRecord;
use crate::queue::state::RunState;
use crate::store::{
    AppStatus, Catalog, Fleet, JobRecord, MemberRecord, Queue, RunFilter, StoreResult,
};

/// One run and the output kept of its latest try: `coco detail ID --json`,
/// `GET /api/v1/runs/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunDetail {
    pub run: RunRecord,
    /// The tail of the latest try's output, if any was stored.
    pub output: Option<String>,
}

impl RunDetail {
    /// `run` with its output from `store`.
    pub async fn of(store: &dyn Queue, run: RunRecord) -> StoreResult<Self> {
        let output = store.get_output(&run.id).await?;
        Ok(Self { run, output })
    }
}

/// One job as `coco jobs` shows it (`GET /api/v1/jobs`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobLine {
    pub job: String,
    pub schedule: Option<String>,
    pub timezone: String,
    pub last_fire: Option<DateTime<Utc>>,
    pub next_fire: Option<DateTime<Utc>>,
    /// The latest run: its id and state.
    pub last_run: Option<String>,
    pub last_state: Option<String>,
    pub last_created: Option<DateTime<Utc>>,
    /// When the latest run entered its state (for a finished run: when it ended).
    pub last_changed: Option<DateTime<Utc>>,
}

/// The line of `record` with its latest run (pure).
pub fn job_line(record: &JobRecord, latest: Option<&RunRecord>) -> JobLine {
    let job = record.job().ok();
    JobLine {
        job: record.id.clone(),
        schedule: job.as_ref().and_then(|job| job.schedule.clone()),
        timezone: job.map(|job| job.timezone).unwrap_or_default(),
        last_fire: record.last_fire,
        next_fire: record.next_fire,
        last_run: None,
        last_state: None,
        last_created: None,
        last_changed: None,
    }
    .with_latest(latest)
}

impl JobLine {
    /// This line with `latest` as its latest run (pure).
    fn with_latest(self, latest: Option<&RunRecord>) -> Self {
        Self {
            last_run: latest.map(|run| run.id.clone()),
            last_state: latest.map(|run| run.state.as_str().to_owned()),
            last_created: latest.map(|run| run.created),
            last_changed: latest.map(state_since),
            ..self
        }
    }
}

/// When `run` entered its current state: its latest history entry (pure).
pub fn state_since(run: &RunRecord) -> DateTime<Utc> {
    run.history.last().map_or(run.created, |change| change.at)
}

/// The active jobs (of `project`, if given), each with its latest run.
pub async fn job_lines<S: Catalog + Queue + ?Sized>(
    store: &S,
    project: Option<&str>,
) -> StoreResult<Vec<JobLine>> {
    job_lines_where(store, project, |_| true).await
}

/// [`job_lines`] of the jobs whose line (without its run) `keep` says, so a caller that wants
/// only some (`coco status`: the scheduled ones) reads no latest run of the others.
pub async fn job_lines_where<S: Catalog + Queue + ?Sized>(
    store: &S,
    project: Option<&str>,
    keep: impl Fn(&JobLine) -> bool,
) -> StoreResult<Vec<JobLine>> {
    let mut lines = Vec::new();
    for record in store.list_jobs(project).await? {
        if !record.active {
            continue;
        }
        let line = job_line(&record, None);
        if !keep(&line) {
            continue;
        }
        let latest = store
            .list_runs(&RunFilter {
                job: Some(record.id.clone()),
                limit: Some(1),
                ..RunFilter::default()
            })
            .await?;
        lines.push(line.with_latest(latest.first()));
    }
    Ok(lines)
}

/// One app as `coco apps` shows it (`GET /api/v1/apps`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AppLine {
    pub app: String,
    /// The status its daemon reports; none (`null`): no daemon runs it.
    pub status: Option<AppStatus>,
}

/// The active apps (of `project`, if given), each with the status its daemon reports.
pub async fn app_lines<S: Catalog + Fleet + ?Sized>(
    store: &S,
    project: Option<&str>,
) -> StoreResult<Vec<AppLine>> {
    let statuses = store.list_app_status().await?;
    Ok(store
        .list_apps(project)
        .await?
        .into_iter()
        .filter(|record| record.active)
        .map(|record| AppLine {
            status: statuses.iter().find(|s| s.id == record.id).cloned(),
            app: record.id,
        })
        .collect())
}

/// Every worker and daemon (`coco alive --json`, `GET /api/v1/members`), each with the runs
/// the queue says it runs now (a member's own record is up to a heartbeat old) and the apps
/// it holds, and the running runs themselves.
pub async fn members_with_running<S: Fleet + Queue + ?Sized>(
    store: &S,
) -> StoreResult<(Vec<MemberRecord>, Vec<RunRecord>)> {
    let mut members = store.list_members().await?;
    let running = store
        .list_runs(&RunFilter {
            state: Some(RunState::Running),
            ..RunFilter::default()
        })
        .await?;
    running_from_queue(&mut members, &running);
    let statuses = store.list_app_status().await?;
    for member in &mut members {
        member.apps = statuses
            .iter()
            .filter(|status| status.owner == member.name)
            .map(|status| status.id.clone())
            .collect();
    }
    Ok((members, running))
}

/// [`members_with_running`] without the runs.
pub async fn members_as_they_run<S: Fleet + Queue + ?Sized>(
    store: &S,
) -> StoreResult<Vec<MemberRecord>> {
    Ok(members_with_running(store).await?.0)
}

/// Set each member's running runs to those of `running` on it, sorted (pure): the queue is
/// the truth, a member's own list is as old as its latest heartbeat.
pub fn running_from_queue(members: &mut [MemberRecord], running: &[RunRecord]) {
    for member in members {
        let mut ids: Vec<String> = running
            .iter()
            .filter(|run| run.worker.as_deref() == Some(member.name.as_str()))
            .map(|run| run.id.clone())
            .collect();
        ids.sort();
        member.running = ids;
    }
}
