//! The HTTP API a `coco daemon` serves (axum, HTTP/1.1) on `api.listen`.
//!
//! `GET /healthz` answers without a token (200 while the store answers, 503 otherwise).
//! `GET /metrics` is Prometheus's ([`metrics`]: a token not limited to projects, or none with
//! `api.open_metrics: true`); every answer is timed by its route pattern.
//! Every route under `/api/v1/` needs one ([`auth`]: `Authorization: Bearer coco_…`; a 401
//! without a valid one, never a hint of why beyond "missing", "malformed", "unknown" or
//! "expired"): `GET token/self`, `status`, `projects`, `plan`, `jobs`, `apps`, `members`,
//! `log`, `runs` (paged), `runs/{id}`, `runs/{id}/output` and `events` (Server-Sent Events);
//! `POST jobs/{project}.{job}/enqueue`, `runs/{id}/kill|remove|restart`,
//! `apps/{project}.{app}/restart`, `pause`, `resume`; and `GET openapi.json`, the OpenAPI
//! document of them all, generated from the same list of routes ([`openapi`]: how to add one).
//! `GET /` is the dashboard page, `GET /login?code=` its one-time login ([`page`]).
//! Every answer comes from the store, so daemons sharing one store agree; what a token may do
//! is [`crate::access::authorize`]'s to say.
//!
//! Limits on every request: a body of at most [`MAX_BODY`] (a 413), JSON with no unknown field
//! (a 400 naming it: `body.rs`), and an answer within [`TIME_LIMIT`] (a 503 otherwise).
//! Errors are JSON, `{"error": "…"}`.

mod apps;
mod auth;
mod body;
mod catalog;
mod control;
mod error;
mod events;
mod home;
mod jobs;
mod log;
mod metrics;
mod openapi;
mod page;
mod routes;
mod runs;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{Extension, Router};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::store::Store;

pub use error::ApiError;
pub use events::{POLL, WATCHED, watched_runs};

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
    home: Option<PathBuf>,
    hub: Arc<events::Hub>,
    /// Held while `projects` or `plan` reads the home: one read at a time, however many ask.
    home_read: Arc<tokio::sync::Mutex<()>>,
    /// `api.open_metrics`: `GET /metrics` needs no token.
    open_metrics: bool,
}

/// Where the serving daemon lives: its state folder (to wake its workers when a run is
/// enqueued) and the home it watches (`projects`, `plan`), each if it has one; whether
/// `GET /metrics` is open.
#[derive(Debug, Clone, Default)]
pub struct Place {
    pub state_dir: Option<PathBuf>,
    pub home: Option<PathBuf>,
    /// `api.open_metrics`: `GET /metrics` needs no token.
    pub open_metrics: bool,
}

/// Every `/api/v1` route (paths relative to it), each with its documentation: `routes!`
/// registers the handler's route and its `#[utoipa::path]` operation together.
fn v1() -> OpenApiRouter<Api> {
    OpenApiRouter::default()
        .routes(routes!(routes::token_self))
        .routes(routes!(home::status))
        .routes(routes!(home::projects))
        .routes(routes!(home::plan))
        .routes(routes!(catalog::jobs))
        .routes(routes!(catalog::apps))
        .routes(routes!(catalog::members))
        .routes(routes!(log::list))
        .routes(routes!(events::events))
        .routes(routes!(runs::list))
        .routes(routes!(runs::detail))
        .routes(routes!(runs::output))
        .routes(routes!(jobs::enqueue))
        .routes(routes!(runs::kill))
        .routes(routes!(runs::remove))
        .routes(routes!(runs::restart))
        .routes(routes!(apps::restart))
        .routes(routes!(control::pause))
        .routes(routes!(control::resume))
        .routes(routes!(openapi::json))
}

/// The whole API over `store`, served from `place`.
pub fn router(store: Arc<dyn Store>, place: Place) -> Router {
    router_with(store, place, events::Hub::new())
}

fn router_with(store: Arc<dyn Store>, place: Place, hub: Arc<events::Hub>) -> Router {
    let api = Api {
        store,
        state_dir: place.state_dir,
        home: place.home,
        hub,
        home_read: Arc::default(),
        open_metrics: place.open_metrics,
    };
    let v1 = v1().route_layer(axum::middleware::from_fn_with_state(
        api.clone(),
        auth::require_token,
    ));
    let (routed, document) = openapi::split(v1);
    // Outside `/api/v1`, undocumented: `/healthz`, the page and its login (no token).
    routed
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(metrics::scrape))
        .route("/", get(page::index))
        .route("/page/{file}", get(page::asset))
        .route("/login", get(page::login))
        .route("/logout", post(page::logout))
        // What `GET /api/v1/openapi.json` answers.
        .layer(Extension(openapi::Served::new(&document)))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // JSON and the page gzipped for clients that take it (not the event stream).
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(axum::middleware::from_fn(routes::time_limit))
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(api)
}

/// Serve the API over `store` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    place: Place,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hub = events::Hub::new();
    let router = router_with(store, place, Arc::clone(&hub));
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            hub.close();
        })
        .await
}
