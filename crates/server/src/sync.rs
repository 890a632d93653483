//! Syncs (contract section 5): `POST /integrated-accounts/{id}/sync` queues
//! one (or finds the one already queued or running), `GET /sync-runs/{id}`
//! shows how it goes. The work itself is `rollcall_jobs::sync`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use rollcall_core::clock::rfc3339_from_millis;
use rollcall_core::error::ErrorEnvelope;
use rollcall_core::id::AccountId;
use rollcall_jobs::sync::Trigger;
use rollcall_store::{AccountStatus, SyncRunRow};
use serde::Serialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(fetch))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncStarted {
    pub sync_run_id: String,
    /// False when a sync of the account was already queued or running:
    /// `sync_run_id` is that one.
    pub queued: bool,
}

/// A sync run as `GET /sync-runs/{id}` shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncRunView {
    pub id: String,
    pub integrated_account_id: String,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
    /// `api` or `schedule`.
    pub trigger: String,
    /// While running: `starting`, `users`, `user_details`, `groups`, `memberships`.
    pub phase: Option<String>,
    /// While running: `{"phase","done","total"}`.
    #[schema(value_type = Option<Object>)]
    pub progress: Option<Value>,
    /// When done: users, groups, memberships, roles, events and what the
    /// vendor was asked for.
    #[schema(value_type = Option<Object>)]
    pub counts: Option<Value>,
    pub error: Option<String>,
    /// How many times a worker took it up (more than one after a worker died).
    pub attempts: i64,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
}

pub fn view(run: &SyncRunRow) -> SyncRunView {
    let json = |text: &Option<String>| text.as_deref().and_then(|t| serde_json::from_str(t).ok());
    SyncRunView {
        id: run.id.clone(),
        integrated_account_id: run.account_id.to_string(),
        status: run.status.as_str().to_owned(),
        trigger: run.trigger.clone(),
        phase: run.phase.clone(),
        progress: json(&run.progress_json),
        counts: json(&run.counts_json),
        error: run.error.clone(),
        attempts: run.attempts,
        created_at: rfc3339_from_millis(run.created_at),
        started_at: run.started_at.map(rfc3339_from_millis),
        finished_at: run.finished_at.map(rfc3339_from_millis),
        duration_ms: run
            .started_at
            .zip(run.finished_at)
            .map(|(s, f)| f.saturating_sub(s)),
    }
}

/// Sync the account now: 202 with the run to follow (or the one already
/// queued or running).
#[utoipa::path(post, path = "/integrated-accounts/{id}/sync", tag = "sync", params(("id" = String, Path)),
    responses((status = 202, body = SyncStarted), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, description = "the account is disabled", body = ErrorEnvelope)))]
async fn start(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<SyncStarted>), ApiError> {
    let missing = || ApiError::not_found("no such integrated account");
    let account = AccountId::parse(&id).map_err(|_| missing())?;
    let row = state
        .store
        .account(&caller.tenant_id, &account)
        .await?
        .ok_or_else(missing)?;
    if row.status == AccountStatus::Disabled {
        return Err(ApiError::new(
            rollcall_core::ErrorCode::Conflict,
            "the integrated account is disabled; enable it before syncing",
        ));
    }
    let (sync_run_id, queued) = state
        .jobs
        .request_sync(&row.tenant_id, &row.id, &row.config_json, Trigger::Api)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SyncStarted {
            sync_run_id,
            queued,
        }),
    ))
}

/// A sync run: status, phase and progress while it runs, counts and timings
/// or the error when it is done.
#[utoipa::path(get, path = "/sync-runs/{id}", tag = "sync", params(("id" = String, Path)),
    responses((status = 200, body = SyncRunView), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SyncRunView>, ApiError> {
    let run = state
        .store
        .sync_run(&caller.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such sync run"))?;
    Ok(Json(view(&run)))
}
