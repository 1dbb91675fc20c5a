//! The HTTP API a `coco daemon` serves (axum, HTTP/1.1) on `api.listen`.
//!
//! `GET /healthz` answers without a token (200 while the store answers, 503 otherwise).
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
mod page;
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
    home: Option<PathBuf>,
    hub: Arc<events::Hub>,
}

/// Where the serving daemon lives: its state folder (to wake its workers when a run is
/// enqueued) and the home it watches (`projects`, `plan`), each if it has one.
#[derive(Debug, Clone, Default)]
pub struct Place {
    pub state_dir: Option<PathBuf>,
    pub home: Option<PathBuf>,
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
    };
    let v1 = Router::new()
        .route("/token/self", get(routes::token_self))
        .route("/status", get(home::status))
        .route("/projects", get(home::projects))
        .route("/plan", get(home::plan))
        .route("/jobs", get(catalog::jobs))
        .route("/apps", get(catalog::apps))
        .route("/members", get(catalog::members))
        .route("/log", get(log::list))
        .route("/events", get(events::events))
        .route("/runs", get(runs::list))
        .route("/runs/{id}", get(runs::detail))
        .route("/runs/{id}/output", get(runs::output))
        .route("/jobs/{job}/enqueue", post(jobs::enqueue))
        .route("/runs/{id}/kill", post(runs::kill))
        .route("/runs/{id}/remove", post(runs::remove))
        .route("/runs/{id}/restart", post(runs::restart))
        .route("/apps/{app}/restart", post(apps::restart))
        .route("/pause", post(control::pause))
        .route("/resume", post(control::resume))
        .route_layer(axum::middleware::from_fn_with_state(
            api.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/", get(page::index))
        .route("/page/{file}", get(page::asset))
        .route("/login", get(page::login))
        .route("/logout", post(page::logout))
        .nest("/api/v1", v1)
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // JSON and the page gzipped for clients that take it (not the event stream).
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(axum::middleware::from_fn(routes::time_limit))
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
