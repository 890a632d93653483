//! Simulator-only control endpoints under `/_sim/metabase` (documented in
//! the crate docs). Not counted, not faulted.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use crate::MetabaseFixtures;
use crate::app::Shared;
use crate::http::{json_response, ok_json, text};
use crate::users::sessions_summary;

#[derive(Clone)]
struct Ctl {
    app: Arc<Shared>,
    fixtures: MetabaseFixtures,
}

pub fn routes(app: Arc<Shared>, fixtures: MetabaseFixtures) -> Router {
    Router::new()
        .route("/_sim/metabase/sessions", get(sessions))
        .route("/_sim/metabase/sessions/expire", post(expire))
        .route("/_sim/metabase/users/{id}/sessions", get(user_sessions))
        .route("/_sim/metabase/throttle/reset", post(reset_throttle))
        .route("/_sim/metabase/fixtures", get(show_fixtures))
        .route("/_sim/metabase/invariants", get(invariants))
        .route("/_sim/metabase/scim", put(set_scim))
        .with_state(Ctl { app, fixtures })
}

async fn sessions(State(c): State<Ctl>) -> Response {
    let db = c.app.db();
    let now = c.app.now();
    let live = db
        .sessions
        .keys()
        .filter(|t| db.session_user(t, now, c.app.max_age_ms).is_some())
        .count();
    ok_json(&json!({ "total": db.sessions.len(), "live": live }))
}

async fn expire(State(c): State<Ctl>) -> Response {
    let n = c
        .app
        .db()
        .expire_all_sessions(c.app.now(), c.app.max_age_ms);
    ok_json(&json!({ "expired": n }))
}

async fn user_sessions(State(c): State<Ctl>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u32>() else {
        return text(StatusCode::BAD_REQUEST, "a numeric user id");
    };
    let db = c.app.db();
    if db.user(id).is_none() {
        return text(StatusCode::NOT_FOUND, "no such user");
    }
    ok_json(&sessions_summary(&db, id, c.app.now(), c.app.max_age_ms))
}

async fn reset_throttle(State(c): State<Ctl>) -> StatusCode {
    c.app.throttle().reset();
    StatusCode::NO_CONTENT
}

async fn show_fixtures(State(c): State<Ctl>) -> Response {
    let f = &c.fixtures;
    ok_json(&json!({
        "admin_email": f.admin_email,
        "admin_password": f.admin_password,
        "member_email": f.member_email,
        "member_password": f.member_password,
        "admin_api_key": f.admin_api_key,
        "member_api_key": f.member_api_key,
        "scim_key": f.scim_key,
        "seeded_password": f.seeded_password,
    }))
}

async fn invariants(State(c): State<Ctl>) -> Response {
    let violations = c.app.db().violations();
    ok_json(&json!({ "ok": violations.is_empty(), "violations": violations }))
}

async fn set_scim(State(c): State<Ctl>, body: Bytes) -> Response {
    match serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("enabled").and_then(Value::as_bool))
    {
        Some(enabled) => {
            c.app.db().scim.enabled = enabled;
            ok_json(&json!({ "enabled": enabled }))
        }
        None => json_response(
            StatusCode::BAD_REQUEST,
            &json!({ "error": "expected {\"enabled\": true|false}" }),
        ),
    }
}
