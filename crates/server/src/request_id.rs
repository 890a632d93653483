//! Every response carries `x-request-id` (the caller's, if it sent a sane
//! one). The same id is in every log line of the request and in error
//! bodies, which this middleware renders.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rollcall_core::error::{ErrorBody, ErrorEnvelope};
use tracing::Instrument;

use crate::error::ApiError;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The current request's id, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

pub async fn middleware(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
    request.extensions_mut().insert(RequestId(id.clone()));

    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    async move {
        let mut response = next.run(request).await;
        if let Some(error) = response.extensions_mut().remove::<ApiError>() {
            // Keep headers the handler set on the error (x-rollcall-error, ...).
            let extra = std::mem::take(response.headers_mut());
            response = render(error, &id);
            for (name, value) in &extra {
                if !response.headers().contains_key(name) {
                    response.headers_mut().insert(name.clone(), value.clone());
                }
            }
        }
        tracing::info!(status = response.status().as_u16(), "answered");
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(X_REQUEST_ID.clone(), value);
        }
        response
    }
    .instrument(span)
    .await
}

fn render(error: ApiError, request_id: &str) -> Response {
    let status = error.status();
    let code = error.code;
    match (&error.cause, status.is_server_error()) {
        (Some(cause), _) => tracing::error!(code = %error.code, %cause, "request failed"),
        (None, true) => {
            tracing::error!(code = %error.code, message = %error.message, "request failed")
        }
        (None, false) => {
            tracing::debug!(code = %error.code, message = %error.message, "request refused")
        }
    }
    let body = ErrorEnvelope {
        error: ErrorBody {
            code: error.code,
            message: error.message,
            request_id: request_id.to_owned(),
            remote: error.remote,
            retry_after: error.retry_after,
        },
    };
    let unauthenticated = code == rollcall_core::ErrorCode::Unauthenticated;
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(secs) = error.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if unauthenticated {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"rollcall\""),
        );
    }
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn only_sane_caller_ids_are_echoed() {
        assert!(acceptable("req-123_abc.def:9"));
        assert!(!acceptable(""));
        assert!(!acceptable("has space"));
        assert!(!acceptable("line\nbreak"));
        assert!(!acceptable(&"x".repeat(129)));
    }
}
