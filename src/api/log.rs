//! `GET /api/v1/log?project=&job=&run=&app=&level=&since=&limit=`: the records `coco log
//! --json` prints (the newest `limit`, oldest first), of the projects the token sees; a
//! token limited to projects sees no record that names none (a daemon's own lines).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;

use super::auth::Caller;
use super::catalog::{listed_projects, query};
use super::error::ErrorBody;
use super::{Api, ApiError};
use crate::config::Level;
use crate::store::{LogFilter, LogRecord, run_id};

/// The most records one answer holds, and how many without `limit`.
pub const MAX_RECORDS: usize = 1000;
pub const DEFAULT_RECORDS: usize = 50;

/// `GET log`'s query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Only records about this project.
    pub project: Option<String>,
    /// Only records about this job (`project.job`).
    pub job: Option<String>,
    /// Only records about this run (an id or a unique prefix).
    pub run: Option<String>,
    /// Only records about this app (`project.app`).
    pub app: Option<String>,
    /// Only records at or above this level (`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`; any
    /// case).
    pub level: Option<String>,
    /// Only records at or after this time: a time (RFC 3339) or how long ago (`10m`, `2h`).
    pub since: Option<String>,
    /// The newest this many records (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

fn bad(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// `since` as a time: RFC 3339, or a duration before `now` (pure).
pub fn since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let ago = crate::manifest::raw::parse_duration(text).map_err(|_| {
        format!("since: `{text}` is neither a time (RFC 3339) nor a duration (10m, 2h)")
    })?;
    TimeDelta::from_std(ago)
        .ok()
        .and_then(|ago| now.checked_sub_signed(ago))
        .ok_or_else(|| format!("since: `{text}` is too long ago"))
}

/// `GET log`: `coco log --json`.
#[utoipa::path(
    get,
    path = "/log",
    operation_id = "log",
    tag = "log",
    params(LogQuery),
    responses(
        (status = 200, description = "The newest matching records of the projects the token sees, oldest first", body = Vec<LogRecord>),
        (status = 400, description = "An unknown or malformed query parameter (a limit out of range, an unknown level, a `since` that is neither a time nor a duration, a run id malformed, too short or ambiguous)", body = ErrorBody),
    ),
)]
pub async fn list(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
    asked: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Json<Vec<LogRecord>>, ApiError> {
    let asked = query(asked)?;
    let limit = asked.limit.unwrap_or(DEFAULT_RECORDS);
    if !(1..=MAX_RECORDS).contains(&limit) {
        return Err(bad(format!(
            "limit: from 1 to {MAX_RECORDS} records (got {limit})"
        )));
    }
    let min_levelno = match &asked.level {
        Some(text) => Some(
            text.parse::<Level>()
                .map_err(|e| bad(format!("level: {e}")))?
                .levelno(),
        ),
        None => None,
    };
    let since = match &asked.since {
        Some(text) => Some(since(text, Utc::now()).map_err(bad)?),
        None => None,
    };
    let run = match &asked.run {
        Some(typed) => match run_id::resolve(api.store.as_ref(), typed)
            .await
            .map_err(|e| ApiError::store(&e))?
        {
            Ok(id) => Some(id),
            // A run that is not there has no records: an empty answer, as for one unseen.
            Err(run_id::RunIdProblem::Unknown { .. }) => return Ok(Json(Vec::new())),
            Err(problem) => return Err(bad(format!("run: {problem}"))),
        },
        None => None,
    };
    let owner = |name: &Option<String>| {
        name.as_deref()
            .map(|name| name.split('.').next().unwrap_or(name).to_string())
    };
    let asked_project = asked
        .project
        .clone()
        .or_else(|| owner(&asked.job))
        .or_else(|| owner(&asked.app));
    let holder = caller.0.holder();
    let mut records = Vec::new();
    for project in listed_projects(&holder, asked_project.as_deref()) {
        let filter = LogFilter {
            project,
            job: asked.job.clone(),
            run: run.clone(),
            app: asked.app.clone(),
            min_levelno,
            since,
            limit: Some(limit),
        };
        records.extend(
            api.store
                .list_log(&filter)
                .await
                .map_err(|e| ApiError::store(&e))?,
        );
    }
    // A run named by id: its records only if its project is one the token sees.
    records.retain(|record| match &record.project {
        Some(project) => holder.sees(project),
        None => holder.projects.is_empty() || holder.role == crate::access::Role::Admin,
    });
    records.sort_by(|a, b| a.id.cmp(&b.id));
    let excess = records.len().saturating_sub(limit);
    records.drain(..excess);
    Ok(Json(records))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_time_or_how_long_ago() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            since("2026-12-01T11:00:00Z", now),
            Ok(now - TimeDelta::hours(1))
        );
        assert_eq!(since("1h", now), Ok(now - TimeDelta::hours(1)));
        assert_eq!(since("90s", now), Ok(now - TimeDelta::seconds(90)));
        assert!(
            since("yesterday", now)
                .unwrap_err()
                .contains("neither a time")
        );
        assert!(since("100000000000d", now).is_err());
    }
}
