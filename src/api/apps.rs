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
use super::{Api, ApiError};
use crate::access::{self, Need, Verdict};

/// The answer to a restart.
#[derive(Debug, Serialize)]
pub struct RestartAsked {
    pub app: String,
    /// The instant asked for: a process started before it is replaced.
    pub asked: DateTime<Utc>,
    /// Whether a daemon runs the app now (if none does, the next one to take it starts it
    /// anew anyway).
    pub supervised: bool,
}

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
    let holder = caller.0.holder();
    match access::authorize(
        Some(&holder),
        Utc::now(),
        Need::Operate,
        Some(&record.project),
    ) {
        Verdict::Allowed => {}
        Verdict::Hidden | Verdict::Unauthenticated => return Err(unknown()),
        Verdict::Forbidden => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("a {} token may not restart apps", holder.role),
            ));
        }
    }
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
