//! `POST /api/v1/jobs/{project}.{job}/enqueue`: what `coco enqueue` does, for an operator
//! of the job's project: 201 with the run, 409 with the blocking run's id for a duplicate.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;

use super::auth::Caller;
use super::body::Body;
use super::error::ErrorBody;
use super::{Api, ApiError};
use crate::queue::run::RunRecord;
use crate::queue::{self, NewRun};
use crate::store::Enqueued;

/// The body of an enqueue.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueBody {
    /// Run arguments over the job's default `args` (any JSON values; numbers keep their text).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub args: serde_json::Map<String, serde_json::Value>,
    /// Claim it even while its project or the queue is paused.
    #[serde(default)]
    pub force: bool,
    /// Its priority (default: the job's).
    #[serde(default)]
    pub priority: Option<i32>,
}

/// `POST jobs/{job}/enqueue`: `coco enqueue`.
#[utoipa::path(
    post,
    path = "/jobs/{job}/enqueue",
    tag = "jobs",
    params(("job" = String, Path, description = "The job, `project.job`")),
    request_body(content = EnqueueBody, description = "What to run it with (`{}`: the job's defaults)"),
    responses(
        (status = 201, description = "Enqueued: the new run", body = RunRecord),
        (status = 400, description = "The body is not JSON (or not sent as `application/json`), has an unknown field or a wrong type", body = ErrorBody),
        (status = 403, description = "A viewer token may not enqueue runs", body = ErrorBody),
        (status = 404, description = "No applied job of a project the token sees has this id", body = ErrorBody),
        (status = 409, description = "A run of the same job and arguments is still pending, running, failed or deferred: its id as `run`", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = ErrorBody),
        (status = 500, description = "The stored definition of the job does not read", body = ErrorBody),
    ),
)]
pub async fn enqueue(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(job_id): Path<String>,
    Body(body): Body<EnqueueBody>,
) -> Result<Response, ApiError> {
    let unknown = || ApiError::new(StatusCode::NOT_FOUND, format!("no applied job `{job_id}`"));
    let record = api
        .store
        .get_job(&job_id)
        .await
        .map_err(|e| ApiError::store(&e))?
        .filter(|record| record.active)
        .ok_or_else(unknown)?;
    caller.may_operate(Some(&record.project), "enqueue runs", unknown)?;
    let job = record.job().map_err(|e| {
        tracing::error!(job = %record.id, "api: the stored definition does not read: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the stored definition of job `{job_id}` does not read"),
        )
    })?;
    let args = queue::overlay_args(&job.args, body.args);
    let mut run = queue::new_run(
        &job,
        NewRun {
            force: body.force,
            ..NewRun::new(&record.id, &record.project, args, Utc::now())
        },
    );
    if let Some(priority) = body.priority {
        run.priority = priority;
    }
    match api
        .store
        .enqueue(&run)
        .await
        .map_err(|e| ApiError::store(&e))?
    {
        Enqueued::Queued(id) => {
            if let Some(state_dir) = &api.state_dir {
                queue::wake(state_dir);
            }
            let stored = api
                .store
                .get_run(&id)
                .await
                .map_err(|e| ApiError::store(&e))?
                .unwrap_or(run);
            Ok((StatusCode::CREATED, Json(stored)).into_response())
        }
        Enqueued::Duplicate(existing) => Err(ApiError {
            run: Some(existing.clone()),
            ..ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "not enqueued: run {existing} of {job_id} with the same arguments is still \
                     pending, running, failed or deferred"
                ),
            )
        }),
    }
}
