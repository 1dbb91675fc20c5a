//! `GET /api/v1/runs/{id}` (the `coco detail --json` shape) and `…/output` (the kept tail,
//! as text). The id is a whole run id or a unique prefix, any case, as on the command line;
//! a run of a project the token does not see answers exactly as one that does not exist.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::auth::Caller;
use super::{Api, ApiError};
use crate::access::{self, Need, Verdict};
use crate::queue::run::RunRecord;
use crate::store::run_id::{self, RunIdProblem};
use crate::views::RunDetail;

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
