//! The control side of a simulator, outside the vendor's paths:
//! `/_sim/counters`, `/_sim/faults`, and the middleware that counts every
//! vendor request and applies injected faults to it.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::counters::Counters;
use crate::faults::{FaultAction, FaultPlan, FaultRule};

/// Builds the vendor's own error answer for an injected status (Mode sends
/// JSON `{"id","message"}`, Metabase mostly plain text).
pub type ErrorBodyFn = fn(u16) -> Response;

#[derive(Clone)]
pub struct ControlState {
    pub faults: Arc<FaultPlan>,
    pub counters: Arc<Counters>,
    error_body: ErrorBodyFn,
}

impl std::fmt::Debug for ControlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlState")
            .field("faults", &self.faults)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl ControlState {
    pub fn new(faults: Vec<FaultRule>, error_body: ErrorBodyFn) -> Self {
        Self {
            faults: Arc::new(FaultPlan::new(faults)),
            counters: Arc::new(Counters::default()),
            error_body,
        }
    }

    /// Wraps the vendor router: every request is counted, and faults apply.
    /// Add this with `Router::layer` so the matched route is known.
    pub fn observe(&self, vendor: Router) -> Router {
        vendor.layer(middleware::from_fn_with_state(self.clone(), observe))
    }
}

async fn observe(State(control): State<ControlState>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str)
        .to_owned();
    let actions = control.faults.decide(&method, request.uri().path());
    let faulted = !actions.is_empty();

    let delay: u64 = actions
        .iter()
        .map(|a| match a {
            FaultAction::Latency { ms } => *ms,
            _ => 0,
        })
        .sum();
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let shaping = actions
        .into_iter()
        .find(|a| !matches!(a, FaultAction::Latency { .. }));

    let response = match shaping {
        None => next.run(request).await,
        Some(FaultAction::Status {
            status,
            retry_after,
            body,
            content_type,
        }) => {
            let mut response = match body {
                Some(body) => (status_code(status), body).into_response(),
                None => (control.error_body)(status),
            };
            *response.status_mut() = status_code(status);
            if let Some(ct) = content_type.and_then(|ct| HeaderValue::from_str(&ct).ok()) {
                response.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
        Some(FaultAction::Html { status }) => (
            status_code(status),
            [(header::CONTENT_TYPE, "text/html")],
            format!(
                "<html>\r\n<head><title>{status} Bad Gateway</title></head>\r\n<body>\r\n<center><h1>{status} Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
            ),
        )
            .into_response(),
        Some(action @ (FaultAction::Truncate | FaultAction::Malformed | FaultAction::Empty)) => {
            let response = next.run(request).await;
            let (mut parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let bytes = match action {
                FaultAction::Truncate => bytes.slice(..bytes.len() / 2),
                FaultAction::Malformed => Bytes::from_static(b"{\"data\": [{\"id\": 1,, oops"),
                _ => Bytes::new(),
            };
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(bytes))
        }
        Some(FaultAction::Latency { .. }) => next.run(request).await,
    };
    control.counters.record_request(
        format!("{method} {route}"),
        response.status().as_u16(),
        faulted,
    );
    response
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// `/_sim/counters`, `/_sim/counters/reset`, `/_sim/faults`.
pub fn control_routes(state: ControlState) -> Router {
    Router::new()
        .route("/_sim/counters", get(counters))
        .route("/_sim/counters/reset", post(reset_counters))
        .route(
            "/_sim/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .with_state(state)
}

async fn counters(State(s): State<ControlState>) -> Response {
    Json(s.counters.snapshot()).into_response()
}

async fn reset_counters(State(s): State<ControlState>) -> StatusCode {
    s.counters.reset();
    StatusCode::NO_CONTENT
}

async fn list_faults(State(s): State<ControlState>) -> Response {
    Json(s.faults.rules()).into_response()
}

/// Either a full rule as JSON or `{"spec": "429@next=2"}` in the flag syntax.
#[derive(Deserialize)]
#[serde(untagged)]
enum NewFault {
    Spec { spec: String },
    Rule(FaultRule),
}

async fn add_fault(State(s): State<ControlState>, body: Bytes) -> Response {
    let rule = match serde_json::from_slice::<NewFault>(&body) {
        Ok(NewFault::Rule(rule)) => rule,
        Ok(NewFault::Spec { spec }) => match spec.parse::<FaultRule>() {
            Ok(rule) => rule,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        },
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("not a fault rule: {e}")).into_response();
        }
    };
    s.faults.add(rule.clone());
    (StatusCode::CREATED, Json(rule)).into_response()
}

async fn clear_faults(State(s): State<ControlState>) -> StatusCode {
    s.faults.clear();
    StatusCode::NO_CONTENT
}
