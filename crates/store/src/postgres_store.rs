//! `Store` for PostgreSQL: the same behaviour as `sqlite.rs`, made safe for
//! several nodes writing at once (row locks and `ON CONFLICT` where SQLite
//! relied on its single writer).

use async_trait::async_trait;
use rollcall_core::Provider;
use rollcall_core::id::{AccountId, ApiKeyId, TenantId};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::postgres::{MIGRATOR, PgStore};
use crate::{
    AccountFilter, AccountRow, AccountStatus, ApiKeyRow, AuditFilter, AuditOutcome, AuditRow,
    Backend, IdempotencyClaim, LinkTokenRow, SealedCredential, Store, StoreError, TenantRow,
};

/// How often a claim retries when the key row it conflicted with vanished
/// (abandoned or expired by another node) before it could be read.
const CLAIM_ATTEMPTS: usize = 3;

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

fn tenant_from(row: &PgRow) -> Result<TenantRow, StoreError> {
    Ok(TenantRow {
        id: parsed(TenantId::parse(row.try_get("id")?))?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

const ACCOUNT_COLUMNS: &str = "id, tenant_id, provider, label, tenant_ref, config_json, \
     credentials_key_id, credentials_sealed, status, status_detail, created_at, updated_at";

fn account_from(row: &PgRow) -> Result<AccountRow, StoreError> {
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

fn link_token_from(row: &PgRow) -> Result<LinkTokenRow, StoreError> {
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

fn audit_from(row: &PgRow) -> Result<AuditRow, StoreError> {
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

/// What an existing idempotency row says to a new request with its key.
fn idempotency_claim_from(
    row: &PgRow,
    request_hash: &[u8; 32],
) -> Result<IdempotencyClaim, StoreError> {
    let hash: Vec<u8> = row.try_get("request_hash")?;
    let state: String = row.try_get("state")?;
    if hash.as_slice() != request_hash.as_slice() {
        Ok(IdempotencyClaim::Mismatch)
    } else if state == "pending" {
        Ok(IdempotencyClaim::InProgress)
    } else {
        // BIGINT NULL: a `done` row always has a status, so NULL is corrupt.
        let status: Option<i64> = row.try_get("status")?;
        let status =
            status.ok_or_else(|| StoreError::Corrupt("idempotency status is NULL".into()))?;
        Ok(IdempotencyClaim::Replay {
            status: u16::try_from(status).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            body: row
                .try_get::<Option<Vec<u8>>, _>("body")?
                .unwrap_or_default(),
        })
    }
}

async fn insert_account_in<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    a: &AccountRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO integrated_accounts (id, tenant_id, provider, label, tenant_ref, config_json, \
         credentials_key_id, credentials_sealed, status, status_detail, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(self.pool()).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }

    async fn insert_tenant(&self, tenant: &TenantRow) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(tenant.id.as_str())
            .bind(&tenant.name)
            .bind(tenant.created_at)
            .execute(self.pool())
            .await
            .map_err(|e| unique_violation(e, "tenant", "name"))?;
        Ok(())
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRow>, StoreError> {
        sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(tenant_from)
            .transpose()
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<TenantRow>, StoreError> {
        sqlx::query("SELECT id, name, created_at FROM tenants WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(tenant_from)
            .transpose()
    }

    async fn insert_api_key(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, label, secret_sha256, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key.id.as_str())
        .bind(key.tenant_id.as_str())
        .bind(&key.label)
        .bind(key.secret_sha256.as_slice())
        .bind(key.created_at)
        .bind(key.revoked_at)
        .execute(self.pool())
        .await
        .map_err(|e| unique_violation(e, "API key", "id"))?;
        Ok(())
    }

    async fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKeyRow>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT id, tenant_id, label, secret_sha256, created_at, revoked_at \
             FROM api_keys WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(self.pool())
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
        insert_account_in(self.pool(), account).await
    }

    async fn account(
        &self,
        tenant: &TenantId,
        id: &AccountId,
    ) -> Result<Option<AccountRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM integrated_accounts WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(tenant.as_str())
        .bind(id.as_str())
        .fetch_optional(self.pool())
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
        // NULL parameters switch each filter off, so one statement serves
        // every combination; sqlx sends each parameter's type, so `$n IS
        // NULL` needs no cast.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM integrated_accounts \
             WHERE tenant_id = $1 AND ($2 IS NULL OR provider = $2) AND ($3 IS NULL OR tenant_ref = $3) \
             AND ($4 IS NULL OR id > $4) ORDER BY id LIMIT $5"
        )))
        .bind(tenant.as_str())
        .bind(filter.provider.map(Provider::as_str))
        .bind(&filter.tenant_ref)
        .bind(after.map(AccountId::as_str))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
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
        // One conditional UPDATE: a concurrent writer's row lock makes this
        // re-check `updated_at` after it commits, so only one of them wins.
        let done = sqlx::query(
            "UPDATE integrated_accounts SET label = $1, tenant_ref = $2, config_json = $3, \
             credentials_key_id = $4, credentials_sealed = $5, status = $6, status_detail = $7, \
             updated_at = $8 \
             WHERE tenant_id = $9 AND id = $10 AND updated_at = $11",
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
        .execute(self.pool())
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
            "UPDATE integrated_accounts SET status = $1, status_detail = $2, updated_at = $3 \
             WHERE tenant_id = $4 AND id = $5 AND status = $6 AND status <> $7 \
             AND updated_at = $8",
        )
        .bind(status.as_str())
        .bind(detail)
        .bind(now)
        .bind(read.tenant_id.as_str())
        .bind(read.id.as_str())
        .bind(read.status.as_str())
        .bind(status.as_str())
        .bind(read.updated_at)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_account(&self, tenant: &TenantId, id: &AccountId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM integrated_accounts WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id.as_str())
            .execute(self.pool())
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
             WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2",
        )
        .bind(after.map(AccountId::as_str))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
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
            "UPDATE integrated_accounts SET credentials_key_id = $1, credentials_sealed = $2 \
             WHERE id = $3 AND credentials_key_id = $4 AND credentials_sealed = $5",
        )
        .bind(key_id)
        .bind(sealed)
        .bind(expected.account_id.as_str())
        .bind(&expected.key_id)
        .bind(&expected.sealed)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn credential_key_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            // Webhook secrets are sealed under the same keys: a key that still
            // seals one must not be dropped. COLLATE "C" sorts by bytes, as
            // SQLite does; the database's locale might not.
            "SELECT key_id FROM (SELECT credentials_key_id AS key_id FROM integrated_accounts \
             UNION SELECT secret_key_id FROM webhooks) AS k ORDER BY key_id COLLATE \"C\"",
        )
        .fetch_all(self.pool())
        .await?)
    }

    async fn append_audit(&self, e: &AuditRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (id, tenant_id, at, actor, action, target_type, target_id, request_id, \
             before_json, after_json, outcome, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
        .execute(self.pool())
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
        // serves the order and the keyset. The prefix test compares a
        // substring rather than using LIKE, so `%` and `_` match literally.
        sqlx::query(
            "SELECT * FROM audit_log WHERE tenant_id = $1 \
             AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR actor = $3) \
             AND ($4 IS NULL OR target_type = $4) \
             AND ($5 IS NULL OR substr(target_id, 1, length($5)) = $5) \
             AND ($6 IS NULL OR outcome = $6) AND ($7 IS NULL OR at >= $7) AND ($8 IS NULL OR at < $8) \
             AND ($9 IS NULL OR id < $9) ORDER BY id DESC LIMIT $10",
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
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(audit_from)
        .collect()
    }

    async fn insert_link_token(&self, t: &LinkTokenRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO link_tokens (token_sha256, tenant_id, tenant_ref, created_by, created_at, \
             expires_at, used_at, account_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(t.token_sha256.as_slice())
        .bind(t.tenant_id.as_str())
        .bind(&t.tenant_ref)
        .bind(&t.created_by)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(t.used_at)
        .bind(t.account_id.as_ref().map(AccountId::as_str))
        .execute(self.pool())
        .await
        .map_err(|e| unique_violation(e, "link token", "value"))?;
        Ok(())
    }

    async fn link_token(
        &self,
        token_sha256: &[u8; 32],
    ) -> Result<Option<LinkTokenRow>, StoreError> {
        sqlx::query("SELECT * FROM link_tokens WHERE token_sha256 = $1")
            .bind(token_sha256.as_slice())
            .fetch_optional(self.pool())
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
        let mut tx = self.pool().begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(key)
            .execute(&mut *tx)
            .await?;
        let now = now();
        sqlx::query("DELETE FROM vendor_sends WHERE key = $1 AND sent_at <= $2")
            .bind(key)
            .bind(now.saturating_sub(window_ms))
            .execute(&mut *tx)
            .await?;
        let (count, oldest): (i64, Option<i64>) =
            sqlx::query_as("SELECT count(*), min(sent_at) FROM vendor_sends WHERE key = $1")
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
        if count >= i64::from(limit) {
            return Ok(Some(oldest.unwrap_or(now).saturating_add(window_ms)));
        }
        sqlx::query("INSERT INTO vendor_sends (key, sent_at) VALUES ($1, $2)")
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
        // The conditional UPDATE spends the token atomically: a concurrent
        // spend of the same token waits on the row lock, re-checks
        // `used_at IS NULL` once this commits, and updates nothing. If the
        // account insert fails, the dropped transaction rolls back and the
        // token stays unspent.
        let mut tx = self.pool().begin().await?;
        let spent = sqlx::query(
            "UPDATE link_tokens SET used_at = $1, account_id = $2 \
             WHERE token_sha256 = $3 AND tenant_id = $4 AND used_at IS NULL AND expires_at > $5",
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
        // READ COMMITTED, statement by statement: the INSERT ... ON CONFLICT
        // DO NOTHING is the claim (a concurrent insert of the same key waits
        // on the unique index, so exactly one claimer inserts); a loser reads
        // the winner's row in a fresh snapshot.
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND created_at < $3",
        )
        .bind(tenant.as_str())
        .bind(key)
        .bind(expired_before)
        .execute(&mut *tx)
        .await?;
        // Not Claimed unless this call inserted the row: if the row keeps
        // vanishing under us (abandoned by its request), say so as in flight.
        let mut claim = IdempotencyClaim::InProgress;
        for _ in 0..CLAIM_ATTEMPTS {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (tenant_id, key, request_hash, state, created_at) \
                 VALUES ($1, $2, $3, 'pending', $4) ON CONFLICT (tenant_id, key) DO NOTHING",
            )
            .bind(tenant.as_str())
            .bind(key)
            .bind(request_hash.as_slice())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 1 {
                claim = IdempotencyClaim::Claimed;
                break;
            }
            let existing = sqlx::query(
                "SELECT request_hash, state, status, body FROM idempotency_keys \
                 WHERE tenant_id = $1 AND key = $2",
            )
            .bind(tenant.as_str())
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = existing {
                claim = idempotency_claim_from(&row, request_hash)?;
                break;
            }
            // Deleted between our INSERT and SELECT: try to claim it again.
        }
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
            "UPDATE idempotency_keys SET state = 'done', status = $1, body = $2 \
             WHERE tenant_id = $3 AND key = $4",
        )
        .bind(i64::from(status))
        .bind(body)
        .bind(tenant.as_str())
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn abandon_idempotency_key(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND state = 'pending'",
        )
        .bind(tenant.as_str())
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
