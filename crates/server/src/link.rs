//! Link tokens and the link page: the caller asks for a short-lived,
//! single-use URL (`POST /link-tokens`) and hands it to an end customer, who
//! picks Mode or Metabase, enters their credentials, sees them checked, and
//! ends with an account linked to the token's `tenant_ref`. The caller
//! never handles the customer's secrets. The page is server-rendered HTML
//! with no external assets and no script.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Form, Json};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rollcall_core::clock::rfc3339_from_millis;
use rollcall_store::LinkTokenRow;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts::{Linker, link_account, parse_link_input};
use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::request_id::RequestId;

/// `POST /link-tokens`, for API callers.
pub fn token_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_token))
}

/// The page end customers open; the token in the URL is its only credential.
pub fn page_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, submit))
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A short-lived, single-use URL an end customer opens to link their own
/// Mode or Metabase account to `tenant_ref`, without the caller handling
/// their secrets.
#[utoipa::path(post, path = "/link-tokens", tag = "integrated accounts",
    request_body(content = Object, description = "`{tenant_ref?, expires_in_seconds?}`"),
    responses((status = 201, description = "`{token, url, expires_at, tenant_ref}`"), (status = 400, body = rollcall_core::error::ErrorEnvelope),
        (status = 401, body = rollcall_core::error::ErrorEnvelope)))]
async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::invalid_request("the body must be a JSON object"));
    };
    let tenant_ref = match map.remove("tenant_ref") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= 200 => Some(s),
        Some(_) => {
            return Err(ApiError::invalid_request(
                "tenant_ref must be a string of at most 200 characters",
            ));
        }
    };
    let ttl = match map.remove("expires_in_seconds") {
        None => state.settings.link_token_ttl_secs,
        Some(v) => match v.as_u64() {
            Some(secs @ 60..=604_800) => secs,
            _ => {
                return Err(ApiError::invalid_request(
                    "expires_in_seconds must be between 60 and 604800",
                ));
            }
        },
    };
    if let Some(unknown) = map.keys().next() {
        return Err(ApiError::invalid_request(format!(
            "`{unknown}` is not a known field"
        )));
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(ApiError::internal)?;
    let token = URL_SAFE_NO_PAD.encode(secret);
    let now = state.clock.now_millis();
    let expires_at = now + i64::try_from(ttl * 1000).unwrap_or(i64::MAX / 2);
    state
        .store
        .insert_link_token(&LinkTokenRow {
            token_sha256: hash(&token),
            tenant_id: caller.tenant_id.clone(),
            tenant_ref: tenant_ref.clone(),
            created_by: caller.actor(),
            created_at: now,
            expires_at,
            used_at: None,
            account_id: None,
        })
        .await?;
    let url = format!("{}/link/{token}", state.settings.public_url());
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "url": url,
            "expires_at": rfc3339_from_millis(expires_at),
            "tenant_ref": tenant_ref,
        })),
    )
        .into_response())
}

enum TokenState {
    Usable(LinkTokenRow),
    Gone,
}

async fn token_state(state: &AppState, token: &str) -> Result<TokenState, ApiError> {
    Ok(match state.store.link_token(&hash(token)).await? {
        Some(row) if row.used_at.is_none() && row.expires_at > state.clock.now_millis() => {
            TokenState::Usable(row)
        }
        _ => TokenState::Gone,
    })
}

/// The link page (HTML).
#[utoipa::path(get, path = "/link/{token}", tag = "link page", params(("token" = String, Path)),
    responses((status = 200, content_type = "text/html", description = "the form"), (status = 410, content_type = "text/html", description = "expired or used")))]
async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    Ok(match token_state(&state, &token).await? {
        TokenState::Usable(_) => page(StatusCode::OK, &form_html(&HashMap::new(), None)),
        TokenState::Gone => gone(),
    })
}

/// The link form's submission (HTML form fields).
#[utoipa::path(post, path = "/link/{token}", tag = "link page", params(("token" = String, Path)),
    responses((status = 200, content_type = "text/html", description = "linked"), (status = 422, content_type = "text/html", description = "refused by the vendor; the form again"),
        (status = 410, content_type = "text/html", description = "expired or used")))]
async fn submit(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    Path(token): Path<String>,
    Form(fields): Form<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let TokenState::Usable(row) = token_state(&state, &token).await? else {
        return Ok(gone());
    };
    let mut body = request_from_form(&fields);
    if let (Some(tenant_ref), Value::Object(map)) = (&row.tenant_ref, &mut body) {
        map.insert("tenant_ref".into(), Value::String(tenant_ref.clone()));
    }
    let linker = Linker::LinkToken {
        tenant: &row.tenant_id,
        hash: row.token_sha256,
    };
    let outcome = match parse_link_input(body) {
        Ok(input) => link_account(&state, linker, Some(&request_id.0), input).await,
        Err(e) => Err(e),
    };
    Ok(match outcome {
        Ok(account) => page(
            StatusCode::OK,
            &format!(
                "<h1>Linked</h1><p>Your {} account is now connected. You can close this window.</p>\
                 <p class=\"muted\">Reference: <code>{}</code></p>",
                escape(account.provider.as_str()),
                escape(account.id.as_str())
            ),
        ),
        Err(error) => {
            let reason = match &error.remote {
                Some(remote) => format!(
                    "{} (the vendor answered HTTP {})",
                    error.message, remote.status
                ),
                None => error.message.clone(),
            };
            page(
                StatusCode::UNPROCESSABLE_ENTITY,
                &form_html(&fields, Some(&reason)),
            )
        }
    })
}

/// The form's fields as the JSON the API takes; empty fields are absent.
fn request_from_form(fields: &HashMap<String, String>) -> Value {
    let get = |name: &str| fields.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut config = Map::new();
    let mut credentials = Map::new();
    let provider = get("provider").unwrap_or("");
    let put = |target: &mut Map<String, Value>, key: &str, field: &str| {
        if let Some(v) = get(field) {
            target.insert(key.to_owned(), Value::String(v.to_owned()));
        }
    };
    match provider {
        "mode" => {
            put(&mut config, "base_url", "mode_base_url");
            put(&mut config, "workspace", "mode_workspace");
            put(&mut credentials, "token", "mode_token");
            put(&mut credentials, "secret", "mode_secret");
            put(&mut credentials, "discovery_token", "mode_discovery_token");
        }
        "metabase" => {
            put(&mut config, "base_url", "metabase_base_url");
            if get("metabase_auth") == Some("password") {
                put(&mut credentials, "username", "metabase_username");
                put(&mut credentials, "password", "metabase_password");
            } else {
                put(&mut credentials, "api_key", "metabase_api_key");
            }
        }
        _ => {}
    }
    let mut body = Map::new();
    body.insert("provider".into(), Value::String(provider.to_owned()));
    if let Some(label) = get("label") {
        body.insert("label".into(), Value::String(label.to_owned()));
    }
    body.insert("config".into(), Value::Object(config));
    body.insert("credentials".into(), Value::Object(credentials));
    Value::Object(body)
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The link form. Values are kept after a failed attempt, except secrets.
fn form_html(fields: &HashMap<String, String>, error: Option<&str>) -> String {
    const SECRETS: &[&str] = &[
        "mode_secret",
        "mode_discovery_token",
        "metabase_api_key",
        "metabase_password",
    ];
    let value = |name: &str, default: &str| -> String {
        if SECRETS.contains(&name) {
            return String::new();
        }
        escape(fields.get(name).map_or(default, String::as_str))
    };
    let chosen = fields.get("provider").map_or("mode", String::as_str);
    let password_auth = fields.get("metabase_auth").is_some_and(|a| a == "password");
    let error_html = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    let open = |p: &str| if chosen == p { " open" } else { "" };
    format!(
        r#"<h1>Connect your analytics account</h1>
{error_html}
<details{mode_open}><summary>Mode</summary>
<form method="post">
<input type="hidden" name="provider" value="mode">
<label>Mode URL <input name="mode_base_url" value="{mode_base_url}" required></label>
<label>Workspace (its username, as in app.mode.com/<i>workspace</i>) <input name="mode_workspace" value="{mode_workspace}" required></label>
<label>API token <input name="mode_token" value="{mode_token}" required autocomplete="off"></label>
<label>API secret <input type="password" name="mode_secret" required autocomplete="off"></label>
<label>Discovery API token (optional, for activity data) <input type="password" name="mode_discovery_token" autocomplete="off"></label>
<button type="submit">Connect Mode</button>
</form></details>
<details{metabase_open}><summary>Metabase</summary>
<form method="post">
<input type="hidden" name="provider" value="metabase">
<label>Metabase URL <input name="metabase_base_url" value="{metabase_base_url}" placeholder="https://yourcompany.metabaseapp.com" required></label>
<fieldset><legend>Sign in with</legend>
<label class="inline"><input type="radio" name="metabase_auth" value="api_key"{api_checked}> an API key</label>
<label class="inline"><input type="radio" name="metabase_auth" value="password"{password_checked}> an admin's email and password</label>
</fieldset>
<label>API key <input type="password" name="metabase_api_key" autocomplete="off"></label>
<label>Email <input name="metabase_username" value="{metabase_username}" autocomplete="off"></label>
<label>Password <input type="password" name="metabase_password" autocomplete="off"></label>
<button type="submit">Connect Metabase</button>
</form></details>
<p class="muted">Your credentials are checked with the vendor, then stored encrypted. Nobody sees them in clear.</p>"#,
        mode_open = open("mode"),
        metabase_open = open("metabase"),
        mode_base_url = value("mode_base_url", "https://app.mode.com"),
        mode_workspace = value("mode_workspace", ""),
        mode_token = value("mode_token", ""),
        metabase_base_url = value("metabase_base_url", ""),
        metabase_username = value("metabase_username", ""),
        api_checked = if password_auth { "" } else { " checked" },
        password_checked = if password_auth { " checked" } else { "" },
    )
}

fn gone() -> Response {
    page(
        StatusCode::GONE,
        "<h1>This link is no longer valid</h1><p>It has expired or was already used. Ask for a new one.</p>",
    )
}

fn page(status: StatusCode, body: &str) -> Response {
    let html = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Connect an account · Rollcall</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1d2330}}
label{{display:block;margin:.8rem 0}} label.inline{{display:inline;margin-right:1rem}}
input:not([type=radio]){{display:block;width:100%;padding:.45rem;margin-top:.25rem;box-sizing:border-box}}
details{{border:1px solid #ccd;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}} summary{{font-weight:600;cursor:pointer}}
button{{margin-top:.6rem;padding:.5rem 1.2rem}} fieldset{{border:0;padding:0;margin:.8rem 0}}
.error{{background:#fdecea;border:1px solid #e0a39d;padding:.6rem;border-radius:6px}} .muted{{color:#667}}
</style></head><body>{body}</body></html>"#
    );
    let mut response = (status, Html(html)).into_response();
    // The URL carries a capability token: keep it out of caches.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_keeps_values_but_never_secrets_and_escapes_them() {
        let fields: HashMap<String, String> = [
            ("provider", "metabase"),
            ("metabase_base_url", "https://m.example/<script>"),
            ("metabase_auth", "password"),
            ("metabase_username", "ada@example.com"),
            ("metabase_password", "hunter2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let html = form_html(&fields, Some("did not match <stored> password"));
        assert!(html.contains("ada@example.com"));
        assert!(!html.contains("hunter2"));
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        assert!(html.contains("did not match &lt;stored&gt; password"));
    }

    #[test]
    fn form_fields_become_the_api_request() {
        let fields: HashMap<String, String> = [
            ("provider", "mode"),
            ("mode_base_url", "https://app.mode.com"),
            ("mode_workspace", "acme"),
            ("mode_token", "t"),
            ("mode_secret", "s"),
            ("mode_discovery_token", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let body = request_from_form(&fields);
        assert_eq!(body["config"]["workspace"], "acme");
        assert_eq!(body["credentials"], json!({"token":"t","secret":"s"}));
    }
}
