//! [`SyncStore`] on SQLite. SQLite has one writer at a time, so a single
//! `UPDATE ... RETURNING` claims a job atomically, and event sequence
//! numbers follow commit order. Transactions that read before they write
//! start with `BEGIN IMMEDIATE`: a deferred one would fail with
//! `SQLITE_BUSY` instead of waiting when another writer got in between.

use std::sync::LazyLock;

use async_trait::async_trait;
use rollcall_core::id::{AccountId, TenantId};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use crate::StoreError;
use crate::sqlite::SqliteStore;
use crate::sync::{
    CachedGroupRow, CachedRoleRow, CachedUserFilter, CachedUserRow, DeliveryOutcome, DeliveryRow,
    DeliveryStatus, DueAccount, DueDelivery, Enqueued, EventRow, JobRow, JobStatus, Lease,
    SyncCommit, SyncRunRow, SyncStatus, SyncStore, WebhookRow, event_matches,
};

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(crate) fn tenant_id(value: String) -> Result<TenantId, StoreError> {
    TenantId::parse(&value).map_err(corrupt)
}

pub(crate) fn account_id(value: String) -> Result<AccountId, StoreError> {
    AccountId::parse(&value).map_err(corrupt)
}

const JOB_COLUMNS: &str = "id, kind, tenant_id, account_id, payload_json, status, run_at, \
     attempts, max_attempts, lease_owner, lease_until, last_error, created_at, updated_at";

fn job_from(row: &SqliteRow) -> Result<JobRow, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(JobRow {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        tenant_id: row
            .try_get::<Option<String>, _>("tenant_id")?
            .map(tenant_id)
            .transpose()?,
        account_id: row
            .try_get::<Option<String>, _>("account_id")?
            .map(account_id)
            .transpose()?,
        payload_json: row.try_get("payload_json")?,
        status: JobStatus::parse(&status).ok_or_else(|| corrupt(format!("job status {status}")))?,
        run_at: row.try_get("run_at")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until: row.try_get("lease_until")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const RUN_COLUMNS: &str = "id, tenant_id, account_id, trigger, status, phase, progress_json, \
     counts_json, error, attempts, created_at, started_at, finished_at";

fn run_from(row: &SqliteRow) -> Result<SyncRunRow, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(SyncRunRow {
        id: row.try_get("id")?,
        tenant_id: tenant_id(row.try_get("tenant_id")?)?,
        account_id: account_id(row.try_get("account_id")?)?,
        trigger: row.try_get("trigger")?,
        status: SyncStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("sync status {status}")))?,
        phase: row.try_get("phase")?,
        progress_json: row.try_get("progress_json")?,
        counts_json: row.try_get("counts_json")?,
        error: row.try_get("error")?,
        attempts: row.try_get("attempts")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

pub(crate) fn user_from(row: &SqliteRow) -> Result<CachedUserRow, StoreError> {
    Ok(CachedUserRow {
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        status: row.try_get("status")?,
        is_admin: row.try_get::<i64, _>("is_admin")? != 0,
        data_json: row.try_get("data_json")?,
    })
}

fn group_from(row: &SqliteRow) -> Result<CachedGroupRow, StoreError> {
    Ok(CachedGroupRow {
        group_id: row.try_get("group_id")?,
        name: row.try_get("name")?,
        data_json: row.try_get("data_json")?,
    })
}

const EVENT_COLUMNS: &str = "seq, id, tenant_id, account_id, type, occurred_at, data_json";

fn event_from(row: &SqliteRow) -> Result<EventRow, StoreError> {
    Ok(EventRow {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        tenant_id: tenant_id(row.try_get("tenant_id")?)?,
        account_id: row
            .try_get::<Option<String>, _>("account_id")?
            .map(account_id)
            .transpose()?,
        event_type: row.try_get("type")?,
        occurred_at: row.try_get("occurred_at")?,
        data_json: row.try_get("data_json")?,
    })
}

const WEBHOOK_COLUMNS: &str = "id, tenant_id, url, events_json, secret_key_id, secret_sealed, \
     last_event_seq, created_at";

fn webhook_from(row: &SqliteRow) -> Result<WebhookRow, StoreError> {
    let events: String = row.try_get("events_json")?;
    Ok(WebhookRow {
        id: row.try_get("id")?,
        tenant_id: tenant_id(row.try_get("tenant_id")?)?,
        url: row.try_get("url")?,
        events: serde_json::from_str(&events).map_err(corrupt)?,
        secret_key_id: row.try_get("secret_key_id")?,
        secret_sealed: row.try_get("secret_sealed")?,
        last_event_seq: row.try_get("last_event_seq")?,
        created_at: row.try_get("created_at")?,
    })
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, event_seq, event_id, status, attempts, \
     next_attempt_at, last_status, last_error, created_at, updated_at, delivered_at";

fn delivery_from(row: &SqliteRow) -> Result<DeliveryRow, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(DeliveryRow {
        id: row.try_get("id")?,
        webhook_id: row.try_get("webhook_id")?,
        event_seq: row.try_get("event_seq")?,
        event_id: row.try_get("event_id")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("delivery status {status}")))?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        delivered_at: row.try_get("delivered_at")?,
    })
}

/// Appends events in the caller's transaction (an event already stored,
/// by id, is left as it is).
pub(crate) async fn insert_events_in(
    tx: &mut Transaction<'_, Sqlite>,
    events: &[EventRow],
) -> Result<(), StoreError> {
    let rows: Vec<_> = events
        .iter()
        .map(|e| {
            (
                &e.id,
                e.tenant_id.as_str(),
                e.account_id.as_ref().map(AccountId::as_str),
                &e.event_type,
                e.occurred_at,
                &e.data_json,
            )
        })
        .collect();
    batched(tx, "", &rows, INSERT_EVENTS).await
}

/// Whether `lease` still holds its job (checked inside a transaction).
pub(crate) async fn holds(
    tx: &mut Transaction<'_, Sqlite>,
    lease: &Lease,
) -> Result<bool, StoreError> {
    let held: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM jobs WHERE id = ? AND lease_owner = ? AND status = 'running'",
    )
    .bind(&lease.job_id)
    .bind(&lease.owner)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(held.is_some())
}

pub(crate) async fn end_job_in(
    tx: &mut Transaction<'_, Sqlite>,
    lease: &Lease,
    status: JobStatus,
    error: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE jobs SET status = ?, last_error = ?, lease_owner = NULL, lease_until = NULL, \
         updated_at = ? WHERE id = ? AND lease_owner = ?",
    )
    .bind(status.as_str())
    .bind(error)
    .bind(now)
    .bind(&lease.job_id)
    .bind(&lease.owner)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl SyncStore for SqliteStore {
    async fn enqueue_sync(
        &self,
        run: &SyncRunRow,
        job: &JobRow,
        next_sync_at: i64,
    ) -> Result<Enqueued, StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT json_extract(payload_json, '$.sync_run_id') FROM jobs \
             WHERE account_id = ? AND kind = 'sync' AND status IN ('queued', 'running')",
        )
        .bind(run.account_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(existing) = existing {
            return Ok(Enqueued::AlreadyQueued(existing));
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO sync_runs ({RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )))
        .bind(&run.id)
        .bind(run.tenant_id.as_str())
        .bind(run.account_id.as_str())
        .bind(&run.trigger)
        .bind(run.status.as_str())
        .bind(&run.phase)
        .bind(&run.progress_json)
        .bind(&run.counts_json)
        .bind(&run.error)
        .bind(run.attempts)
        .bind(run.created_at)
        .bind(run.started_at)
        .bind(run.finished_at)
        .execute(&mut *tx)
        .await?;
        insert_job_in(&mut tx, job).await?;
        sqlx::query(
            "INSERT INTO account_sync_state (account_id, next_sync_at) VALUES (?, ?) \
             ON CONFLICT (account_id) DO UPDATE SET next_sync_at = excluded.next_sync_at",
        )
        .bind(run.account_id.as_str())
        .bind(next_sync_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Enqueued::Created)
    }

    async fn sync_run(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<SyncRunRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM sync_runs WHERE tenant_id = ? AND id = ?"
        )))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(run_from)
        .transpose()
    }

    async fn last_finished_sync(
        &self,
        account: &AccountId,
    ) -> Result<Option<SyncRunRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM sync_runs WHERE account_id = ? \
             AND status IN ('succeeded', 'failed') ORDER BY finished_at DESC, id DESC LIMIT 1"
        )))
        .bind(account.as_str())
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(run_from)
        .transpose()
    }

    async fn last_good_sync_at(&self, account: &AccountId) -> Result<Option<i64>, StoreError> {
        let at: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT last_success_at FROM account_sync_state WHERE account_id = ?",
        )
        .bind(account.as_str())
        .fetch_optional(self.pool())
        .await?;
        Ok(at.flatten())
    }

    async fn memberships_hash(&self, account: &AccountId) -> Result<Option<i64>, StoreError> {
        let hash: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT memberships_hash FROM account_sync_state WHERE account_id = ?",
        )
        .bind(account.as_str())
        .fetch_optional(self.pool())
        .await?;
        Ok(hash.flatten())
    }

    async fn last_full_read_at(&self, account: &AccountId) -> Result<Option<i64>, StoreError> {
        let at: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT last_full_read_at FROM account_sync_state WHERE account_id = ?",
        )
        .bind(account.as_str())
        .fetch_optional(self.pool())
        .await?;
        Ok(at.flatten())
    }

    async fn due_accounts(&self, now: i64, limit: u32) -> Result<Vec<DueAccount>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.tenant_id, a.id, a.config_json FROM integrated_accounts a \
             LEFT JOIN account_sync_state s ON s.account_id = a.id \
             WHERE a.status = 'active' AND (s.next_sync_at IS NULL OR s.next_sync_at <= ?) \
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.account_id = a.id AND j.kind = 'sync' \
                             AND j.status IN ('queued', 'running')) \
             ORDER BY s.next_sync_at LIMIT ?",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DueAccount {
                    tenant_id: tenant_id(row.try_get("tenant_id")?)?,
                    account_id: account_id(row.try_get("id")?)?,
                    config_json: row.try_get("config_json")?,
                })
            })
            .collect()
    }

    async fn insert_job(&self, job: &JobRow) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        insert_job_in(&mut tx, job).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_job(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<JobRow>, StoreError> {
        // One statement: SQLite runs it under its single write lock, so two
        // workers can never claim the same row.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET status = 'running', lease_owner = ?1, lease_until = ?3, \
             attempts = attempts + 1, updated_at = ?2 \
             WHERE id = (SELECT id FROM jobs WHERE (status = 'queued' AND run_at <= ?2) \
                         OR (status = 'running' AND lease_until < ?2) \
                         ORDER BY run_at, id LIMIT 1) \
             RETURNING {JOB_COLUMNS}"
        )))
        .bind(owner)
        .bind(now)
        .bind(lease_until)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(job_from)
        .transpose()
    }

    async fn renew_lease(&self, lease: &Lease, lease_until: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND status = 'running'",
        )
        .bind(lease_until)
        .bind(&lease.job_id)
        .bind(&lease.owner)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish_job(
        &self,
        lease: &Lease,
        status: JobStatus,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        if !holds(&mut tx, lease).await? {
            return Ok(false);
        }
        end_job_in(&mut tx, lease, status, error, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn retry_job(
        &self,
        lease: &Lease,
        run_at: i64,
        error: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'queued', run_at = ?, last_error = ?, lease_owner = NULL, \
             lease_until = NULL, updated_at = ? \
             WHERE id = ? AND lease_owner = ? AND status = 'running'",
        )
        .bind(run_at)
        .bind(error)
        .bind(now)
        .bind(&lease.job_id)
        .bind(&lease.owner)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn job(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(job_from)
        .transpose()
    }

    async fn prune_finished(
        &self,
        jobs_before: i64,
        deliveries_before: i64,
    ) -> Result<u64, StoreError> {
        let jobs =
            sqlx::query("DELETE FROM jobs WHERE status IN ('done', 'failed') AND updated_at < ?")
                .bind(jobs_before)
                .execute(self.pool())
                .await?;
        let deliveries = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE status IN ('succeeded', 'dead') AND updated_at < ?",
        )
        .bind(deliveries_before)
        .execute(self.pool())
        .await?;
        Ok(jobs.rows_affected() + deliveries.rows_affected())
    }

    async fn start_sync_run(&self, id: &str, attempts: i64, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sync_runs SET status = 'running', phase = 'starting', attempts = ?, \
             started_at = COALESCE(started_at, ?) WHERE id = ? AND status IN ('queued', 'running')",
        )
        .bind(attempts)
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn sync_progress(
        &self,
        id: &str,
        phase: &str,
        progress_json: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sync_runs SET phase = ?, progress_json = ? WHERE id = ? AND status = 'running'",
        )
        .bind(phase)
        .bind(progress_json)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn fail_sync(
        &self,
        lease: Option<&Lease>,
        run_id: &str,
        error: &str,
        event: &EventRow,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        if let Some(lease) = lease {
            if !holds(&mut tx, lease).await? {
                return Ok(false);
            }
            end_job_in(&mut tx, lease, JobStatus::Failed, Some(error), now).await?;
        }
        sqlx::query(
            "UPDATE sync_runs SET status = 'failed', phase = NULL, error = ?, finished_at = ? \
             WHERE id = ?",
        )
        .bind(error)
        .bind(now)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        insert_events_in(&mut tx, std::slice::from_ref(event)).await?;
        if let Some(account) = &event.account_id {
            sqlx::query("UPDATE account_sync_state SET last_run_id = ? WHERE account_id = ?")
                .bind(run_id)
                .bind(account.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn commit_sync(&self, c: &SyncCommit) -> Result<bool, StoreError> {
        let account = c
            .account_id
            .as_ref()
            .ok_or_else(|| corrupt("a sync commit without an account"))?
            .as_str();
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        if let Some(lease) = &c.lease {
            if !holds(&mut tx, lease).await? {
                return Ok(false);
            }
            end_job_in(&mut tx, lease, JobStatus::Done, None, c.finished_at).await?;
        }
        // Rows go in batches, each one statement reading a JSON array
        // (`json_each`), users as multi-row VALUES (`upsert_users`): one
        // statement per row costs far more in round trips to the database
        // thread than SQLite spends on the rows.
        let groups: Vec<_> = c
            .upsert_groups
            .iter()
            .map(|g| (&g.group_id, &g.name, &g.data_json))
            .collect();
        let roles: Vec<_> = c.roles.iter().map(|r| (&r.role_id, &r.data_json)).collect();
        batched(&mut tx, account, &c.delete_users, DELETE_USERS).await?;
        upsert_users(&mut tx, account, &c.upsert_users).await?;
        batched(&mut tx, account, &c.delete_groups, DELETE_GROUPS).await?;
        batched(&mut tx, account, &groups, UPSERT_GROUPS).await?;
        batched(&mut tx, account, &c.remove_memberships, DELETE_MEMBERSHIPS).await?;
        batched(&mut tx, account, &c.add_memberships, INSERT_MEMBERSHIPS).await?;
        sqlx::query("DELETE FROM dir_roles WHERE account_id = ?")
            .bind(account)
            .execute(&mut *tx)
            .await?;
        batched(&mut tx, account, &roles, INSERT_ROLES).await?;
        insert_events_in(&mut tx, &c.events).await?;
        sqlx::query(
            "UPDATE sync_runs SET status = 'succeeded', phase = NULL, counts_json = ?, error = NULL, \
             finished_at = ? WHERE id = ?",
        )
        .bind(&c.counts_json)
        .bind(c.finished_at)
        .bind(&c.run_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO account_sync_state \
             (account_id, last_run_id, last_success_at, last_full_read_at, next_sync_at, \
              snapshot_version, activity_exposed, memberships_hash) \
             VALUES (?1, ?2, ?3, ?4, ?3, ?5, ?6, ?7) \
             ON CONFLICT (account_id) DO UPDATE SET \
             last_run_id = excluded.last_run_id, last_success_at = excluded.last_success_at, \
             last_full_read_at = COALESCE(excluded.last_full_read_at, last_full_read_at), \
             snapshot_version = snapshot_version + excluded.snapshot_version, \
             activity_exposed = excluded.activity_exposed, \
             memberships_hash = excluded.memberships_hash",
        )
        .bind(account)
        .bind(&c.run_id)
        .bind(c.finished_at)
        .bind(c.full_read.then_some(c.finished_at))
        .bind(i64::from(c.snapshot_changed))
        .bind(i64::from(c.activity_exposed))
        .bind(c.memberships_hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn stamp_sync_finished(&self, id: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sync_runs SET finished_at = ? WHERE id = ? AND finished_at IS NOT NULL",
        )
        .bind(at)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn snapshot_users(&self, account: &AccountId) -> Result<Vec<CachedUserRow>, StoreError> {
        let rows: Vec<PackedUser> = packed_chunks(
            self,
            "SELECT json_group_array(json_array(user_id, email, status, is_admin, data_json)) \
             FROM (SELECT user_id, email, status, is_admin, data_json \
             FROM dir_users WHERE account_id = ?1 AND user_id > ?2 ORDER BY user_id LIMIT ?3)",
            account,
            String::new(),
            |rows: &[PackedUser]| last_id(rows, |row| &row.0),
        )
        .await?;
        Ok(rows.into_iter().map(unpacked_user).collect())
    }

    async fn snapshot_user_hashes(
        &self,
        account: &AccountId,
    ) -> Result<Vec<(String, Option<i64>)>, StoreError> {
        packed_chunks(
            self,
            "SELECT json_group_array(json_array(user_id, data_hash)) \
             FROM (SELECT user_id, data_hash \
             FROM dir_users INDEXED BY dir_users_hashes WHERE account_id = ?1 AND user_id > ?2 ORDER BY user_id LIMIT ?3)",
            account,
            String::new(),
            |rows: &[(String, Option<i64>)]| last_id(rows, |row| &row.0),
        )
        .await
    }

    async fn snapshot_users_by_id(
        &self,
        account: &AccountId,
        ids: &[String],
    ) -> Result<Vec<CachedUserRow>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_ROWS) {
            let json = serde_json::to_string(chunk).map_err(corrupt)?;
            let rows = sqlx::query(
                "SELECT user_id, email, status, is_admin, data_json FROM dir_users \
                 WHERE account_id = ?1 AND user_id IN (SELECT value FROM json_each(?2))",
            )
            .bind(account.as_str())
            .bind(json)
            .fetch_all(self.pool())
            .await?;
            for row in &rows {
                out.push(user_from(row)?);
            }
        }
        Ok(out)
    }

    async fn snapshot_groups(
        &self,
        account: &AccountId,
    ) -> Result<Vec<CachedGroupRow>, StoreError> {
        sqlx::query(
            "SELECT group_id, name, data_json FROM dir_groups WHERE account_id = ? ORDER BY group_id",
        )
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(group_from)
        .collect()
    }

    async fn snapshot_memberships(
        &self,
        account: &AccountId,
    ) -> Result<Vec<(String, String)>, StoreError> {
        // Keyset on the pair (`?2` is `["group","user"]`), which the primary
        // key's range answers.
        let rows: Vec<(String, String)> = packed_chunks(
            self,
            "SELECT json_group_array(json_array(group_id, user_id)) \
             FROM (SELECT group_id, user_id FROM dir_memberships WHERE account_id = ?1 \
             AND (group_id, user_id) > (?2 ->> 0, ?2 ->> 1) \
             ORDER BY group_id, user_id LIMIT ?3)",
            account,
            r#"["",""]"#.to_owned(),
            // Pairs order element by element, as SQLite's row values do.
            |pairs: &[(String, String)]| {
                pairs
                    .iter()
                    .max()
                    .and_then(|pair| serde_json::to_string(pair).ok())
            },
        )
        .await?;
        Ok(rows)
    }

    async fn snapshot_roles(&self, account: &AccountId) -> Result<Vec<CachedRoleRow>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT role_id, data_json FROM dir_roles WHERE account_id = ? ORDER BY role_id",
        )
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(role_id, data_json)| CachedRoleRow { role_id, data_json })
            .collect())
    }

    async fn cached_users(
        &self,
        account: &AccountId,
        f: &CachedUserFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CachedUserRow>, StoreError> {
        // The page comes as one row (`json_group_array`), like the snapshot
        // reads: rows one at a time each cross sqlx's channel from its
        // database thread, which costs more than the query.
        let sql = format!(
            "SELECT json_group_array(json_array(user_id, email, status, is_admin, data_json)) \
             FROM ({})",
            cached_users_sql(f)
        );
        let packed: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(account.as_str())
            .bind(after.unwrap_or(""))
            .bind(&f.status)
            .bind(f.is_admin.map(i64::from))
            .bind(&f.group_id)
            .bind(&f.email)
            .bind(i64::from(limit))
            .fetch_one(self.pool())
            .await?;
        let mut rows: Vec<PackedUser> = serde_json::from_str(&packed).map_err(corrupt)?;
        in_id_order(&mut rows, |row| &row.0);
        Ok(rows.into_iter().map(unpacked_user).collect())
    }

    async fn cached_user(
        &self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<CachedUserRow>, StoreError> {
        sqlx::query(
            "SELECT user_id, email, status, is_admin, data_json FROM dir_users \
             WHERE account_id = ? AND user_id = ?",
        )
        .bind(account.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(user_from)
        .transpose()
    }

    async fn cached_user_groups(
        &self,
        account: &AccountId,
        users: &[String],
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let ids = serde_json::to_string(users).map_err(corrupt)?;
        let packed: String = sqlx::query_scalar(
            "SELECT json_group_array(json_array(user_id, group_id, name)) FROM ( \
             SELECT m.user_id AS user_id, m.group_id AS group_id, g.name AS name \
             FROM dir_memberships m \
             JOIN dir_groups g ON g.account_id = m.account_id AND g.group_id = m.group_id \
             WHERE m.account_id = ? AND m.user_id IN (SELECT value FROM json_each(?)) \
             ORDER BY m.user_id, m.group_id)",
        )
        .bind(account.as_str())
        .bind(ids)
        .fetch_one(self.pool())
        .await?;
        let mut rows: Vec<(String, String, String)> =
            serde_json::from_str(&packed).map_err(corrupt)?;
        // (user, group) is unique: ordering whole rows orders by it.
        if !rows.is_sorted() {
            rows.sort_unstable();
        }
        Ok(rows)
    }

    async fn cached_groups(
        &self,
        account: &AccountId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CachedGroupRow>, StoreError> {
        sqlx::query(
            "SELECT group_id, name, data_json FROM dir_groups \
             WHERE account_id = ?1 AND group_id > ?2 ORDER BY group_id LIMIT ?3",
        )
        .bind(account.as_str())
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(group_from)
        .collect()
    }

    async fn cached_group(
        &self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<CachedGroupRow>, StoreError> {
        sqlx::query(
            "SELECT group_id, name, data_json FROM dir_groups WHERE account_id = ? AND group_id = ?",
        )
        .bind(account.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(group_from)
        .transpose()
    }

    async fn cached_memberships(
        &self,
        account: &AccountId,
        group_id: Option<&str>,
        user_id: Option<&str>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let (after_group, after_user) = after.unwrap_or(("", ""));
        let sql = cached_memberships_sql(group_id.is_some(), user_id.is_some());
        Ok(sqlx::query_as(sql)
            .bind(account.as_str())
            .bind(group_id)
            .bind(user_id)
            .bind(after_group)
            .bind(after_user)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?)
    }

    async fn append_events(&self, events: &[EventRow]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        insert_events_in(&mut tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_events(
        &self,
        tenant: &TenantId,
        account: Option<&AccountId>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<EventRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = ?1 AND seq > ?2 \
             AND (?3 IS NULL OR account_id = ?3) ORDER BY seq LIMIT ?4"
        )))
        .bind(tenant.as_str())
        .bind(after_seq)
        .bind(account.map(AccountId::as_str))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(event_from)
        .collect()
    }

    async fn insert_webhook(
        &self,
        w: &WebhookRow,
        max_per_tenant: u32,
    ) -> Result<bool, StoreError> {
        // One statement, so two concurrent creates cannot both pass the cap.
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 \
             WHERE (SELECT count(*) FROM webhooks WHERE tenant_id = ?2) < ?9"
        )))
        .bind(&w.id)
        .bind(w.tenant_id.as_str())
        .bind(&w.url)
        .bind(serde_json::to_string(&w.events).map_err(corrupt)?)
        .bind(&w.secret_key_id)
        .bind(&w.secret_sealed)
        .bind(w.last_event_seq)
        .bind(w.created_at)
        .bind(i64::from(max_per_tenant))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn webhook(&self, tenant: &TenantId, id: &str) -> Result<Option<WebhookRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = ? AND id = ?"
        )))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(webhook_from)
        .transpose()
    }

    async fn list_webhooks(&self, tenant: &TenantId) -> Result<Vec<WebhookRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = ? ORDER BY id"
        )))
        .bind(tenant.as_str())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(webhook_from)
        .collect()
    }

    async fn delete_webhook(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM webhooks WHERE tenant_id = ? AND id = ?")
            .bind(tenant.as_str())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn all_webhooks(&self) -> Result<Vec<WebhookRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY id"
        )))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(webhook_from)
        .collect()
    }

    async fn reseal_webhook_secret(
        &self,
        expected: &WebhookRow,
        key_id: &str,
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webhooks SET secret_key_id = ?, secret_sealed = ? \
             WHERE id = ? AND secret_key_id = ? AND secret_sealed = ?",
        )
        .bind(key_id)
        .bind(sealed)
        .bind(&expected.id)
        .bind(&expected.secret_key_id)
        .bind(&expected.secret_sealed)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn last_event_seq(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events")
            .fetch_one(self.pool())
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn queue_deliveries(&self, now: i64, batch: u32) -> Result<u64, StoreError> {
        let webhooks = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks w WHERE EXISTS \
             (SELECT 1 FROM events e WHERE e.tenant_id = w.tenant_id AND e.seq > w.last_event_seq)"
        )))
        .fetch_all(self.pool())
        .await?;
        let mut queued = 0;
        for row in &webhooks {
            let w = webhook_from(row)?;
            let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
            // Re-read the cursor inside the transaction: another worker may
            // have moved it since.
            let cursor: Option<i64> =
                sqlx::query_scalar("SELECT last_event_seq FROM webhooks WHERE id = ?")
                    .bind(&w.id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(cursor) = cursor else { continue };
            let events: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT seq, id, type FROM events WHERE tenant_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            )
            .bind(w.tenant_id.as_str())
            .bind(cursor)
            .bind(i64::from(batch))
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = events.last().map(|e| e.0) else {
                continue;
            };
            for (seq, event_id, event_type) in &events {
                if !event_matches(&w.events, event_type) {
                    continue;
                }
                let id = format!("dlv_{}", uuid::Uuid::now_v7().simple());
                let done = sqlx::query(
                    "INSERT INTO webhook_deliveries (id, webhook_id, event_seq, event_id, status, \
                     attempts, next_attempt_at, created_at, updated_at) \
                     VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?) ON CONFLICT DO NOTHING",
                )
                .bind(&id)
                .bind(&w.id)
                .bind(seq)
                .bind(event_id)
                .bind(now)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                queued += done.rows_affected();
            }
            sqlx::query("UPDATE webhooks SET last_event_seq = ? WHERE id = ?")
                .bind(last)
                .bind(&w.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(queued)
    }

    async fn claim_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ? \
             AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_attempt_at, id LIMIT ?",
        )
        .bind(now)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            sqlx::query("UPDATE webhook_deliveries SET lease_until = ? WHERE id = ?")
                .bind(lease_until)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?"
            )))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            let delivery = delivery_from(&row)?;
            let webhook = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?"
            )))
            .bind(&delivery.webhook_id)
            .fetch_one(&mut *tx)
            .await?;
            let event = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?"
            )))
            .bind(delivery.event_seq)
            .fetch_one(&mut *tx)
            .await?;
            out.push(DueDelivery {
                delivery,
                webhook: webhook_from(&webhook)?,
                event: event_from(&event)?,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn finish_delivery(
        &self,
        id: &str,
        leased_until: i64,
        outcome: &DeliveryOutcome,
        now: i64,
    ) -> Result<bool, StoreError> {
        let query = match outcome {
            DeliveryOutcome::Succeeded { status } => sqlx::query(
                "UPDATE webhook_deliveries SET status = 'succeeded', attempts = attempts + 1, \
                 last_status = ?, last_error = NULL, lease_until = NULL, updated_at = ?, \
                 delivered_at = ? WHERE id = ? AND status = 'pending' AND lease_until = ?",
            )
            .bind(*status)
            .bind(now)
            .bind(now)
            .bind(id)
            .bind(leased_until),
            DeliveryOutcome::Failed {
                status,
                error,
                retry_at,
            } => sqlx::query(
                "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, \
                 last_status = ?, last_error = ?, lease_until = NULL, \
                 next_attempt_at = COALESCE(?, next_attempt_at), updated_at = ? \
                 WHERE id = ? AND status = 'pending' AND lease_until = ?",
            )
            .bind(if retry_at.is_some() {
                "pending"
            } else {
                "dead"
            })
            .bind(*status)
            .bind(error)
            .bind(*retry_at)
            .bind(now)
            .bind(id)
            .bind(leased_until),
        };
        let done = query.execute(self.pool()).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_deliveries(
        &self,
        webhook_id: &str,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
             WHERE webhook_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"
        )))
        .bind(webhook_id)
        // Every delivery id (`dlv_` and hex) sorts below "~".
        .bind(before.unwrap_or("~"))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(delivery_from)
        .collect()
    }
}

/// The statement for a cached user listing. Each filter shape gets one
/// that an index answers in user-id order, so a page costs the same at any
/// depth and any size (checked by `every_cached_read_walks_an_index`).
fn cached_users_sql(f: &CachedUserFilter) -> &'static str {
    // `?2` (the last id seen, "" on the first page) bounds the index range
    // itself: `(?2 IS NULL OR ...)` would not, and deep pages would walk
    // every earlier row.
    if f.group_id.is_some() {
        "SELECT u.user_id, u.email, u.status, u.is_admin, u.data_json \
         FROM dir_memberships m JOIN dir_users u \
           ON u.account_id = m.account_id AND u.user_id = m.user_id \
         WHERE m.account_id = ?1 AND m.group_id = ?5 AND m.user_id > ?2 \
         AND (?3 IS NULL OR u.status = ?3) AND (?4 IS NULL OR u.is_admin = ?4) \
         AND (?6 IS NULL OR u.email = ?6) ORDER BY m.user_id LIMIT ?7"
    } else if f.email.is_some() {
        "SELECT user_id, email, status, is_admin, data_json FROM dir_users \
         WHERE account_id = ?1 AND email = ?6 AND user_id > ?2 \
         AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR is_admin = ?4) \
         ORDER BY user_id LIMIT ?7"
    } else if f.status.is_some() && f.is_admin.is_some() {
        "SELECT user_id, email, status, is_admin, data_json FROM dir_users \
         INDEXED BY dir_users_status_admin \
         WHERE account_id = ?1 AND status = ?3 AND is_admin = ?4 AND user_id > ?2 \
         ORDER BY user_id LIMIT ?7"
    } else if f.status.is_some() {
        "SELECT user_id, email, status, is_admin, data_json FROM dir_users \
         INDEXED BY dir_users_status \
         WHERE account_id = ?1 AND status = ?3 AND user_id > ?2 ORDER BY user_id LIMIT ?7"
    } else {
        "SELECT user_id, email, status, is_admin, data_json FROM dir_users \
         WHERE account_id = ?1 AND user_id > ?2 AND (?4 IS NULL OR is_admin = ?4) \
         ORDER BY user_id LIMIT ?7"
    }
}

/// The statement for a cached membership listing, in (group, user) order;
/// by user alone it walks the user index.
fn cached_memberships_sql(by_group: bool, by_user: bool) -> &'static str {
    // `?4`/`?5` are the last pair seen ("" on the first page). SQLite binds
    // by number, so a statement may leave some of ?1..?6 unused.
    if by_group {
        "SELECT group_id, user_id FROM dir_memberships \
         WHERE account_id = ?1 AND group_id = ?2 AND user_id > ?5 \
         AND (?3 IS NULL OR user_id = ?3) \
         ORDER BY group_id, user_id LIMIT ?6"
    } else if by_user {
        "SELECT group_id, user_id FROM dir_memberships INDEXED BY dir_memberships_user \
         WHERE account_id = ?1 AND user_id = ?3 AND group_id > ?4 \
         ORDER BY group_id, user_id LIMIT ?6"
    } else {
        "SELECT group_id, user_id FROM dir_memberships \
         WHERE account_id = ?1 AND (group_id, user_id) > (?4, ?5) \
         ORDER BY group_id, user_id LIMIT ?6"
    }
}

/// Rows per chunk of a whole-snapshot read.
const PACKED_ROWS: i64 = 20_000;

/// Reads a large result as a few JSON arrays (`sql` packs up to `?3` rows
/// whose key is past `?2` with `json_group_array`): fetching rows one by one
/// costs more in the driver than SQLite spends finding them. `first` is the
/// key before every row, `last_key` a chunk's largest key as bound to `?2`
/// (text, or a JSON pair).
async fn packed_chunks<T: serde::de::DeserializeOwned>(
    store: &SqliteStore,
    sql: &'static str,
    account: &AccountId,
    first: String,
    last_key: impl Fn(&[T]) -> Option<String>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    let mut after = first;
    loop {
        let packed: String = sqlx::query_scalar(sql)
            .bind(account.as_str())
            .bind(&after)
            .bind(PACKED_ROWS)
            .fetch_one(store.pool())
            .await?;
        let chunk: Vec<T> = serde_json::from_str(&packed).map_err(corrupt)?;
        let full = i64::try_from(chunk.len()).unwrap_or(0) >= PACKED_ROWS;
        let last = last_key(&chunk);
        out.extend(chunk);
        match last {
            Some(last) if full => after = last,
            _ => return Ok(out),
        }
    }
}

/// A stored user as packed by `json_array(user_id, email, status,
/// is_admin, data_json)`.
type PackedUser = (String, Option<String>, String, i64, String);

fn unpacked_user((user_id, email, status, is_admin, data_json): PackedUser) -> CachedUserRow {
    CachedUserRow {
        user_id,
        email,
        status,
        is_admin: is_admin != 0,
        data_json,
    }
}

/// Puts rows read through `json_group_array` in id order: the aggregate
/// follows its subquery's order in practice, not by definition.
fn in_id_order<T>(rows: &mut [T], id: impl Fn(&T) -> &String) {
    if !rows.is_sorted_by(|a, b| id(a) <= id(b)) {
        rows.sort_unstable_by(|a, b| id(a).cmp(id(b)));
    }
}

/// The largest id of a chunk (an aggregate promises no order). Rust orders
/// strings by their bytes, as SQLite's default collation does.
fn last_id<T>(rows: &[T], id: impl Fn(&T) -> &String) -> Option<String> {
    rows.iter().map(id).max().cloned()
}

/// Rows per batched statement.
const BATCH_ROWS: usize = 2_000;

// `?1` is the account (events carry their own), `?2` a JSON array of rows
// (each an array, or a plain string for ids). `WHERE true` lets
// `ON CONFLICT` follow a SELECT.
const DELETE_USERS: &str = "DELETE FROM dir_users WHERE account_id = ?1 \
     AND user_id IN (SELECT value FROM json_each(?2))";
const DELETE_GROUPS: &str = "DELETE FROM dir_groups WHERE account_id = ?1 \
     AND group_id IN (SELECT value FROM json_each(?2))";
const UPSERT_GROUPS: &str = "INSERT INTO dir_groups (account_id, group_id, name, data_json) \
     SELECT ?1, value ->> 0, value ->> 1, value ->> 2 FROM json_each(?2) WHERE true \
     ON CONFLICT (account_id, group_id) DO UPDATE SET name = excluded.name, \
     data_json = excluded.data_json";
const DELETE_MEMBERSHIPS: &str = "DELETE FROM dir_memberships WHERE account_id = ?1 \
     AND (group_id, user_id) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?2))";
const INSERT_MEMBERSHIPS: &str = "INSERT INTO dir_memberships (account_id, group_id, user_id) \
     SELECT ?1, value ->> 0, value ->> 1 FROM json_each(?2) WHERE true ON CONFLICT DO NOTHING";
const INSERT_ROLES: &str = "INSERT INTO dir_roles (account_id, role_id, data_json) \
     SELECT ?1, value ->> 0, value ->> 1 FROM json_each(?2) WHERE true ON CONFLICT DO NOTHING";
const INSERT_EVENTS: &str = "INSERT INTO events \
     (id, tenant_id, account_id, type, occurred_at, data_json) \
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5 \
     FROM json_each(?2) WHERE true ON CONFLICT (id) DO NOTHING";

/// Users per `upsert_users` statement: 7 values each, within SQLite's
/// 32,766 bound parameters.
const USERS_PER_STATEMENT: usize = 4_000;

/// The upsert of `rows` users: multi-row VALUES, every value bound.
fn upsert_users_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO dir_users \
         (account_id, user_id, email, status, is_admin, data_json, data_hash) VALUES ",
    );
    for row in 0..rows {
        sql.push_str(if row == 0 { "" } else { "," });
        sql.push_str("(?,?,?,?,?,?,?)");
    }
    sql.push_str(
        " ON CONFLICT (account_id, user_id) DO UPDATE SET \
         email = excluded.email, status = excluded.status, is_admin = excluded.is_admin, \
         data_json = excluded.data_json, data_hash = excluded.data_hash",
    );
    sql
}

static UPSERT_FULL_USERS: LazyLock<String> =
    LazyLock::new(|| upsert_users_sql(USERS_PER_STATEMENT));

/// Writes users with their stored hashes. Bound as values, not as a JSON
/// batch, where each user's JSON is escaped into the batch and unescaped by
/// SQLite again: 100,000 users took 0.89 s that way, 0.64 s this way.
async fn upsert_users(
    tx: &mut Transaction<'_, Sqlite>,
    account: &str,
    users: &[(CachedUserRow, i64)],
) -> Result<(), StoreError> {
    for chunk in users.chunks(USERS_PER_STATEMENT) {
        let mut query = if chunk.len() == USERS_PER_STATEMENT {
            sqlx::query(UPSERT_FULL_USERS.as_str())
        } else {
            // The last, shorter statement is not worth keeping prepared.
            sqlx::query(sqlx::AssertSqlSafe(upsert_users_sql(chunk.len()))).persistent(false)
        };
        for (user, hash) in chunk {
            query = query
                .bind(account)
                .bind(&user.user_id)
                .bind(&user.email)
                .bind(&user.status)
                .bind(i64::from(user.is_admin))
                .bind(&user.data_json)
                .bind(hash);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Runs `sql` once per batch of `rows`, each batch bound as a JSON array.
async fn batched<T: serde::Serialize>(
    tx: &mut Transaction<'_, Sqlite>,
    account: &str,
    rows: &[T],
    sql: &'static str,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(BATCH_ROWS) {
        let json = serde_json::to_string(chunk).map_err(corrupt)?;
        sqlx::query(sql)
            .bind(account)
            .bind(json)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub(crate) async fn insert_job_in(
    tx: &mut Transaction<'_, Sqlite>,
    j: &JobRow,
) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO jobs ({JOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )))
    .bind(&j.id)
    .bind(&j.kind)
    .bind(j.tenant_id.as_ref().map(TenantId::as_str))
    .bind(j.account_id.as_ref().map(AccountId::as_str))
    .bind(&j.payload_json)
    .bind(j.status.as_str())
    .bind(j.run_at)
    .bind(j.attempts)
    .bind(j.max_attempts)
    .bind(&j.lease_owner)
    .bind(j.lease_until)
    .bind(&j.last_error)
    .bind(j.created_at)
    .bind(j.updated_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
            what: "job",
            field: "account",
        },
        _ => StoreError::Database(e),
    })?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::Store as _;

    /// Whole-snapshot reads come in chunks; every row arrives exactly once
    /// across chunk edges, whatever the ids look like.
    #[tokio::test]
    async fn snapshot_reads_cross_chunks_without_loss_or_repeats() {
        use crate::sync::SyncStore as _;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("chunks.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        store.migrate().await.unwrap();
        let tenant = crate::TenantRow {
            id: TenantId::generate(),
            name: "t".into(),
            created_at: 1,
        };
        store.insert_tenant(&tenant).await.unwrap();
        let account = crate::AccountRow {
            id: AccountId::generate(),
            tenant_id: tenant.id.clone(),
            provider: rollcall_core::Provider::Metabase,
            label: "l".into(),
            tenant_ref: None,
            config_json: "{}".into(),
            credentials_key_id: "k".into(),
            credentials_sealed: vec![1],
            status: crate::AccountStatus::Active,
            status_detail: None,
            created_at: 1,
            updated_at: 1,
        };
        store.insert_account(&account).await.unwrap();
        let n = usize::try_from(PACKED_ROWS).unwrap() * 2 + 7;
        let users: Vec<CachedUserRow> = (0..n)
            .map(|i| CachedUserRow {
                user_id: i.to_string(),
                email: (i % 3 == 0).then(|| format!("u{i}@x")),
                status: "active".into(),
                is_admin: i % 5 == 0,
                data_json: format!(r#"{{"id":"{i}","note":"a \"quoted\" text"}}"#),
            })
            .collect();
        // Group ids where one is a prefix of another ("1", "10").
        let memberships: Vec<(String, String)> = (0..n)
            .map(|i| (["1", "10", "2"][i % 3].to_owned(), i.to_string()))
            .collect();
        let commit = SyncCommit {
            run_id: "r".into(),
            account_id: Some(account.id.clone()),
            upsert_users: users
                .iter()
                .cloned()
                .map(CachedUserRow::with_content_hash)
                .collect(),
            add_memberships: memberships.clone(),
            counts_json: "{}".into(),
            ..SyncCommit::default()
        };
        assert!(store.commit_sync(&commit).await.unwrap());
        let mut read = store.snapshot_users(&account.id).await.unwrap();
        let mut expected = users;
        read.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        expected.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        assert_eq!(read, expected);
        let mut pairs = store.snapshot_memberships(&account.id).await.unwrap();
        let mut expected = memberships;
        pairs.sort();
        expected.sort();
        assert_eq!(pairs, expected);
    }

    /// Every cached read answers from an index in its own order: no full
    /// scan of the table and no sort of the whole result, so a page of 100
    /// costs the same with ten thousand users or a million.
    #[tokio::test]
    async fn every_cached_read_walks_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("plan.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        store.migrate().await.unwrap();
        let some = || Some("x".to_owned());
        let mut statements: Vec<&str> = Vec::new();
        for (status, email, is_admin, group_id) in [
            (some(), None, None, None),
            (some(), None, Some(true), None),
            (some(), some(), None, None),
            (some(), None, None, some()),
            (None, None, None, None),
            (None, None, Some(true), None),
        ] {
            statements.push(cached_users_sql(&CachedUserFilter {
                status,
                email,
                is_admin,
                group_id,
            }));
        }
        for (by_group, by_user) in [(false, false), (true, false), (false, true), (true, true)] {
            statements.push(cached_memberships_sql(by_group, by_user));
        }
        for sql in statements {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .bind("acct")
                .bind("after")
                .bind("active")
                .bind(1_i64)
                .bind("g")
                .bind("e")
                .bind(100_i64)
                .fetch_all(store.pool())
                .await
                .unwrap();
            let plan: Vec<String> = rows
                .iter()
                .map(|r| r.try_get::<String, _>("detail").unwrap())
                .collect();
            let text = plan.join(" | ");
            assert!(
                !text.contains("TEMP B-TREE"),
                "sorts the whole result: {text}\n{sql}"
            );
            assert!(
                plan.iter().all(|step| !step.starts_with("SCAN")),
                "scans a table: {text}\n{sql}"
            );
            assert!(
                plan[0].starts_with("SEARCH") && plan[0].contains(">"),
                "the cursor does not bound the index range: {text}\n{sql}"
            );
        }
    }
}
