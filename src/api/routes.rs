//! The routes' handlers, and the fallback and time limit every request goes through.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::auth::Caller;
use super::{Api, ApiError, TIME_LIMIT};
use crate::access::{self, Need, Role, Verdict};

/// How long `/healthz` waits for the store.
const HEALTH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /healthz`: 200 while the store answers a read, else 503. No token, and nothing about
/// the store beyond that.
pub async fn healthz(State(api): State<Api>) -> Response {
    match tokio::time::timeout(HEALTH_WAIT, api.store.control()).await {
        Ok(Ok(_)) => Json(serde_json::json!({ "status": "ok" })).into_response(),
        Ok(Err(error)) => {
            tracing::warn!("api: /healthz: the store failed: {error}");
            unavailable()
        }
        Err(_) => unavailable(),
    }
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({ "status": "store unreachable" })),
    )
        .into_response()
}

/// What `GET /api/v1/token/self` answers: the caller's token and what it may do (the page
/// hides what it may not; the server still checks every call).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenSelf {
    pub name: String,
    pub role: Role,
    /// Empty: every project.
    pub projects: Vec<String>,
    pub expires: Option<DateTime<Utc>>,
    pub may: May,
}

/// What the token may do, each as [`access::authorize`] says for any project it sees.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(description = "What the token may do in the projects it sees.")]
pub struct May {
    pub read: bool,
    pub operate: bool,
    pub administer: bool,
}

/// `GET token/self`: the caller's own token, never its secret.
#[utoipa::path(
    get,
    path = "/token/self",
    tag = "token",
    responses(
        (status = 200, description = "The caller's token and what it may do", body = TokenSelf),
    ),
)]
pub async fn token_self(
    axum::Extension(Caller(token)): axum::Extension<Caller>,
) -> Json<TokenSelf> {
    let now = Utc::now();
    let holder = token.holder();
    let may = |need| access::authorize(Some(&holder), now, need, None) == Verdict::Allowed;
    let may = May {
        read: may(Need::Read),
        operate: may(Need::Operate),
        administer: may(Need::Administer),
    };
    Json(TokenSelf {
        name: token.name,
        role: token.role,
        projects: token.projects,
        expires: token.expires,
        may,
    })
}

/// Any other path.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

/// A known path asked with a method it does not serve.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not take that method",
    )
}

/// Every request answered within [`TIME_LIMIT`].
pub async fn time_limit(request: Request, next: Next) -> Response {
    match tokio::time::timeout(TIME_LIMIT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the answer took too long")
            .into_response(),
    }
}
