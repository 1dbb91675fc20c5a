//! The API's errors: a status and a message, answered as `{"error": "…"}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

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

/// The body of every error answer (the document's `Error`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong, in words.
    pub error: String,
    /// The run the error is about: a 409's blocking run (a duplicate of the same job and
    /// arguments). Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub run: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            run: self.run,
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
