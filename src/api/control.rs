//! `POST /api/v1/pause` and `/resume`, with `{"project": "p"}` for one project (an empty
//! body: everything). A token limited to projects pauses and resumes only those.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::{Api, ApiError};
use crate::access::{self, Need, Role, Verdict};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchBody {
    /// Only this project (default: everything).
    #[serde(default)]
    pub project: Option<String>,
}

/// The switches after the change (`coco mode --json`'s first two fields).
#[derive(Debug, Serialize)]
pub struct Switches {
    pub paused: bool,
    pub paused_projects: Vec<String>,
}

pub async fn pause(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Bytes,
) -> Result<Json<Switches>, ApiError> {
    switch(&api, &caller, &body, true).await
}

pub async fn resume(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Bytes,
) -> Result<Json<Switches>, ApiError> {
    switch(&api, &caller, &body, false).await
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
    let verdict = access::authorize(
        Some(&holder),
        Utc::now(),
        Need::Operate,
        body.project.as_deref(),
    );
    match verdict {
        Verdict::Allowed => {}
        Verdict::Hidden | Verdict::Unauthenticated => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no project `{}`", body.project.unwrap_or_default()),
            ));
        }
        Verdict::Forbidden => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("a {} token may not {verb}", holder.role),
            ));
        }
    }
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
