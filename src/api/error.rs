//! The API's errors: a status and a message, answered as `{"error": "…"}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The run the error is about (a duplicate's blocking run), answered as `"run"`.
    pub run: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            run: None,
        }
    }

    /// 401: no valid token (the answer says how to send one).
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 503: the store did not answer (its error is logged, not sent: it may name paths).
    pub fn store(error: &crate::store::StoreError) -> Self {
        tracing::warn!("api: the store failed: {error}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is not answering",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match &self.run {
            Some(run) => serde_json::json!({ "error": self.message, "run": run }),
            None => serde_json::json!({ "error": self.message }),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"coco\""),
            );
        }
        response
    }
}
