//! Rollcall's persistence. [`Store`] is the one interface the rest of the
//! program sees; each database has its own implementation and its own
//! migrations (`migrations/<backend>/`), and [`conformance`] holds the suite
//! every implementation must pass.
//!
//! Rows here are *stored* shapes, kept apart from the API's wire types and
//! the vendors' payloads; conversions live with the code that needs them.

// Test code shipped in the library so every backend's tests can run it;
// a failed expectation there is a failing test, not a crash in production.
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
pub mod conformance;
pub mod copy;
pub mod governance;
pub mod postgres;
mod postgres_governance;
mod postgres_store;
mod postgres_sync;
pub mod rows;
pub mod sqlite;
mod sqlite_governance;
mod sqlite_sync;
pub mod sync;

use std::sync::Arc;

use async_trait::async_trait;
use rollcall_core::id::{AccountId, ApiKeyId, TenantId};

pub use governance::{
    GovernanceStore, GrantEnd, GrantEnding, GrantFilter, GrantRow, GrantStatus, PlanClaim, PlanRow,
    PlanStatus, SnapshotState,
};
pub use postgres::PgStore;
pub use rows::{
    AccountFilter, AccountRow, AccountStatus, ApiKeyRow, AuditFilter, AuditOutcome, AuditRow,
    IdempotencyClaim, LinkTokenRow, SealedCredential, TenantRow,
};
pub use sqlite::SqliteStore;
pub use sync::{
    CachedGroupRow, CachedRoleRow, CachedUserFilter, CachedUserRow, DeliveryOutcome, DeliveryRow,
    DeliveryStatus, DueAccount, DueDelivery, Enqueued, EventRow, JobRow, JobStatus, Lease,
    SyncCommit, SyncRunRow, SyncStatus, SyncStore, WebhookRow, memberships_hash,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL `{0}` (expected sqlite://PATH or postgres://...)")]
    UnsupportedUrl(String),
    #[error("a {what} with that {field} already exists")]
    Conflict {
        what: &'static str,
        field: &'static str,
    },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

#[async_trait]
pub trait Store: SyncStore + GovernanceStore + Send + Sync + std::fmt::Debug + 'static {
    fn backend(&self) -> Backend;

    /// Applies pending migrations; safe to call on every start.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;

    async fn insert_tenant(&self, tenant: &TenantRow) -> Result<(), StoreError>;
    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRow>, StoreError>;
    async fn tenant_by_name(&self, name: &str) -> Result<Option<TenantRow>, StoreError>;

    async fn insert_api_key(&self, key: &ApiKeyRow) -> Result<(), StoreError>;
    async fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKeyRow>, StoreError>;

    async fn insert_account(&self, account: &AccountRow) -> Result<(), StoreError>;
    /// The account if it exists *and* belongs to `tenant`.
    async fn account(
        &self,
        tenant: &TenantId,
        id: &AccountId,
    ) -> Result<Option<AccountRow>, StoreError>;
    /// A tenant's accounts in id order, after `after`, at most `limit`.
    async fn list_accounts(
        &self,
        tenant: &TenantId,
        filter: &AccountFilter,
        after: Option<&AccountId>,
        limit: u32,
    ) -> Result<Vec<AccountRow>, StoreError>;
    /// Replaces every mutable column, only if the stored row still has
    /// `expected_updated_at` (a concurrent change wins); false otherwise or
    /// if there is no such account for the tenant.
    async fn update_account(
        &self,
        account: &AccountRow,
        expected_updated_at: i64,
    ) -> Result<bool, StoreError>;
    /// Moves the account `read` from its status to `status`, only if the
    /// stored row is still as it was read: same status, last changed at the
    /// same `updated_at` (a concurrent change, such as the owner disabling
    /// the account or giving it new credentials, wins); true if it changed.
    async fn set_account_status(
        &self,
        read: &AccountRow,
        status: AccountStatus,
        detail: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError>;
    async fn delete_account(&self, tenant: &TenantId, id: &AccountId) -> Result<bool, StoreError>;

    /// Sealed credentials of every tenant in account-id order, for rotation.
    async fn sealed_credentials(
        &self,
        after: Option<&AccountId>,
        limit: u32,
    ) -> Result<Vec<SealedCredential>, StoreError>;
    /// Replaces a sealed credential only if it is still `expected` (a
    /// concurrent credential change wins over a rotation); true if replaced.
    async fn reseal_credential(
        &self,
        expected: &SealedCredential,
        key_id: &str,
        sealed: &[u8],
    ) -> Result<bool, StoreError>;
    /// The distinct master key ids that still seal some credential.
    async fn credential_key_ids(&self) -> Result<Vec<String>, StoreError>;

    async fn append_audit(&self, entry: &AuditRow) -> Result<(), StoreError>;
    /// A tenant's audit rows matching `filter`, newest first, older than
    /// the row `before` (keyset paging on the time-ordered id).
    async fn list_audit(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError>;

    async fn insert_link_token(&self, token: &LinkTokenRow) -> Result<(), StoreError>;
    async fn link_token(&self, token_sha256: &[u8; 32])
    -> Result<Option<LinkTokenRow>, StoreError>;
    /// Claims `key` for a request (by hash), or finds its earlier answer.
    /// Keys older than `expired_before` are forgotten first.
    async fn claim_idempotency_key(
        &self,
        tenant: &TenantId,
        key: &str,
        request_hash: &[u8; 32],
        now: i64,
        expired_before: i64,
    ) -> Result<IdempotencyClaim, StoreError>;
    /// Stores the answer to replay for a claimed key.
    async fn finish_idempotency_key(
        &self,
        tenant: &TenantId,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), StoreError>;
    /// Releases a claimed key whose request should be retried (a 5xx, a 429).
    async fn abandon_idempotency_key(&self, tenant: &TenantId, key: &str)
    -> Result<(), StoreError>;

    /// Records a send to a vendor under `key` if fewer than `limit` sends
    /// fall in the `window_ms` before it (older ones are forgotten);
    /// otherwise `Some(time room opens up)`. Atomic across every node on the
    /// database; the time is read with `now()` once the key's window is
    /// locked, so waiting for the lock does not age the send.
    async fn record_vendor_send(
        &self,
        key: &str,
        limit: u32,
        window_ms: i64,
        now: &(dyn Fn() -> i64 + Send + Sync),
    ) -> Result<Option<i64>, StoreError>;

    /// Creates `account` and spends the link token in one transaction; false
    /// (and nothing written) if the token is unknown, used or expired.
    async fn insert_account_via_link(
        &self,
        account: &AccountRow,
        token_sha256: &[u8; 32],
        now: i64,
    ) -> Result<bool, StoreError>;
}

/// Opens the store a URL names (`sqlite://path/to/rollcall.db`).
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PgStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }
}

/// A URL with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("sqlite://rollcall.db"), "sqlite://rollcall.db");
    }
}
