//! `GET /api/v1/runs/{id}` (the `coco detail --json` shape) and `…/output` (the kept tail,
//! as text); `POST …/kill`, `…/remove`, `…/restart` for an operator of the run's project;
//! `GET runs`, the runs a token sees, a page at a time. The id is a whole run id or a unique prefix, any case, as on the command line;
//! a run of a project the token does not see answers exactly as one that does not exist.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::error::ErrorBody;
use super::{Api, ApiError};
use crate::access::{self, Need, Verdict};
use crate::actions::{self, Restarted};
use crate::queue::run::{Cancel, RunRecord};
use crate::queue::state::RunState;
use crate::store::run_id::{self, RunIdProblem};
use crate::store::{Cancelled, RunCursor, RunFilter};
use crate::views::RunDetail;

/// `GET runs/{id}`: `coco detail ID --json`.
#[utoipa::path(
    get,
    path = "/runs/{id}",
    operation_id = "run",
    tag = "runs",
    params(RunId),
    responses(
        (status = 200, description = "The run and the output kept of its latest try", body = RunDetail),
        (status = 400, description = "The id is malformed, too short or ambiguous among the runs the token sees", body = ErrorBody),
        (status = 404, description = "No run the token sees has this id", body = ErrorBody),
    ),
)]
pub async fn detail(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(typed): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let run = visible_run(&api, &caller, &typed).await?;
    let detail = RunDetail::of(api.store.as_ref(), run)
        .await
        .map_err(|e| ApiError::store(&e))?;
    Ok(Json(detail))
}

/// `GET runs/{id}/output`: the kept tail of the latest try's output.
#[utoipa::path(
    get,
    path = "/runs/{id}/output",
    operation_id = "run_output",
    tag = "runs",
    params(RunId),
    responses(
        (status = 200, description = "The kept output lines (`HH:MM:SS.mmm tag text`), empty if none was stored", body = String, content_type = "text/plain"),
        (status = 400, description = "The id is malformed, too short or ambiguous among the runs the token sees", body = ErrorBody),
        (status = 404, description = "No run the token sees has this id", body = ErrorBody),
    ),
)]
pub async fn output(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(typed): Path<String>,
) -> Result<Response, ApiError> {
    let run = visible_run(&api, &caller, &typed).await?;
    let output = api
        .store
        .get_output(&run.id)
        .await
        .map_err(|e| ApiError::store(&e))?
        .unwrap_or_default();
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        output,
    )
        .into_response())
}

/// The `{id}` of a run's routes.
#[derive(utoipa::IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
#[allow(dead_code)] // Only its documentation is used: the handlers take `Path<String>`.
pub struct RunId(
    /// A run id, or a unique prefix of 4 or more of its characters (any case), as on the
    /// command line.
    String,
);

/// The run `typed` names among those `caller` may see, or the answer to give instead.
async fn visible_run(api: &Api, caller: &Caller, typed: &str) -> Result<RunRecord, ApiError> {
    let unknown = || ApiError::new(StatusCode::NOT_FOUND, format!("no run with id `{typed}`"));
    let holder = caller.0.holder();
    let sees = |run: &RunRecord| {
        access::authorize(Some(&holder), Utc::now(), Need::Read, Some(&run.project))
            == Verdict::Allowed
    };
    let resolved = run_id::resolve(api.store.as_ref(), typed)
        .await
        .map_err(|e| ApiError::store(&e))?;
    let id = match resolved {
        Ok(id) => id,
        Err(RunIdProblem::Unknown { .. }) => return Err(unknown()),
        Err(problem @ (RunIdProblem::Malformed { .. } | RunIdProblem::TooShort { .. })) => {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, problem.to_string()));
        }
        Err(RunIdProblem::Ambiguous {
            candidates, more, ..
        }) => {
            // Only the runs this token sees count: it never learns of the others.
            let mut seen = Vec::new();
            for id in candidates {
                if let Some(run) = get(api, &id).await?
                    && sees(&run)
                {
                    seen.push(run);
                }
            }
            return match (seen.len(), more) {
                (1, false) => Ok(seen.remove(0)),
                (0, false) => Err(unknown()),
                _ => Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "run id `{typed}` is ambiguous{}; give more characters",
                        if seen.is_empty() {
                            String::new()
                        } else {
                            let ids: Vec<&str> = seen.iter().map(|r| r.id.as_str()).collect();
                            format!(": {} start with it", ids.join(", "))
                        }
                    ),
                )),
            };
        }
    };
    match get(api, &id).await? {
        Some(run) if sees(&run) => Ok(run),
        _ => Err(unknown()),
    }
}

async fn get(api: &Api, id: &str) -> Result<Option<RunRecord>, ApiError> {
    api.store.get_run(id).await.map_err(|e| ApiError::store(&e))
}

/// The run `typed` names, for an operator of its project (403 for a viewer).
async fn operable_run(api: &Api, caller: &Caller, typed: &str) -> Result<RunRecord, ApiError> {
    let run = visible_run(api, caller, typed).await?;
    caller.may_operate(Some(&run.project), "change runs", || {
        ApiError::new(StatusCode::NOT_FOUND, format!("no run with id `{typed}`"))
    })?;
    Ok(run)
}

/// `POST runs/{id}/kill`: `coco kill ID`.
#[utoipa::path(
    post,
    path = "/runs/{id}/kill",
    operation_id = "kill_run",
    tag = "runs",
    params(RunId),
    responses(
        (status = 200, description = "Killed: the run as it is now", body = RunRecord),
        (status = 400, description = "The id is malformed, too short or ambiguous among the runs the token sees", body = ErrorBody),
        (status = 403, description = "A viewer token may not change runs", body = ErrorBody),
        (status = 404, description = "No run the token sees has this id", body = ErrorBody),
        (status = 409, description = "The run's state does not allow a kill", body = ErrorBody),
    ),
)]
pub async fn kill(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(typed): Path<String>,
) -> Result<Json<RunRecord>, ApiError> {
    cancel(&api, &caller, &typed, Cancel::Kill).await
}

/// `POST runs/{id}/remove`: `coco remove ID`.
#[utoipa::path(
    post,
    path = "/runs/{id}/remove",
    operation_id = "remove_run",
    tag = "runs",
    params(RunId),
    responses(
        (status = 200, description = "Removed from the queue: the run as it is now", body = RunRecord),
        (status = 400, description = "The id is malformed, too short or ambiguous among the runs the token sees", body = ErrorBody),
        (status = 403, description = "A viewer token may not change runs", body = ErrorBody),
        (status = 404, description = "No run the token sees has this id", body = ErrorBody),
        (status = 409, description = "The run's state does not allow a removal", body = ErrorBody),
    ),
)]
pub async fn remove(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(typed): Path<String>,
) -> Result<Json<RunRecord>, ApiError> {
    cancel(&api, &caller, &typed, Cancel::Remove).await
}

/// Kill or remove: 200 with the run as it is now, 409 when its state does not allow it.
async fn cancel(
    api: &Api,
    caller: &Caller,
    typed: &str,
    how: Cancel,
) -> Result<Json<RunRecord>, ApiError> {
    let run = operable_run(api, caller, typed).await?;
    match api
        .store
        .cancel_run(&run.id, how, Utc::now())
        .await
        .map_err(|e| ApiError::store(&e))?
    {
        Cancelled::Done(run) => {
            if actions::previous_state(&run) == Some(RunState::Running)
                && let Some(state_dir) = &api.state_dir
            {
                // This host's workers stop its process now, not at their next heartbeat.
                crate::queue::wake_control(state_dir);
            }
            Ok(Json(run))
        }
        Cancelled::Refused(run) => Err(ApiError::new(
            StatusCode::CONFLICT,
            actions::cancel_refused(&run, how),
        )),
        Cancelled::Missing => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no run with id `{typed}`"),
        )),
    }
}

/// `POST runs/{id}/restart`: 201 with the new run; 409 when there is nothing to restart or a
/// run of the same job and arguments waits (its id as `"run"`).
#[utoipa::path(
    post,
    path = "/runs/{id}/restart",
    operation_id = "restart_run",
    tag = "runs",
    params(RunId),
    responses(
        (status = 201, description = "The new run, enqueued with the old one's job and arguments", body = RunRecord),
        (status = 400, description = "The id is malformed, too short or ambiguous among the runs the token sees", body = ErrorBody),
        (status = 403, description = "A viewer token may not change runs", body = ErrorBody),
        (status = 404, description = "No run the token sees has this id (or the new run disappeared meanwhile)", body = ErrorBody),
        (status = 409, description = "Nothing to restart (the run is pending or running, its job is no longer applied, or it changed meanwhile), or a run of the same job and arguments is waiting or running: its id as `run`", body = ErrorBody),
        (status = 500, description = "The stored definition of the run's job does not read", body = ErrorBody),
    ),
)]
pub async fn restart(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(typed): Path<String>,
) -> Result<Response, ApiError> {
    let old = operable_run(&api, &caller, &typed).await?;
    let restarted = actions::restart(api.store.as_ref(), &old, Utc::now())
        .await
        .map_err(|error| match error {
            actions::ActionError::Store(e) => ApiError::store(&e),
            other => {
                tracing::error!("api: restarting {}: {other}", old.id);
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
            }
        })?;
    match restarted {
        Restarted::Queued(id) => {
            if let Some(state_dir) = &api.state_dir {
                crate::queue::wake(state_dir);
            }
            let new = get(&api, &id).await?.ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("run {id} disappeared meanwhile"),
                )
            })?;
            Ok((StatusCode::CREATED, Json(new)).into_response())
        }
        Restarted::Refused(message) => Err(ApiError::new(StatusCode::CONFLICT, message)),
        Restarted::Duplicate { existing, message } => Err(ApiError {
            run: Some(existing),
            ..ApiError::new(StatusCode::CONFLICT, message)
        }),
    }
}

/// The most runs one page holds, and how many without `limit`.
pub const MAX_PAGE: usize = 1000;
pub const DEFAULT_PAGE: usize = 50;

/// `GET runs`'s query: `state`, `project`, `job`, `limit`, `before` (the `next` of the page
/// before).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only runs in this state.
    #[param(value_type = Option<RunState>)]
    pub state: Option<String>,
    /// Only runs of this project.
    pub project: Option<String>,
    /// Only runs of this job (`project.job`).
    pub job: Option<String>,
    /// Runs a page (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The page after this run: the `next` of the page before.
    pub before: Option<String>,
}

/// A page of runs, newest first; `next` the `before` of the page after (`null`: the last).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunsPage {
    pub runs: Vec<RunRecord>,
    /// The `before` of the next page; `null` on the last.
    pub next: Option<String>,
}

/// `GET runs`: the runs the token sees, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/runs",
    operation_id = "runs",
    tag = "runs",
    params(RunsQuery),
    responses(
        (status = 200, description = "A page of the runs the token sees, newest first", body = RunsPage),
        (status = 400, description = "An unknown or malformed query parameter (a limit out of range, an unknown state, a `before` that names no run the token sees)", body = ErrorBody),
    ),
)]
pub async fn list(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Json<RunsPage>, ApiError> {
    let query = super::catalog::query(query)?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("limit: from 1 to {MAX_PAGE} runs a page (got {limit})"),
        ));
    }
    let state = match query.state.as_deref() {
        None => None,
        Some(text) => Some(RunState::parse(text).ok_or_else(|| {
            let names: Vec<&str> = RunState::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("state: unknown `{text}` (one of {})", names.join(", ")),
            )
        })?),
    };
    let before = match &query.before {
        None => None,
        // The cursor is a run the token sees: anything else is not a page of this listing.
        Some(id) => Some(RunCursor::of(
            &visible_run(&api, &caller, id).await.map_err(|_| {
                ApiError::new(StatusCode::BAD_REQUEST, format!("before: no run `{id}`"))
            })?,
        )),
    };
    let holder = caller.0.holder();
    let job_project = query
        .job
        .as_deref()
        .map(|job| job.split('.').next().unwrap_or(job));
    // The projects to list: the one asked for (or the job's), else all the token sees.
    let projects =
        super::catalog::listed_projects(&holder, query.project.as_deref().or(job_project));
    let mut runs = Vec::new();
    for project in projects {
        let filter = RunFilter {
            state,
            project,
            job: query.job.clone(),
            limit: Some(limit),
            before: before.clone(),
        };
        runs.extend(
            api.store
                .list_runs(&filter)
                .await
                .map_err(|e| ApiError::store(&e))?,
        );
    }
    // Several projects' pages merged: newest first, as one listing would give them.
    runs.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
    runs.truncate(limit);
    let next = (runs.len() == limit)
        .then(|| runs.last().map(|run| run.id.clone()))
        .flatten();
    Ok(Json(RunsPage { runs, next }))
}
