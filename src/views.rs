//! The shapes the CLI's `--json` prints and the API answers: one type each, so the two
//! cannot drift apart (`tests/it/api.rs` holds them equal).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::queue::run::RunRecord;
use crate::store::{AppStatus, Catalog, Fleet, JobRecord, Queue, RunFilter, StoreResult};

/// One run and the output kept of its latest try: `coco detail ID --json`,
/// `GET /api/v1/runs/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
        last_run: latest.map(|run| run.id.clone()),
        last_state: latest.map(|run| run.state.as_str().to_owned()),
        last_created: latest.map(|run| run.created),
        last_changed: latest.map(state_since),
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
    let mut lines = Vec::new();
    for record in store.list_jobs(project).await? {
        if !record.active {
            continue;
        }
        let latest = store
            .list_runs(&RunFilter {
                job: Some(record.id.clone()),
                limit: Some(1),
                ..RunFilter::default()
            })
            .await?;
        lines.push(job_line(&record, latest.first()));
    }
    Ok(lines)
}

/// One app as `coco apps` shows it (`GET /api/v1/apps`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppLine {
    pub app: String,
    /// The status its daemon reports; `None`: no daemon runs it.
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
