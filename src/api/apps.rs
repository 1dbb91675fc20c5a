//! `POST /api/v1/apps/{project}.{app}/restart`: an operator of the app's project asks for a
//! restart; the daemon that runs the app (on whichever host) replaces its process at its next
//! status write (`daemon.app_status_every`), as a change of definition would (rolling when the
//! app has no port). 202: asked for; the app's status shows the new process and one restart
//! more.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::auth::Caller;
use super::error::ErrorBody;
use super::{Api, ApiError};

/// The answer to a restart.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RestartAsked {
    pub app: String,
    /// The instant asked for: a process started before it is replaced.
    pub asked: DateTime<Utc>,
    /// Whether a daemon runs the app now (if none does, the next one to take it starts it
    /// anew anyway).
    pub supervised: bool,
}

#[utoipa::path(
    post,
    path = "/apps/{app}/restart",
    operation_id = "restart_app",
    tag = "apps",
    params(("app" = String, Path, description = "The app as `project.app`")),
    responses(
        (status = 202, description = "Asked for: the app's daemon replaces its process at its next status write", body = RestartAsked),
        (status = 403, description = "The token may not restart apps", body = ErrorBody),
        (status = 404, description = "No applied app the token sees has this id", body = ErrorBody),
    ),
)]
pub async fn restart(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(app_id): Path<String>,
) -> Result<(StatusCode, Json<RestartAsked>), ApiError> {
    let unknown = || ApiError::new(StatusCode::NOT_FOUND, format!("no applied app `{app_id}`"));
    let record = api
        .store
        .get_app(&app_id)
        .await
        .map_err(|e| ApiError::store(&e))?
        .filter(|record| record.active)
        .ok_or_else(unknown)?;
    caller.may_operate(Some(&record.project), "restart apps", unknown)?;
    let asked = Utc::now();
    api.store
        .request_app_restart(&record.id, asked)
        .await
        .map_err(|e| ApiError::store(&e))?;
    let supervised = api
        .store
        .list_app_status()
        .await
        .map_err(|e| ApiError::store(&e))?
        .iter()
        .any(|status| status.id == record.id && status.pid.is_some());
    Ok((
        StatusCode::ACCEPTED,
        Json(RestartAsked {
            app: record.id,
            asked,
            supervised,
        }),
    ))
}
