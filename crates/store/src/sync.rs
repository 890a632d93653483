//! Stored shapes and store calls for background work: jobs with leases,
//! sync runs, the snapshot of each account's directory, change events and
//! webhook deliveries. Times are epoch milliseconds.

use async_trait::async_trait;
use rollcall_core::id::{AccountId, TenantId};
use sha2::{Digest as _, Sha256};

use crate::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(Self::Queued),
            "running" => Some(Self::Running),
            "done" => Some(Self::Done),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// A unit of background work. `kind` says what runs it (`sync`, ...),
/// `payload_json` what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub id: String,
    pub kind: String,
    pub tenant_id: Option<TenantId>,
    pub account_id: Option<AccountId>,
    pub payload_json: String,
    pub status: JobStatus,
    pub run_at: i64,
    /// Claims so far, this one included once claimed.
    pub attempts: i64,
    pub max_attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Who holds a claimed job, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job_id: String,
    pub owner: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(Self::Queued),
            "running" => Some(Self::Running),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRunRow {
    pub id: String,
    pub tenant_id: TenantId,
    pub account_id: AccountId,
    /// `api` or `schedule`.
    pub trigger: String,
    pub status: SyncStatus,
    pub phase: Option<String>,
    pub progress_json: Option<String>,
    pub counts_json: Option<String>,
    pub error: Option<String>,
    pub attempts: i64,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// What asking for a sync found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    Created,
    /// A sync of that account is already queued or running: this one.
    AlreadyQueued(String),
}

/// An account the scheduler should sync now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueAccount {
    pub tenant_id: TenantId,
    pub account_id: AccountId,
    pub config_json: String,
}

/// A stored user: the filterable columns and the unified user as JSON
/// (without groups, which come from memberships).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedUserRow {
    pub user_id: String,
    pub email: Option<String>,
    pub status: String,
    pub is_admin: bool,
    pub data_json: String,
}

impl CachedUserRow {
    /// What is stored beside the row to tell it unchanged without reading
    /// it back: the first 8 bytes of the SHA-256 of its JSON (the same
    /// serializer makes the same text for the same user).
    pub fn content_hash(&self) -> i64 {
        first_8(&Sha256::digest(self.data_json.as_bytes()))
    }

    /// The row with its `content_hash`, as a `SyncCommit` stores it.
    pub fn with_content_hash(self) -> (Self, i64) {
        let hash = self.content_hash();
        (self, hash)
    }
}

/// What is stored beside an account's snapshot to tell its membership list
/// unchanged without reading it back: the first 8 bytes of the SHA-256 of
/// the `(group_id, user_id)` pairs, which must be sorted and each once.
pub fn memberships_hash(sorted_pairs: &[(String, String)]) -> i64 {
    let mut sha = Sha256::new();
    for (group, user) in sorted_pairs {
        // Ids cannot hold a NUL, so the pairs read back one way only.
        sha.update(group.as_bytes());
        sha.update([0]);
        sha.update(user.as_bytes());
        sha.update([0]);
    }
    first_8(&sha.finalize())
}

fn first_8(digest: &[u8]) -> i64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_le_bytes(first)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedGroupRow {
    pub group_id: String,
    pub name: String,
    pub data_json: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedRoleRow {
    pub role_id: String,
    pub data_json: String,
}

/// Narrows a cached user listing; `None` switches a filter off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CachedUserFilter {
    pub status: Option<String>,
    /// Lower-cased, exact.
    pub email: Option<String>,
    pub is_admin: Option<bool>,
    pub group_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Assigned by the store in commit order; 0 before insertion.
    pub seq: i64,
    pub id: String,
    pub tenant_id: TenantId,
    pub account_id: Option<AccountId>,
    pub event_type: String,
    pub occurred_at: i64,
    /// `{"object_type","object_id","before","after",...}`.
    pub data_json: String,
}

/// Everything one successful sync writes, in one transaction: the snapshot
/// changes, the events they make, the run's result and the job's end. If
/// the lease is no longer held nothing is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncCommit {
    pub lease: Option<Lease>,
    pub run_id: String,
    pub account_id: Option<AccountId>,
    /// Each with the hash stored beside it: its `content_hash`, or a
    /// fingerprint of the vendor's record that tells it unchanged sooner.
    pub upsert_users: Vec<(CachedUserRow, i64)>,
    pub delete_users: Vec<String>,
    pub upsert_groups: Vec<CachedGroupRow>,
    pub delete_groups: Vec<String>,
    /// `(group_id, user_id)`.
    pub add_memberships: Vec<(String, String)>,
    pub remove_memberships: Vec<(String, String)>,
    /// Replaces every role.
    pub roles: Vec<CachedRoleRow>,
    pub events: Vec<EventRow>,
    pub counts_json: String,
    pub finished_at: i64,
    /// Every user's details were read afresh (none reused from the last
    /// snapshot).
    pub full_read: bool,
    /// The snapshot carries users' last activity (see
    /// `DirectorySnapshot::activity_exposed`).
    pub activity_exposed: bool,
    /// A user, group or membership changed in a way that makes an event
    /// (activity times alone do not): plans computed before are stale.
    pub snapshot_changed: bool,
    /// `memberships_hash` of the membership list now stored.
    pub memberships_hash: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    pub id: String,
    pub tenant_id: TenantId,
    pub url: String,
    /// Event types, or patterns like `user.*` and `*`.
    pub events: Vec<String>,
    pub secret_key_id: String,
    pub secret_sealed: Vec<u8>,
    pub last_event_seq: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "succeeded" => Some(Self::Succeeded),
            "dead" => Some(Self::Dead),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: String,
    pub webhook_id: String,
    pub event_seq: i64,
    pub event_id: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub delivered_at: Option<i64>,
}

/// A claimed delivery with all it needs to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub delivery: DeliveryRow,
    pub webhook: WebhookRow,
    pub event: EventRow,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Succeeded {
        status: i64,
    },
    /// Try again at `retry_at`, or give up (`None`: dead-lettered).
    Failed {
        status: Option<i64>,
        error: String,
        retry_at: Option<i64>,
    },
}

#[async_trait]
pub trait SyncStore: Send + Sync {
    // ---- sync runs and jobs ----
    /// Records a queued sync run and its job, and moves the account's next
    /// scheduled sync to `next_sync_at`, unless a sync of that account is
    /// already queued or running.
    async fn enqueue_sync(
        &self,
        run: &SyncRunRow,
        job: &JobRow,
        next_sync_at: i64,
    ) -> Result<Enqueued, StoreError>;
    async fn sync_run(&self, tenant: &TenantId, id: &str)
    -> Result<Option<SyncRunRow>, StoreError>;
    /// The account's most recent finished sync run.
    async fn last_finished_sync(
        &self,
        account: &AccountId,
    ) -> Result<Option<SyncRunRow>, StoreError>;
    /// When the account's snapshot was last replaced, if ever.
    async fn last_good_sync_at(&self, account: &AccountId) -> Result<Option<i64>, StoreError>;
    /// When a sync last read every user in full (see `SyncCommit::full_read`).
    async fn last_full_read_at(&self, account: &AccountId) -> Result<Option<i64>, StoreError>;
    /// The `memberships_hash` stored with the account's snapshot, if any.
    async fn memberships_hash(&self, account: &AccountId) -> Result<Option<i64>, StoreError>;
    /// Active accounts whose next sync is due (or never synced), with no
    /// sync queued or running.
    async fn due_accounts(&self, now: i64, limit: u32) -> Result<Vec<DueAccount>, StoreError>;

    async fn insert_job(&self, job: &JobRow) -> Result<(), StoreError>;
    /// Claims the oldest job that is due, or whose lease ran out, for
    /// `owner` until `lease_until`; attempts goes up by one.
    async fn claim_job(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<JobRow>, StoreError>;
    /// Extends a held lease; false if it is no longer held.
    async fn renew_lease(&self, lease: &Lease, lease_until: i64) -> Result<bool, StoreError>;
    /// Ends a held job (`done` or `failed`); false if the lease was lost.
    async fn finish_job(
        &self,
        lease: &Lease,
        status: JobStatus,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Puts a held job back in the queue for `run_at`.
    async fn retry_job(
        &self,
        lease: &Lease,
        run_at: i64,
        error: &str,
        now: i64,
    ) -> Result<bool, StoreError>;
    async fn job(&self, id: &str) -> Result<Option<JobRow>, StoreError>;
    /// Forgets finished jobs that ended before `jobs_before`, and delivered
    /// or dead webhook deliveries last touched before `deliveries_before`
    /// (sync runs and events are history and stay). Rows removed.
    async fn prune_finished(
        &self,
        jobs_before: i64,
        deliveries_before: i64,
    ) -> Result<u64, StoreError>;

    /// Marks a run started (its attempt number) and sets its phase.
    async fn start_sync_run(&self, id: &str, attempts: i64, now: i64) -> Result<(), StoreError>;
    async fn sync_progress(
        &self,
        id: &str,
        phase: &str,
        progress_json: &str,
    ) -> Result<(), StoreError>;
    /// Ends a sync run in failure, with its event, and the job with it, in
    /// one transaction; the snapshot is left as it was.
    async fn fail_sync(
        &self,
        lease: Option<&Lease>,
        run_id: &str,
        error: &str,
        event: &EventRow,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Applies a sync's result atomically; false (nothing written) if the
    /// lease is no longer held.
    async fn commit_sync(&self, commit: &SyncCommit) -> Result<bool, StoreError>;
    /// Moves a finished run's end to `at` (the commit's own end, which the
    /// commit cannot know while it writes).
    async fn stamp_sync_finished(&self, id: &str, at: i64) -> Result<(), StoreError>;

    // ---- the snapshot ----

    async fn snapshot_users(&self, account: &AccountId) -> Result<Vec<CachedUserRow>, StoreError>;
    /// Every stored user's id and content hash (`None` for rows stored
    /// before hashes were kept): what a sync needs to find the changed ones.
    async fn snapshot_user_hashes(
        &self,
        account: &AccountId,
    ) -> Result<Vec<(String, Option<i64>)>, StoreError>;
    /// The stored users among `ids` (unknown ids are skipped).
    async fn snapshot_users_by_id(
        &self,
        account: &AccountId,
        ids: &[String],
    ) -> Result<Vec<CachedUserRow>, StoreError>;
    async fn snapshot_groups(&self, account: &AccountId)
    -> Result<Vec<CachedGroupRow>, StoreError>;
    async fn snapshot_memberships(
        &self,
        account: &AccountId,
    ) -> Result<Vec<(String, String)>, StoreError>;
    async fn snapshot_roles(&self, account: &AccountId) -> Result<Vec<CachedRoleRow>, StoreError>;

    /// Users in id order after `after`, at most `limit`, by keyset.
    async fn cached_users(
        &self,
        account: &AccountId,
        filter: &CachedUserFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CachedUserRow>, StoreError>;
    async fn cached_user(
        &self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<CachedUserRow>, StoreError>;
    /// `(user_id, group_id, group_name)` for each of `users`' memberships.
    async fn cached_user_groups(
        &self,
        account: &AccountId,
        users: &[String],
    ) -> Result<Vec<(String, String, String)>, StoreError>;
    async fn cached_groups(
        &self,
        account: &AccountId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CachedGroupRow>, StoreError>;
    async fn cached_group(
        &self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<CachedGroupRow>, StoreError>;
    /// Memberships in (group, user) order after `after`.
    async fn cached_memberships(
        &self,
        account: &AccountId,
        group_id: Option<&str>,
        user_id: Option<&str>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError>;

    // ---- events ----

    async fn append_events(&self, events: &[EventRow]) -> Result<(), StoreError>;
    /// A tenant's events after `after_seq`, in order.
    async fn list_events(
        &self,
        tenant: &TenantId,
        account: Option<&AccountId>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<EventRow>, StoreError>;

    // ---- webhooks ----

    /// Adds a webhook unless its tenant already has `max_per_tenant`
    /// (checked in the same statement); true if added.
    async fn insert_webhook(
        &self,
        webhook: &WebhookRow,
        max_per_tenant: u32,
    ) -> Result<bool, StoreError>;
    async fn webhook(&self, tenant: &TenantId, id: &str) -> Result<Option<WebhookRow>, StoreError>;
    async fn list_webhooks(&self, tenant: &TenantId) -> Result<Vec<WebhookRow>, StoreError>;
    async fn delete_webhook(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError>;
    /// Every tenant's webhooks, for key rotation.
    async fn all_webhooks(&self) -> Result<Vec<WebhookRow>, StoreError>;
    /// Replaces a webhook's sealed secret only if it is still `expected`'s;
    /// true if replaced.
    async fn reseal_webhook_secret(
        &self,
        expected: &WebhookRow,
        key_id: &str,
        sealed: &[u8],
    ) -> Result<bool, StoreError>;
    /// The newest event's seq (0 with none), where a new webhook starts.
    async fn last_event_seq(&self) -> Result<i64, StoreError>;
    /// Queues a delivery of every new event each webhook wants, moving its
    /// `last_event_seq` in the same transaction; at most `batch` events per
    /// webhook per call. The number of deliveries queued.
    async fn queue_deliveries(&self, now: i64, batch: u32) -> Result<u64, StoreError>;
    /// Claims pending deliveries that are due until `lease_until`.
    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError>;
    /// Records an attempt's end, only if the delivery is still pending
    /// under the claim that made it (`leased_until`, as claimed): a late
    /// answer to an attempt whose lease ran out changes nothing. True if
    /// recorded.
    async fn finish_delivery(
        &self,
        id: &str,
        leased_until: i64,
        outcome: &DeliveryOutcome,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// A webhook's deliveries, newest first, older than `before`.
    async fn list_deliveries(
        &self,
        webhook_id: &str,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError>;
}

/// Whether a webhook subscribed to `patterns` wants `event_type`: exact
/// names, `prefix.*` and `*`.
pub fn event_matches(patterns: &[String], event_type: &str) -> bool {
    patterns.iter().any(|p| {
        p == "*"
            || p == event_type
            || p.strip_suffix(".*").is_some_and(|prefix| {
                event_type
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.'))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_patterns() {
        let p = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(event_matches(&p(&["*"]), "user.created"));
        assert!(event_matches(&p(&["user.*"]), "user.created"));
        assert!(!event_matches(&p(&["user.*"]), "users.created"));
        assert!(event_matches(
            &p(&["group_membership.added"]),
            "group_membership.added"
        ));
        assert!(!event_matches(&p(&["group.created"]), "group.deleted"));
        assert!(!event_matches(&[], "group.deleted"));
    }
}
