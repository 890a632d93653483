//! Mode's vendor routes: `/api/...` (Basic auth) and the Discovery API's
//! `/batch/...` (Bearer), behind one gate that authenticates, counts the
//! credential and applies the rate limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rollcall_core::SharedClock;
use rollcall_core::clock::rfc3339_from_millis;
use rollcall_sim_kit::{Admission, ControlState, WindowLimiter};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::ModeFixtures;
use crate::datafile::is_email;
use crate::render::{
    Collection, CollectionLinks, DiscoveryPage, InviteJson, InviteLinks, Pagination, SeqOf,
    discovery_member, group_json, group_member_json, link, membership_json, user_json, verify_json,
    workspace_json,
};
use crate::store::{DAY_MS, GroupState, MemberState, Membership, NO_USER, Store, new_named};
use crate::tokens::hex12;

pub(crate) const HAL: &str = "application/hal+json";
const HELP: &str = "https://mode.com/help";
/// The one real error text seen (OpenMetadata#14578).
const API_KEY_MESSAGE: &str = "This endpoint is unsupported for use with Api Keys";
/// Request bodies above this answer 413 `payload_too_large`.
const BODY_LIMIT: usize = 1 << 20;
/// The Discovery API's documented default page size; [GUESS] also its cap.
const DISCOVERY_PER_PAGE: usize = 1000;
/// Invites expire after two weeks ([GUESS]; the docs only name `expires_at`).
const INVITE_TTL_MS: i64 = 14 * DAY_MS;
const GROUP_NAME_MAX: usize = 255;

// ---- errors ---------------------------------------------------------------

/// Mode's error answer: `{"id","message","_links":{"help"}}`. The `_links`
/// part is on every error, like the one real body that was seen.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    id: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, id: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            id,
            message: message.into(),
        }
    }

    /// Validation failures use `bad_request`, as checklist C8/C10 say, even
    /// for a missing parameter (`param_missing` is documented but never shown).
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    // [GUESS] message texts for 401/403/429 (C18 placeholders).
    pub(crate) fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
    }

    pub(crate) fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Rate limited",
        )
    }

    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "Internal server error",
        )
    }

    /// The body for an injected fault's status (the kit's `error_body`).
    pub(crate) fn for_status(status: u16) -> Self {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (id, message) = match status {
            400 => ("bad_request", "Bad request"),
            401 => ("unauthorized", "Unauthorized"),
            403 => ("forbidden", "Forbidden"),
            404 => ("not_found", "Not found"),
            413 => ("payload_too_large", "Payload too large"),
            429 => ("rate_limited", "Rate limited"),
            502..=504 => ("service_unavailable", "Service unavailable"),
            500..=599 => ("internal_server_error", "Internal server error"),
            _ => ("bad_request", "Bad request"),
        };
        Self::new(code, id, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "id": self.id,
            "message": self.message,
            "_links": {"help": {"href": HELP}},
        });
        (self.status, [(header::CONTENT_TYPE, HAL)], body.to_string()).into_response()
    }
}

pub(crate) fn mode_error_body(status: u16) -> Response {
    ApiError::for_status(status).into_response()
}

fn hal<T: Serialize>(value: &T) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(value).map_err(|_| ApiError::internal())?;
    Ok(([(header::CONTENT_TYPE, HAL)], bytes).into_response())
}

// ---- shared state ---------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Principal {
    /// A legacy personal token: the permissions of this user.
    Personal(u32),
    /// A Workspace API token: admin of its one workspace.
    WorkspaceKey,
    /// The Discovery API's Bearer signature token.
    Discovery,
}

#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub token: String,
    pub principal: Principal,
}

#[derive(Debug, Clone)]
pub(crate) struct Credential {
    pub secret: String,
    pub principal: Principal,
}

#[derive(Debug)]
pub(crate) struct Limits {
    pub rate_limit: Option<(u32, Duration)>,
    pub limiter: Option<Arc<WindowLimiter>>,
    pub retry_after: bool,
}

impl Limits {
    pub(crate) fn new(rate_limit: Option<(u32, Duration)>, retry_after: bool) -> Self {
        Self {
            rate_limit,
            limiter: rate_limit.map(|(n, window)| Arc::new(WindowLimiter::new(n, window))),
            retry_after,
        }
    }
}

#[derive(Debug)]
pub(crate) struct App {
    pub store: RwLock<Store>,
    pub clock: SharedClock,
    pub control: ControlState,
    pub credentials: HashMap<String, Credential>,
    pub discovery_bearer: String,
    pub discovery_key: String,
    pub limits: RwLock<Limits>,
    /// 0 = lists come whole.
    pub page_size: AtomicUsize,
    /// Former members vanish from the list and GET after DELETE, instead of
    /// staying with `state: deactivated` (the default).
    pub hide_former: AtomicBool,
    pub fixtures: ModeFixtures,
}

impl App {
    pub(crate) fn read(&self) -> Result<RwLockReadGuard<'_, Store>, ApiError> {
        self.store.read().map_err(|_| ApiError::internal())
    }

    pub(crate) fn write(&self) -> Result<RwLockWriteGuard<'_, Store>, ApiError> {
        self.store.write().map_err(|_| ApiError::internal())
    }

    fn hide_former(&self) -> bool {
        self.hide_former.load(Ordering::Relaxed)
    }

    fn visible_membership(&self, store: &Store, i: u32) -> bool {
        store
            .membership(i)
            .is_some_and(|m| !(self.hide_former() && m.state == MemberState::Deactivated))
    }

    /// `(page, per_page)` when list pagination is on, else `None` and any
    /// `page`/`per_page` parameters are ignored.
    fn paging(&self, query: Option<&str>) -> Result<Option<(usize, usize)>, ApiError> {
        match self.page_size.load(Ordering::Relaxed) {
            0 => Ok(None),
            size => page_params(query, size, size.max(1000)).map(Some),
        }
    }

    fn basic(&self, value: &str) -> Option<Caller> {
        let (scheme, encoded) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = STANDARD.decode(encoded.trim()).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (token, secret) = text.split_once(':')?;
        let credential = self.credentials.get(token)?;
        (credential.secret == secret && credential.principal != Principal::Discovery).then(|| {
            Caller {
                token: token.to_owned(),
                principal: credential.principal,
            }
        })
    }

    fn bearer(&self, value: &str) -> Option<Caller> {
        let (scheme, token) = value.trim().split_once(' ')?;
        (scheme.eq_ignore_ascii_case("bearer") && token.trim() == self.discovery_bearer).then(
            || Caller {
                token: self.discovery_key.clone(),
                principal: Principal::Discovery,
            },
        )
    }
}

// ---- the gate: auth, counters, rate limit -------------------------------------

async fn gate(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let basic = path == "/api" || path.starts_with("/api/");
    if !basic && !path.starts_with("/batch/") {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = header.and_then(|h| if basic { app.basic(h) } else { app.bearer(h) });
    let Some(caller) = caller else {
        return ApiError::unauthorized().into_response();
    };
    app.control.counters.record_credential(&caller.token);

    let (limiter, retry_after) = match app.limits.read() {
        Ok(limits) => (limits.limiter.clone(), limits.retry_after),
        Err(_) => (None, false),
    };
    let admission = limiter.map(|l| l.admit(&caller.token, app.clock.now_millis()));
    if let Some(Admission::Limited {
        limit,
        retry_after_secs,
    }) = admission
    {
        app.control.counters.bump("rate_limited");
        let mut response = ApiError::rate_limited().into_response();
        set_rate_headers(&mut response, limit, 0, retry_after_secs);
        if retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        return response;
    }
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    if let Some(Admission::Allowed {
        limit,
        remaining,
        reset_secs,
    }) = admission
    {
        set_rate_headers(&mut response, limit, remaining, reset_secs);
    }
    response
}

/// `X-RateLimit-Limit` is documented; `-Remaining` and `-Reset` (seconds
/// until the window frees a slot) are the spec's [GUESS] for the unnamed
/// second header, so both are sent.
fn set_rate_headers(response: &mut Response, limit: u32, remaining: u32, reset_secs: u64) {
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("x-ratelimit-limit"),
        HeaderValue::from(limit),
    );
    headers.insert(
        HeaderName::from_static("x-ratelimit-remaining"),
        HeaderValue::from(remaining),
    );
    headers.insert(
        HeaderName::from_static("x-ratelimit-reset"),
        HeaderValue::from(reset_secs),
    );
}

// ---- router ---------------------------------------------------------------------

pub(crate) fn vendor_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/account", get(account))
        .route("/api/verify", get(verify))
        .route("/api/{name}", get(account_by_name))
        .route("/api/{ws}/memberships", get(list_memberships))
        .route(
            "/api/{ws}/memberships/{membership}",
            get(get_membership).delete(delete_membership),
        )
        .route("/api/{ws}/invites", post(create_invite))
        .route("/api/{ws}/groups", get(list_groups).post(create_group))
        .route(
            "/api/{ws}/groups/{group}",
            get(get_group).patch(update_group).delete(delete_group),
        )
        .route(
            "/api/{ws}/groups/{group}/memberships",
            get(list_group_members).post(add_group_member),
        )
        .route(
            "/api/{ws}/groups/{group}/memberships/{gm}",
            get(get_group_member).delete(remove_group_member),
        )
        .route("/batch/{ws}/members", get(discovery_members))
        .fallback(not_found)
        // An unrouted verb on a known path is a 404 in Mode's Rails-style
        // routing, not axum's bare 405.
        .method_not_allowed_fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), gate))
        .with_state(app)
}

/// `Path`, with a segment that does not decode answered as Mode's 404
/// rather than axum's plain-text 400.
struct Seg<T>(T);

impl<T, S> FromRequestParts<S> for Seg<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Seg(value))
            .map_err(|_| ApiError::not_found("Not found"))
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("Not found")
}

// ---- access rules ------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Admin,
    Member,
}

/// The caller's role in `{workspace}`: 404 for an unknown workspace or a
/// caller who is not a current member ("`Membership` not found for
/// `Workspace`").
fn access(store: &Store, caller: &Caller, workspace: &str) -> Result<Role, ApiError> {
    if workspace != store.workspace.username {
        return Err(ApiError::not_found("Workspace not found"));
    }
    match caller.principal {
        Principal::WorkspaceKey => Ok(Role::Admin),
        Principal::Personal(u) => match store.membership(u) {
            Some(m) if m.state == MemberState::Active => {
                Ok(if m.admin { Role::Admin } else { Role::Member })
            }
            _ => Err(ApiError::not_found("Membership not found for Workspace")),
        },
        Principal::Discovery => Err(ApiError::unauthorized()),
    }
}

fn admin_only(role: Role) -> Result<(), ApiError> {
    match role {
        Role::Admin => Ok(()),
        Role::Member => Err(ApiError::forbidden()),
    }
}

fn creator_of(caller: &Caller) -> u32 {
    match caller.principal {
        Principal::Personal(u) => u,
        _ => NO_USER,
    }
}

// ---- request bodies ------------------------------------------------------------------

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Payload too large",
        )
    })
}

/// Any body is read as JSON whatever its Content-Type; a body that does not
/// parse is a 400, as Rails answers a JSON parse error.
fn parse_json(bytes: &Bytes) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "Error occurred while parsing request parameters: {e}"
        ))
    })
}

fn missing(param: &str) -> ApiError {
    // Rails' `ActionController::ParameterMissing` text.
    ApiError::bad_request(format!("param is missing or the value is empty: {param}"))
}

/// `value[key]` as an object, or a 400 naming the missing key.
fn object<'a>(value: &'a Value, key: &str) -> Result<&'a Value, ApiError> {
    value
        .get(key)
        .filter(|v| v.is_object())
        .ok_or_else(|| missing(key))
}

/// `value[key]` as a string: absent or null is missing; other types are a 400.
fn string<'a>(value: &'a Value, key: &str) -> Result<&'a str, ApiError> {
    match value.get(key) {
        None | Some(Value::Null) => Err(missing(key)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::bad_request(format!("{key} must be a string"))),
    }
}

/// `user_group.name` for create and update. Other keys (`description`, ...)
/// are ignored ([GUESS] per spec §3.4).
fn group_name(value: &Value) -> Result<String, ApiError> {
    let name = string(object(value, "user_group")?, "name")?.trim();
    if name.is_empty() {
        return Err(ApiError::bad_request("Name can't be blank"));
    }
    if name.chars().count() > GROUP_NAME_MAX {
        return Err(ApiError::bad_request(
            "Name is too long (maximum is 255 characters)",
        ));
    }
    Ok(name.to_owned())
}

fn page_params(
    query: Option<&str>,
    default: usize,
    max: usize,
) -> Result<(usize, usize), ApiError> {
    let mut page = 1;
    let mut per_page = default;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("{key} must be a positive integer")))
        };
        match key {
            "page" => page = number()?,
            "per_page" => per_page = number()?,
            _ => {}
        }
    }
    Ok((page.max(1), per_page.clamp(1, max)))
}

fn hal_list<T: Serialize>(
    store: &Store,
    path: &str,
    key: &'static str,
    ids: &[u32],
    paging: Option<(usize, usize)>,
    render: fn(&Store, u32) -> T,
) -> Result<Response, ApiError> {
    let (pagination, range) = match paging {
        None => (None, 0..ids.len()),
        Some((page, per_page)) => {
            let (block, range) = Pagination::of(page, per_page, ids.len());
            (Some(block), range)
        }
    };
    let slice = ids.get(range).unwrap_or_default();
    hal(&Collection {
        links: CollectionLinks::for_page(path, pagination.as_ref()),
        pagination,
        key,
        empty: slice.is_empty(),
        items: SeqOf(slice.iter().map(move |&i| render(store, i))),
    })
}

// ---- account / user (C1–C4) ---------------------------------------------------------------

async fn account(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    match caller.principal {
        Principal::Personal(u) => hal(&user_json(&*app.read()?, u)),
        _ => Err(ApiError::bad_request(API_KEY_MESSAGE)),
    }
}

/// C2. A Workspace API token gets the datahub fixture's shape. A personal
/// token is not tied to one workspace, so it gets its user object ([GUESS],
/// the spec allows either).
async fn verify(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let store = app.read()?;
    match caller.principal {
        Principal::Personal(u) => hal(&user_json(&store, u)),
        Principal::WorkspaceKey => hal(&verify_json(&store)),
        Principal::Discovery => Err(ApiError::unauthorized()),
    }
}

/// C3/C4: the workspace's account, or any user's. [GUESS] a user is visible
/// to themselves and to current members (or the Workspace API token) of a
/// workspace the user has a membership in; otherwise 404, as amundsen's
/// "404 on a user is skipped" suggests happens.
async fn account_by_name(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg(name): Seg<String>,
) -> Result<Response, ApiError> {
    let store = app.read()?;
    if name == store.workspace.username {
        let role = access(&store, &caller, &name)?;
        let membership_type = match role {
            Role::Admin => "admin",
            Role::Member => "full",
        };
        return hal(&workspace_json(&store, membership_type));
    }
    let target = store
        .find_username(&name)
        .ok_or_else(|| ApiError::not_found("User not found"))?;
    let visible = match caller.principal {
        Principal::WorkspaceKey => store.membership(target).is_some(),
        Principal::Personal(u) => {
            u == target || (store.is_active_member(u) && store.membership(target).is_some())
        }
        Principal::Discovery => false,
    };
    if !visible {
        return Err(ApiError::not_found("User not found"));
    }
    hal(&user_json(&store, target))
}

// ---- workspace memberships (C5–C7) ------------------------------------------------------------

async fn list_memberships(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg(ws): Seg<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let store = app.read()?;
    access(&store, &caller, &ws)?;
    let paging = app.paging(query.as_deref())?;
    let ids = store.member_indices(!app.hide_former());
    hal_list(
        &store,
        &format!("/api/{ws}/memberships"),
        "memberships",
        &ids,
        paging,
        membership_json,
    )
}

async fn get_membership(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg((ws, token)): Seg<(String, String)>,
) -> Result<Response, ApiError> {
    let store = app.read()?;
    access(&store, &caller, &ws)?;
    let i = store
        .find_membership(&token)
        .filter(|&i| app.visible_membership(&store, i))
        .ok_or_else(|| ApiError::not_found("Membership not found"))?;
    hal(&membership_json(&store, i))
}

/// C7. [GUESS] The member becomes a former member: `state: deactivated`,
/// `admin: false`, `banned_at` set for the Discovery API, removed from every
/// group; the membership stays listed unless `former_members` is `hidden`.
/// Deleting a former member again answers the same object.
async fn delete_membership(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg((ws, token)): Seg<(String, String)>,
) -> Result<Response, ApiError> {
    let now = app.clock.now_millis();
    let mut store = app.write()?;
    admin_only(access(&store, &caller, &ws)?)?;
    let i = store
        .find_membership(&token)
        .filter(|&i| app.visible_membership(&store, i))
        .ok_or_else(|| ApiError::not_found("Membership not found"))?;
    if let Some(m) = store.user_mut(i).and_then(|u| u.membership.as_mut())
        && m.state != MemberState::Deactivated
    {
        m.state = MemberState::Deactivated;
        m.admin = false;
        m.invited = false;
        m.banned_ms = Some(now);
    }
    store.remove_from_all_groups(i);
    hal(&membership_json(&store, i))
}

// ---- invites (C8) -----------------------------------------------------------------------------------

/// C8. Workspace API tokens are refused with the Api Keys 400 ([GUESS]
/// status and text), non-admins with 403 ([GUESS]: the "only admins may
/// invite" workspace setting). The invitee gets a user (if new) and a
/// pending membership with `invited: true`. Inviting a pending member again
/// re-sends (`resent_at`); a former member or a user in no workspace is
/// invited back; a current member is a 400 ([GUESS]).
async fn create_invite(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg(ws): Seg<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(body).await?;
    let now = app.clock.now_millis();
    let mut store = app.write()?;
    let role = access(&store, &caller, &ws)?;
    let Principal::Personal(inviter) = caller.principal else {
        return Err(ApiError::bad_request(API_KEY_MESSAGE));
    };
    admin_only(role)?;
    let value = parse_json(&bytes)?;
    let invite = object(&value, "invite")?;
    let invitee = object(invite, "invitee")?;
    let email = string(invitee, "email")?.trim();
    let message = string(invite, "message")?;
    if email.is_empty() {
        return Err(missing("email"));
    }
    if !is_email(email) {
        return Err(ApiError::bad_request("Email is invalid"));
    }

    let pending = |at: i64| Membership {
        admin: false,
        invited: true,
        state: MemberState::Pending,
        activated_ms: at,
        banned_ms: None,
    };
    let (user, sent_ms, resent) = match store.find_email(email) {
        Some(u) => match store.membership(u).map(|m| (m.state, m.activated_ms)) {
            Some((MemberState::Active, _)) => {
                return Err(ApiError::bad_request(
                    "User is already a member of this Workspace",
                ));
            }
            Some((MemberState::Pending, invited_at)) => (u, invited_at, true),
            Some((MemberState::Deactivated, _)) | None => {
                if let Some(user) = store.user_mut(u) {
                    user.membership = Some(pending(now));
                }
                (u, now, false)
            }
        },
        None => {
            let username = store.username_for_email(email);
            let name = email.split('@').next().unwrap_or_default().to_owned();
            let u = store.add_named_user(
                new_named(username, name, email.to_owned()),
                now,
                false,
                Some(pending(now)),
            );
            (u, now, false)
        }
    };
    let invite_token = hex12(store.next_invite_token());
    let at = rfc3339_from_millis;
    hal(&InviteJson {
        email: store.email(user).into_owned(),
        message: message.to_owned(),
        inviter_id: store.user_id(inviter),
        invitee_id: store.user_id(user),
        organization_id: store.workspace.id,
        limited: false,
        sent_at: at(sent_ms),
        resent_at: resent.then(|| at(now)),
        clicked_at: None,
        accepted_at: None,
        expires_at: at(if resent { now } else { sent_ms } + INVITE_TTL_MS),
        created_at: at(sent_ms),
        links: InviteLinks {
            inviter: link(format!("/api/{}", store.username(inviter))),
            invitee: link(format!("/api/{}", store.username(user))),
            web_self_resend: link(format!("/organizations/{ws}/invites/{invite_token}/resend")),
        },
    })
}

// ---- groups (C9–C13) ---------------------------------------------------------------------------------

async fn list_groups(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg(ws): Seg<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let store = app.read()?;
    admin_only(access(&store, &caller, &ws)?)?;
    let paging = app.paging(query.as_deref())?;
    // [GUESS] soft-deleted groups are left out of the list (C13).
    let ids: Vec<u32> = (0..store.groups.len())
        .map(crate::store::to_u32)
        .filter(|&g| {
            store
                .group(g)
                .is_some_and(|g| g.state == GroupState::Active)
        })
        .collect();
    hal_list(
        &store,
        &format!("/api/{ws}/groups"),
        "groups",
        &ids,
        paging,
        group_json,
    )
}

/// C10. A name already used in the workspace, soft-deleted groups included,
/// is a 400 ([GUESS]).
async fn create_group(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg(ws): Seg<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(body).await?;
    let mut store = app.write()?;
    admin_only(access(&store, &caller, &ws)?)?;
    let name = group_name(&parse_json(&bytes)?)?;
    if store.group_name_taken(&name, None) {
        return Err(ApiError::bad_request("Name has already been taken"));
    }
    let g = store.add_group(name, GroupState::Active, creator_of(&caller));
    hal(&group_json(&store, g))
}

fn find_group(store: &Store, token: &str) -> Result<u32, ApiError> {
    store
        .find_group(token)
        .ok_or_else(|| ApiError::not_found("Group not found"))
}

/// A group that can still change: soft-deleted ones answer 404 to writes
/// ([GUESS]; reads still see them, C11).
fn find_live_group(store: &Store, token: &str) -> Result<u32, ApiError> {
    let g = find_group(store, token)?;
    match store.group(g).map(|g| g.state) {
        Some(GroupState::Active) => Ok(g),
        _ => Err(ApiError::not_found("Group not found")),
    }
}

/// C11. After a DELETE the group still answers 200 with
/// `state: soft_deleted` (the spec's preference).
async fn get_group(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg((ws, token)): Seg<(String, String)>,
) -> Result<Response, ApiError> {
    let store = app.read()?;
    admin_only(access(&store, &caller, &ws)?)?;
    let g = find_group(&store, &token)?;
    hal(&group_json(&store, g))
}

async fn update_group(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg((ws, token)): Seg<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(body).await?;
    let mut store = app.write()?;
    admin_only(access(&store, &caller, &ws)?)?;
    let g = find_live_group(&store, &token)?;
    let name = group_name(&parse_json(&bytes)?)?;
    if store.group_name_taken(&name, Some(g)) {
        return Err(ApiError::bad_request("Name has already been taken"));
    }
    if let Some(group) = store.group_mut(g) {
        group.name = name;
    }
    hal(&group_json(&store, g))
}

/// C13. A soft delete ([GUESS] `state: soft_deleted`); the group keeps its
/// name (blocking reuse) and its member list. Deleting it again answers the
/// same object.
async fn delete_group(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg((ws, token)): Seg<(String, String)>,
) -> Result<Response, ApiError> {
    let mut store = app.write()?;
    admin_only(access(&store, &caller, &ws)?)?;
    let g = find_group(&store, &token)?;
    if let Some(group) = store.group_mut(g) {
        group.state = GroupState::SoftDeleted;
    }
    hal(&group_json(&store, g))
}

// ---- group memberships (C14–C17) ----------------------------------------------------------------------

async fn list_group_members(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg((ws, token)): Seg<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let store = app.read()?;
    admin_only(access(&store, &caller, &ws)?)?;
    let g = find_group(&store, &token)?;
    let paging = app.paging(query.as_deref())?;
    let ids = store
        .group(g)
        .map(|g| g.members.clone())
        .unwrap_or_default();
    hal_list(
        &store,
        &format!("/api/{ws}/groups/{token}/memberships"),
        "group_memberships",
        &ids,
        paging,
        group_member_json,
    )
}

/// C15. A `member_token` that is not a current or pending member of the
/// workspace is a 404; a user already in the group is a 400 ([GUESS]).
async fn add_group_member(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg((ws, token)): Seg<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(body).await?;
    let mut store = app.write()?;
    admin_only(access(&store, &caller, &ws)?)?;
    let g = find_live_group(&store, &token)?;
    let value = parse_json(&bytes)?;
    let member_token = string(object(&value, "membership")?, "member_token")?;
    let user = store
        .find_user_token(member_token)
        .filter(|&u| {
            store
                .membership(u)
                .is_some_and(|m| m.state != MemberState::Deactivated)
        })
        .ok_or_else(|| ApiError::not_found("Membership not found for Workspace"))?;
    if store.group_has_user(g, user) {
        return Err(ApiError::bad_request("Member is already in this group"));
    }
    let k = store.add_group_member(g, user, creator_of(&caller));
    hal(&group_member_json(&store, k))
}

async fn get_group_member(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg((ws, token, gm)): Seg<(String, String, String)>,
) -> Result<Response, ApiError> {
    let store = app.read()?;
    admin_only(access(&store, &caller, &ws)?)?;
    let g = find_group(&store, &token)?;
    let k = store
        .find_gm(g, &gm)
        .ok_or_else(|| ApiError::not_found("Membership not found for Workspace"))?;
    hal(&group_member_json(&store, k))
}

async fn remove_group_member(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg((ws, token, gm)): Seg<(String, String, String)>,
) -> Result<Response, ApiError> {
    let mut store = app.write()?;
    admin_only(access(&store, &caller, &ws)?)?;
    let g = find_live_group(&store, &token)?;
    let k = store
        .find_gm(g, &gm)
        .ok_or_else(|| ApiError::not_found("Membership not found for Workspace"))?;
    store.remove_group_member(k);
    hal(&group_member_json(&store, k))
}

// ---- Discovery API (spec §1.3, §4) ---------------------------------------------------------------------

/// Every member with a membership, former ones included (with `banned_at`),
/// `per_page` defaulting to 1000.
async fn discovery_members(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Seg(ws): Seg<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    if caller.principal != Principal::Discovery {
        return Err(ApiError::unauthorized());
    }
    let store = app.read()?;
    if ws != store.workspace.username {
        return Err(ApiError::not_found("Workspace not found"));
    }
    let (page, per_page) = page_params(query.as_deref(), DISCOVERY_PER_PAGE, DISCOVERY_PER_PAGE)?;
    let ids = store.member_indices(true);
    let (block, range) = Pagination::of(page, per_page, ids.len());
    let at = |n: usize| link(format!("/batch/{ws}/members?page={n}&per_page={per_page}"));
    let links = CollectionLinks {
        this: None,
        next_page: (page < block.total_pages).then(|| at(page + 1)),
        prev_page: (page > 1).then(|| at((page - 1).min(block.total_pages.max(1)))),
    };
    let slice = ids.get(range).unwrap_or_default();
    let store_ref = &*store;
    hal(&DiscoveryPage {
        pagination: block,
        members: SeqOf(slice.iter().map(move |&i| discovery_member(store_ref, i))),
        links,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_params_defaults_and_errors() {
        assert_eq!(page_params(None, 30, 1000).unwrap(), (1, 30));
        assert_eq!(
            page_params(Some("page=3&per_page=10"), 30, 1000).unwrap(),
            (3, 10)
        );
        assert_eq!(
            page_params(Some("page=0&per_page=0"), 30, 1000).unwrap(),
            (1, 1)
        );
        assert_eq!(
            page_params(Some("per_page=5000&x=y"), 30, 1000).unwrap(),
            (1, 1000)
        );
        assert!(page_params(Some("page=two"), 30, 1000).is_err());
        assert!(page_params(Some("per_page=-1"), 30, 1000).is_err());
    }

    #[test]
    fn injected_statuses_get_mode_ids() {
        for (status, id) in [
            (429, "rate_limited"),
            (503, "service_unavailable"),
            (500, "internal_server_error"),
            (404, "not_found"),
        ] {
            assert_eq!(ApiError::for_status(status).id, id);
        }
    }
}
