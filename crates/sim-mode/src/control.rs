//! `/_sim/mode/...`: simulator-only endpoints, never counted or faulted.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::api::{App, Limits};
use crate::config::{format_rate_limit, parse_rate_limit};
use crate::store::{GroupState, MemberState};

pub(crate) fn routes(app: Arc<App>) -> Router {
    Router::new()
        .route("/_sim/mode/fixtures", get(fixtures))
        .route("/_sim/mode/state", get(state))
        .route("/_sim/mode/settings", get(settings).post(change_settings))
        .route("/_sim/mode/rate-limit/reset", post(reset_rate_limit))
        .with_state(app)
}

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

async fn fixtures(State(app): State<Arc<App>>) -> Response {
    Json(&app.fixtures).into_response()
}

async fn state(State(app): State<Arc<App>>) -> Response {
    let Ok(store) = app.store.read() else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "state lock poisoned");
    };
    let (mut active, mut pending, mut former, mut admins, mut no_workspace) = (0, 0, 0, 0, 0);
    for user in &store.users {
        match &user.membership {
            None => no_workspace += 1,
            Some(m) => {
                match m.state {
                    MemberState::Active => active += 1,
                    MemberState::Pending => pending += 1,
                    MemberState::Deactivated => former += 1,
                }
                if m.admin && m.state == MemberState::Active {
                    admins += 1;
                }
            }
        }
    }
    let soft_deleted = store
        .groups
        .iter()
        .filter(|g| g.state == GroupState::SoftDeleted)
        .count();
    let live_group_memberships: usize = store.groups.iter().map(|g| g.members.len()).sum();
    Json(json!({
        "workspace": store.workspace.username,
        "users": store.users.len(),
        "members": {
            "total": active + pending + former,
            "active": active,
            "pending": pending,
            "deactivated": former,
            "admins": admins,
        },
        "users_without_workspace": no_workspace,
        "groups": {
            "total": store.groups.len(),
            "active": store.groups.len() - soft_deleted,
            "soft_deleted": soft_deleted,
        },
        "group_memberships": live_group_memberships,
    }))
    .into_response()
}

fn current_settings(app: &App) -> Value {
    let (rate_limit, retry_after) = app
        .limits
        .read()
        .map(|l| (format_rate_limit(l.rate_limit), l.retry_after))
        .unwrap_or_else(|_| ("off".to_owned(), false));
    let page_size = match app.page_size.load(Ordering::Relaxed) {
        0 => Value::Null,
        n => json!(n),
    };
    json!({
        "rate_limit": rate_limit,
        "retry_after": retry_after,
        "page_size": page_size,
        "former_members": if app.hide_former.load(Ordering::Relaxed) { "hidden" } else { "listed" },
    })
}

async fn settings(State(app): State<Arc<App>>) -> Response {
    Json(current_settings(&app)).into_response()
}

/// Any subset of `{"rate_limit": "40/10s"|"off", "retry_after": bool,
/// "page_size": N|null, "former_members": "listed"|"hidden"}`. Everything is
/// checked before anything changes. A new rate limit starts with empty windows.
async fn change_settings(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let Ok(Value::Object(changes)) = serde_json::from_slice::<Value>(&body) else {
        return problem(StatusCode::BAD_REQUEST, "expected a JSON object");
    };
    let mut rate_limit = None;
    let mut retry_after = None;
    let mut page_size = None;
    let mut hide_former = None;
    for (key, value) in &changes {
        match (key.as_str(), value) {
            ("rate_limit", Value::String(text)) => match parse_rate_limit(text) {
                Ok(limit) => rate_limit = Some(limit),
                Err(e) => return problem(StatusCode::BAD_REQUEST, e.to_string()),
            },
            ("retry_after", Value::Bool(b)) => retry_after = Some(*b),
            ("page_size", Value::Null) => page_size = Some(0),
            ("page_size", Value::Number(n)) => {
                match n.as_u64().and_then(|n| usize::try_from(n).ok()) {
                    Some(n) if n > 0 => page_size = Some(n),
                    _ => {
                        return problem(
                            StatusCode::BAD_REQUEST,
                            "page_size must be a positive integer or null",
                        );
                    }
                }
            }
            ("former_members", Value::String(s)) if s == "listed" || s == "hidden" => {
                hide_former = Some(s == "hidden");
            }
            _ => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    format!("unknown setting or bad value for `{key}`"),
                );
            }
        }
    }
    if rate_limit.is_some() || retry_after.is_some() {
        let Ok(mut limits) = app.limits.write() else {
            return problem(StatusCode::INTERNAL_SERVER_ERROR, "settings lock poisoned");
        };
        let limit = rate_limit.unwrap_or(limits.rate_limit);
        let retry = retry_after.unwrap_or(limits.retry_after);
        if rate_limit.is_some() {
            *limits = Limits::new(limit, retry);
        } else {
            limits.retry_after = retry;
        }
    }
    if let Some(n) = page_size {
        app.page_size.store(n, Ordering::Relaxed);
    }
    if let Some(hide) = hide_former {
        app.hide_former.store(hide, Ordering::Relaxed);
    }
    Json(current_settings(&app)).into_response()
}

async fn reset_rate_limit(State(app): State<Arc<App>>) -> StatusCode {
    if let Ok(limits) = app.limits.read()
        && let Some(limiter) = &limits.limiter
    {
        limiter.reset();
    }
    StatusCode::NO_CONTENT
}
