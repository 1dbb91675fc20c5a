//! Every `/api/` request's token: `Authorization: Bearer coco_…`, looked up by its SHA-256,
//! refused (401) when missing, malformed, unknown, revoked or expired; the token found is
//! handed to the route as a request extension ([`Caller`]), and its last use recorded (at
//! most once a [`TOUCH_EVERY`], so a busy client does not write to the store per request).
//! `GET /metrics` checks its token with the same [`authenticate`] (see `super::metrics`).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};

use super::{Api, ApiError};
use crate::access::{self, Need, TokenKind, Verdict};
use crate::store::TokenRecord;

/// A token's last use is written at most this often.
pub const TOUCH_EVERY: TimeDelta = TimeDelta::seconds(60);

/// The token a request came with (valid at the time it was checked).
#[derive(Debug, Clone)]
pub struct Caller(pub TokenRecord);

impl Caller {
    /// Whether this caller may change things in `project` (the whole home when `None`):
    /// `Ok`, a 403 that says its role may not `what` (e.g. "enqueue runs"), or `hidden()`
    /// when the project is not one it sees — the same answer as for a thing that does not
    /// exist, so a token never learns what another project holds.
    pub fn may_operate(
        &self,
        project: Option<&str>,
        what: &str,
        hidden: impl FnOnce() -> ApiError,
    ) -> Result<(), ApiError> {
        let holder = self.0.holder();
        match access::authorize(Some(&holder), Utc::now(), Need::Operate, project) {
            Verdict::Allowed => Ok(()),
            Verdict::Hidden | Verdict::Unauthenticated => Err(hidden()),
            Verdict::Forbidden => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("a {} token may not {what}", holder.role),
            )),
        }
    }
}

/// The cookie a dashboard session is sent in.
pub const SESSION_COOKIE: &str = "coco_session";

/// The middleware in front of every `/api/` route.
pub async fn require_token(State(api): State<Api>, mut request: Request, next: Next) -> Response {
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    match authenticate(&api, request.headers(), changes, Utc::now()).await {
        Ok(token) => {
            request.extensions_mut().insert(Caller(token));
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

/// The secret of an `Authorization: Bearer …` header (pure).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, secret) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| secret.trim())
}

/// The value of cookie `name` in the request's `Cookie` headers (pure).
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// Whether a request that changes something comes from the page itself (pure): the
/// browser's `Sec-Fetch-Site` says `same-origin`, or, from a browser that sends none, its
/// `Origin` is this server's own (`http://` and its `Host`). Anything else — another site, a
/// form posted from elsewhere, no sign at all — is refused: a cookie alone proves nothing.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text("sec-fetch-site") {
        return site == "same-origin";
    }
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => origin.strip_prefix("http://") == Some(host),
        _ => false,
    }
}

/// The token a request is made with: a bearer token, or a dashboard session's cookie (whose
/// requests that change something must come from the page: [`same_origin`]).
pub(super) async fn authenticate(
    api: &Api,
    headers: &HeaderMap,
    changes: bool,
    now: DateTime<Utc>,
) -> Result<TokenRecord, ApiError> {
    let (secret, by_cookie) = match (bearer(headers), cookie(headers, SESSION_COOKIE)) {
        (Some(secret), _) => (secret, false),
        (None, Some(secret)) => (secret, true),
        (None, None) => {
            return Err(ApiError::unauthenticated(
                "send a token: `Authorization: Bearer coco_…` (coco token create), or log in \
                 with the link `coco dashboard` prints",
            ));
        }
    };
    if !access::looks_like_secret(secret) {
        return Err(ApiError::unauthenticated("that is not a coco token"));
    }
    let token = api
        .store
        .token_by_hash(&access::secret_hash(secret))
        .await
        .map_err(|e| ApiError::store(&e))?
        .ok_or_else(|| ApiError::unauthenticated("unknown or revoked token"))?;
    match (TokenKind::of_name(&token.name), by_cookie) {
        (TokenKind::Token, false) | (TokenKind::Session { .. }, true) => {}
        (TokenKind::Login { .. }, _) => {
            return Err(ApiError::unauthenticated(
                "a login link's code is for /login only",
            ));
        }
        _ => return Err(ApiError::unauthenticated("unknown or revoked token")),
    }
    if access::authorize(Some(&token.holder()), now, Need::Read, None) == Verdict::Unauthenticated {
        return Err(ApiError::unauthenticated("this token has expired"));
    }
    if by_cookie && changes && !same_origin(headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "a change with the session cookie must come from the dashboard's own page",
        ));
    }
    if token.last_used.is_none_or(|used| now - used >= TOUCH_EVERY) {
        // Bookkeeping only: a failure to record it does not refuse the request.
        if let Err(error) = api.store.touch_token(&token.name, now).await {
            tracing::warn!(token = %token.name, "api: recording the token's use: {error}");
        }
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn with(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn the_session_is_read_from_its_cookie() {
        let headers = with(&[("cookie", "a=1; coco_session=coco_ab ; b=2")]);
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("coco_ab"));
        let headers = with(&[("cookie", "a=1"), ("cookie", "coco_session=x")]);
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("x"));
        assert_eq!(
            cookie(&with(&[("cookie", "xcoco_session=1")]), SESSION_COOKIE),
            None
        );
    }

    #[test]
    fn a_change_by_cookie_must_come_from_the_page() {
        assert!(same_origin(&with(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&with(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://127.0.0.1:5001"),
            ("host", "127.0.0.1:5001"),
        ])));
        assert!(!same_origin(&with(&[("sec-fetch-site", "same-site")])));
        assert!(same_origin(&with(&[
            ("origin", "http://127.0.0.1:5001"),
            ("host", "127.0.0.1:5001"),
        ])));
        assert!(!same_origin(&with(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:5001"),
        ])));
        assert!(
            !same_origin(&with(&[("host", "127.0.0.1:5001")])),
            "no sign at all"
        );
    }

    #[test]
    fn the_secret_is_read_from_a_bearer_header_only() {
        assert_eq!(bearer(&headers("Bearer coco_ab")), Some("coco_ab"));
        assert_eq!(bearer(&headers("bearer   coco_ab ")), Some("coco_ab"));
        assert_eq!(bearer(&headers("Basic dXNlcjpwdw==")), None);
        assert_eq!(bearer(&headers("coco_ab")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
