//! The one error type handlers return. It renders the contract's shape
//! `{"error":{"code","message","request_id","remote"?}}`; the request id is
//! filled in by the request-id middleware, which also logs internal causes.
//! A cause is never sent to the caller.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rollcall_core::ErrorCode;
use rollcall_core::error::RemoteAnswer;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    /// Overrides the code's usual status (405 for a wrong method, say).
    pub status_override: Option<StatusCode>,
    pub message: String,
    pub remote: Option<RemoteAnswer>,
    /// Seconds after which a retry may succeed (rate limits, open circuits).
    pub retry_after: Option<u64>,
    /// What really went wrong, for the log only.
    pub cause: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            status_override: None,
            message: message.into(),
            remote: None,
            retry_after: None,
            cause: None,
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    /// A failure of ours: the caller sees a generic message, the log the cause.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self {
            cause: Some(cause.to_string()),
            ..Self::new(
                ErrorCode::Internal,
                "internal error; see the server log for this request id",
            )
        }
    }

    pub fn with_remote(mut self, status: u16, body: serde_json::Value) -> Self {
        self.remote = Some(RemoteAnswer { status, body });
        self
    }

    /// A status other than the code's usual one (405, 413, ...).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status_override = Some(status);
        self
    }

    pub fn status(&self) -> StatusCode {
        if let Some(status) = self.status_override {
            return status;
        }
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<rollcall_store::StoreError> for ApiError {
    fn from(e: rollcall_store::StoreError) -> Self {
        match e {
            rollcall_store::StoreError::Conflict { what, field } => Self::new(
                ErrorCode::Conflict,
                format!("a {what} with that {field} already exists"),
            ),
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    /// The body is rendered by [`crate::request_id`], which knows the id.
    fn into_response(self) -> Response {
        let mut response = self.status().into_response();
        response.extensions_mut().insert(self);
        response
    }
}
