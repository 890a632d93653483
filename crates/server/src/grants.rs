//! Time-bound access grants (contract section 6): `POST /access-grants`
//! adds a group membership now, through the connector, and a job in the
//! store removes it at expiry (`rollcall_jobs::grants`); `DELETE` revokes
//! early. A membership the user already had is never removed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use rollcall_connectors::{Added, MembershipQuery, PageRequest};
use rollcall_core::ErrorCode;
use rollcall_core::error::ErrorEnvelope;
use rollcall_core::id::AccountId;
use rollcall_jobs::grants::{
    AccessGrant, EndError, Removal, end_membership, ending_audits, expiry_job, grant_event,
};
use rollcall_store::{GrantEnd, GrantFilter, GrantRow, GrantStatus};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::Caller;
use crate::cursor::{CursorCodec, ListEnvelope, page_limit};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::request_id::RequestId;
use crate::unified::{Auditor, settle, target};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(fetch, revoke))
}

/// The longest a grant may run: access meant to expire should not be
/// indistinguishable from permanent access.
const MAX_GRANT_MS: i64 = 366 * 24 * 60 * 60 * 1000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateGrant {
    integrated_account_id: String,
    user_id: String,
    group_id: String,
    /// RFC 3339; give this or `duration_seconds`.
    expires_at: Option<String>,
    duration_seconds: Option<u64>,
    /// Why the access is needed (kept with the grant and in its events).
    reason: Option<String>,
}

fn expiry(body: &CreateGrant, now: i64) -> Result<i64, ApiError> {
    let at = match (&body.expires_at, body.duration_seconds) {
        (Some(at), None) => at
            .parse::<jiff::Timestamp>()
            .map_err(|e| {
                ApiError::invalid_request(format!("expires_at `{at}` is not an RFC 3339 time: {e}"))
            })?
            .as_millisecond(),
        (None, Some(secs)) => {
            let ms = i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
            now.saturating_add(ms)
        }
        _ => {
            return Err(ApiError::invalid_request(
                "give exactly one of expires_at and duration_seconds",
            ));
        }
    };
    if at <= now {
        return Err(ApiError::invalid_request(
            "the grant must expire in the future",
        ));
    }
    if at - now > MAX_GRANT_MS {
        return Err(ApiError::invalid_request(
            "a grant may last at most 366 days",
        ));
    }
    Ok(at)
}

/// Add a user to a group until an expiry; the membership is removed then
/// (also across restarts), unless the user already had it.
#[utoipa::path(post, path = "/access-grants", tag = "access grants", request_body = CreateGrant,
    responses((status = 201, body = AccessGrant), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 422, description = "provider_auth_failed", body = ErrorEnvelope), (status = 429, description = "provider_rate_limited", body = ErrorEnvelope), (status = 502, description = "provider_error", body = ErrorEnvelope), (status = 503, description = "provider_unavailable", body = ErrorEnvelope)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Extension(request_id): Extension<RequestId>,
    ApiJson(body): ApiJson<CreateGrant>,
) -> Result<(StatusCode, Json<AccessGrant>), ApiError> {
    if body.user_id.trim().is_empty() || body.group_id.trim().is_empty() {
        return Err(ApiError::invalid_request(
            "user_id and group_id are required",
        ));
    }
    let reason = body
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    if reason.as_ref().is_some_and(|r| r.chars().count() > 1000) {
        return Err(ApiError::invalid_request(
            "reason is longer than 1000 characters",
        ));
    }
    let now = state.clock.now_millis();
    let expires_at = expiry(&body, now)?;
    let t = target(&state, &caller, &body.integrated_account_id).await?;
    // Whether the user is in the group already decides whether the grant
    // may ever remove the membership; it is asked before anything changes.
    // The membership's live grants are read first: one that ends after
    // this read still counts below, and one that ended before it has
    // finished removing the membership, which the vendor's answer shows.
    let live = state
        .store
        .live_grants_on(&t.row.id, &body.group_id, &body.user_id)
        .await?;
    let query = MembershipQuery {
        group_id: Some(body.group_id.clone()),
        user_id: Some(body.user_id.clone()),
    };
    let page = PageRequest {
        position: None,
        limit: 1,
        include_remote_data: false,
    };
    let result = t.directory().list_group_memberships(&query, &page).await;
    let present = settle(&state, &t, result)
        .await?
        .items
        .iter()
        .any(|m| m.group_id == body.group_id && m.user_id == body.user_id);
    // Already a member: either from before (then it stays for good) or
    // through another live grant (then it stays as long as that one says).
    let preexisting = present && live.first().is_none_or(|g| g.preexisting);
    let id = format!("ag_{}", uuid::Uuid::now_v7().simple());
    let job = expiry_job(&id, &caller.tenant_id, &t.row.id, expires_at, now);
    let grant = GrantRow {
        id,
        tenant_id: caller.tenant_id.clone(),
        account_id: t.row.id.clone(),
        user_id: body.user_id.clone(),
        group_id: body.group_id.clone(),
        reason,
        status: GrantStatus::Active,
        preexisting,
        created_by: caller.actor(),
        job_id: job.id.clone(),
        created_at: now,
        expires_at,
        ended_at: None,
        last_error: None,
        updated_at: now,
    };
    // Stored before the vendor is changed: whatever happens next, the
    // expiry job exists to end what the grant added (a membership that
    // never came is "already gone" then).
    state.store.insert_grant(&grant, &job, None).await?;
    // Held by other grants, the membership was there when asked. If one of
    // them has begun ending since, it may have removed the membership after
    // that answer, so it is added (idempotently). A grant that begins
    // ending from here on sees this one and keeps or puts back the
    // membership.
    let holder_ending = present && !preexisting && {
        let now_live = state
            .store
            .live_grants_on(&t.row.id, &body.group_id, &body.user_id)
            .await?;
        !live.iter().all(|held| {
            now_live
                .iter()
                .any(|g| g.id == held.id && g.status == GrantStatus::Active)
        })
    };
    if !present || holder_ending {
        let membership_id =
            rollcall_core::unified::GroupMembership::id_for(&body.group_id, &body.user_id);
        let result = t
            .directory()
            .add_group_membership(&body.group_id, &body.user_id)
            .await;
        match settle(&state, &t, result).await {
            Ok((_, Added::AlreadyPresent)) => {}
            outcome => {
                let outcome = outcome.map(|(m, _)| m);
                Auditor::new(&state, &caller, &request_id, &t)
                    .record(
                        "group_membership.added",
                        "group_membership",
                        &membership_id,
                        &outcome,
                    )
                    .await;
                if let Err(e) = outcome {
                    // Nothing was granted: the grant and its job go.
                    state.store.discard_grant(&grant.id).await?;
                    return Err(e);
                }
            }
        }
    }
    let event = grant_event(&grant, "access_grant.activated", now);
    state
        .store
        .append_events(std::slice::from_ref(&event))
        .await?;
    state.jobs.wake();
    Ok((StatusCode::CREATED, Json(AccessGrant::from_row(&grant))))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListParams {
    integrated_account_id: Option<String>,
    /// `active`, `expiring`, `expired` or `revoked`.
    status: Option<String>,
    limit: Option<u32>,
    next_cursor: Option<String>,
}

/// The tenant's grants, oldest first.
#[utoipa::path(get, path = "/access-grants", tag = "access grants", params(ListParams),
    responses((status = 200, body = ListEnvelope<AccessGrant>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<ListEnvelope<AccessGrant>>, ApiError> {
    let limit = page_limit(p.limit)?;
    let status = p
        .status
        .as_deref()
        .map(|s| {
            GrantStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_request(format!(
                    "status `{s}` is not one of active, expiring, expired, revoked"
                ))
            })
        })
        .transpose()?;
    let account_id = p
        .integrated_account_id
        .as_deref()
        .map(|a| AccountId::parse(a).map_err(|_| ApiError::not_found("no such integrated account")))
        .transpose()?;
    let query = format!(
        "grants|{}|{}|{}",
        caller.tenant_id,
        p.integrated_account_id.as_deref().unwrap_or(""),
        p.status.as_deref().unwrap_or("")
    );
    let codec = CursorCodec::new(&state.vault);
    let after = p
        .next_cursor
        .as_deref()
        .map(|c| codec.decode(c, &query))
        .transpose()?;
    if let Some(account) = &account_id
        && state
            .store
            .account(&caller.tenant_id, account)
            .await?
            .is_none()
    {
        return Err(ApiError::not_found("no such integrated account"));
    }
    let filter = GrantFilter { account_id, status };
    let rows = state
        .store
        .list_grants(&caller.tenant_id, &filter, after.as_deref(), limit + 1)
        .await?;
    let (rows, next) = codec.page(rows, limit, &query, |g| g.id.clone());
    Ok(Json(ListEnvelope::new(
        rows.iter().map(AccessGrant::from_row).collect(),
        next,
        false,
    )))
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> Result<GrantRow, ApiError> {
    state
        .store
        .grant(&caller.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such access grant"))
}

/// One grant.
#[utoipa::path(get, path = "/access-grants/{id}", tag = "access grants", params(("id" = String, Path)),
    responses((status = 200, body = AccessGrant), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AccessGrant>, ApiError> {
    Ok(Json(AccessGrant::from_row(
        &find(&state, &caller, &id).await?,
    )))
}

/// Revoke a grant now: its membership is removed (unless the user had it
/// before, or another active grant holds it). A grant that already ended is
/// returned as it is. If the vendor fails, the error is returned and the
/// grant stays `expiring` while its removal is retried in the background.
#[utoipa::path(delete, path = "/access-grants/{id}", tag = "access grants", params(("id" = String, Path)),
    responses((status = 200, body = AccessGrant), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, description = "provider_auth_failed", body = ErrorEnvelope), (status = 429, description = "provider_rate_limited", body = ErrorEnvelope), (status = 502, description = "provider_error", body = ErrorEnvelope), (status = 503, description = "provider_unavailable", body = ErrorEnvelope)))]
async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Json<AccessGrant>, ApiError> {
    let grant = find(&state, &caller, &id).await?;
    if !grant.status.is_live() {
        return Ok(Json(AccessGrant::from_row(&grant)));
    }
    let t = target(&state, &caller, grant.account_id.as_str()).await?;
    let directory = t.directory();
    let started = state.clock.now_millis();
    let removal = end_membership(&*state.store, &*directory, &grant, started, true).await;
    drop(directory);
    let now = state.clock.now_millis();
    let removal = match removal {
        Ok(removal) => removal,
        Err(EndError::Store(e)) => return Err(e.into()),
        Err(EndError::AfterRemoval { removed, error }) => {
            // The grant is ending: its job finishes the work from now on.
            state.jobs.wake();
            if removed {
                for row in ending_audits(
                    &grant,
                    &caller.actor(),
                    Some(&request_id.0),
                    Ok(&Removal::Removed),
                    now,
                ) {
                    state.store.append_audit(&row).await?;
                }
            }
            return Err(error.into());
        }
        Err(EndError::Vendor { step, error }) => {
            let error = match settle::<()>(&state, &t, Err(error)).await {
                Err(error) => error,
                Ok(()) => ApiError::new(ErrorCode::ProviderError, "the vendor refused the change"),
            };
            let detail = format!("{}: {}", error.code, error.message);
            // The grant is ending: its job retries from now on.
            state
                .store
                .note_grant_error(&grant.id, &detail, now)
                .await?;
            state.jobs.wake();
            let audits = ending_audits(
                &grant,
                &caller.actor(),
                Some(&request_id.0),
                Err((step, &detail)),
                now,
            );
            for row in audits {
                state.store.append_audit(&row).await?;
            }
            return Err(error);
        }
    };
    if removal == Removal::GrantEnded {
        // Expired or revoked meanwhile: show how it ended.
        return Ok(Json(AccessGrant::from_row(
            &find(&state, &caller, &id).await?,
        )));
    }
    for row in ending_audits(
        &grant,
        &caller.actor(),
        Some(&request_id.0),
        Ok(&removal),
        now,
    ) {
        state.store.append_audit(&row).await?;
    }
    let mut ended = grant.clone();
    ended.status = GrantStatus::Revoked;
    ended.ended_at = Some(now);
    ended.last_error = None;
    ended.updated_at = now;
    let event = grant_event(&ended, "access_grant.revoked", now);
    let end = GrantEnd {
        grant_id: &grant.id,
        to: GrantStatus::Revoked,
        event: &event,
        lease: None,
        now,
    };
    if state.store.end_grant(&end).await? {
        state.jobs.wake();
        return Ok(Json(AccessGrant::from_row(&ended)));
    }
    // It expired while this request ran: show how it ended.
    Ok(Json(AccessGrant::from_row(
        &find(&state, &caller, &id).await?,
    )))
}
