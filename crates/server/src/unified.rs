//! The Unified User Directory API (contract section 3): one shape for
//! users, groups, group memberships, roles and `me` across vendors, each
//! call naming its `integrated_account_id`. The vendor work is the
//! connector's (`rollcall_connectors::Directory`); this module parses
//! requests, wraps vendor positions in signed cursors, maps vendor failures
//! to contract errors and audits every change made at a vendor.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rollcall_connectors::{
    Added, Directory, DirectoryError, GroupPatch, LinkedAccount, MembershipQuery, NewGroup,
    NewUser, PageRequest, UserPatch, UserQuery,
};
use rollcall_core::ErrorCode;
use rollcall_core::error::ErrorEnvelope;
use rollcall_core::unified::{Group, GroupMembership, Me, Role, User, UserStatus};
use rollcall_store::{AccountRow, AuditOutcome};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::accounts::{connector_error, load_linked, note_vendor_verdict};
use crate::app::AppState;
use crate::audit::{self, AuditEntry};
use crate::auth::Caller;
use crate::cache;
use crate::cursor::{CursorCodec, ListEnvelope, page_limit};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::request_id::RequestId;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, update_group, delete_group))
        .routes(routes!(list_memberships, add_membership))
        .routes(routes!(remove_membership))
        .routes(routes!(list_roles))
        .routes(routes!(get_role))
        .routes(routes!(me))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum Source {
    #[default]
    Live,
    Cache,
}

/// The account a call is about, ready to call.
pub(crate) struct Target {
    pub(crate) row: AccountRow,
    pub(crate) account: LinkedAccount,
}

impl Target {
    pub(crate) fn directory(&self) -> Box<dyn Directory + '_> {
        self.account.directory()
    }
}

/// The account, ready to ask the vendor live.
pub(crate) async fn target(
    state: &AppState,
    caller: &Caller,
    account_id: &str,
) -> Result<Target, ApiError> {
    let (row, account) = load_linked(state, &caller.tenant_id, account_id).await?;
    Ok(Target { row, account })
}

/// Turns a connector result into the API's, recording what the vendor said
/// about the stored credentials along the way.
pub(crate) async fn settle<T>(
    state: &AppState,
    t: &Target,
    result: Result<T, DirectoryError>,
) -> Result<T, ApiError> {
    crate::ratelimit::record(t.account.rate_snapshot());
    let row = &t.row;
    match result {
        Ok(value) => {
            note_vendor_verdict(state, row, true, None).await;
            Ok(value)
        }
        Err(error) => {
            let mut error = directory_error(state, row, error).await;
            // A vendor that ran out of patience for us: say when to come back.
            if error.retry_after.is_none()
                && matches!(
                    error.code,
                    ErrorCode::ProviderRateLimited | ErrorCode::ProviderUnavailable
                )
            {
                error.retry_after = t.account.rate_snapshot().map(|s| s.reset_secs.max(1));
            }
            Err(error)
        }
    }
}

async fn directory_error(state: &AppState, row: &AccountRow, error: DirectoryError) -> ApiError {
    let with_remote = |mut e: ApiError, remote: Option<rollcall_connectors::Remote>| {
        if let Some(r) = remote {
            e = e.with_remote(r.status, r.body);
        }
        e
    };
    match error {
        DirectoryError::Unsupported(message) => {
            ApiError::new(ErrorCode::UnsupportedByProvider, message)
        }
        DirectoryError::NotFound { message, remote } => {
            with_remote(ApiError::not_found(message), remote)
        }
        DirectoryError::Conflict { message, remote } => {
            with_remote(ApiError::new(ErrorCode::Conflict, message), remote)
        }
        DirectoryError::Invalid { message, remote } => {
            with_remote(ApiError::invalid_request(message), remote)
        }
        DirectoryError::Connector(e) => {
            if matches!(
                e,
                rollcall_connectors::ConnectorError::AuthRejected(_)
                    | rollcall_connectors::ConnectorError::LoginPaused { .. }
            ) {
                note_vendor_verdict(state, row, false, Some(e.to_string())).await;
            }
            connector_error(e)
        }
    }
}

/// Audits the changes one request makes (or attempts) at a vendor.
pub(crate) struct Auditor<'a> {
    state: &'a AppState,
    caller: &'a Caller,
    request_id: &'a RequestId,
    row: &'a AccountRow,
}

impl<'a> Auditor<'a> {
    pub(crate) fn new(
        state: &'a AppState,
        caller: &'a Caller,
        request_id: &'a RequestId,
        target: &'a Target,
    ) -> Self {
        Self {
            state,
            caller,
            request_id,
            row: &target.row,
        }
    }

    pub(crate) async fn record<T: Serialize>(
        &self,
        action: &str,
        target_type: &str,
        target_id: &str,
        outcome: &Result<T, ApiError>,
    ) {
        let (after, audit_outcome, detail) = match outcome {
            Ok(value) => (
                serde_json::to_value(value).ok(),
                AuditOutcome::Success,
                None,
            ),
            Err(e) => (
                None,
                AuditOutcome::Failure,
                Some(format!("{}: {}", e.code, e.message)),
            ),
        };
        audit::record(
            self.state,
            AuditEntry {
                tenant: &self.caller.tenant_id,
                actor: &self.caller.actor(),
                action,
                target_type,
                target_id: &format!("{}/{target_id}", self.row.id),
                request_id: Some(&self.request_id.0),
                before: None,
                after,
                outcome: audit_outcome,
                detail,
            },
        )
        .await;
    }
}

fn list_key(resource: &str, caller: &Caller, account: &str, filters: &str) -> String {
    format!(
        "unified|{resource}|{}|{account}|{filters}",
        caller.tenant_id
    )
}

fn page_request(
    state: &AppState,
    key: &str,
    limit: Option<u32>,
    cursor: Option<&str>,
    include_remote_data: Option<bool>,
) -> Result<PageRequest, ApiError> {
    let codec = CursorCodec::new(&state.vault);
    Ok(PageRequest {
        position: cursor.map(|c| codec.decode(c, key)).transpose()?,
        limit: page_limit(limit)?,
        include_remote_data: include_remote_data.unwrap_or(false),
    })
}

fn envelope<T>(state: &AppState, key: &str, page: rollcall_connectors::Page<T>) -> ListEnvelope<T> {
    let codec = CursorCodec::new(&state.vault);
    let next_cursor = page.next_position.map(|p| codec.encode(&p, key));
    ListEnvelope::new(page.items, next_cursor, page.is_partial_response)
}

// ---- users ----

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct UserListParams {
    /// The linked account to ask.
    integrated_account_id: String,
    /// 1 to 1000 (default 100).
    limit: Option<u32>,
    next_cursor: Option<String>,
    include_remote_data: Option<bool>,
    /// `live` (ask the vendor now) or `cache` (the last sync's snapshot).
    #[serde(default)]
    #[param(inline)]
    source: Source,
    /// Default: active users only.
    status: Option<UserStatus>,
    /// Exact, case-insensitive.
    email: Option<String>,
    is_admin: Option<bool>,
    group_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ObjectParams {
    integrated_account_id: String,
    include_remote_data: Option<bool>,
    #[serde(default)]
    #[param(inline)]
    source: Source,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AccountParams {
    integrated_account_id: String,
}

/// Users of the account (filters: status, email, is_admin, group_id).
#[utoipa::path(get, path = "/unified/user-directory/users", tag = "users", params(UserListParams),
    responses((status = 200, body = ListEnvelope<User>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, description = "provider_auth_failed", body = ErrorEnvelope), (status = 429, description = "provider_rate_limited", body = ErrorEnvelope), (status = 502, description = "provider_error", body = ErrorEnvelope), (status = 503, description = "provider_unavailable", body = ErrorEnvelope)))]
async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<UserListParams>,
) -> Result<Json<ListEnvelope<User>>, ApiError> {
    let query = UserQuery {
        status: p.status,
        email: p.email.map(|e| e.trim().to_lowercase()),
        is_admin: p.is_admin,
        group_id: p.group_id,
    };
    if p.source == Source::Cache {
        let account = cache::synced_account(
            &state,
            &caller,
            &p.integrated_account_id,
            p.include_remote_data,
        )
        .await?;
        let key = list_key(
            "users-cache",
            &caller,
            &p.integrated_account_id,
            &format!("{query:?}"),
        );
        let limit = page_limit(p.limit)?;
        let page = cache::list_users(
            &state,
            &account,
            query,
            &key,
            p.next_cursor.as_deref(),
            limit,
        )
        .await?;
        return Ok(Json(page));
    }
    let t = target(&state, &caller, &p.integrated_account_id).await?;
    let key = list_key(
        "users",
        &caller,
        &p.integrated_account_id,
        &format!("{query:?}"),
    );
    let page = page_request(
        &state,
        &key,
        p.limit,
        p.next_cursor.as_deref(),
        p.include_remote_data,
    )?;
    let result = t.directory().list_users(&query, &page).await;
    let page = settle(&state, &t, result).await?;
    Ok(Json(envelope(&state, &key, page)))
}

/// One user, with every field the vendor has.
#[utoipa::path(get, path = "/unified/user-directory/users/{id}", tag = "users", params(("id" = String, Path), ObjectParams),
    responses((status = 200, body = User), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, description = "provider_auth_failed", body = ErrorEnvelope), (status = 429, description = "provider_rate_limited", body = ErrorEnvelope), (status = 502, description = "provider_error", body = ErrorEnvelope), (status = 503, description = "provider_unavailable", body = ErrorEnvelope)))]
async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<ObjectParams>,
) -> Result<Json<User>, ApiError> {
    if p.source == Source::Cache {
        let account = cache::synced_account(
            &state,
            &caller,
            &p.integrated_account_id,
            p.include_remote_data,
        )
        .await?;
        return Ok(Json(cache::get_user(&state, &account, &id).await?));
    }
    let t = target(&state, &caller, &p.integrated_account_id).await?;
    let result = t
        .directory()
        .get_user(&id, p.include_remote_data.unwrap_or(false))
        .await;
    Ok(Json(settle(&state, &t, result).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateUserBody {
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    #[serde(default)]
    is_admin: bool,
    #[serde(default)]
    group_ids: Vec<String>,
    /// The invitation message, where the vendor sends one (Mode).
    message: Option<String>,
}

fn parse_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim();
    let ok = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        });
    if ok {
        Ok(email.to_lowercase())
    } else {
        Err(ApiError::invalid_request(format!(
            "`{email}` is not an email address"
        )))
    }
}

/// Provision a user: Mode sends an invitation, Metabase creates the user.
#[utoipa::path(post, path = "/unified/user-directory/users", tag = "users", params(AccountParams), request_body = CreateUserBody,
    responses((status = 201, body = User), (status = 400, body = ErrorEnvelope), (status = 409, description = "conflict (e.g. the email exists)", body = ErrorEnvelope), (status = 501, description = "unsupported_by_provider", body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, description = "provider_auth_failed", body = ErrorEnvelope), (status = 429, description = "provider_rate_limited", body = ErrorEnvelope), (status = 502, description = "provider_error", body = ErrorEnvelope), (status = 503, description = "provider_unavailable", body = ErrorEnvelope)))]
async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Extension(request_id): Extension<RequestId>,
    ApiQuery(p): ApiQuery<AccountParams>,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> Result<Response, ApiError> {
    let input = NewUser {
        email: parse_email(&body.email)?,
        first_name: body.first_name,
        last_name: body.last_name,
        is_admin: body.is_admin,
        group_ids: body.group_ids,
        message: body.message,
    };
    let t = target(&state, &caller, &p.integrated_account_id).await?;
    let result = t.directory().create_user(&input).await;
    let outcome = settle(&state, &t, result).await;
    let id = outcome
        .as_ref()
        .map_or(input.email.clone(), |u| u.id.clone());
    Auditor::new(&state, &caller, &request_id, &t)
        .record("user.created", "user", &id, &outcome)
        .await;
    Ok((StatusCode::CREATED, Json(outcome?)).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateUserBody {
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    is_admin: Option<bool>,
    status: Option<UserStatus>,
}

/// Change a user: names, email, `is_admin`, or `status` (reactivate/deactivate).
#[utoipa::path(patch, path = "/unified/user-directory/users/{id}", tag = "users", params(("id" = String, Path), AccountParams), request_body = UpdateUserBody,
    responses((status = 200, body = User), (status = 400, body = ErrorEnvelope), (status = 409, description = "conflict (e.g. the last admin)", body = ErrorEnvelope), (status = 501, description = "unsupported_by_provider", body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, description = "provider_auth_failed", body = ErrorEnvelope), (status = 429, description = "provider_rate_limited", body = ErrorEnvelope), (status = 502, description = "provider_error", body = ErrorEnvelope), (status = 503, description = "provider_unavailable", body = ErrorEnvelope)))]
async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<AccountParams>,
    ApiJson(body): ApiJson<UpdateUserBody>,
) -> Result<Json<User>, ApiError> {
    let patch = UserPatch {
        first_name: body.first_name,
        last_name: body.last_name,
        email: body.email.as_deref().map(parse_email).transpose()?,
        is_admin: body.is_admin,
        status: body.status,
    };
    if patch == UserPatch::default() {
        return Err(ApiError::invalid_request(
            "nothing to change: give first_name, last_name, email, is_admin or status",
        ));
    }
    let t = target(&state, &caller, &p.integrated_account_id).await?;
    let result = t.directory().update_user(&id, &patch).await;
    let outcome = settle(&state, &t, result).await;
    Auditor::new(&state, &caller, &request_id, &t)
        .record("user.updated", "user", &id, &outcome)
        .await;
    Ok(Json(outcome?))
}

/// Deprovision: Mode removes the workspace membership, Metabase deactivates.
#[utoipa::path(delete, path = "/unified/user-directory/users/{id}", tag = "users", params(("id" = String, Path), AccountParams),
    responses((status = 204), (status = 409, description = "conflict (e.g. the last admin)", body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, description = "provider_auth_failed", body = ErrorEnvelope), (status = 429, description = "provider_rate_limited", body = ErrorEnvelope), (status = 502, description = "provider_error", body = ErrorEnvelope), (status = 503, description = "provider_unavailable", body = ErrorEnvelope)))]
async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<AccountParams>,
) -> Result<StatusCode, ApiError> {
    let t = target(&state, &caller, &p.integrated_account_id).await?;
    let result = t.directory().delete_user(&id).await;
    let outcome = settle(&state, &t, result).await;
    Auditor::new(&state, &caller, &request_id, &t)
        .record("user.deprovisioned", "user", &id, &outcome)
        .await;
    outcome.map(|()| StatusCode::NO_CONTENT)
}

// ---- groups ----

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListParams {
    integrated_account_id: String,
    limit: Option<u32>,
    next_cursor: Option<String>,
    include_remote_data: Option<bool>,
    #[serde(default)]
    #[param(inline)]
    source: Source,
}

/// Groups of the account.
#[utoipa::path(get, path = "/unified/user-directory/groups", tag = "groups", params(ListParams),
    responses((status = 200, body = ListEnvelope<Group>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, description = "provider_auth_failed", body = ErrorEnvelope), (status = 429, description = "provider_rate_limited", body = ErrorEnvelope), (status = 502, description = "provider_error", body = ErrorEnvelope), (status = 503, description = "provider_unavailable", body = ErrorEnvelope)))]
async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<ListEnvelope<Group>>, ApiError> {
    if p.source == Source::Cache {
        let account = cache::synced_account(
            &state,
            &caller,
            &p.integrated_account_id,
            p.include_remote_data,
        )
        .await?;
        let key = list_key("groups-cache", &caller, &p.integrated_account_id, "");
        let limit = page_limit(p.limit)?;
        let page =
            cache::list_groups(&state, &account, &key, p.next_cursor.as_deref(), limit).await?;
        return Ok(Json(page));
    }
    let t = target(&state, &caller, &p.integrated_account_id).await?;
    let key = list_key("groups", &caller, &p.integrated_account_id, "");
    let page = page_request(
        &state,
        &key,
        p.limit,
        p.next_cursor.as_deref(),
        p.include_remote_data,
    )?;
    let result = t.directory().list_groups(&page).await;
    let page = settle(&state, &t, result).await?;
    Ok(Json(envelope(&state, &key, page)))
}

/// One group.
#[utoipa::path(get, path = "/unified/user-directory/groups/{id}", tag = "groups", params(("id" = String, Path), ObjectParams),
    responses((status = 200, body = Group), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, description = "provider_auth_failed", body = ErrorEnvelope), (status = 429, description = "provider_rate_limited", body = ErrorEnvelope), (status = 502, description = "provider_error", body = ErrorEnvelope), (status = 503, description = "provider_unavailable", body = ErrorEnvelope)))]
async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<ObjectParams>,
) -> Result<Json<Group>, ApiError> {
    if p.source == Source::Cache {
        let account = cache::synced_account(
            &state,
            &caller,
            &p.integrated_account_id,
            p.include_remote_data,
        )
        .await?;
        return Ok(Json(cache::get_group(&state, &account, &id).await?));
    }
    let t = target(&state, &caller, &p.integrated_account_id).await?;
    let result = t
        .directory()
        .get_group(&id, p.include_remote_data.unwrap_or(false))
        .await;
    Ok(Json(settle(&state, &t, result).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    name: Option<String>,
    description: Option<String>,
}

fn group_name(name: Option<String>) -> Result<Option<String>, ApiError> {
    match name.map(|n| n.trim().to_owned()) {
        Some(n) if n.is_empty() || n.chars().count() > 255 => {
            Err(ApiError::invalid_request("name must be 1-255 characters"))
        }
        other => Ok(other),
    }
}

/// Create a group.
#[utoipa::path(post, path = "/unified/user-directory/groups", tag = "groups", params(AccountParams), request_body = GroupBody,
    responses((status = 201, body = Group), (status = 400, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 501, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, description = "provider_auth_failed", body = ErrorEnvelope), (status = 429, description = "provider_rate_limited", body = ErrorEnvelope), (status = 502, description = "provider_error", body = ErrorEnvelope), (status = 503, description = "provider_unavailable", body = ErrorEnvelope)))]
async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    Extension(request_id): Extension<RequestId>,
    ApiQuery(p): ApiQuery<AccountParams>,
    ApiJson(body): ApiJson<GroupBody>,
) -> Result<Response, ApiError> {
    let name =
        group_name(body.name)?.ok_or_else(|| ApiError::invalid_request("name is required"))?;
    let input = NewGroup {
        name,
        description: body.description,
    };
    let t = target(&state, &caller, &p.integrated_account_id).await?;
    let result = t.directory().create_group(&input).await;
    let outcome = settle(&state, &t, result).await;
    let id = outcome
        .as_ref()
        .map_or(input.name.clone(), |g| g.id.clone());
    Auditor::new(&state, &caller, &request_id, &t)
        .record("group.created", "group", &id, &outcome)
        .await;
    Ok((StatusCode::CREATED, Json(outcome?)).into_response())
}

/// Rename a group.
#[utoipa::path(patch, path = "/unified/user-directory/groups/{id}", tag = "groups", params(("id" = String, Path), AccountParams), request_body = GroupBody,
    responses((status = 200, body = Group), (status = 400, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 501, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, description = "provider_auth_failed", body = ErrorEnvelope), (status = 429, description = "provider_rate_limited", body = ErrorEnvelope), (status = 502, description = "provider_error", body = ErrorEnvelope), (status = 503, description = "provider_unavailable", body = ErrorEnvelope)))]
async fn update_group(
    State(state): State<AppState>,
    caller: Caller,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<AccountParams>,
    ApiJson(body): ApiJson<GroupBody>,
) -> Result<Json<Group>, ApiError> {
    let patch = GroupPatch {
        name: group_name(body.name)?,
        description: body.description,
    };
    if patch == GroupPatch::default() {
        return Err(ApiError::invalid_request(
            "nothing to change: give name or description",
        ));
    }
    let t = target(&state, &caller, &p.integrated_account_id).await?;
    let result = t.directory().update_group(&id, &patch).await;
    let outcome = settle(&state, &t, result).await;
    Auditor::new(&state, &caller, &request_id, &t)
        .record("group.updated", "group", &id, &outcome)
        .await;
    Ok(Json(outcome?))
}

/// Delete a group.
#[utoipa::path(delete, path = "/unified/user-directory/groups/{id}", tag = "groups", params(("id" = String, Path), AccountParams),
    responses((status = 204), (status = 409, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, description = "provider_auth_failed", body = ErrorEnvelope), (status = 429, description = "provider_rate_limited", body = ErrorEnvelope), (status = 502, description = "provider_error", body = ErrorEnvelope), (status = 503, description = "provider_unavailable", body = ErrorEnvelope)))]
async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<AccountParams>,
) -> Result<StatusCode, ApiError> {
    let t = target(&state, &caller, &p.integrated_account_id).await?;
    let result = t.directory().delete_group(&id).await;
    let outcome = settle(&state, &t, result).await;
    Auditor::new(&state, &caller, &request_id, &t)
        .record("group.deleted", "group", &id, &outcome)
        .await;
    outcome.map(|()| StatusCode::NO_CONTENT)
}

// ---- group memberships ----

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct MembershipListParams {
    integrated_account_id: String,
    limit: Option<u32>,
    next_cursor: Option<String>,
    #[serde(default)]
    #[param(inline)]
    source: Source,
    group_id: Option<String>,
    user_id: Option<String>,
}

/// Group memberships (filters: group_id, user_id).
#[utoipa::path(get, path = "/unified/user-directory/group-memberships", tag = "group memberships", params(MembershipListParams),
    responses((status = 200, body = ListEnvelope<GroupMembership>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, description = "provider_auth_failed", body = ErrorEnvelope), (status = 429, description = "provider_rate_limited", body = ErrorEnvelope), (status = 502, description = "provider_error", body = ErrorEnvelope), (status = 503, description = "provider_unavailable", body = ErrorEnvelope)))]
async fn list_memberships(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<MembershipListParams>,
) -> Result<Json<ListEnvelope<GroupMembership>>, ApiError> {
    if p.source == Source::Cache {
        let account =
            cache::synced_account(&state, &caller, &p.integrated_account_id, None).await?;
        let key = list_key(
            "group-memberships-cache",
            &caller,
            &p.integrated_account_id,
            &format!("{:?}|{:?}", p.group_id, p.user_id),
        );
        let limit = page_limit(p.limit)?;
        let page = cache::list_memberships(
            &state,
            &account,
            p.group_id.as_deref(),
            p.user_id.as_deref(),
            &key,
            p.next_cursor.as_deref(),
            limit,
        )
        .await?;
        return Ok(Json(page));
    }
    let t = target(&state, &caller, &p.integrated_account_id).await?;
    let query = MembershipQuery {
        group_id: p.group_id,
        user_id: p.user_id,
    };
    let key = list_key(
        "group-memberships",
        &caller,
        &p.integrated_account_id,
        &format!("{query:?}"),
    );
    let page = page_request(&state, &key, p.limit, p.next_cursor.as_deref(), None)?;
    let result = t.directory().list_group_memberships(&query, &page).await;
    let page = settle(&state, &t, result).await?;
    Ok(Json(envelope(&state, &key, page)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MembershipBody {
    group_id: String,
    user_id: String,
}

/// Add a user to a group; an existing membership is returned as is (200).
#[utoipa::path(post, path = "/unified/user-directory/group-memberships", tag = "group memberships", params(AccountParams), request_body = MembershipBody,
    responses((status = 201, body = GroupMembership), (status = 200, description = "already a member", body = GroupMembership), (status = 409, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, description = "provider_auth_failed", body = ErrorEnvelope), (status = 429, description = "provider_rate_limited", body = ErrorEnvelope), (status = 502, description = "provider_error", body = ErrorEnvelope), (status = 503, description = "provider_unavailable", body = ErrorEnvelope)))]
async fn add_membership(
    State(state): State<AppState>,
    caller: Caller,
    Extension(request_id): Extension<RequestId>,
    ApiQuery(p): ApiQuery<AccountParams>,
    ApiJson(body): ApiJson<MembershipBody>,
) -> Result<Response, ApiError> {
    if body.group_id.is_empty() || body.user_id.is_empty() {
        return Err(ApiError::invalid_request(
            "group_id and user_id are required",
        ));
    }
    let t = target(&state, &caller, &p.integrated_account_id).await?;
    let result = t
        .directory()
        .add_group_membership(&body.group_id, &body.user_id)
        .await;
    let outcome = settle(&state, &t, result).await;
    let id = GroupMembership::id_for(&body.group_id, &body.user_id);
    match outcome {
        Ok((membership, Added::AlreadyPresent)) => {
            Ok((StatusCode::OK, Json(membership)).into_response())
        }
        created => {
            let created = created.map(|(m, _)| m);
            Auditor::new(&state, &caller, &request_id, &t)
                .record("group_membership.added", "group_membership", &id, &created)
                .await;
            Ok((StatusCode::CREATED, Json(created?)).into_response())
        }
    }
}

/// Remove a user from a group (`id` is `<group_id>:<user_id>`); absent is a 404.
#[utoipa::path(delete, path = "/unified/user-directory/group-memberships/{id}", tag = "group memberships", params(("id" = String, Path), AccountParams),
    responses((status = 204), (status = 409, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, description = "provider_auth_failed", body = ErrorEnvelope), (status = 429, description = "provider_rate_limited", body = ErrorEnvelope), (status = 502, description = "provider_error", body = ErrorEnvelope), (status = 503, description = "provider_unavailable", body = ErrorEnvelope)))]
async fn remove_membership(
    State(state): State<AppState>,
    caller: Caller,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<AccountParams>,
) -> Result<StatusCode, ApiError> {
    if GroupMembership::parse_id(&id).is_none() {
        return Err(ApiError::not_found(
            "no such group membership (ids look like `<group_id>:<user_id>`)",
        ));
    }
    let t = target(&state, &caller, &p.integrated_account_id).await?;
    let result = t.directory().remove_group_membership(&id).await;
    let outcome = settle(&state, &t, result).await;
    Auditor::new(&state, &caller, &request_id, &t)
        .record(
            "group_membership.removed",
            "group_membership",
            &id,
            &outcome,
        )
        .await;
    outcome.map(|()| StatusCode::NO_CONTENT)
}

// ---- roles and me ----

/// The roles this vendor has, with their unified types.
#[utoipa::path(get, path = "/unified/user-directory/roles", tag = "roles", params(AccountParams),
    responses((status = 200, body = ListEnvelope<Role>), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, description = "provider_auth_failed", body = ErrorEnvelope), (status = 429, description = "provider_rate_limited", body = ErrorEnvelope), (status = 502, description = "provider_error", body = ErrorEnvelope), (status = 503, description = "provider_unavailable", body = ErrorEnvelope)))]
async fn list_roles(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<AccountParams>,
) -> Result<Json<ListEnvelope<Role>>, ApiError> {
    let t = target(&state, &caller, &p.integrated_account_id).await?;
    let result = t.directory().list_roles().await;
    let roles = settle(&state, &t, result).await?;
    let map = &state.settings.roles;
    let roles = roles
        .into_iter()
        .map(|role| map.normalize(t.row.provider, role))
        .collect();
    Ok(Json(ListEnvelope::new(roles, None, false)))
}

/// One role.
#[utoipa::path(get, path = "/unified/user-directory/roles/{id}", tag = "roles", params(("id" = String, Path), AccountParams),
    responses((status = 200, body = Role), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, description = "provider_auth_failed", body = ErrorEnvelope), (status = 429, description = "provider_rate_limited", body = ErrorEnvelope), (status = 502, description = "provider_error", body = ErrorEnvelope), (status = 503, description = "provider_unavailable", body = ErrorEnvelope)))]
async fn get_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<AccountParams>,
) -> Result<Json<Role>, ApiError> {
    let t = target(&state, &caller, &p.integrated_account_id).await?;
    let result = t.directory().get_role(&id).await;
    let role = settle(&state, &t, result).await?;
    Ok(Json(state.settings.roles.normalize(t.row.provider, role)))
}

/// Who the linked credential acts as.
#[utoipa::path(get, path = "/unified/user-directory/me", tag = "me", params(AccountParams),
    responses((status = 200, body = Me), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, description = "provider_auth_failed", body = ErrorEnvelope), (status = 429, description = "provider_rate_limited", body = ErrorEnvelope), (status = 502, description = "provider_error", body = ErrorEnvelope), (status = 503, description = "provider_unavailable", body = ErrorEnvelope)))]
async fn me(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<AccountParams>,
) -> Result<Json<Me>, ApiError> {
    let t = target(&state, &caller, &p.integrated_account_id).await?;
    let result = t.directory().me().await;
    Ok(Json(settle(&state, &t, result).await?))
}
