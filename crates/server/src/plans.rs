//! Plans (contract section 6): `POST /plans` computes, from the account's
//! last good snapshot, every change a `group_sync` or `deprovision_inactive`
//! would make and why; `POST /plans/{id}/apply` makes them through the
//! connector, one by one, each audited, and reports each result. A plan is
//! refused as stale once a sync has changed the snapshot it was computed
//! from; applying a plan a second time replays its results and changes
//! nothing.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use rollcall_connectors::{Added, DirectoryError};
use rollcall_core::ErrorCode;
use rollcall_core::clock::rfc3339_from_millis;
use rollcall_core::error::ErrorEnvelope;
use rollcall_core::id::AccountId;
use rollcall_core::unified::{GroupMembership, User, UserStatus};
use rollcall_jobs::sync::Trigger;
use rollcall_store::{CachedUserFilter, PlanClaim, PlanRow, PlanStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::Caller;
use crate::cursor::{CursorCodec, ListEnvelope, page_limit};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::reports::{Activity, DAY_MS, ReportAccount, activity, check_days, walk_users};
use crate::request_id::RequestId;
use crate::unified::{Auditor, settle, target};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(fetch))
        .routes(routes!(apply))
}

/// An `applying` plan untouched this long lost its applier (a crash).
const ABANDONED_AFTER_MS: i64 = 10 * 60 * 1000;
/// The most changes one plan may carry.
const MAX_CHANGES: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    GroupSync,
    DeprovisionInactive,
}

impl PlanKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::GroupSync => "group_sync",
            Self::DeprovisionInactive => "deprovision_inactive",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlan {
    pub integrated_account_id: String,
    pub kind: PlanKind,
    /// `group_sync`: `{"groups":{"<group name or id>":["email", ...]}}`.
    /// `deprovision_inactive`: `{"days":N,"include_admins":false}`.
    #[schema(value_type = Object)]
    pub desired: Value,
    /// `group_sync`: also remove members the desired list leaves out.
    #[serde(default)]
    pub prune: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupSyncDesired {
    groups: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeprovisionDesired {
    days: u32,
    #[serde(default)]
    include_admins: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeAction {
    AddGroupMembership,
    RemoveGroupMembership,
    DeprovisionUser,
}

/// One change a plan makes, and why.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlanChange {
    pub index: usize,
    pub action: ChangeAction,
    pub user_id: String,
    pub email: Option<String>,
    pub group_id: Option<String>,
    pub group_name: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StoredChanges {
    changes: Vec<PlanChange>,
    warnings: Vec<String>,
}

/// What applying one change did.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeResult {
    pub index: usize,
    /// `succeeded`, `failed` or `skipped`.
    pub status: String,
    /// Why it was skipped, or that there was nothing to do.
    pub detail: Option<String>,
    /// The contract error, for a failure.
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlanView {
    pub id: String,
    pub integrated_account_id: String,
    pub kind: String,
    /// `planned`, `applying`, `applied` (every change succeeded or had
    /// nothing to do) or `failed` (some change failed; see `results`).
    pub status: String,
    #[schema(value_type = Object)]
    pub request: Value,
    pub changes: Vec<PlanChange>,
    /// What the plan could not act on (unknown emails or groups, ...).
    pub warnings: Vec<String>,
    pub results: Option<Vec<ChangeResult>>,
    pub created_by: String,
    pub created_at: String,
    pub applied_at: Option<String>,
}

fn view(row: &PlanRow) -> Result<PlanView, ApiError> {
    let corrupt =
        |e: serde_json::Error| ApiError::internal(format!("a stored plan is unreadable: {e}"));
    let stored: StoredChanges = serde_json::from_str(&row.changes_json).map_err(corrupt)?;
    let results = row
        .results_json
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(corrupt)?;
    Ok(PlanView {
        id: row.id.clone(),
        integrated_account_id: row.account_id.to_string(),
        kind: row.kind.clone(),
        status: row.status.as_str().to_owned(),
        request: serde_json::from_str(&row.request_json).map_err(corrupt)?,
        changes: stored.changes,
        warnings: stored.warnings,
        results,
        created_by: row.created_by.clone(),
        created_at: rfc3339_from_millis(row.created_at),
        applied_at: row.applied_at.map(rfc3339_from_millis),
    })
}

fn invalid_desired(kind: PlanKind, e: &serde_json::Error) -> ApiError {
    let shape = match kind {
        PlanKind::GroupSync => r#"{"groups":{"<group name or id>":["email", ...]}}"#,
        PlanKind::DeprovisionInactive => r#"{"days":N,"include_admins":false}"#,
    };
    ApiError::invalid_request(format!(
        "desired for {} must look like {shape}: {e}",
        kind.as_str()
    ))
}

/// Every snapshot user with `email` (lower-cased), active ones first.
async fn users_by_email(
    state: &AppState,
    account: &AccountId,
    email: &str,
) -> Result<Vec<User>, ApiError> {
    let filter = CachedUserFilter {
        email: Some(email.to_owned()),
        ..CachedUserFilter::default()
    };
    let rows = state.store.cached_users(account, &filter, None, 10).await?;
    let mut users = rows
        .iter()
        .map(|r| serde_json::from_str::<User>(&r.data_json))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::internal(format!("a cached user is unreadable: {e}")))?;
    users.sort_by_key(|u| u.status != UserStatus::Active);
    Ok(users)
}

async fn plan_group_sync(
    state: &AppState,
    account: &AccountId,
    desired: GroupSyncDesired,
    prune: bool,
) -> Result<StoredChanges, ApiError> {
    let mut out = StoredChanges::default();
    // Every group of the snapshot, to match names and ids.
    let mut groups = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = state
            .store
            .cached_groups(account, after.as_deref(), 1000)
            .await?;
        let full = page.len() == 1000;
        after = page.last().map(|g| g.group_id.clone());
        groups.extend(page);
        if !full {
            break;
        }
    }
    for (wanted, emails) in desired.groups {
        let key = wanted.trim();
        let by_id = groups.iter().find(|g| g.group_id == key);
        let found = by_id.or_else(|| {
            let mut named = groups.iter().filter(|g| g.name.eq_ignore_ascii_case(key));
            match (named.next(), named.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        });
        let Some(group) = found else {
            let named = groups
                .iter()
                .filter(|g| g.name.eq_ignore_ascii_case(key))
                .count();
            out.warnings.push(if named > 1 {
                format!("{named} groups are named `{key}`; name it by id instead")
            } else {
                format!("the account has no group `{key}` (groups are not created by plans)")
            });
            continue;
        };
        let mut members: BTreeSet<String> = BTreeSet::new();
        let mut position: Option<(String, String)> = None;
        loop {
            let page = state
                .store
                .cached_memberships(
                    account,
                    Some(&group.group_id),
                    None,
                    position.as_ref().map(|(g, u)| (g.as_str(), u.as_str())),
                    1000,
                )
                .await?;
            let full = page.len() == 1000;
            position = page.last().cloned();
            members.extend(page.into_iter().map(|(_, u)| u));
            if !full {
                break;
            }
        }
        let mut wanted_ids: BTreeSet<String> = BTreeSet::new();
        let mut seen_emails: BTreeSet<String> = BTreeSet::new();
        for email in emails {
            let email = email.trim().to_lowercase();
            if email.is_empty() || !seen_emails.insert(email.clone()) {
                continue;
            }
            let users = users_by_email(state, account, &email).await?;
            let Some(user) = users.first() else {
                out.warnings.push(format!(
                    "no user has the email {email}; not added to {}",
                    group.name
                ));
                continue;
            };
            wanted_ids.insert(user.id.clone());
            if members.contains(&user.id) {
                continue;
            }
            if user.status == UserStatus::Inactive {
                out.warnings.push(format!(
                    "{email} is deactivated; not added to {}",
                    group.name
                ));
                continue;
            }
            out.changes.push(PlanChange {
                index: 0,
                action: ChangeAction::AddGroupMembership,
                user_id: user.id.clone(),
                email: Some(email.clone()),
                group_id: Some(group.group_id.clone()),
                group_name: Some(group.name.clone()),
                reason: format!(
                    "{email} is in the desired members of {} but not a member",
                    group.name
                ),
            });
        }
        if prune {
            for member in members.difference(&wanted_ids) {
                let user = state.store.cached_user(account, member).await?;
                let email = user.and_then(|u| u.email);
                out.changes.push(PlanChange {
                    index: 0,
                    action: ChangeAction::RemoveGroupMembership,
                    user_id: member.clone(),
                    email: email.clone(),
                    group_id: Some(group.group_id.clone()),
                    group_name: Some(group.name.clone()),
                    reason: format!(
                        "{} is a member of {} but not in its desired members (prune)",
                        email.as_deref().unwrap_or(member),
                        group.name
                    ),
                });
            }
        }
    }
    Ok(out)
}

async fn plan_deprovision(
    state: &AppState,
    account: &ReportAccount,
    desired: &DeprovisionDesired,
) -> Result<StoredChanges, ApiError> {
    let now = state.clock.now_millis();
    let days = check_days(desired.days)?;
    let cutoff = now - i64::from(days) * DAY_MS;
    let roles = &state.settings.roles;
    let mut unknown = 0_usize;
    let mut admins = Vec::new();
    let active_only = CachedUserFilter {
        status: Some("active".into()),
        ..CachedUserFilter::default()
    };
    let mut out = StoredChanges::default();
    let mut after = None;
    loop {
        let (picked, next) = walk_users(
            state,
            std::slice::from_ref(account),
            |_| Some(active_only.clone()),
            |a, user| Some((activity(&user, a.snapshot.activity_exposed, cutoff), user)),
            after,
            1000,
        )
        .await?;
        for (verdict, user) in picked {
            let since = match verdict {
                Activity::Active => continue,
                Activity::Unknown => {
                    unknown += 1;
                    continue;
                }
                Activity::Inactive { since } => since,
            };
            let label = user.email.clone().unwrap_or_else(|| user.id.clone());
            if !desired.include_admins && roles.is_admin(account.provider, &user.roles) {
                admins.push(label);
                continue;
            }
            out.changes.push(PlanChange {
                index: 0,
                action: ChangeAction::DeprovisionUser,
                user_id: user.id.clone(),
                email: user.email.clone(),
                group_id: None,
                group_name: None,
                reason: format!(
                    "no activity since {} ({} days; the limit is {days})",
                    rfc3339_from_millis(since),
                    (now - since) / DAY_MS
                ),
            });
        }
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    if unknown > 0 {
        out.warnings.push(format!(
            "{unknown} active users were left alone: the vendor shows no activity for them"
        ));
    }
    if !admins.is_empty() {
        out.warnings.push(format!(
            "{} inactive admins were left alone (include_admins is false): {}",
            admins.len(),
            admins.join(", ")
        ));
    }
    Ok(out)
}

/// Compute the changes a group sync or an inactive-user deprovisioning
/// would make, from the account's last good snapshot.
#[utoipa::path(post, path = "/plans", tag = "plans", request_body = CreatePlan,
    responses((status = 201, body = PlanView), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, description = "the account has no snapshot yet", body = ErrorEnvelope)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreatePlan>,
) -> Result<(StatusCode, Json<PlanView>), ApiError> {
    let missing = || ApiError::not_found("no such integrated account");
    let id = AccountId::parse(&body.integrated_account_id).map_err(|_| missing())?;
    let row = state
        .store
        .account(&caller.tenant_id, &id)
        .await?
        .ok_or_else(missing)?;
    let Some(snapshot) = state.store.snapshot_state(&id).await? else {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "plans are computed from the account's last sync, and it has none yet; sync it first \
             (POST /integrated-accounts/{id}/sync)",
        ));
    };
    let mut stored = match body.kind {
        PlanKind::GroupSync => {
            let desired: GroupSyncDesired = serde_json::from_value(body.desired.clone())
                .map_err(|e| invalid_desired(body.kind, &e))?;
            plan_group_sync(&state, &id, desired, body.prune).await?
        }
        PlanKind::DeprovisionInactive => {
            let desired: DeprovisionDesired = serde_json::from_value(body.desired.clone())
                .map_err(|e| invalid_desired(body.kind, &e))?;
            let account = ReportAccount {
                id: id.clone(),
                provider: row.provider,
                label: row.label.clone(),
                snapshot,
            };
            plan_deprovision(&state, &account, &desired).await?
        }
    };
    if stored.changes.len() > MAX_CHANGES {
        return Err(ApiError::invalid_request(format!(
            "the plan would make {} changes; at most {MAX_CHANGES} fit in one plan",
            stored.changes.len()
        )));
    }
    for (index, change) in stored.changes.iter_mut().enumerate() {
        change.index = index;
    }
    let now = state.clock.now_millis();
    let plan = PlanRow {
        id: format!("plan_{}", uuid::Uuid::now_v7().simple()),
        tenant_id: caller.tenant_id.clone(),
        account_id: id,
        kind: body.kind.as_str().to_owned(),
        request_json: serde_json::to_string(&body).map_err(ApiError::internal)?,
        changes_json: serde_json::to_string(&stored).map_err(ApiError::internal)?,
        snapshot_version: snapshot.version,
        status: PlanStatus::Planned,
        results_json: None,
        created_by: caller.actor(),
        created_at: now,
        updated_at: now,
        applied_at: None,
    };
    state.store.insert_plan(&plan).await?;
    Ok((StatusCode::CREATED, Json(view(&plan)?)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<u32>,
    next_cursor: Option<String>,
}

/// The tenant's plans, newest first.
#[utoipa::path(get, path = "/plans", tag = "plans", params(ListParams),
    responses((status = 200, body = ListEnvelope<PlanView>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<ListEnvelope<PlanView>>, ApiError> {
    let limit = page_limit(p.limit)?;
    let query = format!("plans|{}", caller.tenant_id);
    let codec = CursorCodec::new(&state.vault);
    let before = p
        .next_cursor
        .as_deref()
        .map(|c| codec.decode(c, &query))
        .transpose()?;
    let rows = state
        .store
        .list_plans(&caller.tenant_id, before.as_deref(), limit + 1)
        .await?;
    let (rows, next) = codec.page(rows, limit, &query, |p| p.id.clone());
    let views = rows.iter().map(view).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(ListEnvelope::new(views, next, false)))
}

/// One plan, with its results once applied.
#[utoipa::path(get, path = "/plans/{id}", tag = "plans", params(("id" = String, Path)),
    responses((status = 200, body = PlanView), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn fetch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PlanView>, ApiError> {
    let row = state
        .store
        .plan(&caller.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such plan"))?;
    Ok(Json(view(&row)?))
}

fn result(index: usize, outcome: Result<Option<String>, ApiError>) -> ChangeResult {
    match outcome {
        Ok(detail) => ChangeResult {
            index,
            status: "succeeded".into(),
            detail,
            error: None,
        },
        Err(e) => ChangeResult {
            index,
            status: "failed".into(),
            detail: None,
            error: Some(serde_json::json!({
                "code": e.code.to_string(),
                "message": e.message,
                "remote": e.remote.map(|r| serde_json::json!({ "status": r.status, "body": r.body })),
            })),
        },
    }
}

/// Make a plan's changes through the connector, one by one, each audited.
/// A plan whose account's snapshot changed since it was computed is
/// refused (409); one already applied answers with its results again and
/// changes nothing.
#[utoipa::path(post, path = "/plans/{id}/apply", tag = "plans", params(("id" = String, Path)),
    responses((status = 200, body = PlanView), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, description = "stale, expired, or being applied", body = ErrorEnvelope)))]
async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Json<PlanView>, ApiError> {
    let now = state.clock.now_millis();
    let existing = state
        .store
        .plan(&caller.tenant_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such plan"))?;
    let ttl =
        i64::try_from(state.settings.plan_ttl_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
    if existing.status == PlanStatus::Planned && now.saturating_sub(existing.created_at) > ttl {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "the plan is older than {} hours; compute a new one",
                state.settings.plan_ttl_hours
            ),
        ));
    }
    let plan = match state
        .store
        .claim_plan(&caller.tenant_id, &id, now, now - ABANDONED_AFTER_MS)
        .await?
    {
        None => return Err(ApiError::not_found("no such plan")),
        Some(PlanClaim::Finished(row)) => return Ok(Json(view(&row)?)),
        Some(PlanClaim::Busy) => {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "the plan is being applied right now",
            ));
        }
        Some(PlanClaim::Stale { .. }) => {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "the plan is stale: a sync changed the account since it was computed; compute a \
                 new plan",
            ));
        }
        Some(PlanClaim::Claimed(row)) => row,
    };
    let stored: StoredChanges = serde_json::from_str(&plan.changes_json)
        .map_err(|e| ApiError::internal(format!("a stored plan is unreadable: {e}")))?;
    let t = match target(&state, &caller, plan.account_id.as_str()).await {
        Ok(t) => t,
        Err(e) => {
            // Nothing was tried: the plan can be applied later.
            state
                .store
                .finish_plan(&plan.id, PlanStatus::Planned, "null", plan.updated_at)
                .await?;
            return Err(e);
        }
    };
    let auditor = Auditor::new(&state, &caller, &request_id, &t);
    // Deprovisioning trusts activity only while the snapshot shows it (a
    // sync whose Discovery API read failed does not).
    let activity_known = state
        .store
        .snapshot_state(&t.row.id)
        .await?
        .is_some_and(|s| s.activity_exposed);
    let mut results = Vec::with_capacity(stored.changes.len());
    for change in &stored.changes {
        let group = change.group_id.as_deref().unwrap_or_default();
        let outcome = match change.action {
            ChangeAction::AddGroupMembership => {
                let result = t
                    .directory()
                    .add_group_membership(group, &change.user_id)
                    .await;
                let outcome = settle(&state, &t, result).await;
                let membership = GroupMembership::id_for(group, &change.user_id);
                match outcome {
                    Ok((_, Added::AlreadyPresent)) => Ok(Some("already a member".to_owned())),
                    other => {
                        let other = other.map(|(m, _)| m);
                        auditor
                            .record(
                                "group_membership.added",
                                "group_membership",
                                &membership,
                                &other,
                            )
                            .await;
                        other.map(|_| None)
                    }
                }
            }
            ChangeAction::RemoveGroupMembership => {
                let membership = GroupMembership::id_for(group, &change.user_id);
                match t.directory().remove_group_membership(&membership).await {
                    Err(DirectoryError::NotFound { .. }) => {
                        Ok(Some("already not a member".to_owned()))
                    }
                    result => {
                        let outcome = settle(&state, &t, result).await;
                        auditor
                            .record(
                                "group_membership.removed",
                                "group_membership",
                                &membership,
                                &outcome,
                            )
                            .await;
                        outcome.map(|()| None)
                    }
                }
            }
            ChangeAction::DeprovisionUser if !activity_known => {
                results.push(ChangeResult {
                    index: change.index,
                    status: "skipped".into(),
                    detail: Some(
                        "the last sync could not read activity; not deprovisioned blind".into(),
                    ),
                    error: None,
                });
                continue;
            }
            ChangeAction::DeprovisionUser => {
                // Someone may have come back since the plan was made.
                let current = state.store.cached_user(&t.row.id, &change.user_id).await?;
                let back = current
                    .and_then(|row| serde_json::from_str::<User>(&row.data_json).ok())
                    .and_then(|user| user.last_active_at)
                    .zip(change_cutoff(&plan))
                    .is_some_and(|(last, cutoff)| {
                        last.parse::<jiff::Timestamp>()
                            .is_ok_and(|t| t.as_millisecond() >= cutoff)
                    });
                if back {
                    results.push(ChangeResult {
                        index: change.index,
                        status: "skipped".into(),
                        detail: Some("active again since the plan was made".into()),
                        error: None,
                    });
                    continue;
                }
                let result = t.directory().delete_user(&change.user_id).await;
                let outcome = settle(&state, &t, result).await;
                auditor
                    .record("user.deleted", "user", &change.user_id, &outcome)
                    .await;
                outcome.map(|()| None)
            }
        };
        results.push(result(change.index, outcome));
        state
            .store
            .touch_plan(&plan.id, state.clock.now_millis())
            .await?;
    }
    let failed = results.iter().any(|r| r.status == "failed");
    let status = if failed {
        PlanStatus::Failed
    } else {
        PlanStatus::Applied
    };
    let results_json = serde_json::to_string(&results).map_err(ApiError::internal)?;
    let done = state.clock.now_millis();
    state
        .store
        .finish_plan(&plan.id, status, &results_json, done)
        .await?;
    // The snapshot catches up with what was just changed.
    if !stored.changes.is_empty()
        && let Err(e) = state
            .jobs
            .request_sync(
                &t.row.tenant_id,
                &t.row.id,
                &t.row.config_json,
                Trigger::Api,
            )
            .await
    {
        tracing::warn!(request_id = %request_id.0, error = %e, "could not queue a sync after applying a plan");
    }
    let row = state
        .store
        .plan(&caller.tenant_id, &plan.id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such plan"))?;
    Ok(Json(view(&row)?))
}

/// The activity cutoff a `deprovision_inactive` plan was computed with.
fn change_cutoff(plan: &PlanRow) -> Option<i64> {
    let request: CreatePlan = serde_json::from_str(&plan.request_json).ok()?;
    let days = request.desired.get("days")?.as_i64()?;
    Some(plan.created_at - days * DAY_MS)
}
