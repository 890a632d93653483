//! Stored shapes and store calls for governance: time-bound access grants
//! (each with the job that ends it), plans and their results, and the
//! report reads across a tenant's snapshots. Times are epoch milliseconds.

use async_trait::async_trait;
use rollcall_core::id::{AccountId, TenantId};

use crate::StoreError;
use crate::sync::{CachedUserRow, EventRow, JobRow, Lease};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantStatus {
    /// The membership is granted.
    Active,
    /// Past its expiry, the removal not yet done (retrying; `last_error`
    /// says why).
    Expiring,
    Expired,
    Revoked,
}

impl GrantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expiring => "expiring",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "expiring" => Some(Self::Expiring),
            "expired" => Some(Self::Expired),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }

    /// Still holding the membership.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Active | Self::Expiring)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub id: String,
    pub tenant_id: TenantId,
    pub account_id: AccountId,
    pub user_id: String,
    pub group_id: String,
    pub reason: Option<String>,
    pub status: GrantStatus,
    /// The membership was there before this grant: ending it leaves it.
    pub preexisting: bool,
    /// The API key (`key:<id>`) that asked for it.
    pub created_by: String,
    /// The job that ends it at `expires_at`.
    pub job_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantFilter {
    pub account_id: Option<AccountId>,
    pub status: Option<GrantStatus>,
}

/// What `begin_grant_end` found under its lock on the membership's grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantEnding {
    /// Another grant on the same membership is `active`: it holds the
    /// membership.
    pub others_active: bool,
    /// The grant was `expiring` already: an earlier try at ending it ran,
    /// and may have removed the membership.
    pub was_expiring: bool,
}

/// How a grant ends: into which status, with which event, and (for the
/// expiry job) under which lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantEnd<'a> {
    pub grant_id: &'a str,
    pub to: GrantStatus,
    pub event: &'a EventRow,
    /// The expiry job's lease; the job ends with the grant.
    pub lease: Option<&'a Lease>,
    pub now: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanStatus {
    Planned,
    Applying,
    /// Applied, every change succeeding.
    Applied,
    /// Applied, some change failing (see the results).
    Failed,
}

impl PlanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Applying => "applying",
            Self::Applied => "applied",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "planned" => Some(Self::Planned),
            "applying" => Some(Self::Applying),
            "applied" => Some(Self::Applied),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRow {
    pub id: String,
    pub tenant_id: TenantId,
    pub account_id: AccountId,
    /// `group_sync` or `deprovision_inactive`.
    pub kind: String,
    /// What was asked for (the request body).
    pub request_json: String,
    /// The changes, as the API shows them.
    pub changes_json: String,
    /// The account's snapshot version the plan was computed from.
    pub snapshot_version: i64,
    pub status: PlanStatus,
    pub results_json: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub applied_at: Option<i64>,
}

/// What asking to apply a plan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanClaim {
    /// Now `applying`, for the caller to carry out.
    Claimed(PlanRow),
    /// The snapshot moved on since the plan was computed.
    Stale { current_version: i64 },
    /// Already applied (or failed): its stored results stand.
    Finished(PlanRow),
    /// Another request is applying it right now.
    Busy,
}

/// An account's last good snapshot, in brief.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotState {
    /// Bumped by every sync that changed a user, group or membership.
    pub version: i64,
    /// The snapshot carries users' activity.
    pub activity_exposed: bool,
    pub synced_at: i64,
}

#[async_trait]
pub trait GovernanceStore: Send + Sync {
    /// `None` until the account's first successful sync.
    async fn snapshot_state(
        &self,
        account: &AccountId,
    ) -> Result<Option<SnapshotState>, StoreError>;

    // ---- access grants ----

    /// Records a grant, the job that ends it and (if given) its event, in
    /// one transaction.
    async fn insert_grant(
        &self,
        grant: &GrantRow,
        job: &JobRow,
        event: Option<&EventRow>,
    ) -> Result<(), StoreError>;
    /// Forgets a grant that never took effect, and its queued job.
    async fn discard_grant(&self, id: &str) -> Result<(), StoreError>;
    async fn grant(&self, tenant: &TenantId, id: &str) -> Result<Option<GrantRow>, StoreError>;
    /// A tenant's grants in id (creation) order after `after`.
    async fn list_grants(
        &self,
        tenant: &TenantId,
        filter: &GrantFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<GrantRow>, StoreError>;
    /// The live grants on one membership, oldest first.
    async fn live_grants_on(
        &self,
        account: &AccountId,
        group_id: &str,
        user_id: &str,
    ) -> Result<Vec<GrantRow>, StoreError>;
    /// Ends a live grant, writes its event and, given a lease, ends the
    /// expiry job; revoking also cancels a job still queued. All in one
    /// transaction; false (nothing written) if the grant had already ended
    /// or the lease is lost.
    async fn end_grant(&self, end: &GrantEnd<'_>) -> Result<bool, StoreError>;
    /// Starts ending a live grant: it turns `expiring` (no longer holding
    /// its membership), and the answer says whether another grant on the
    /// same membership is still `active` (then the membership stays) and
    /// whether this one was ending already. Done under a lock on the
    /// membership's grants, so of two grants ending at once exactly the
    /// later one sees no other holder. `None` if the grant had already
    /// ended. `retry_now` moves its expiry job to `now`.
    async fn begin_grant_end(
        &self,
        id: &str,
        now: i64,
        retry_now: bool,
    ) -> Result<Option<GrantEnding>, StoreError>;
    /// Records why removing an ending grant's membership failed.
    async fn note_grant_error(&self, id: &str, error: &str, now: i64) -> Result<(), StoreError>;

    // ---- plans ----

    async fn insert_plan(&self, plan: &PlanRow) -> Result<(), StoreError>;
    async fn plan(&self, tenant: &TenantId, id: &str) -> Result<Option<PlanRow>, StoreError>;
    /// A tenant's plans, newest first, older than `before`.
    async fn list_plans(
        &self,
        tenant: &TenantId,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PlanRow>, StoreError>;
    /// Moves a plan to `applying` if its account's snapshot is still the
    /// one it was computed from. An `applying` plan last touched before
    /// `abandoned_before` (its applier died) may be claimed again.
    async fn claim_plan(
        &self,
        tenant: &TenantId,
        id: &str,
        now: i64,
        abandoned_before: i64,
    ) -> Result<Option<PlanClaim>, StoreError>;
    /// Marks an `applying` plan as still being worked on (so it is not
    /// taken for abandoned).
    async fn touch_plan(&self, id: &str, now: i64) -> Result<(), StoreError>;
    /// Records what applying did.
    async fn finish_plan(
        &self,
        id: &str,
        status: PlanStatus,
        results_json: &str,
        now: i64,
    ) -> Result<(), StoreError>;

    // ---- reports ----

    /// The next `limit` distinct emails, in order after `after`, among the
    /// tenant's snapshots.
    async fn report_emails(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
    /// Every snapshot user of the tenant with one of `emails`.
    async fn users_with_emails(
        &self,
        tenant: &TenantId,
        emails: &[String],
    ) -> Result<Vec<(AccountId, CachedUserRow)>, StoreError>;
}
