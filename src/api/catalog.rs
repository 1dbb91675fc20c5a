//! `GET /api/v1/jobs` and `apps` (`?project=`): `coco jobs --json` and `coco apps --json`,
//! limited to the projects the token sees; `GET members`: `coco alive --json`, each member's
//! running runs limited alike.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::auth::Caller;
use super::{Api, ApiError};
use crate::access::{Holder, Role};
use crate::store::MemberRecord;
use crate::views::{self, AppLine, JobLine};

/// The query of a listing by project.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByProject {
    pub project: Option<String>,
}

/// The projects a listing for `holder` reads, each as a filter (`None`: every project): the
/// one asked for if the token sees it (none if it does not: another project's things do not
/// exist for it), else every project it sees (pure).
pub fn listed_projects(holder: &Holder<'_>, asked: Option<&str>) -> Vec<Option<String>> {
    match asked {
        Some(project) if holder.sees(project) => vec![Some(project.to_string())],
        Some(_) => Vec::new(),
        None if holder.role == Role::Admin || holder.projects.is_empty() => vec![None],
        None => holder.projects.iter().cloned().map(Some).collect(),
    }
}

/// The query, or a 400 that says what is wrong with it.
pub fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(query)| query)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))
}

pub async fn jobs(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
    asked: Result<Query<ByProject>, QueryRejection>,
) -> Result<Json<Vec<JobLine>>, ApiError> {
    let mut lines = Vec::new();
    for project in listed_for(&caller, asked)? {
        lines.extend(store_answer(
            views::job_lines(api.store.as_ref(), project.as_deref()).await,
        )?);
    }
    Ok(Json(lines))
}

pub async fn apps(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
    asked: Result<Query<ByProject>, QueryRejection>,
) -> Result<Json<Vec<AppLine>>, ApiError> {
    let mut lines = Vec::new();
    for project in listed_for(&caller, asked)? {
        lines.extend(store_answer(
            views::app_lines(api.store.as_ref(), project.as_deref()).await,
        )?);
    }
    Ok(Json(lines))
}

/// The projects a `?project=` listing reads for `caller` ([`listed_projects`]), or a 400.
fn listed_for(
    caller: &Caller,
    asked: Result<Query<ByProject>, QueryRejection>,
) -> Result<Vec<Option<String>>, ApiError> {
    let asked = query(asked)?;
    Ok(listed_projects(
        &caller.0.holder(),
        asked.project.as_deref(),
    ))
}

/// A store's answer, or the 503 that says it failed.
fn store_answer<T>(answer: crate::store::StoreResult<T>) -> Result<T, ApiError> {
    answer.map_err(|e| ApiError::store(&e))
}

pub async fn members(
    State(api): State<Api>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<Json<Vec<MemberRecord>>, ApiError> {
    Ok(Json(
        members_seen_by(api.store.as_ref(), &caller.0.holder()).await?,
    ))
}

/// The members as they run, each with only the running runs `holder` sees.
pub async fn members_seen_by(
    store: &dyn crate::store::Store,
    holder: &Holder<'_>,
) -> Result<Vec<MemberRecord>, ApiError> {
    let (mut members, running) = views::members_with_running(store)
        .await
        .map_err(|e| ApiError::store(&e))?;
    for member in &mut members {
        // Another project's runs do not exist for this token, not even as ids.
        member.running.retain(|id| {
            running
                .iter()
                .any(|run| &run.id == id && holder.sees(&run.project))
        });
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_reads_only_projects_the_token_sees() {
        let shop = ["shop".to_string(), "web".to_string()];
        let limited = Holder {
            role: Role::Operator,
            projects: &shop,
            expires: None,
        };
        let everywhere = Holder {
            projects: &[],
            ..limited
        };
        assert_eq!(
            listed_projects(&limited, Some("shop")),
            [Some("shop".into())]
        );
        assert_eq!(
            listed_projects(&limited, Some("billing")),
            Vec::<Option<String>>::new()
        );
        assert_eq!(
            listed_projects(&limited, None),
            [Some("shop".into()), Some("web".into())]
        );
        assert_eq!(listed_projects(&everywhere, None), [None]);
        assert_eq!(
            listed_projects(&everywhere, Some("billing")),
            [Some("billing".into())]
        );
        let admin = Holder {
            role: Role::Admin,
            ..limited
        };
        assert_eq!(listed_projects(&admin, None), [None]);
    }
}
