//! The HTTP API a `coco daemon` serves (axum, HTTP/1.1) on `api.listen`.
//!
//! `GET /healthz` answers without a token (200 while the store answers, 503 otherwise).
//! `GET /metrics` is Prometheus's ([`metrics`]: a token not limited to projects, or none with
//! `api.open_metrics: true`); every answer is timed by its route pattern.
//! Every route under `/api/v1/` needs one ([`auth`]: `Authorization: Bearer coco_…`; a 401
//! without a valid one, never a hint of why beyond "missing", "malformed", "unknown" or
//! "expired"): so far `GET token/self`, `jobs`, `apps`, `members`, `log`, `runs` (paged),
//! `runs/{id}` and `runs/{id}/output`; `POST jobs/{project}.{job}/enqueue`,
//! `runs/{id}/kill|remove|restart`, `pause`, `resume`. Every answer comes from the store, so daemons sharing one store agree;
//! what a token may do is [`crate::access::authorize`]'s to say.
//!
//! Limits on every request: a body of at most [`MAX_BODY`] (a 413), JSON with no unknown field
//! (a 400 naming it: `body.rs`), and an answer within [`TIME_LIMIT`] (a 503 otherwise).
//! Errors are JSON, `{"error": "…"}`.

mod auth;
mod body;
mod catalog;
mod control;
mod error;
mod jobs;
mod log;
mod metrics;
mod routes;
mod runs;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::store::Store;

pub use error::ApiError;

/// The largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;

/// How long a request may take before it is answered 503.
pub const TIME_LIMIT: Duration = Duration::from_secs(30);

/// What every handler shares: the store, and this host's state folder (to wake its workers
/// when a run is enqueued).
#[derive(Clone)]
pub struct Api {
    store: Arc<dyn Store>,
    state_dir: Option<PathBuf>,
    /// `api.open_metrics`: `GET /metrics` needs no token.
    open_metrics: bool,
}

/// The whole API over `store`; `state_dir`: this host's state folder, if it has workers to
/// wake; `open_metrics`: `GET /metrics` needs no token.
pub fn router(store: Arc<dyn Store>, state_dir: Option<PathBuf>, open_metrics: bool) -> Router {
    let api = Api {
        store,
        state_dir,
        open_metrics,
    };
    let v1 = Router::new()
        .route("/token/self", get(routes::token_self))
        .route("/jobs", get(catalog::jobs))
        .route("/apps", get(catalog::apps))
        .route("/members", get(catalog::members))
        .route("/log", get(log::list))
        .route("/runs", get(runs::list))
        .route("/runs/{id}", get(runs::detail))
        .route("/runs/{id}/output", get(runs::output))
        .route("/jobs/{job}/enqueue", post(jobs::enqueue))
        .route("/runs/{id}/kill", post(runs::kill))
        .route("/runs/{id}/remove", post(runs::remove))
        .route("/runs/{id}/restart", post(runs::restart))
        .route("/pause", post(control::pause))
        .route("/resume", post(control::resume))
        .route_layer(axum::middleware::from_fn_with_state(
            api.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(metrics::scrape))
        .nest("/api/v1", v1)
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(routes::time_limit))
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(api)
}

/// Serve the API over `store` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    state_dir: Option<PathBuf>,
    open_metrics: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(store, state_dir, open_metrics))
        .with_graceful_shutdown(shutdown)
        .await
}
