//! Integrated accounts: linking a customer's Mode or Metabase (credentials
//! checked against the vendor before anything is saved, then sealed by the
//! vault), listing, updating, unlinking, and loading one ready to call.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rollcall_connectors::{AccountConfig, ConnectorError, Credentials, LinkedAccount};
use rollcall_core::clock::rfc3339_from_millis;
use rollcall_core::error::ErrorEnvelope;
use rollcall_core::id::{AccountId, TenantId};
use rollcall_core::{ErrorCode, Provider};
use rollcall_store::{AccountFilter, AccountRow, AccountStatus, AuditOutcome};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::audit::{self, AuditEntry};
use crate::auth::Caller;
use crate::cursor::{CursorCodec, ListEnvelope, page_limit};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::recent::{Miss, Recent};
use crate::request_id::RequestId;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(fetch, update, remove))
}

/// The account as the API shows it. Never carries a credential.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountView {
    pub id: String,
    pub provider: Provider,
    pub label: String,
    pub tenant_ref: Option<String>,
    /// Non-secret configuration (`base_url`, `workspace`, ...).
    #[schema(value_type = Object)]
    pub config: Value,
    /// `active`, `needs_reauth` or `disabled`.
    #[schema(value_type = String)]
    pub status: &'static str,
    /// Why the account needs attention (the vendor's words), if it does.
    pub status_detail: Option<String>,
    /// Which kind of credential is stored (`mode_token`, `metabase_api_key`, ...).
    #[schema(value_type = String)]
    pub credential_type: &'static str,
    /// `closed`, or `open`/`half_open` while calls fail fast after repeated
    /// vendor failures.
    #[schema(value_type = String)]
    pub circuit: &'static str,
    pub created_at: String,
    pub updated_at: String,
    #[schema(value_type = Option<Object>)]
    pub last_sync: Option<Value>,
    #[schema(value_type = Object)]
    pub capabilities: Value,
}

pub(crate) fn credentials_aad(tenant: &TenantId, account: &AccountId) -> Vec<u8> {
    format!("rollcall/v1/{tenant}/{account}/credentials").into_bytes()
}

fn open_credentials(state: &AppState, row: &AccountRow) -> Result<Credentials, ApiError> {
    decrypt_credentials(&state.vault, row).map_err(ApiError::internal)
}

/// The stored credentials of `row`, opened.
pub(crate) fn decrypt_credentials(
    vault: &rollcall_vault::Vault,
    row: &AccountRow,
) -> Result<Credentials, String> {
    let plain = vault
        .open(
            &row.credentials_key_id,
            &row.credentials_sealed,
            &credentials_aad(&row.tenant_id, &row.id),
        )
        .map_err(|e| e.to_string())?;
    Credentials::from_sealed(row.provider, &plain).map_err(|e| e.to_string())
}

pub fn view(state: &AppState, row: &AccountRow) -> AccountView {
    let credential_type = match open_credentials(state, row) {
        Ok(creds) => creds.kind(),
        Err(_) => "unreadable",
    };
    let capabilities = json!({
        "proxy": true,
        "activity_data": match row.provider {
            Provider::Mode => credential_type == "mode_token+discovery",
            Provider::Metabase => true,
        },
        "session_renewal": credential_type == "metabase_password",
    });
    AccountView {
        id: row.id.to_string(),
        provider: row.provider,
        label: row.label.clone(),
        tenant_ref: row.tenant_ref.clone(),
        config: serde_json::from_str(&row.config_json).unwrap_or(Value::Null),
        status: row.status.as_str(),
        status_detail: row.status_detail.clone(),
        credential_type,
        circuit: state
            .guards
            .circuit_state(row.id.as_str(), state.clock.now_millis()),
        created_at: rfc3339_from_millis(row.created_at),
        updated_at: rfc3339_from_millis(row.updated_at),
        last_sync: None,
        capabilities,
    }
}

/// The view with `last_sync`: the latest finished sync run and when the
/// snapshot was last replaced.
pub async fn view_with_sync(state: &AppState, row: &AccountRow) -> Result<AccountView, ApiError> {
    let mut out = view(state, row);
    let last = state.store.last_finished_sync(&row.id).await?;
    let good = state.store.last_good_sync_at(&row.id).await?;
    out.last_sync = last.map(|run| {
        json!({
            "sync_run_id": run.id,
            "status": run.status.as_str(),
            "finished_at": run.finished_at.map(rfc3339_from_millis),
            "error": run.error,
            "last_success_at": good.map(rfc3339_from_millis),
        })
    });
    Ok(out)
}

/// What it takes to link an account, parsed and checked for shape (not yet
/// against the vendor).
pub struct LinkInput {
    pub label: Option<String>,
    pub tenant_ref: Option<String>,
    pub config: AccountConfig,
    pub credentials: Credentials,
}

fn optional_text(
    map: &mut Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s)),
        Some(Value::String(_)) => Err(ApiError::invalid_request(format!(
            "{key} is longer than {max} characters"
        ))),
        Some(_) => Err(ApiError::invalid_request(format!("{key} must be a string"))),
    }
}

pub fn parse_link_input(body: Value) -> Result<LinkInput, ApiError> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::invalid_request("the body must be a JSON object"));
    };
    let provider: Provider = match map.remove("provider") {
        Some(Value::String(p)) => {
            p.parse()
                .map_err(|e: rollcall_core::provider::UnknownProvider| {
                    ApiError::invalid_request(e.to_string())
                })?
        }
        _ => {
            return Err(ApiError::invalid_request(
                "provider is required: `mode` or `metabase`",
            ));
        }
    };
    let label = optional_text(&mut map, "label", 200)?;
    let tenant_ref = optional_text(&mut map, "tenant_ref", 200)?;
    let config = AccountConfig::parse(provider, map.remove("config").unwrap_or(Value::Null))
        .map_err(ApiError::invalid_request)?;
    let credentials =
        Credentials::parse(provider, map.remove("credentials").unwrap_or(Value::Null))
            .map_err(ApiError::invalid_request)?;
    if let Some(unknown) = map.keys().next() {
        return Err(ApiError::invalid_request(format!(
            "`{unknown}` is not a known field"
        )));
    }
    Ok(LinkInput {
        label,
        tenant_ref,
        config,
        credentials,
    })
}

/// Maps a vendor failure to the contract's codes, with the vendor's answer.
pub fn connector_error(e: ConnectorError) -> ApiError {
    let message = e.to_string();
    let remote = e.remote().cloned();
    let code = match &e {
        ConnectorError::AuthRejected(_)
        | ConnectorError::LoginPaused { .. }
        | ConnectorError::NotFound { .. } => ErrorCode::ProviderAuthFailed,
        ConnectorError::Vendor(r) if r.status == 429 => ErrorCode::ProviderRateLimited,
        ConnectorError::Vendor(r) if matches!(r.status, 502..=504) => {
            ErrorCode::ProviderUnavailable
        }
        ConnectorError::Vendor(_) | ConnectorError::BadResponse(_) => ErrorCode::ProviderError,
        ConnectorError::Unreachable(_) | ConnectorError::CircuitOpen { .. } => {
            ErrorCode::ProviderUnavailable
        }
        ConnectorError::RateLimited { .. } => ErrorCode::ProviderRateLimited,
        ConnectorError::Request(_) => ErrorCode::InvalidRequest,
    };
    let mut error = ApiError::new(code, message);
    error.retry_after = e.retry_after_secs();
    if let Some(remote) = remote {
        error = error.with_remote(remote.status, remote.body);
    }
    error
}

fn session_key(row: &AccountRow) -> String {
    // New credentials (or a re-seal) never reuse an old session.
    let version = Sha256::digest(&row.credentials_sealed);
    format!(
        "{}#{:x}",
        row.id,
        u64::from_be_bytes(version[..8].try_into().unwrap_or([0; 8]))
    )
}

fn linked(
    state: &AppState,
    row: &AccountRow,
    config: AccountConfig,
    credentials: Credentials,
) -> LinkedAccount {
    linked_with(&state.vendors(), row, config, credentials)
}

/// The vendor machinery every call to a linked account shares.
#[derive(Clone, Debug)]
pub struct Vendors {
    pub http: rollcall_connectors::VendorHttp,
    pub guards: std::sync::Arc<rollcall_connectors::VendorGuards>,
    pub clock: rollcall_core::SharedClock,
}

pub(crate) fn linked_with(
    vendors: &Vendors,
    row: &AccountRow,
    config: AccountConfig,
    credentials: Credentials,
) -> LinkedAccount {
    LinkedAccount::new(
        &session_key(row),
        config,
        credentials,
        vendors.http.clone(),
        &vendors.guards,
        vendors.clock.clone(),
    )
}

/// How long a node keeps an account it read for calls to its vendor: the
/// proxy and live unified calls need it on every request. A change made
/// through this node is seen at once; one made on another node within this.
pub const ACCOUNT_CACHE_TTL_MS: i64 = 2_000;
const ACCOUNT_CACHE_MAX: usize = 10_000;

/// A per-node cache of what is known about accounts, entries living
/// `ACCOUNT_CACHE_TTL_MS`.
pub fn account_cache<V: Clone>() -> Recent<AccountId, V> {
    Recent::new(ACCOUNT_CACHE_TTL_MS, ACCOUNT_CACHE_MAX)
}

/// The tenant's account, ready to call. Another tenant's account is a 404.
pub async fn load_linked(
    state: &AppState,
    tenant: &TenantId,
    id: &str,
) -> Result<(AccountRow, LinkedAccount), ApiError> {
    let missing = || ApiError::not_found("no such integrated account");
    let id = AccountId::parse(id).map_err(|_| missing())?;
    let now = state.clock.now_millis();
    let (row, credentials) = match state.account_cache.get(&id, now) {
        Ok(row) if row.tenant_id == *tenant => {
            if row.status == AccountStatus::Disabled {
                return Err(account_disabled());
            }
            match decrypt_credentials(&state.vault, &row) {
                Ok(credentials) => (row, credentials),
                // Sealed under a key retired since (a rotation by another
                // process): read again.
                Err(_) => {
                    state.account_cache.forget(&id);
                    read_linked(state, tenant, &id, None, now).await?
                }
            }
        }
        Ok(_) => read_linked(state, tenant, &id, None, now).await?,
        Err(miss) => read_linked(state, tenant, &id, Some(miss), now).await?,
    };
    let config = stored_config(&row)?;
    let account = linked(state, &row, config, credentials);
    Ok((row, account))
}

fn account_disabled() -> ApiError {
    ApiError::new(ErrorCode::Conflict, "the integrated account is disabled")
}

/// The account from the store, with its credentials opened; kept in the
/// node's cache (after `miss`) if disabled or once its credentials open:
/// one that cannot be opened here is read from the store each time.
async fn read_linked(
    state: &AppState,
    tenant: &TenantId,
    id: &AccountId,
    miss: Option<Miss>,
    now: i64,
) -> Result<(AccountRow, Credentials), ApiError> {
    let row = state
        .store
        .account(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such integrated account"))?;
    let keep = |row: &AccountRow| {
        if let Some(miss) = miss {
            state.account_cache.put(miss, id.clone(), row.clone(), now);
        }
    };
    if row.status == AccountStatus::Disabled {
        keep(&row);
        return Err(account_disabled());
    }
    let credentials = open_credentials(state, &row)?;
    keep(&row);
    Ok((row, credentials))
}

fn stored_config(row: &AccountRow) -> Result<AccountConfig, ApiError> {
    parse_stored_config(row).map_err(ApiError::internal)
}

pub(crate) fn parse_stored_config(row: &AccountRow) -> Result<AccountConfig, String> {
    let value = serde_json::from_str(&row.config_json).map_err(|e| e.to_string())?;
    AccountConfig::parse(row.provider, value).map_err(|e| e.to_string())
}

async fn find(state: &AppState, tenant: &TenantId, id: &str) -> Result<AccountRow, ApiError> {
    let missing = || ApiError::not_found("no such integrated account");
    let id = AccountId::parse(id).map_err(|_| missing())?;
    state.store.account(tenant, &id).await?.ok_or_else(missing)
}

/// Records what the vendor just said about the stored credentials: a
/// rejection moves the account to `needs_reauth`, the next success back.
/// Only on the row as read: if the account changed since (new credentials
/// from another node, say, while this one used a cached copy), nothing is
/// recorded, and the copy is dropped.
pub async fn note_vendor_verdict(
    state: &AppState,
    row: &AccountRow,
    accepted: bool,
    detail: Option<String>,
) {
    let verdict_differs = if accepted {
        row.status == AccountStatus::NeedsReauth
    } else {
        row.status == AccountStatus::Active
    };
    record_vendor_verdict(
        state.store.as_ref(),
        state.clock.as_ref(),
        row,
        accepted,
        detail,
    )
    .await;
    if verdict_differs {
        state.account_cache.forget(&row.id);
    }
}

/// The same, for callers without an `AppState` (background jobs). A change
/// is also an `integrated_account.authentication_error` or `.reactivated`
/// event; true if the status changed.
pub(crate) async fn record_vendor_verdict(
    store: &dyn rollcall_store::Store,
    clock: &dyn rollcall_core::Clock,
    row: &AccountRow,
    accepted: bool,
    detail: Option<String>,
) -> bool {
    let (status, detail, event_type) = if accepted {
        if row.status != AccountStatus::NeedsReauth {
            return false;
        }
        (
            AccountStatus::Active,
            None,
            "integrated_account.reactivated",
        )
    } else {
        if row.status != AccountStatus::Active {
            return false;
        }
        (
            AccountStatus::NeedsReauth,
            detail,
            "integrated_account.authentication_error",
        )
    };
    let now = clock.now_millis();
    match store
        .set_account_status(row, status, detail.as_deref(), now)
        .await
    {
        Ok(true) => {
            tracing::warn!(account = %row.id, status = status.as_str(), "account status changed");
            let event = rollcall_jobs::events::new_event(
                &row.tenant_id,
                Some(&row.id),
                event_type,
                now,
                json!({ "status": status.as_str(), "detail": detail }),
            );
            if let Err(e) = store.append_events(&[event]).await {
                tracing::error!(account = %row.id, error = %e, "could not record the account event");
            }
            true
        }
        Ok(false) => false,
        Err(e) => {
            tracing::error!(account = %row.id, error = %e, "could not record the account status");
            false
        }
    }
}

/// Who links an account: an API key, or an end customer through a link token.
pub enum Linker<'a> {
    Key(&'a Caller),
    LinkToken {
        tenant: &'a TenantId,
        hash: [u8; 32],
    },
}

/// Checks the credentials with the vendor, then seals and saves the account.
pub async fn link_account(
    state: &AppState,
    linker: Linker<'_>,
    request_id: Option<&str>,
    input: LinkInput,
) -> Result<AccountRow, ApiError> {
    let (tenant, actor) = match &linker {
        Linker::Key(caller) => (&caller.tenant_id, caller.actor()),
        Linker::LinkToken { tenant, hash } => (*tenant, format!("link:{}", hex8(hash))),
    };
    let now = state.clock.now_millis();
    let id = AccountId::generate();
    let (key_id, sealed) = state
        .vault
        .seal(
            &input.credentials.to_sealable(),
            &credentials_aad(tenant, &id),
        )
        .map_err(ApiError::internal)?;
    let label = input.label.unwrap_or_else(|| default_label(&input.config));
    let row = AccountRow {
        id,
        tenant_id: tenant.clone(),
        provider: input.config.provider(),
        label,
        tenant_ref: input.tenant_ref,
        config_json: input.config.to_json().to_string(),
        credentials_key_id: key_id.to_string(),
        credentials_sealed: sealed,
        status: AccountStatus::Active,
        status_detail: None,
        created_at: now,
        updated_at: now,
    };
    if let Err(e) = linked(state, &row, input.config, input.credentials)
        .verify()
        .await
    {
        state.guards.sessions.forget(row.id.as_str());
        return Err(connector_error(e));
    }
    match &linker {
        Linker::Key(_) => state.store.insert_account(&row).await?,
        Linker::LinkToken { hash, .. } => {
            if !state.store.insert_account_via_link(&row, hash, now).await? {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    "this link has expired or was already used",
                ));
            }
        }
    }
    audit::record(
        state,
        AuditEntry {
            tenant,
            actor: &actor,
            action: "integrated_account.created",
            target_type: "integrated_account",
            target_id: row.id.as_str(),
            request_id,
            before: None,
            after: Some(audit_view(state, &row)),
            outcome: AuditOutcome::Success,
            detail: None,
        },
    )
    .await;
    Ok(row)
}

fn hex8(hash: &[u8; 32]) -> String {
    hash.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

fn default_label(config: &AccountConfig) -> String {
    match config {
        AccountConfig::Mode(c) => format!("Mode {}", c.workspace),
        AccountConfig::Metabase(c) => format!("Metabase {}", c.base_url.as_str()),
    }
}

/// What an audit row records of an account: everything the API shows.
fn audit_view(state: &AppState, row: &AccountRow) -> Value {
    serde_json::to_value(view(state, row)).unwrap_or(Value::Null)
}

/// Link a Mode or Metabase account. The credentials are checked with the
/// vendor first; nothing is saved if it refuses them.
#[utoipa::path(post, path = "/integrated-accounts", tag = "integrated accounts",
    request_body(content = Object, description = "`{provider, label?, tenant_ref?, config, credentials}` (contract section 2)"),
    responses((status = 201, body = AccountView), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 422, description = "provider_auth_failed", body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Extension(request_id): Extension<RequestId>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let input = parse_link_input(body)?;
    let row = link_account(&state, Linker::Key(&caller), Some(&request_id.0), input).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &row))).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<u32>,
    next_cursor: Option<String>,
    provider: Option<Provider>,
    tenant_ref: Option<String>,
}

/// The tenant's linked accounts, in pages.
#[utoipa::path(get, path = "/integrated-accounts", tag = "integrated accounts", params(ListParams),
    responses((status = 200, body = ListEnvelope<AccountView>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<ListEnvelope<AccountView>>, ApiError> {
    let limit = page_limit(params.limit)?;
    let filter = AccountFilter {
        provider: params.provider,
        tenant_ref: params.tenant_ref,
    };
    let query = format!(
        "integrated-accounts|{}|{:?}|{:?}",
        caller.tenant_id,
        filter.provider.map(Provider::as_str),
        filter.tenant_ref
    );
    let codec = CursorCodec::new(&state.vault);
    let after =
        match &params.next_cursor {
            Some(cursor) => Some(AccountId::parse(&codec.decode(cursor, &query)?).map_err(
                |_| ApiError::invalid_request("next_cursor is not valid for this query"),
            )?),
            None => None,
        };
    let rows = state
        .store
        .list_accounts(&caller.tenant_id, &filter, after.as_ref(), limit + 1)
        .await?;
    let (rows, next_cursor) = codec.page(rows, limit, &query, |r| r.id.to_string());
    let mut result: Vec<AccountView> = Vec::with_capacity(rows.len());
    for row in &rows {
        result.push(view_with_sync(&state, row).await?);
    }
    Ok(Json(ListEnvelope::new(result, next_cursor, false)))
}

/// One linked account.
#[utoipa::path(get, path = "/integrated-accounts/{id}", tag = "integrated accounts",
    params(("id" = String, Path)), responses((status = 200, body = AccountView), (status = 404, body = ErrorEnvelope)))]
async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AccountView>, ApiError> {
    let row = find(&state, &caller.tenant_id, &id).await?;
    Ok(Json(view_with_sync(&state, &row).await?))
}

/// Change `label`, `tenant_ref`, `config`, `credentials` (checked with the
/// vendor before saving) or `status` (`active`/`disabled`).
#[utoipa::path(patch, path = "/integrated-accounts/{id}", tag = "integrated accounts", params(("id" = String, Path)),
    request_body(content = Object, description = "any of `label`, `tenant_ref`, `config`, `credentials`, `status`"),
    responses((status = 200, body = AccountView), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<AccountView>, ApiError> {
    let Value::Object(mut patch) = body else {
        return Err(ApiError::invalid_request("the body must be a JSON object"));
    };
    let before = find(&state, &caller.tenant_id, &id).await?;
    let mut row = before.clone();

    if let Some(label) = optional_text(&mut patch, "label", 200)? {
        row.label = label;
    }
    if patch.contains_key("tenant_ref") {
        row.tenant_ref = optional_text(&mut patch, "tenant_ref", 200)?;
    }
    let config_patch = patch.remove("config");
    let credentials_patch = patch.remove("credentials");
    let status_patch = match patch.remove("status") {
        None => None,
        Some(Value::String(s)) if s == "active" => Some(AccountStatus::Active),
        Some(Value::String(s)) if s == "disabled" => Some(AccountStatus::Disabled),
        Some(_) => {
            return Err(ApiError::invalid_request(
                "status can be set to `active` or `disabled`",
            ));
        }
    };
    if let Some(unknown) = patch.keys().next() {
        return Err(ApiError::invalid_request(format!(
            "`{unknown}` is not a known field"
        )));
    }

    let config = match config_patch {
        None => stored_config(&before)?,
        Some(Value::Object(changes)) => {
            let Value::Object(mut merged) =
                serde_json::from_str(&before.config_json).map_err(ApiError::internal)?
            else {
                return Err(ApiError::internal("stored config is not an object"));
            };
            merged.extend(changes);
            AccountConfig::parse(row.provider, Value::Object(merged))
                .map_err(ApiError::invalid_request)?
        }
        Some(_) => return Err(ApiError::invalid_request("config must be an object")),
    };
    let new_credentials = credentials_patch
        .map(|c| Credentials::parse(row.provider, c).map_err(ApiError::invalid_request))
        .transpose()?;
    // Stored credentials never follow the account to another host: whoever
    // points it elsewhere must bring credentials for that host.
    if new_credentials.is_none()
        && config.base_url().origin() != stored_config(&before)?.base_url().origin()
    {
        return Err(ApiError::invalid_request(
            "changing base_url to another host needs new credentials in the same request",
        ));
    }
    let vendor_facing_change = new_credentials.is_some()
        || serde_json::from_str::<Value>(&row.config_json).ok() != Some(config.to_json());
    let reenabling =
        status_patch == Some(AccountStatus::Active) && before.status != AccountStatus::Active;

    if vendor_facing_change || reenabling {
        let credentials = match new_credentials {
            Some(creds) => {
                let (key_id, sealed) = state
                    .vault
                    .seal(
                        &creds.to_sealable(),
                        &credentials_aad(&row.tenant_id, &row.id),
                    )
                    .map_err(ApiError::internal)?;
                row.credentials_key_id = key_id.to_string();
                row.credentials_sealed = sealed;
                creds
            }
            None => open_credentials(&state, &before)?,
        };
        row.config_json = config.to_json().to_string();
        linked(&state, &row, config, credentials)
            .verify()
            .await
            .map_err(connector_error)?;
        // A disabled account stays disabled unless asked to be active.
        if before.status != AccountStatus::Disabled || reenabling {
            row.status = AccountStatus::Active;
            row.status_detail = None;
        }
    }
    if status_patch == Some(AccountStatus::Disabled) {
        row.status = AccountStatus::Disabled;
        row.status_detail = Some("disabled by the owner".into());
    }
    row.updated_at = state.clock.now_millis();
    let updated = state.store.update_account(&row, before.updated_at).await;
    state.account_cache.forget(&row.id);
    if !updated? {
        return Err(match state.store.account(&row.tenant_id, &row.id).await? {
            Some(_) => ApiError::new(
                ErrorCode::Conflict,
                "the account changed while this request ran; read it again and retry",
            ),
            None => ApiError::not_found("no such integrated account"),
        });
    }
    if vendor_facing_change {
        state.guards.sessions.forget(row.id.as_str());
    }
    if before.status == AccountStatus::NeedsReauth && row.status == AccountStatus::Active {
        let event = rollcall_jobs::events::new_event(
            &row.tenant_id,
            Some(&row.id),
            "integrated_account.reactivated",
            row.updated_at,
            json!({ "status": "active", "detail": "credentials replaced" }),
        );
        if let Err(e) = state.store.append_events(&[event]).await {
            tracing::error!(account = %row.id, error = %e, "could not record the account event");
        }
    }
    audit::record(
        &state,
        AuditEntry {
            tenant: &caller.tenant_id,
            actor: &caller.actor(),
            action: "integrated_account.updated",
            target_type: "integrated_account",
            target_id: row.id.as_str(),
            request_id: Some(&request_id.0),
            before: Some(audit_view(&state, &before)),
            after: Some(audit_view(&state, &row)),
            outcome: AuditOutcome::Success,
            detail: (before.credentials_sealed != row.credentials_sealed)
                .then(|| "credentials replaced".to_owned()),
        },
    )
    .await;
    Ok(Json(view_with_sync(&state, &row).await?))
}

/// Unlink an account (its stored credentials are deleted).
#[utoipa::path(delete, path = "/integrated-accounts/{id}", tag = "integrated accounts", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = find(&state, &caller.tenant_id, &id).await?;
    let deleted = state.store.delete_account(&caller.tenant_id, &row.id).await;
    state.account_cache.forget(&row.id);
    state.synced_accounts.forget(&row.id);
    if !deleted? {
        return Err(ApiError::not_found("no such integrated account"));
    }
    state.guards.sessions.forget(row.id.as_str());
    audit::record(
        &state,
        AuditEntry {
            tenant: &caller.tenant_id,
            actor: &caller.actor(),
            action: "integrated_account.deleted",
            target_type: "integrated_account",
            target_id: row.id.as_str(),
            request_id: Some(&request_id.0),
            before: Some(audit_view(&state, &row)),
            after: None,
            outcome: AuditOutcome::Success,
            detail: None,
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
