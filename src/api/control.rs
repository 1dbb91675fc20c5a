//! `POST /api/v1/pause` and `/resume`, with `{"project": "p"}` for one project (an empty
//! body: everything). A token limited to projects pauses and resumes only those.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::error::ErrorBody;
use super::{Api, ApiError};
use crate::access::Role;

/// The body of a pause or resume (optional: none, or only white space, is `{}`).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchBody {
    /// Only this project (default: everything).
    #[serde(default)]
    pub project: Option<String>,
}

/// The switches after the change (`coco mode --json`'s first two fields).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Switches {
    pub paused: bool,
    pub paused_projects: Vec<String>,
}

/// `POST pause`: `coco pause [PROJECT]`.
#[utoipa::path(
    post,
    path = "/pause",
    tag = "control",
    request_body(content = Option<SwitchBody>, description = "The project to pause (none: the whole queue)"),
    responses(
        (status = 200, description = "Paused: the switches now", body = Switches),
        (status = 400, description = "The body is not JSON or has an unknown field or a wrong type", body = ErrorBody),
        (status = 403, description = "A viewer token may not pause; a token limited to projects pauses only those, one at a time", body = ErrorBody),
        (status = 404, description = "No applied project the token sees has this name", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = ErrorBody),
    ),
)]
pub async fn pause(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Switches>, ApiError> {
    switch(&api, &caller, &super::body::bytes(body)?, true).await
}

/// `POST resume`: `coco resume [PROJECT]`.
#[utoipa::path(
    post,
    path = "/resume",
    tag = "control",
    request_body(content = Option<SwitchBody>, description = "The project to resume (none: the whole queue)"),
    responses(
        (status = 200, description = "Resumed: the switches now", body = Switches),
        (status = 400, description = "The body is not JSON or has an unknown field or a wrong type", body = ErrorBody),
        (status = 403, description = "A viewer token may not resume; a token limited to projects resumes only those, one at a time", body = ErrorBody),
        (status = 404, description = "No project the token sees has this name (applied, or paused before it was removed)", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = ErrorBody),
    ),
)]
pub async fn resume(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Switches>, ApiError> {
    switch(&api, &caller, &super::body::bytes(body)?, false).await
}

async fn switch(
    api: &Api,
    caller: &Caller,
    body: &[u8],
    paused: bool,
) -> Result<Json<Switches>, ApiError> {
    let body: SwitchBody = if body.iter().all(u8::is_ascii_whitespace) {
        SwitchBody::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("the body: {e}")))?
    };
    let holder = caller.0.holder();
    let verb = if paused { "pause" } else { "resume" };
    caller.may_operate(body.project.as_deref(), verb, || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no project `{}`", body.project.clone().unwrap_or_default()),
        )
    })?;
    if body.project.is_none() && holder.role != Role::Admin && !holder.projects.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "a token limited to projects may {verb} only those: send {{\"project\": \"{}\"}}",
                holder.projects[0]
            ),
        ));
    }
    if let Some(project) = &body.project {
        let applied = api
            .store
            .list_projects()
            .await
            .map_err(|e| ApiError::store(&e))?
            .iter()
            .any(|p| &p.name == project);
        let paused_now = api
            .store
            .control()
            .await
            .map_err(|e| ApiError::store(&e))?
            .paused_projects
            .contains(project);
        // Resuming a paused project that is no longer applied is allowed, as on the CLI.
        let resuming_a_paused_one = paused_now && !paused;
        if !applied && !resuming_a_paused_one {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no project `{project}`"),
            ));
        }
    }
    api.store
        .set_paused(body.project.as_deref(), paused)
        .await
        .map_err(|e| ApiError::store(&e))?;
    if let Some(state_dir) = &api.state_dir {
        crate::queue::wake_control(state_dir);
    }
    let control = api.store.control().await.map_err(|e| ApiError::store(&e))?;
    Ok(Json(Switches {
        paused: control.paused_all,
        paused_projects: control.paused_projects,
    }))
}
