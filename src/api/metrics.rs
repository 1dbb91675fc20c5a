//! `GET /metrics`: Prometheus metrics ([`crate::metrics`]), and the middleware that times
//! every answer of the API.
//!
//! Who may scrape: with `api.open_metrics: true` anyone (a scraper needs no secret; bind
//! `api.listen` where only it reaches); otherwise a valid token of any role — a viewer
//! suffices — that sees every project. A token limited to projects is refused (403): the
//! series name every project's jobs and apps, and leaving some out would hand a scraper a
//! partial picture that looks whole. No token, or a bad one, is a 401 as on `/api/`.
//!
//! The answer is the Prometheus text format 0.0.4 (`text/plain; version=0.0.4`; see
//! [`crate::metrics`] for why not OpenMetrics): this process's counters and histograms, then
//! gauges read from the store at scrape time ([`snapshot`]), so daemons on one store answer
//! the same gauges and each its own counters.
//!
//! [`track`] times every request by its matched route pattern (`/api/v1/runs/{id}`, never the
//! path asked for: ids and typos make no new series) and status; a request that matched no
//! route is counted under [`metrics::UNMATCHED`].

use std::collections::BTreeSet;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};

use super::{Api, ApiError, auth};
use crate::access::{Holder, Role};
use crate::metrics::{self, Snapshot};
use crate::queue::state::RunState;
use crate::store::{AppState, RunFilter, Store, StoreResult};
use crate::views;

/// A worker silent for longer than this is not counted (as `coco alive` marks it `lost?`).
const WORKER_LOST_AFTER: TimeDelta = TimeDelta::seconds(60);

/// An app whose daemon is silent for longer than this is not up (as `coco apps` says
/// `lost?`).
const APP_LOST_AFTER: TimeDelta = TimeDelta::seconds(10);

/// `GET /metrics`.
pub async fn scrape(State(api): State<Api>, headers: HeaderMap) -> Response {
    if !api.open_metrics {
        match auth::authenticate(&api, &headers, false, Utc::now()).await {
            Ok(token) if sees_every_project(&token.holder()) => {}
            Ok(_) => {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "metrics name every project: use a token not limited to projects",
                )
                .into_response();
            }
            Err(error) => return error.into_response(),
        }
    }
    match snapshot(api.store.as_ref(), Utc::now()).await {
        Ok(snapshot) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            )],
            metrics::render(&snapshot),
        )
            .into_response(),
        Err(error) => ApiError::store(&error).into_response(),
    }
}

/// Does `holder` see every project (pure)? An admin does; another token unless it is limited.
fn sees_every_project(holder: &Holder<'_>) -> bool {
    holder.role == Role::Admin || holder.projects.is_empty()
}

/// The store's state at `now`, as the gauges of a scrape show it.
async fn snapshot(store: &dyn Store, now: DateTime<Utc>) -> StoreResult<Snapshot> {
    let mut runs = Vec::with_capacity(RunState::ALL.len());
    for state in RunState::ALL {
        let filter = RunFilter {
            state: Some(state),
            ..RunFilter::default()
        };
        runs.push((state.as_str(), store.count_runs(&filter).await?));
    }
    let (members, _) = views::members_with_running(store).await?;
    let workers: Vec<_> = members
        .iter()
        .filter(|member| member.slots > 0 && now - member.heartbeat <= WORKER_LOST_AFTER)
        .collect();
    let apps = views::app_lines(store, None)
        .await?
        .into_iter()
        .map(|line| {
            let up = line.status.is_some_and(|status| {
                matches!(status.state, AppState::Running | AppState::Healthy)
                    && now - status.heartbeat <= APP_LOST_AFTER
            });
            (line.app, up)
        })
        .collect();
    let problems: BTreeSet<String> = store
        .list_problems()
        .await?
        .into_iter()
        .flat_map(|source| source.problems)
        .collect();
    Ok(Snapshot {
        runs,
        workers: workers.len() as u64,
        slots: workers.iter().map(|m| u64::from(m.slots)).sum(),
        slots_busy: workers
            .iter()
            .map(|m| m.running.len().min(m.slots as usize) as u64)
            .sum(),
        apps,
        manifest_problems: problems.len() as u64,
    })
}

/// The middleware around every route: how long the answer took, by route pattern and status.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || metrics::UNMATCHED.to_owned(),
        |path| path.as_str().to_owned(),
    );
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::http_answered(&route, response.status().as_u16(), started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_token_that_sees_every_project_may_scrape() {
        let shop = ["shop".to_string()];
        let viewer = Holder {
            role: Role::Viewer,
            projects: &[],
            expires: None,
        };
        assert!(sees_every_project(&viewer));
        let limited = Holder {
            projects: &shop,
            ..viewer
        };
        assert!(!sees_every_project(&limited));
        let admin = Holder {
            role: Role::Admin,
            ..limited
        };
        assert!(sees_every_project(&admin));
    }
}
