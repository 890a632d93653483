//! Time-bound access grants: the wire shape, and ending a grant's
//! membership at expiry (a job in the store, so it happens after a crash or
//! restart, on exactly one node) or on early revocation.
//!
//! A grant only removes what it added: a membership that was there before
//! the grant, or that another live grant still holds, stays.

use std::sync::Arc;
use std::time::Duration;

use rollcall_connectors::{Added, Directory, DirectoryError};
use rollcall_core::clock::rfc3339_from_millis;
use rollcall_core::id::{AccountId, TenantId};
use rollcall_core::unified::GroupMembership;
use rollcall_store::{
    AuditOutcome, AuditRow, GrantEnd, GrantRow, GrantStatus, JobRow, JobStatus, Lease, Store,
    StoreError,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::events::new_event;
use crate::runner::with_lease;
use crate::sync::describe;
use crate::{Inner, millis};

pub const JOB_KIND: &str = "grant_expiry";

/// The longest wait between tries at removing an expired grant's membership.
const RETRY_MAX: Duration = Duration::from_secs(300);
const RETRY_BASE: Duration = Duration::from_secs(5);

/// A grant as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccessGrant {
    pub id: String,
    pub integrated_account_id: String,
    pub user_id: String,
    pub group_id: String,
    pub reason: Option<String>,
    /// `active`, `expiring` (ending; a failed vendor call is being
    /// retried: see `last_error`), `expired` or `revoked`.
    pub status: String,
    /// The user was in the group before any grant put them there, so
    /// ending this grant leaves them there. False when another grant holds
    /// the membership: it then stays until the last of them ends.
    pub membership_preexisted: bool,
    /// Who asked for it (`key:<id>`).
    pub created_by: String,
    pub created_at: String,
    pub expires_at: String,
    pub ended_at: Option<String>,
    /// Why the last try at ending it failed (removing the membership, or
    /// putting it back for another grant).
    pub last_error: Option<String>,
}

impl AccessGrant {
    pub fn from_row(row: &GrantRow) -> Self {
        Self {
            id: row.id.clone(),
            integrated_account_id: row.account_id.as_str().to_owned(),
            user_id: row.user_id.clone(),
            group_id: row.group_id.clone(),
            reason: row.reason.clone(),
            status: row.status.as_str().to_owned(),
            membership_preexisted: row.preexisting,
            created_by: row.created_by.clone(),
            created_at: rfc3339_from_millis(row.created_at),
            expires_at: rfc3339_from_millis(row.expires_at),
            ended_at: row.ended_at.map(rfc3339_from_millis),
            last_error: row.last_error.clone(),
        }
    }
}

/// The event for a grant moving to `row.status` (`activated` for a new one).
pub fn grant_event(row: &GrantRow, event_type: &str, at: i64) -> rollcall_store::EventRow {
    new_event(
        &row.tenant_id,
        Some(&row.account_id),
        event_type,
        at,
        json!({
            "object_type": "access_grant",
            "object_id": row.id,
            "after": AccessGrant::from_row(row),
        }),
    )
}

#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    grant_id: String,
}

/// The job that ends a grant at its expiry; it retries until it succeeds.
pub fn expiry_job(
    grant_id: &str,
    tenant: &TenantId,
    account: &AccountId,
    expires_at: i64,
    now: i64,
) -> JobRow {
    JobRow {
        id: format!("job_{}", uuid::Uuid::now_v7().simple()),
        kind: JOB_KIND.to_owned(),
        tenant_id: Some(tenant.clone()),
        account_id: Some(account.clone()),
        payload_json: json!(Payload {
            grant_id: grant_id.to_owned()
        })
        .to_string(),
        status: JobStatus::Queued,
        run_at: expires_at,
        attempts: 0,
        max_attempts: i64::MAX,
        lease_owner: None,
        lease_until: None,
        last_error: None,
        created_at: now,
        updated_at: now,
    }
}

/// What ending a grant did to its membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// Already gone at the vendor (someone removed it by hand).
    AlreadyGone,
    /// Left in place, and why.
    Kept(&'static str),
    /// Put back for a grant made while this one was ending (which found
    /// the membership still there and counts on it); `removed` if this
    /// grant's removal had gone through first.
    Restored {
        removed: bool,
    },
    /// The grant had ended already (revoked or expired meanwhile).
    GrantEnded,
}

/// The vendor call that failed while ending a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Removing the membership: nothing changed.
    Remove,
    /// Putting it back for another grant (after removing it, if `removed`).
    Restore { removed: bool },
}

/// Ends `grant`'s hold on its membership and removes the membership,
/// unless it predates the grant or another active grant still holds it.
/// The grant is `expiring` from here until its end is recorded; `retry_now`
/// (a revocation) has its job retry at once should this removal fail.
///
/// A grant made on the same membership while this one is ending may have
/// found the membership still there: once removed, the membership is put
/// back if such a grant exists, and a retry after a failed try makes sure
/// it is there.
pub async fn end_membership(
    store: &dyn Store,
    directory: &dyn Directory,
    grant: &GrantRow,
    now: i64,
    retry_now: bool,
) -> Result<Removal, EndError> {
    let Some(ending) = store.begin_grant_end(&grant.id, now, retry_now).await? else {
        return Ok(Removal::GrantEnded);
    };
    if grant.preexisting {
        return Ok(Removal::Kept("the membership predates the grant"));
    }
    if ending.others_active {
        // An earlier try at ending this grant may have removed the
        // membership before the other grant came.
        if ending.was_expiring {
            return restore(directory, grant, false).await;
        }
        return Ok(Removal::Kept("another active grant holds the membership"));
    }
    let id = GroupMembership::id_for(&grant.group_id, &grant.user_id);
    let removed = match directory.remove_group_membership(&id).await {
        Ok(()) => true,
        Err(DirectoryError::NotFound { .. }) => false,
        Err(error) => {
            return Err(EndError::Vendor {
                step: Step::Remove,
                error,
            });
        }
    };
    let others = match store
        .live_grants_on(&grant.account_id, &grant.group_id, &grant.user_id)
        .await
    {
        Ok(others) => others,
        Err(error) => return Err(EndError::AfterRemoval { removed, error }),
    };
    if others
        .iter()
        .any(|g| g.id != grant.id && g.status == GrantStatus::Active)
    {
        return restore(directory, grant, removed).await;
    }
    Ok(if removed {
        Removal::Removed
    } else {
        Removal::AlreadyGone
    })
}

/// Adds `grant`'s membership back for another grant that holds it.
async fn restore(
    directory: &dyn Directory,
    grant: &GrantRow,
    removed: bool,
) -> Result<Removal, EndError> {
    match directory
        .add_group_membership(&grant.group_id, &grant.user_id)
        .await
    {
        Ok((_, Added::Created)) => Ok(Removal::Restored { removed }),
        Ok((_, Added::AlreadyPresent)) if removed => {
            // Someone else put it back first.
            Ok(Removal::Removed)
        }
        Ok((_, Added::AlreadyPresent)) => {
            Ok(Removal::Kept("another active grant holds the membership"))
        }
        Err(error) => Err(EndError::Vendor {
            step: Step::Restore { removed },
            error,
        }),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EndError {
    /// The store failed before anything changed at the vendor.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{error}")]
    Vendor { step: Step, error: DirectoryError },
    /// The store failed after the vendor removal (if `removed`), before
    /// the check for a grant that needs the membership back; a retry of
    /// the (now `expiring`) grant makes that check.
    #[error("{error}")]
    AfterRemoval { removed: bool, error: StoreError },
}

/// The audit rows for what ending a grant changed at the vendor, or tried
/// to: `outcome` is the removal, or the failed step and the vendor's
/// answer. Nothing changed, nothing audited.
pub fn ending_audits(
    grant: &GrantRow,
    actor: &str,
    request_id: Option<&str>,
    outcome: Result<&Removal, (Step, &str)>,
    at: i64,
) -> Vec<AuditRow> {
    // Per vendor change made or tried: `Some(failure)`, `None` for success.
    let (removal, addition) = match outcome {
        Ok(Removal::Removed) => (Some(None), None),
        Ok(Removal::Restored { removed }) => (removed.then_some(None), Some(None)),
        Ok(Removal::AlreadyGone | Removal::Kept(_) | Removal::GrantEnded) => (None, None),
        Err((Step::Remove, message)) => (Some(Some(message)), None),
        Err((Step::Restore { removed }, message)) => (removed.then_some(None), Some(Some(message))),
    };
    let row = |added, failure| membership_audit(grant, actor, request_id, added, failure, at);
    removal
        .map(|failure| row(false, failure))
        .into_iter()
        .chain(addition.map(|failure| row(true, failure)))
        .collect()
}

/// The audit row of the grant's membership `added` (else removed).
fn membership_audit(
    grant: &GrantRow,
    actor: &str,
    request_id: Option<&str>,
    added: bool,
    failure: Option<&str>,
    at: i64,
) -> AuditRow {
    let membership = GroupMembership::id_for(&grant.group_id, &grant.user_id);
    let (outcome, detail) = match failure {
        None => (AuditOutcome::Success, None),
        Some(message) => (AuditOutcome::Failure, Some(message.to_owned())),
    };
    let subject = json!({ "group_id": grant.group_id, "user_id": grant.user_id, "access_grant_id": grant.id })
        .to_string();
    let (action, before_json, after_json) = if added {
        ("group_membership.added", None, Some(subject))
    } else {
        ("group_membership.removed", Some(subject), None)
    };
    AuditRow {
        id: format!("au_{}", uuid::Uuid::now_v7().simple()),
        tenant_id: grant.tenant_id.clone(),
        at,
        actor: actor.to_owned(),
        action: action.to_owned(),
        target_type: "group_membership".to_owned(),
        target_id: format!("{}/{membership}", grant.account_id),
        request_id: request_id.map(str::to_owned),
        after_json,
        before_json,
        outcome,
        detail,
    }
}

fn retry_delay(attempts: i64) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    RETRY_BASE
        .saturating_mul(2_u32.saturating_pow(exponent))
        .min(RETRY_MAX)
}

/// Runs one claimed expiry job to its end.
pub(crate) async fn run(inner: &Arc<Inner>, job: &JobRow, lease: &Lease) {
    let work = expire(inner, job, lease);
    match with_lease(inner, lease, work).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(job = %job.id, error = %e, "grant expiry not recorded"),
        Err(_) => tracing::warn!(job = %job.id, "lease lost during a grant expiry"),
    }
}

async fn expire(inner: &Arc<Inner>, job: &JobRow, lease: &Lease) -> Result<(), StoreError> {
    let store = &*inner.store;
    let grant_id = serde_json::from_str::<Payload>(&job.payload_json).map(|p| p.grant_id);
    let (Ok(grant_id), Some(tenant)) = (grant_id, job.tenant_id.as_ref()) else {
        let now = inner.clock.now_millis();
        store
            .finish_job(
                lease,
                JobStatus::Failed,
                Some("malformed grant expiry job"),
                now,
            )
            .await?;
        return Ok(());
    };
    let grant = match store.grant(tenant, &grant_id).await? {
        Some(grant) if grant.status.is_live() => grant,
        // Revoked or ended already (or its account deleted): nothing to do.
        _ => {
            let now = inner.clock.now_millis();
            store.finish_job(lease, JobStatus::Done, None, now).await?;
            return Ok(());
        }
    };
    let actor = format!("system:access_grant:{}", grant.id);
    let started = inner.clock.now_millis();
    let outcome = match inner.opener.open(tenant, &grant.account_id).await {
        Ok((_, account)) => {
            let directory = account.directory();
            match end_membership(store, &*directory, &grant, started, false).await {
                Ok(removal) => Ok(removal),
                Err(EndError::Store(e)) => return Err(e),
                Err(EndError::AfterRemoval { removed, error }) => {
                    if removed {
                        let now = inner.clock.now_millis();
                        for row in ending_audits(&grant, &actor, None, Ok(&Removal::Removed), now) {
                            store.append_audit(&row).await?;
                        }
                    }
                    return Err(error);
                }
                Err(EndError::Vendor { step, error }) => Err((Some(step), describe(&error))),
            }
        }
        // The account could not be opened: nothing was tried at the vendor
        // (nothing to audit), and `last_error` says why.
        Err(e) => Err((None, e.0)),
    };
    let now = inner.clock.now_millis();
    let audited = match &outcome {
        Ok(removal) => Some(Ok(removal)),
        Err((Some(step), message)) => Some(Err((*step, message.as_str()))),
        Err((None, _)) => None,
    };
    for row in audited
        .into_iter()
        .flat_map(|outcome| ending_audits(&grant, &actor, None, outcome, now))
    {
        store.append_audit(&row).await?;
    }
    let outcome = outcome.map_err(|(_, message)| message);
    match outcome {
        Ok(Removal::GrantEnded) => {
            store.finish_job(lease, JobStatus::Done, None, now).await?;
        }
        Ok(removal) => {
            let mut ended = grant.clone();
            ended.status = GrantStatus::Expired;
            ended.ended_at = Some(now);
            ended.last_error = None;
            let event = grant_event(&ended, "access_grant.expired", now);
            let end = GrantEnd {
                grant_id: &grant.id,
                to: GrantStatus::Expired,
                event: &event,
                lease: Some(lease),
                now,
            };
            if store.end_grant(&end).await? {
                tracing::info!(grant = %grant.id, ?removal, "access grant expired");
                inner.wake_deliveries.notify_one();
            } else {
                // Revoked meanwhile (the revocation wrote its own event).
                store.finish_job(lease, JobStatus::Done, None, now).await?;
            }
        }
        Err(message) => {
            let delay = retry_delay(job.attempts);
            tracing::warn!(grant = %grant.id, error = %message, retry_in_secs = delay.as_secs(), "could not end an expired access grant; retrying");
            store.note_grant_error(&grant.id, &message, now).await?;
            store
                .retry_job(lease, now.saturating_add(millis(delay)), &message, now)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_ceiling() {
        assert_eq!(retry_delay(1), Duration::from_secs(5));
        assert_eq!(retry_delay(2), Duration::from_secs(10));
        assert_eq!(retry_delay(4), Duration::from_secs(40));
        assert_eq!(retry_delay(40), RETRY_MAX);
        assert_eq!(retry_delay(i64::MAX), RETRY_MAX);
    }
}
