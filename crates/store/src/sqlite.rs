//! The embedded SQLite store: the default for a single machine.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use rollcall_core::Provider;
use rollcall_core::id::{AccountId, ApiKeyId, TenantId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::{
    AccountFilter, AccountRow, AccountStatus, ApiKeyRow, AuditFilter, AuditOutcome, AuditRow,
    Backend, IdempotencyClaim, LinkTokenRow, SealedCredential, Store, StoreError, TenantRow,
};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at a `sqlite://` URL, with
    /// WAL on so readers never wait for the writer.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // A sync's commit of a large first snapshot holds the write lock
            // for a few seconds; other writers wait for it rather than fail.
            .busy_timeout(Duration::from_secs(30))
            // 16 MB of page cache per connection (2 MB by default): large
            // commits and deep cached reads stay in memory.
            .pragma("cache_size", "-16000");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    pub fn from_pool(pool: SqlitePool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

fn unique_violation(e: sqlx::Error, what: &'static str, field: &'static str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict { what, field }
        }
        _ => StoreError::Database(e),
    }
}

fn parsed<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn tenant_from(row: &sqlx::sqlite::SqliteRow) -> Result<TenantRow, StoreError> {
    Ok(TenantRow {
        id: parsed(TenantId::parse(row.try_get("id")?))?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

const ACCOUNT_COLUMNS: &str = "id, tenant_id, provider, label, tenant_ref, config_json, \
     credentials_key_id, credentials_sealed, status, status_detail, created_at, updated_at";

fn account_from(row: &sqlx::sqlite::SqliteRow) -> Result<AccountRow, StoreError> {
    let provider: String = row.try_get("provider")?;
    let status: String = row.try_get("status")?;
    Ok(AccountRow {
        id: parsed(AccountId::parse(row.try_get("id")?))?,
        tenant_id: parsed(TenantId::parse(row.try_get("tenant_id")?))?,
        provider: parsed(provider.parse::<Provider>())?,
        label: row.try_get("label")?,
        tenant_ref: row.try_get("tenant_ref")?,
        config_json: row.try_get("config_json")?,
        credentials_key_id: row.try_get("credentials_key_id")?,
        credentials_sealed: row.try_get("credentials_sealed")?,
        status: AccountStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status `{status}`")))?,
        status_detail: row.try_get("status_detail")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn link_token_from(row: &sqlx::sqlite::SqliteRow) -> Result<LinkTokenRow, StoreError> {
    let hash: Vec<u8> = row.try_get("token_sha256")?;
    let account: Option<String> = row.try_get("account_id")?;
    Ok(LinkTokenRow {
        token_sha256: parsed(<[u8; 32]>::try_from(hash.as_slice()))?,
        tenant_id: parsed(TenantId::parse(row.try_get("tenant_id")?))?,
        tenant_ref: row.try_get("tenant_ref")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        used_at: row.try_get("used_at")?,
        account_id: account
            .as_deref()
            .map(AccountId::parse)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}

fn audit_from(row: &sqlx::sqlite::SqliteRow) -> Result<AuditRow, StoreError> {
    let outcome: String = row.try_get("outcome")?;
    Ok(AuditRow {
        id: row.try_get("id")?,
        tenant_id: parsed(TenantId::parse(row.try_get("tenant_id")?))?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target_type: row.try_get("target_type")?,
        target_id: row.try_get("target_id")?,
        request_id: row.try_get("request_id")?,
        before_json: row.try_get("before_json")?,
        after_json: row.try_get("after_json")?,
        outcome: if outcome == "success" {
            AuditOutcome::Success
        } else {
            AuditOutcome::Failure
        },
        detail: row.try_get("detail")?,
    })
}

async fn insert_account_in<'e, E: sqlx::SqliteExecutor<'e>>(
    executor: E,
    a: &AccountRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO integrated_accounts (id, tenant_id, provider, label, tenant_ref, config_json, \
         credentials_key_id, credentials_sealed, status, status_detail, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(a.id.as_str())
    .bind(a.tenant_id.as_str())
    .bind(a.provider.as_str())
    .bind(&a.label)
    .bind(&a.tenant_ref)
    .bind(&a.config_json)
    .bind(&a.credentials_key_id)
    .bind(&a.credentials_sealed)
    .bind(a.status.as_str())
    .bind(&a.status_detail)
    .bind(a.created_at)
    .bind(a.updated_at)
    .execute(executor)
    .await
    .map_err(|e| unique_violation(e, "integrated account", "id"))?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_tenant(&self, tenant: &TenantRow) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)")
            .bind(tenant.id.as_str())
            .bind(&tenant.name)
            .bind(tenant.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| unique_violation(e, "tenant", "name"))?;
        Ok(())
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRow>, StoreError> {
        sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(tenant_from)
            .transpose()
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<TenantRow>, StoreError> {
        sqlx::query("SELECT id, name, created_at FROM tenants WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(tenant_from)
            .transpose()
    }

    async fn insert_api_key(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, label, secret_sha256, created_at, revoked_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(key.id.as_str())
        .bind(key.tenant_id.as_str())
        .bind(&key.label)
        .bind(key.secret_sha256.as_slice())
        .bind(key.created_at)
        .bind(key.revoked_at)
        .execute(&self.pool)
        .await
        .map_err(|e| unique_violation(e, "API key", "id"))?;
        Ok(())
    }

    async fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKeyRow>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT id, tenant_id, label, secret_sha256, created_at, revoked_at \
             FROM api_keys WHERE id = ?",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let hash: Vec<u8> = row.try_get("secret_sha256")?;
        Ok(Some(ApiKeyRow {
            id: parsed(ApiKeyId::parse(row.try_get("id")?))?,
            tenant_id: parsed(TenantId::parse(row.try_get("tenant_id")?))?,
            label: row.try_get("label")?,
            secret_sha256: parsed(<[u8; 32]>::try_from(hash.as_slice()))?,
            created_at: row.try_get("created_at")?,
            revoked_at: row.try_get("revoked_at")?,
        }))
    }

    async fn insert_account(&self, account: &AccountRow) -> Result<(), StoreError> {
        insert_account_in(&self.pool, account).await
    }

    async fn account(
        &self,
        tenant: &TenantId,
        id: &AccountId,
    ) -> Result<Option<AccountRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM integrated_accounts WHERE tenant_id = ? AND id = ?"
        )))
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(account_from)
        .transpose()
    }

    async fn list_accounts(
        &self,
        tenant: &TenantId,
        filter: &AccountFilter,
        after: Option<&AccountId>,
        limit: u32,
    ) -> Result<Vec<AccountRow>, StoreError> {
        // NULL parameters switch each filter off, so one statement (and one
        // index range on (tenant_id, ...)) serves every combination.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM integrated_accounts \
             WHERE tenant_id = ?1 AND (?2 IS NULL OR provider = ?2) AND (?3 IS NULL OR tenant_ref = ?3) \
             AND (?4 IS NULL OR id > ?4) ORDER BY id LIMIT ?5"
        )))
        .bind(tenant.as_str())
        .bind(filter.provider.map(Provider::as_str))
        .bind(&filter.tenant_ref)
        .bind(after.map(AccountId::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(account_from)
        .collect()
    }

    async fn update_account(
        &self,
        a: &AccountRow,
        expected_updated_at: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE integrated_accounts SET label = ?, tenant_ref = ?, config_json = ?, \
             credentials_key_id = ?, credentials_sealed = ?, status = ?, status_detail = ?, updated_at = ? \
             WHERE tenant_id = ? AND id = ? AND updated_at = ?",
        )
        .bind(&a.label)
        .bind(&a.tenant_ref)
        .bind(&a.config_json)
        .bind(&a.credentials_key_id)
        .bind(&a.credentials_sealed)
        .bind(a.status.as_str())
        .bind(&a.status_detail)
        .bind(a.updated_at)
        .bind(a.tenant_id.as_str())
        .bind(a.id.as_str())
        .bind(expected_updated_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_account_status(
        &self,
        read: &AccountRow,
        status: AccountStatus,
        detail: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE integrated_accounts SET status = ?, status_detail = ?, updated_at = ? \
             WHERE tenant_id = ? AND id = ? AND status = ? AND status <> ? AND updated_at = ?",
        )
        .bind(status.as_str())
        .bind(detail)
        .bind(now)
        .bind(read.tenant_id.as_str())
        .bind(read.id.as_str())
        .bind(read.status.as_str())
        .bind(status.as_str())
        .bind(read.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_account(&self, tenant: &TenantId, id: &AccountId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM integrated_accounts WHERE tenant_id = ? AND id = ?")
            .bind(tenant.as_str())
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn sealed_credentials(
        &self,
        after: Option<&AccountId>,
        limit: u32,
    ) -> Result<Vec<SealedCredential>, StoreError> {
        sqlx::query(
            "SELECT id, tenant_id, credentials_key_id, credentials_sealed FROM integrated_accounts \
             WHERE (?1 IS NULL OR id > ?1) ORDER BY id LIMIT ?2",
        )
        .bind(after.map(AccountId::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(SealedCredential {
                account_id: parsed(AccountId::parse(row.try_get("id")?))?,
                tenant_id: parsed(TenantId::parse(row.try_get("tenant_id")?))?,
                key_id: row.try_get("credentials_key_id")?,
                sealed: row.try_get("credentials_sealed")?,
            })
        })
        .collect()
    }

    async fn reseal_credential(
        &self,
        expected: &SealedCredential,
        key_id: &str,
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE integrated_accounts SET credentials_key_id = ?, credentials_sealed = ? \
             WHERE id = ? AND credentials_key_id = ? AND credentials_sealed = ?",
        )
        .bind(key_id)
        .bind(sealed)
        .bind(expected.account_id.as_str())
        .bind(&expected.key_id)
        .bind(&expected.sealed)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn credential_key_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            // Webhook secrets are sealed under the same keys: a key that still
            // seals one must not be dropped.
            "SELECT credentials_key_id FROM integrated_accounts \
             UNION SELECT secret_key_id FROM webhooks ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn append_audit(&self, e: &AuditRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (id, tenant_id, at, actor, action, target_type, target_id, request_id, \
             before_json, after_json, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&e.id)
        .bind(e.tenant_id.as_str())
        .bind(e.at)
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.target_type)
        .bind(&e.target_id)
        .bind(&e.request_id)
        .bind(&e.before_json)
        .bind(&e.after_json)
        .bind(e.outcome.as_str())
        .bind(&e.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_audit(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        // NULL parameters switch each filter off; the (tenant_id, id) index
        // serves the order and the keyset.
        sqlx::query(
            "SELECT * FROM audit_log WHERE tenant_id = ?1 \
             AND (?2 IS NULL OR action = ?2) AND (?3 IS NULL OR actor = ?3) \
             AND (?4 IS NULL OR target_type = ?4) \
             AND (?5 IS NULL OR substr(target_id, 1, length(?5)) = ?5) \
             AND (?6 IS NULL OR outcome = ?6) AND (?7 IS NULL OR at >= ?7) AND (?8 IS NULL OR at < ?8) \
             AND (?9 IS NULL OR id < ?9) ORDER BY id DESC LIMIT ?10",
        )
        .bind(tenant.as_str())
        .bind(&filter.action)
        .bind(&filter.actor)
        .bind(&filter.target_type)
        .bind(&filter.target_prefix)
        .bind(filter.outcome.map(AuditOutcome::as_str))
        .bind(filter.since)
        .bind(filter.until)
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(audit_from)
        .collect()
    }

    async fn insert_link_token(&self, t: &LinkTokenRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO link_tokens (token_sha256, tenant_id, tenant_ref, created_by, created_at, expires_at, \
             used_at, account_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(t.token_sha256.as_slice())
        .bind(t.tenant_id.as_str())
        .bind(&t.tenant_ref)
        .bind(&t.created_by)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(t.used_at)
        .bind(t.account_id.as_ref().map(AccountId::as_str))
        .execute(&self.pool)
        .await
        .map_err(|e| unique_violation(e, "link token", "value"))?;
        Ok(())
    }

    async fn link_token(
        &self,
        token_sha256: &[u8; 32],
    ) -> Result<Option<LinkTokenRow>, StoreError> {
        sqlx::query("SELECT * FROM link_tokens WHERE token_sha256 = ?")
            .bind(token_sha256.as_slice())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(link_token_from)
            .transpose()
    }

    async fn record_vendor_send(
        &self,
        key: &str,
        limit: u32,
        window_ms: i64,
        now: &(dyn Fn() -> i64 + Send + Sync),
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let now = now();
        sqlx::query("DELETE FROM vendor_sends WHERE key = ? AND sent_at <= ?")
            .bind(key)
            .bind(now.saturating_sub(window_ms))
            .execute(&mut *tx)
            .await?;
        let (count, oldest): (i64, Option<i64>) =
            sqlx::query_as("SELECT count(*), min(sent_at) FROM vendor_sends WHERE key = ?")
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
        if count >= i64::from(limit) {
            return Ok(Some(oldest.unwrap_or(now).saturating_add(window_ms)));
        }
        sqlx::query("INSERT INTO vendor_sends (key, sent_at) VALUES (?, ?)")
            .bind(key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(None)
    }

    async fn insert_account_via_link(
        &self,
        account: &AccountRow,
        token_sha256: &[u8; 32],
        now: i64,
    ) -> Result<bool, StoreError> {
        // IMMEDIATE takes the write lock up front: two submissions of one
        // token serialise here and the second finds it spent.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let spent = sqlx::query(
            "UPDATE link_tokens SET used_at = ?, account_id = ? \
             WHERE token_sha256 = ? AND tenant_id = ? AND used_at IS NULL AND expires_at > ?",
        )
        .bind(now)
        .bind(account.id.as_str())
        .bind(token_sha256.as_slice())
        .bind(account.tenant_id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if spent.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_account_in(&mut *tx, account).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn claim_idempotency_key(
        &self,
        tenant: &TenantId,
        key: &str,
        request_hash: &[u8; 32],
        now: i64,
        expired_before: i64,
    ) -> Result<IdempotencyClaim, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE tenant_id = ? AND key = ? AND created_at < ?",
        )
        .bind(tenant.as_str())
        .bind(key)
        .bind(expired_before)
        .execute(&mut *tx)
        .await?;
        let existing = sqlx::query(
            "SELECT request_hash, state, status, body FROM idempotency_keys WHERE tenant_id = ? AND key = ?",
        )
        .bind(tenant.as_str())
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let claim = match existing {
            Some(row) => {
                let hash: Vec<u8> = row.try_get("request_hash")?;
                let state: String = row.try_get("state")?;
                if hash.as_slice() != request_hash.as_slice() {
                    IdempotencyClaim::Mismatch
                } else if state == "pending" {
                    IdempotencyClaim::InProgress
                } else {
                    let status: i64 = row.try_get("status")?;
                    IdempotencyClaim::Replay {
                        status: u16::try_from(status)
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                        body: row
                            .try_get::<Option<Vec<u8>>, _>("body")?
                            .unwrap_or_default(),
                    }
                }
            }
            None => {
                sqlx::query(
                    "INSERT INTO idempotency_keys (tenant_id, key, request_hash, state, created_at) \
                     VALUES (?, ?, ?, 'pending', ?)",
                )
                .bind(tenant.as_str())
                .bind(key)
                .bind(request_hash.as_slice())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                IdempotencyClaim::Claimed
            }
        };
        tx.commit().await?;
        Ok(claim)
    }

    async fn finish_idempotency_key(
        &self,
        tenant: &TenantId,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', status = ?, body = ? WHERE tenant_id = ? AND key = ?",
        )
        .bind(i64::from(status))
        .bind(body)
        .bind(tenant.as_str())
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn abandon_idempotency_key(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE tenant_id = ? AND key = ? AND state = 'pending'",
        )
        .bind(tenant.as_str())
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
