//! `Idempotency-Key` on POST and PATCH: the first answer to a key is stored
//! and a repeat with the same key and request gets it back, with no second
//! vendor call. A repeat while the first still runs is a 409; the same key
//! with a different request is a 422. Answers worth retrying (5xx, 429)
//! release the key instead of being stored. Keys are per tenant and kept
//! for 24 hours.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rollcall_core::ErrorCode;
use rollcall_core::error::{ErrorBody, ErrorEnvelope};
use rollcall_store::IdempotencyClaim;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::request_id::RequestId;

const HEADER: &str = "idempotency-key";
const MAX_BODY: usize = 1024 * 1024;
const KEEP_MS: i64 = 24 * 60 * 60 * 1000;

pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !matches!(*request.method(), Method::POST | Method::PATCH) {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(HEADER).cloned() else {
        return next.run(request).await;
    };
    match handle(state, key, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn handle(
    state: AppState,
    key: HeaderValue,
    request: Request,
    next: Next,
) -> Result<Response, Response> {
    let key = key
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()))
        .ok_or_else(|| {
            ApiError::invalid_request("Idempotency-Key must be 1-255 visible ASCII characters")
                .into_response()
        })?
        .to_owned();
    let (mut parts, body) = request.into_parts();
    let caller = Caller::from_request_parts(&mut parts, &state)
        .await
        .map_err(IntoResponse::into_response)?;
    parts.extensions.insert(caller.clone());
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::invalid_request("the request body is too large")
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
            .into_response()
    })?;

    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update(b"\n");
    hasher.update(parts.uri.to_string());
    hasher.update(b"\n");
    hasher.update(&bytes);
    let hash: [u8; 32] = hasher.finalize().into();
    let now = state.clock.now_millis();
    let claim = state
        .store
        .claim_idempotency_key(&caller.tenant_id, &key, &hash, now, now - KEEP_MS)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    match claim {
        IdempotencyClaim::Replay { status, body } => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(response)
        }
        IdempotencyClaim::InProgress => Err(ApiError::new(
            ErrorCode::Conflict,
            "a request with this Idempotency-Key is still in progress",
        )
        .into_response()),
        IdempotencyClaim::Mismatch => Err(ApiError::invalid_request(
            "this Idempotency-Key was already used with a different request",
        )
        .with_status(StatusCode::UNPROCESSABLE_ENTITY)
        .into_response()),
        IdempotencyClaim::Claimed => {
            // Released if this request never finishes (the caller went away,
            // a handler panicked), so the key is not stuck as pending.
            let guard = ReleaseOnDrop {
                state: Some(state.clone()),
                tenant: caller.tenant_id.clone(),
                key: key.clone(),
            };
            let request_id = parts
                .extensions
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .unwrap_or_default();
            let response = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            let response = remember(&state, &caller, &key, &request_id, response).await;
            guard.disarm();
            Ok(response)
        }
    }
}

/// Stores what should be replayed, or releases the key.
async fn remember(
    state: &AppState,
    caller: &Caller,
    key: &str,
    request_id: &str,
    response: Response,
) -> Response {
    let status = response.status();
    let retryable = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
    if retryable {
        if let Err(e) = state
            .store
            .abandon_idempotency_key(&caller.tenant_id, key)
            .await
        {
            tracing::error!(error = %e, "could not release an idempotency key");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let stored: Bytes = match parts.extensions.get::<ApiError>() {
        // Error bodies are rendered later, by the request-id layer; store
        // the same rendering.
        Some(error) => serde_json::to_vec(&ErrorEnvelope {
            error: ErrorBody {
                code: error.code,
                message: error.message.clone(),
                request_id: request_id.to_owned(),
                remote: error.remote.clone(),
                retry_after: error.retry_after,
            },
        })
        .unwrap_or_default()
        .into(),
        None => axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default(),
    };
    if let Err(e) = state
        .store
        .finish_idempotency_key(&caller.tenant_id, key, status.as_u16(), &stored)
        .await
    {
        tracing::error!(error = %e, "could not store an idempotent answer");
    }
    if parts.extensions.get::<ApiError>().is_some() {
        // The live answer keeps its error for the request-id layer.
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, Body::from(stored))
}

/// Releases a claimed key when dropped while still armed.
struct ReleaseOnDrop {
    state: Option<AppState>,
    tenant: rollcall_core::id::TenantId,
    key: String,
}

impl ReleaseOnDrop {
    fn disarm(mut self) {
        self.state = None;
    }
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        let Some(state) = self.state.take() else {
            return;
        };
        let (tenant, key) = (self.tenant.clone(), std::mem::take(&mut self.key));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = state.store.abandon_idempotency_key(&tenant, &key).await {
                    tracing::error!(error = %e, "could not release an abandoned idempotency key");
                }
            });
        }
    }
}
