//! Rollcall's persistence. [`Store`] is the one interface the rest of the
//! program sees; each database has its own implementation and its own
//! migrations (`migrations/<backend>/`), and [`conformance`] holds the suite
//! every implementation must pass.
//!
//! Rows here are *stored* shapes, kept apart from the API's wire types and
//! the vendors' payloads; conversions live with the code that needs them.

pub mod conformance;
pub mod rows;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use rollcall_core::id::{ApiKeyId, TenantId};

pub use rows::{AccountRow, AccountStatus, ApiKeyRow, TenantRow};
pub use sqlite::SqliteStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL `{0}` (expected sqlite://PATH)")]
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
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
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
}

/// Opens the store a URL names (`sqlite://path/to/rollcall.db`).
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
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
