//! Webhooks (contract section 5): subscribe a URL to event types; the
//! signing secret is shown once, at creation. Deliveries are made by
//! `rollcall_jobs::webhooks` and listed here.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rollcall_core::clock::rfc3339_from_millis;
use rollcall_core::error::ErrorEnvelope;
use rollcall_jobs::webhooks::{generate_secret, parse_url, secret_aad};
use rollcall_store::{AuditOutcome, DeliveryRow, WebhookRow};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::audit::{self, AuditEntry};
use crate::auth::Caller;
use crate::cursor::{CursorCodec, ListEnvelope, page_limit};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::request_id::RequestId;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(fetch, remove))
        .routes(routes!(deliveries))
}

/// Every event type a webhook may subscribe to (`prefix.*` and `*` too).
pub const EVENT_TYPES: &[&str] = &[
    "user.created",
    "user.updated",
    "user.deactivated",
    "user.deleted",
    "group.created",
    "group.updated",
    "group.deleted",
    "group_membership.added",
    "group_membership.removed",
    "integrated_account.authentication_error",
    "integrated_account.reactivated",
    "sync_run.completed",
    "sync_run.failed",
    "access_grant.activated",
    "access_grant.expired",
    "access_grant.revoked",
];

const MAX_WEBHOOKS_PER_TENANT: u32 = 50;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: String,
    /// Only in the answer to `POST /webhooks`: sign-checking key, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn view(row: &WebhookRow, secret: Option<String>) -> WebhookView {
    WebhookView {
        id: row.id.clone(),
        url: row.url.clone(),
        events: row.events.clone(),
        created_at: rfc3339_from_millis(row.created_at),
        secret,
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateWebhook {
    /// Where deliveries are POSTed (http or https).
    url: String,
    /// Event types, `prefix.*` or `*`.
    events: Vec<String>,
}

fn parse_events(events: Vec<String>) -> Result<Vec<String>, ApiError> {
    if events.is_empty() {
        return Err(ApiError::invalid_request(
            "events must name at least one event type (or `*`)",
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for event in events {
        let event = event.trim().to_owned();
        let known = event == "*"
            || EVENT_TYPES.contains(&event.as_str())
            || event.strip_suffix(".*").is_some_and(|prefix| {
                EVENT_TYPES
                    .iter()
                    .any(|t| t.split_once('.').is_some_and(|(p, _)| p == prefix))
            });
        if !known {
            return Err(ApiError::invalid_request(format!(
                "`{event}` is not an event type; known ones are {}",
                EVENT_TYPES.join(", ")
            )));
        }
        if !out.contains(&event) {
            out.push(event);
        }
    }
    Ok(out)
}

/// Subscribe a URL to events. The answer carries the signing `secret`, the
/// only time it is shown.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses((status = 201, body = WebhookView), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Extension(request_id): Extension<RequestId>,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<Response, ApiError> {
    let url = parse_url(body.url.trim()).map_err(ApiError::invalid_request)?;
    if !state.settings.webhook_allow_private_networks
        && let Some(ip) = rollcall_jobs::webhooks::private_literal(&url)
    {
        return Err(ApiError::invalid_request(format!(
            "{ip} is on a private network; webhooks go to public addresses \
             (webhook_allow_private_networks allows others)"
        )));
    }
    let events = parse_events(body.events)?;
    let id = format!("wh_{}", uuid::Uuid::now_v7().simple());
    let secret = generate_secret().map_err(ApiError::internal)?;
    let (key_id, sealed) = state
        .vault
        .seal(secret.as_bytes(), &secret_aad(&caller.tenant_id, &id))
        .map_err(ApiError::internal)?;
    let row = WebhookRow {
        id,
        tenant_id: caller.tenant_id.clone(),
        url: url.to_string(),
        events,
        secret_key_id: key_id.as_str().to_owned(),
        secret_sealed: sealed,
        // Deliveries start with the events that happen from now on.
        last_event_seq: state.store.last_event_seq().await?,
        created_at: state.clock.now_millis(),
    };
    if !state
        .store
        .insert_webhook(&row, MAX_WEBHOOKS_PER_TENANT)
        .await?
    {
        return Err(ApiError::new(
            rollcall_core::ErrorCode::Conflict,
            format!("a tenant may have at most {MAX_WEBHOOKS_PER_TENANT} webhooks"),
        ));
    }
    audit::record(
        &state,
        AuditEntry {
            tenant: &caller.tenant_id,
            actor: &caller.actor(),
            action: "webhook.created",
            target_type: "webhook",
            target_id: &row.id,
            request_id: Some(&request_id.0),
            before: None,
            after: serde_json::to_value(view(&row, None)).ok(),
            outcome: AuditOutcome::Success,
            detail: None,
        },
    )
    .await;
    Ok((StatusCode::CREATED, Json(view(&row, Some(secret)))).into_response())
}

/// The tenant's webhooks (secrets are never shown again).
#[utoipa::path(get, path = "/webhooks", tag = "webhooks",
    responses((status = 200, body = ListEnvelope<WebhookView>), (status = 401, body = ErrorEnvelope)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ListEnvelope<WebhookView>>, ApiError> {
    let rows = state.store.list_webhooks(&caller.tenant_id).await?;
    let result = rows.iter().map(|r| view(r, None)).collect();
    Ok(Json(ListEnvelope::new(result, None, false)))
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> Result<WebhookRow, ApiError> {
    state
        .store
        .webhook(&caller.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such webhook"))
}

/// One webhook.
#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookView), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(view(&find(&state, &caller, &id).await?, None)))
}

/// Unsubscribe: no more deliveries, pending ones included.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = find(&state, &caller, &id).await?;
    if !state.store.delete_webhook(&caller.tenant_id, &id).await? {
        return Err(ApiError::not_found("no such webhook"));
    }
    audit::record(
        &state,
        AuditEntry {
            tenant: &caller.tenant_id,
            actor: &caller.actor(),
            action: "webhook.deleted",
            target_type: "webhook",
            target_id: &row.id,
            request_id: Some(&request_id.0),
            before: serde_json::to_value(view(&row, None)).ok(),
            after: None,
            outcome: AuditOutcome::Success,
            detail: None,
        },
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub event_id: String,
    /// `pending` (waiting for its next attempt), `succeeded` or `dead`
    /// (given up after the last attempt).
    pub status: String,
    pub attempts: i64,
    /// The receiver's last HTTP status, if it answered.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

fn delivery_view(row: &DeliveryRow) -> DeliveryView {
    DeliveryView {
        id: row.id.clone(),
        event_id: row.event_id.clone(),
        status: row.status.as_str().to_owned(),
        attempts: row.attempts,
        last_status: row.last_status,
        last_error: row.last_error.clone(),
        next_attempt_at: (row.status == rollcall_store::DeliveryStatus::Pending)
            .then(|| rfc3339_from_millis(row.next_attempt_at)),
        created_at: rfc3339_from_millis(row.created_at),
        delivered_at: row.delivered_at.map(rfc3339_from_millis),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeliveryParams {
    limit: Option<u32>,
    next_cursor: Option<String>,
}

/// A webhook's deliveries, newest first.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = String, Path), DeliveryParams),
    responses((status = 200, body = ListEnvelope<DeliveryView>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<DeliveryParams>,
) -> Result<Json<ListEnvelope<DeliveryView>>, ApiError> {
    let hook = find(&state, &caller, &id).await?;
    let limit = page_limit(p.limit)?;
    let key = json!(["deliveries", caller.tenant_id.as_str(), hook.id]).to_string();
    let codec = CursorCodec::new(&state.vault);
    let before = p
        .next_cursor
        .as_deref()
        .map(|c| codec.decode(c, &key))
        .transpose()?;
    let rows = state
        .store
        .list_deliveries(&hook.id, before.as_deref(), limit)
        .await?;
    let full = rows.len() == usize::try_from(limit).unwrap_or(usize::MAX);
    let next = full
        .then(|| rows.last().map(|r| codec.encode(&r.id, &key)))
        .flatten();
    let result = rows.iter().map(delivery_view).collect();
    Ok(Json(ListEnvelope::new(result, next, false)))
}
