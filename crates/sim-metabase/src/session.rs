//! `POST /api/session` (login, with throttling) and `DELETE /api/session`
//! (spec §1.1, §1.3), plus the unauthenticated odds and ends.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::{
    IP_THRESHOLD, SESSION_COOKIE, Shared, USERNAME_THRESHOLD, header_str, session_token,
};
use crate::db::{Db, hash_password};
use crate::http::{
    ApiError, ApiResult, Kind, Presence, Validator, no_content, ok_json, parse_body,
};

type App = Arc<Shared>;

/// The request source as Metabase sees it: the first `X-Forwarded-For`
/// address (its default `source-address-header`), else the peer.
pub struct SourceAddress(pub String);

impl<S: Send + Sync> FromRequestParts<S> for SourceAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let forwarded = header_str(&parts.headers, "x-forwarded-for")
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        Ok(Self(
            forwarded.or(peer).unwrap_or_else(|| "unknown".to_owned()),
        ))
    }
}

/// `Set-Cookie` values for a new session (`set-session-cookies`). With
/// `remember` the session cookie is permanent (`Max-Age`).
pub fn session_cookies(token: &str, remember: Option<u64>) -> [HeaderValue; 2] {
    let max_age = remember.map_or_else(String::new, |secs| format!(";Max-Age={secs}"));
    let session = format!("{SESSION_COOKIE}={token};HttpOnly;Path=/;SameSite=Lax{max_age}");
    [
        HeaderValue::from_str(&session).unwrap_or(HeaderValue::from_static("")),
        HeaderValue::from_static("metabase.TIMEOUT=alive;Path=/;SameSite=Lax"),
    ]
}

pub fn with_cookies(mut response: Response, cookies: [HeaderValue; 2]) -> Response {
    for c in cookies {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

fn login_failure() -> ApiError {
    ApiError::field(
        StatusCode::UNAUTHORIZED,
        "password",
        "did not match stored password",
    )
}

/// The body of the throttled `do-login`: the password first, then whether
/// the account is active. Returns the new session and the email.
fn try_login(
    db: &mut Db,
    username: &str,
    password: &str,
    now: i64,
) -> Result<(String, String), ApiError> {
    let id = db.user_id_by_email(username).ok_or_else(login_failure)?;
    let user = db.user(id).ok_or_else(login_failure)?;
    if user.password != hash_password(password) {
        return Err(login_failure());
    }
    if !user.is_active {
        return Err(ApiError::field(
            StatusCode::UNAUTHORIZED,
            "_error",
            "Your account is disabled.",
        ));
    }
    let email = user.email.to_string();
    db.record_login(id, now);
    Ok((db.create_session(id, now), email))
}

pub async fn login(
    State(app): State<App>,
    SourceAddress(source): SourceAddress,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    app.control.counters.bump("login");
    let body = parse_body(&headers, &body)?;
    // Both fields are validated before answering, so `{}` names both
    // (spec §9 [inference]: the tests show each field alone).
    let mut v = Validator::new();
    let username = v
        .field(&body, "username", Kind::NonBlank, Presence::Required)
        .and_then(Value::as_str)
        .map(str::to_owned);
    let password = v
        .field(&body, "password", Kind::NonBlank, Presence::Required)
        .and_then(Value::as_str)
        .map(str::to_owned);
    v.finish()?;
    let (Some(username), Some(password)) = (username, password) else {
        return Err(ApiError::internal());
    };
    let remember = body.get("remember").and_then(Value::as_bool) == Some(true);
    let now = app.now();
    // Both throttlers report under `username`; the IP one is consulted first.
    let ip_key = format!("ip:{source}");
    // Keyed by the username as sent (not lower-cased) [inference].
    let user_key = format!("username:{username}");
    if app.throttle_on {
        let mut throttle = app.throttle();
        let refused = throttle
            .check(&ip_key, IP_THRESHOLD, now)
            .or_else(|| throttle.check(&user_key, USERNAME_THRESHOLD, now));
        if let Some(message) = refused {
            // A refused attempt is a failed attempt too.
            throttle.record(&ip_key, now);
            throttle.record(&user_key, now);
            app.control.counters.bump("login_throttled");
            return Err(ApiError::field(
                StatusCode::UNAUTHORIZED,
                "username",
                &message,
            ));
        }
    }
    let outcome = try_login(&mut app.db(), &username, &password, now);
    match outcome {
        Ok((token, email)) => {
            app.control.counters.bump("login_ok");
            app.control.counters.record_credential(&email);
            let max_age = remember.then(|| u64::try_from(app.max_age_ms / 1000).unwrap_or(0));
            Ok(with_cookies(
                ok_json(&json!({ "id": token })),
                session_cookies(&token, max_age),
            ))
        }
        Err(e) => {
            if app.throttle_on {
                let mut throttle = app.throttle();
                throttle.record(&ip_key, now);
                throttle.record(&user_key, now);
            }
            Err(e)
        }
    }
}

/// Logout: deletes the session row the request names, expired or not.
pub async fn logout(State(app): State<App>, headers: HeaderMap) -> ApiResult {
    let token = session_token(&headers).ok_or_else(ApiError::not_found)?;
    if !app.db().delete_session(&token) {
        return Err(ApiError::not_found());
    }
    let mut response = no_content();
    for clear in [
        "metabase.SESSION=;Path=/;Max-Age=0;Expires=Thu, 01 Jan 1970 00:00:00 GMT",
        "metabase.TIMEOUT=;Path=/;Max-Age=0;Expires=Thu, 01 Jan 1970 00:00:00 GMT",
    ] {
        response
            .headers_mut()
            .append(header::SET_COOKIE, HeaderValue::from_static(clear));
    }
    Ok(response)
}

pub async fn health() -> Response {
    ok_json(&json!({ "status": "ok" }))
}

/// A small subset of the public settings, enough to read the version
/// (spec §7 [inference: not verified]).
pub async fn properties() -> Response {
    ok_json(&json!({
        "version": { "tag": "v0.56.0", "date": "2025-08-01", "branch": "release-x.56.x", "hash": "sim" },
        "has-user-setup": true,
        "setup-token": null,
        "site-locale": "en",
        "password_complexity": { "total": 6, "digit": 1 },
        "session-cookies": null,
    }))
}

/// Non-API paths serve the single-page app in Metabase.
pub async fn frontend() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html;charset=utf-8")],
        "<!DOCTYPE html><html><head><title>Metabase</title></head><body><div id=\"root\"></div></body></html>",
    )
        .into_response()
}
