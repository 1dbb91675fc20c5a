//! Every `/api/` request's token: `Authorization: Bearer coco_…`, looked up by its SHA-256,
//! refused (401) when missing, malformed, unknown, revoked or expired; the token found is
//! handed to the route as a request extension ([`Caller`]), and its last use recorded (at
//! most once a [`TOUCH_EVERY`], so a busy client does not write to the store per request).
//! `GET /metrics` checks its token with the same [`authenticate`] (see `super::metrics`).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};

use super::{Api, ApiError};
use crate::access::{self, Need, Verdict};
use crate::store::TokenRecord;

/// A token's last use is written at most this often.
pub const TOUCH_EVERY: TimeDelta = TimeDelta::seconds(60);

/// The token a request came with (valid at the time it was checked).
#[derive(Debug, Clone)]
pub struct Caller(pub TokenRecord);

/// The middleware in front of every `/api/` route.
pub async fn require_token(State(api): State<Api>, mut request: Request, next: Next) -> Response {
    match authenticate(&api, request.headers(), Utc::now()).await {
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

pub(super) async fn authenticate(
    api: &Api,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Result<TokenRecord, ApiError> {
    let secret = bearer(headers).ok_or_else(|| {
        ApiError::unauthenticated(
            "send a token: `Authorization: Bearer coco_…` (coco token create)",
        )
    })?;
    if !access::looks_like_secret(secret) {
        return Err(ApiError::unauthenticated("that is not a coco token"));
    }
    let token = api
        .store
        .token_by_hash(&access::secret_hash(secret))
        .await
        .map_err(|e| ApiError::store(&e))?
        .ok_or_else(|| ApiError::unauthenticated("unknown or revoked token"))?;
    if access::authorize(Some(&token.holder()), now, Need::Read, None) == Verdict::Unauthenticated {
        return Err(ApiError::unauthenticated("this token has expired"));
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

    #[test]
    fn the_secret_is_read_from_a_bearer_header_only() {
        assert_eq!(bearer(&headers("Bearer coco_ab")), Some("coco_ab"));
        assert_eq!(bearer(&headers("bearer   coco_ab ")), Some("coco_ab"));
        assert_eq!(bearer(&headers("Basic dXNlcjpwdw==")), None);
        assert_eq!(bearer(&headers("coco_ab")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
