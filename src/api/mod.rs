//! The HTTP API a `coco daemon` serves (axum, HTTP/1.1) on `api.listen`.
//!
//! `GET /healthz` answers without a token (200 while the store answers, 503 otherwise).
//! Every route under `/api/v1/` needs one ([`auth`]: `Authorization: Bearer coco_…`; a 401
//! without a valid one, never a hint of why beyond "missing", "malformed", "unknown" or
//! "expired"): so far `GET token/self`, `jobs`, `apps`, `members`, `log`, `runs` (paged),
//! `runs/{id}` and `runs/{id}/output`; `POST jobs/{project}.{job}/enqueue`,
//! `runs/{id}/kill|remove|restart`, `pause`, `resume`; and `GET openapi.json`, the OpenAPI
//! document of them all, generated from the same list of routes ([`openapi`]: how to add one).
//! Every answer comes from the store, so daemons sharing one store agree; what a token may do
//! is [`crate::access::authorize`]'s to say.
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
mod openapi;
mod routes;
mod runs;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Extension, Router};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
}

/// Every `/api/v1` route (paths relative to it), each with its documentation: `routes!`
/// registers the handler's route and its `#[utoipa::path]` operation together.
fn v1() -> OpenApiRouter<Api> {
    OpenApiRouter::default()
        .routes(routes!(routes::token_self))
        .routes(routes!(catalog::jobs))
        .routes(routes!(catalog::apps))
        .routes(routes!(catalog::members))
        .routes(routes!(log::list))
        .routes(routes!(runs::list))
        .routes(routes!(runs::detail))
        .routes(routes!(runs::output))
        .routes(routes!(jobs::enqueue))
        .routes(routes!(runs::kill))
        .routes(routes!(runs::remove))
        .routes(routes!(runs::restart))
        .routes(routes!(control::pause))
        .routes(routes!(control::resume))
        .routes(routes!(openapi::json))
}

/// The whole API over `store`; `state_dir`: this host's state folder, if it has workers to
/// wake.
pub fn router(store: Arc<dyn Store>, state_dir: Option<PathBuf>) -> Router {
    let api = Api { store, state_dir };
    let v1 = v1().route_layer(axum::middleware::from_fn_with_state(
        api.clone(),
        auth::require_token,
    ));
    let (routed, document) = openapi::split(v1);
    // Outside `/api/v1`, undocumented: `/healthz` (and whatever needs no token).
    routed
        .route("/healthz", get(routes::healthz))
        // What `GET /api/v1/openapi.json` answers.
        .layer(Extension(openapi::Served::new(&document)))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(routes::time_limit))
        .with_state(api)
}

/// Serve the API over `store` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    state_dir: Option<PathBuf>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(store, state_dir))
        .with_graceful_shutdown(shutdown)
        .await
}
