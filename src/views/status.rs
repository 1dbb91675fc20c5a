//! `coco status --json` and `GET /api/v1/status`: daemons and workers, apps, schedules, queue
//! counts, manifest problems and the operator switches, read from the store.

use std::path::Path;

use serde::Serialize;

use super::{AppLine, JobLine};
use crate::queue::state::RunState;
use crate::store::{Control, MemberRecord, Problems, RunFilter, Store, StoreResult};

/// The states whose runs are counted (finished ones pile up; `coco list` shows them).
pub const COUNTED: [RunState; 6] = [
    RunState::Pending,
    RunState::Running,
    RunState::Failed,
    RunState::Deferred,
    RunState::Error,
    RunState::Killed,
];

/// Everything `coco status` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub members: Vec<MemberRecord>,
    pub apps: Vec<AppLine>,
    pub schedules: Vec<JobLine>,
    /// Runs per state.
    pub queue: Vec<(String, u64)>,
    pub problems: Vec<Problems>,
    /// What is wrong with the home (`folder.home`) of whoever answers, if anything: missing,
    /// no folder.
    pub home_problem: Option<String>,
    pub mode: String,
}

/// The status as the store holds it, with what is wrong with `home` (if given).
pub async fn status(store: &dyn Store, home: Option<&Path>) -> StoreResult<Status> {
    let apps = super::app_lines(store, None).await?;
    let schedules = super::job_lines_where(store, None, |line| line.schedule.is_some()).await?;
    let mut queue = Vec::new();
    for state in COUNTED {
        let runs = store
            .count_runs(&RunFilter {
                state: Some(state),
                ..RunFilter::default()
            })
            .await?;
        queue.push((state.as_str().to_owned(), runs));
    }
    let members = super::members_as_they_run(store).await?;
    Ok(Status {
        members,
        apps,
        schedules,
        queue,
        problems: store.list_problems().await?,
        home_problem: home.and_then(|home| {
            crate::manifest::discover::project_dirs(home)
                .err()
                .map(|error| error.to_string())
        }),
        mode: mode(&store.control().await?),
    })
}

/// The operator switches in words (pure): `coco pause`'s answer and the status's mode.
pub fn mode(control: &Control) -> String {
    let mut text = if control.paused_all {
        "mode: paused: no new runs start (except forced ones); `coco resume` to go on".to_string()
    } else {
        "mode: running".to_string()
    };
    if !control.paused_projects.is_empty() {
        text.push_str(&format!(
            "\npaused projects: {}",
            control.paused_projects.join(", ")
        ));
    }
    if let Some(before) = control.halt_before {
        text.push_str(&format!(
            "\nlast halt: {} (workers and daemons started before it stop)",
            before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    text
}
