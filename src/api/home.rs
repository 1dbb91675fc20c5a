//! `GET /api/v1/status`, `projects` and `plan`: `coco status --json`, `coco projects --json`
//! and `coco plan --json`. The status comes from the store; the projects and the plan from
//! the home the serving daemon watches (read at each request) against the store.
//!
//! A token limited to projects sees only theirs: apps, schedules, queue counts, members'
//! running runs, and manifest problems of files in its projects' folders; the home's own
//! problem and other projects' pauses are not its business.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;

use super::auth::Caller;
use super::error::ErrorBody;
use super::{Api, ApiError};
use crate::access::{Holder, Role};
use crate::manifest::discover::Discovery;
use crate::store::{Problems, RunFilter, Store};
use crate::views::plan::PlanView;
use crate::views::projects::ProjectLine;
use crate::views::status::{COUNTED, Status};

/// Whether `holder` sees every project (pure).
fn sees_all(holder: &Holder<'_>) -> bool {
    holder.role == Role::Admin || holder.projects.is_empty()
}

/// The project of a `project.name` id.
fn project_of(id: &str) -> &str {
    id.split_once('.').map_or(id, |(project, _)| project)
}

#[utoipa::path(
    get,
    path = "/status",
    tag = "home",
    responses(
        (status = 200, description = "`coco status --json`: members, apps, schedules, queue counts, manifest problems, mode (for a token limited to projects, their part)", body = Status),
    ),
)]
pub async fn status(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<Json<Status>, ApiError> {
    let holder = caller.0.holder();
    let store = api.store.as_ref();
    let mut status = crate::views::status::status(store, api.home.as_deref())
        .await
        .map_err(|e| ApiError::store(&e))?;
    if !sees_all(&holder) {
        let folders = project_folders(store, &holder).await?;
        status.members = super::catalog::members_seen_by(store, &holder).await?;
        status.queue = counts_of(store, holder.projects).await?;
        status = seen_status(status, &holder, &folders);
        let mut control = store.control().await.map_err(|e| ApiError::store(&e))?;
        control
            .paused_projects
            .retain(|project| holder.sees(project));
        status.mode = crate::views::status::mode(&control);
    }
    Ok(Json(status))
}

/// What of `status` a token limited to projects sees (pure; its members and queue counts
/// are read for it apart).
fn seen_status(mut status: Status, holder: &Holder<'_>, folders: &[PathBuf]) -> Status {
    status
        .apps
        .retain(|line| holder.sees(project_of(&line.app)));
    status
        .schedules
        .retain(|line| holder.sees(project_of(&line.job)));
    status.problems = seen_problems(status.problems, folders);
    status.home_problem = None;
    status
}

/// The problems about files in `folders` (pure).
fn seen_problems(problems: Vec<Problems>, folders: &[PathBuf]) -> Vec<Problems> {
    problems
        .into_iter()
        .map(|mut source| {
            source.problems.retain(|text| in_folders(text, folders));
            source
        })
        .filter(|source| !source.problems.is_empty())
        .collect()
}

/// Whether a problem's `path:line:column` names a file inside one of `folders` (pure).
fn in_folders(problem: &str, folders: &[PathBuf]) -> bool {
    folders.iter().any(|folder| {
        let folder = folder.to_string_lossy();
        problem
            .strip_prefix(folder.as_ref())
            .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// The folders of the stored projects `holder` sees.
async fn project_folders(store: &dyn Store, holder: &Holder<'_>) -> Result<Vec<PathBuf>, ApiError> {
    let projects = store
        .list_projects()
        .await
        .map_err(|e| ApiError::store(&e))?;
    Ok(projects
        .into_iter()
        .filter(|project| holder.sees(&project.name))
        .filter_map(|project| Path::new(&project.source).parent().map(Path::to_path_buf))
        .collect())
}

/// Runs per counted state within `projects`.
async fn counts_of(store: &dyn Store, projects: &[String]) -> Result<Vec<(String, u64)>, ApiError> {
    let mut queue = Vec::new();
    for state in COUNTED {
        let mut runs = 0;
        for project in projects {
            runs += store
                .count_runs(&RunFilter {
                    state: Some(state),
                    project: Some(project.clone()),
                    ..RunFilter::default()
                })
                .await
                .map_err(|e| ApiError::store(&e))?;
        }
        queue.push((state.as_str().to_owned(), runs));
    }
    Ok(queue)
}

/// The home as it is on disk now (read on the blocking pool, one read at a time per daemon so
/// that a flood of requests queues instead of reading the home in parallel: past
/// [`super::TIME_LIMIT`] a waiting request is a 503), or a 503 saying why not.
async fn discover(api: &Api) -> Result<Discovery, ApiError> {
    let Some(home) = api.home.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this daemon watches no home",
        ));
    };
    // Held by the read itself, so a request given up on still blocks the next read until
    // its read ends.
    let one_at_a_time = Arc::clone(&api.home_read).lock_owned().await;
    tokio::task::spawn_blocking(move || {
        let read = crate::manifest::discover::discover(&home);
        drop(one_at_a_time);
        read
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "reading the home failed"))?
    .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
}

#[utoipa::path(
    get,
    path = "/projects",
    tag = "home",
    responses(
        (status = 200, description = "`coco projects --json`: the projects of the home the serving daemon watches", body = Vec<ProjectLine>),
        (status = 404, description = "The serving daemon watches no home", body = ErrorBody),
    ),
)]
pub async fn projects(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<Json<Vec<ProjectLine>>, ApiError> {
    let holder = caller.0.holder();
    let discovery = discover(&api).await?;
    let (plan, _) = crate::views::plan::plan_home(&discovery, api.store.as_ref(), Utc::now())
        .await
        .map_err(|e| ApiError::store(&e))?;
    let mut lines = crate::views::projects::project_lines(&discovery, &plan).await;
    if !sees_all(&holder) {
        lines.retain(|line| holder.sees(&line.name));
    }
    Ok(Json(lines))
}

#[utoipa::path(
    get,
    path = "/plan",
    tag = "home",
    responses(
        (status = 200, description = "`coco plan --json`: what applying the home would change, and the invalid manifests' problems", body = PlanView),
        (status = 404, description = "The serving daemon watches no home", body = ErrorBody),
    ),
)]
pub async fn plan(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<Json<PlanView>, ApiError> {
    let holder = caller.0.holder();
    let mut discovery = discover(&api).await?;
    let (mut plan, _) = crate::views::plan::plan_home(&discovery, api.store.as_ref(), Utc::now())
        .await
        .map_err(|e| ApiError::store(&e))?;
    if !sees_all(&holder) {
        plan.projects.retain(|project| holder.sees(&project.name));
        let folders = project_folders(api.store.as_ref(), &holder).await?;
        discovery
            .invalid
            .retain(|dir, _| folders.iter().any(|folder| folder == dir));
    }
    Ok(Json(PlanView::new(&plan, &discovery)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limited_token_sees_problems_only_of_its_projects_files() {
        let folders = [PathBuf::from("/home/shop")];
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let problems = vec![
            Problems {
                source: "d1".into(),
                at,
                problems: vec![
                    "/home/shop/coco.yaml:3:1: bad".into(),
                    "/home/shopping/coco.yaml:1:1: other".into(),
                ],
            },
            Problems {
                source: "d2".into(),
                at,
                problems: vec!["/home/billing/coco.yaml:2:2: secret".into()],
            },
        ];
        let seen = seen_problems(problems, &folders);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].problems, ["/home/shop/coco.yaml:3:1: bad"]);
    }
}
