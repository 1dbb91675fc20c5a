//! The dashboard: `GET /` the page and `GET /page/{file}` its CSS and ES modules, all built
//! into the binary (`src/api/page/`, embedded by `include_dir`: nothing is fetched from
//! anywhere at run time); `GET /login?code=…` turns a one-time link of `coco dashboard` into a
//! session cookie; `POST /logout` ends the session.
//!
//! A login link and a session are token records ([`TokenKind`]): the link's code is accepted
//! once (the record is revoked by the request that redeems it: of two, one wins) within
//! [`access::LOGIN_LIFETIME`]; the session holds the role and projects of the token the link
//! was made for, for [`access::SESSION_LIFETIME`] at most and never past that token's expiry,
//! and ends with it (`coco token revoke` revokes its sessions). The cookie is `HttpOnly;
//! SameSite=Strict`, and every change made with it must come from the page itself
//! (`auth::same_origin`). Every page answer carries a strict Content-Security-Policy: only
//! this server's own scripts, styles and connections, no inline script, no frame.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{TimeDelta, Utc};
use include_dir::{Dir, include_dir};
use serde::Deserialize;

use super::Api;
use super::auth::{SESSION_COOKIE, cookie, same_origin};
use crate::access::{self, TokenKind};
use crate::store::TokenRecord;

/// The page's files.
static PAGE: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/src/api/page");

/// The policy every page answer carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The content type of a page file, by its name (pure).
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// The headers every page answer carries.
fn guarded(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A file of the page, or a 404.
fn file(name: &str) -> Response {
    match PAGE.get_file(name) {
        Some(file) => guarded(
            (
                [(header::CONTENT_TYPE, content_type(name))],
                file.contents(),
            )
                .into_response(),
        ),
        None => guarded((StatusCode::NOT_FOUND, "no such file").into_response()),
    }
}

pub async fn index() -> Response {
    file("index.html")
}

pub async fn asset(Path(name): Path<String>) -> Response {
    // Only plain names of the page's own folder: no `..`, no sub-folders.
    if name.contains('/') || name.starts_with('.') {
        return file("");
    }
    file(&name)
}

/// A small HTML answer (the login's refusals).
fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>coco: {title}\
         </title><link rel=\"stylesheet\" href=\"/page/app.css\"></head><body class=\"message\">\
         <main><h1>{title}</h1><p>{text}</p></main></body></html>"
    );
    guarded(
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
    )
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    code: Option<String>,
}

pub async fn login(
    State(api): State<Api>,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let refused = || {
        message(
            StatusCode::UNAUTHORIZED,
            "This login link is not valid",
            "It was used already, is older than a minute, or was never made. Run \
             <code>coco dashboard</code> on the host for a new one.",
        )
    };
    let Some(code) = query.ok().and_then(|Query(q)| q.code) else {
        return refused();
    };
    if !access::looks_like_secret(&code) {
        return refused();
    }
    match redeem(&api, &code).await {
        Ok(Some(secret)) => {
            let cookie = format!(
                "{SESSION_COOKIE}={secret}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
                access::SESSION_LIFETIME.as_secs()
            );
            let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            guarded(response)
        }
        Ok(None) => refused(),
        Err(status) => message(
            status,
            "coco cannot log you in now",
            "The store is not answering; try again in a moment.",
        ),
    }
}

/// Turn login code `code` into a new session; its secret, or `None` if the code is not a
/// live login link (or another request redeemed it first).
async fn redeem(api: &Api, code: &str) -> Result<Option<String>, StatusCode> {
    let unavailable = |e: crate::store::StoreError| {
        tracing::warn!("api: a login: {e}");
        StatusCode::SERVICE_UNAVAILABLE
    };
    let now = Utc::now();
    let Some(link) = api
        .store
        .token_by_hash(&access::secret_hash(code))
        .await
        .map_err(unavailable)?
    else {
        return Ok(None);
    };
    let TokenKind::Login { of } = TokenKind::of_name(&link.name) else {
        return Ok(None);
    };
    if link.expires.is_none_or(|expires| expires <= now) {
        let _ = api.store.revoke_token(&link.name).await;
        return Ok(None);
    }
    if !api
        .store
        .revoke_token(&link.name)
        .await
        .map_err(unavailable)?
    {
        return Ok(None); // redeemed by another request meanwhile: single use
    }
    let mut expires = now + TimeDelta::from_std(access::SESSION_LIFETIME).unwrap_or_default();
    if let Some(of) = of {
        let tokens = api.store.list_tokens().await.map_err(unavailable)?;
        let Some(token) = tokens.iter().find(|token| token.name == of) else {
            return Ok(None); // revoked since the link was made
        };
        if let Some(until) = token.expires {
            if until <= now {
                return Ok(None);
            }
            expires = expires.min(until);
        }
    }
    let secret = access::new_secret().map_err(|e| {
        tracing::error!("api: no randomness for a session: {e}");
        StatusCode::INTERNAL_SERVER_ERROR
    })?;
    let session = TokenRecord {
        name: access::derived_name("session", of).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?,
        role: link.role,
        projects: link.projects.clone(),
        hash: access::secret_hash(&secret),
        created: now,
        expires: Some(expires),
        last_used: Some(now),
    };
    if !api
        .store
        .create_token(&session)
        .await
        .map_err(unavailable)?
    {
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    }
    Ok(Some(secret))
}

/// End the session whose cookie comes with the request (from the page itself).
pub async fn logout(State(api): State<Api>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "not from the dashboard's own page").into_response();
    }
    if let Some(secret) = cookie(&headers, SESSION_COOKIE).filter(|s| access::looks_like_secret(s))
        && let Ok(Some(session)) = api.store.token_by_hash(&access::secret_hash(secret)).await
        && matches!(TokenKind::of_name(&session.name), TokenKind::Session { .. })
    {
        let _ = api.store.revoke_token(&session.name).await;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("coco_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    guarded(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_built_in_and_typed() {
        assert!(PAGE.get_file("index.html").is_some());
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("x"), "application/octet-stream");
    }
}
