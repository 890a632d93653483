//! [`SyncStore`] on PostgreSQL. Several nodes share the database, so what
//! SQLite's single writer made atomic is made so here with row locks: a job
//! or delivery is claimed with `FOR UPDATE SKIP LOCKED`, a lease is checked
//! with the job row locked until commit, and events are written under a
//! transaction-scoped advisory lock so their sequence numbers follow commit
//! order (a reader paging by `seq` never skips an event committed late).

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use rollcall_core::id::{AccountId, TenantId};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

use crate::StoreError;
use crate::postgres::PgStore;
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

fn job_from(row: &PgRow) -> Result<JobRow, StoreError> {
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

fn run_from(row: &PgRow) -> Result<SyncRunRow, StoreError> {
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

pub(crate) fn user_from(row: &PgRow) -> Result<CachedUserRow, StoreError> {
    Ok(CachedUserRow {
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        status: row.try_get("status")?,
        is_admin: row.try_get::<i64, _>("is_admin")? != 0,
        data_json: row.try_get("data_json")?,
    })
}

fn group_from(row: &PgRow) -> Result<CachedGroupRow, StoreError> {
    Ok(CachedGroupRow {
        group_id: row.try_get("group_id")?,
        name: row.try_get("name")?,
        data_json: row.try_get("data_json")?,
    })
}

const EVENT_COLUMNS: &str = "seq, id, tenant_id, account_id, type, occurred_at, data_json";

fn event_from(row: &PgRow) -> Result<EventRow, StoreError> {
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

fn webhook_from(row: &PgRow) -> Result<WebhookRow, StoreError> {
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

fn delivery_from(row: &PgRow) -> Result<DeliveryRow, StoreError> {
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
    tx: &mut Transaction<'_, Postgres>,
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
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(EVENTS_LOCK)
        .execute(&mut **tx)
        .await?;
    batched(tx, "", &rows, INSERT_EVENTS).await
}

/// Whether `lease` still holds its job (checked inside a transaction).
pub(crate) async fn holds(
    tx: &mut Transaction<'_, Postgres>,
    lease: &Lease,
) -> Result<bool, StoreError> {
    let held: Option<i64> = sqlx::query_scalar(
        "SELECT 1::bigint FROM jobs WHERE id = $1 AND lease_owner = $2 AND status = 'running' FOR UPDATE",
    )
    .bind(&lease.job_id)
    .bind(&lease.owner)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(held.is_some())
}

pub(crate) async fn end_job_in(
    tx: &mut Transaction<'_, Postgres>,
    lease: &Lease,
    status: JobStatus,
    error: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE jobs SET status = $1, last_error = $2, lease_owner = NULL, lease_until = NULL, \
         updated_at = $3 WHERE id = $4 AND lease_owner = $5",
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
impl SyncStore for PgStore {
    async fn enqueue_sync(
        &self,
        run: &SyncRunRow,
        job: &JobRow,
        next_sync_at: i64,
    ) -> Result<Enqueued, StoreError> {
        let mut tx = self.pool().begin().await?;
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT payload_json::jsonb ->> 'sync_run_id' FROM jobs \
             WHERE account_id = $1 AND kind = 'sync' AND status IN ('queued', 'running')",
        )
        .bind(run.account_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(existing) = existing {
            return Ok(Enqueued::AlreadyQueued(existing));
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO sync_runs ({RUN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
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
        match insert_job_in(&mut tx, job).await {
            Ok(()) => {}
            // Another node queued one between the check and the insert (the
            // unique index on queued/running syncs per account caught it).
            Err(StoreError::Conflict { .. }) => {
                drop(tx);
                let existing: Option<String> = sqlx::query_scalar(
                    "SELECT payload_json::jsonb ->> 'sync_run_id' FROM jobs \
                     WHERE account_id = $1 AND kind = 'sync' AND status IN ('queued', 'running')",
                )
                .bind(run.account_id.as_str())
                .fetch_optional(self.pool())
                .await?;
                return match existing {
                    Some(existing) => Ok(Enqueued::AlreadyQueued(existing)),
                    None => Err(StoreError::Conflict {
                        what: "sync",
                        field: "account",
                    }),
                };
            }
            Err(e) => return Err(e),
        }
        sqlx::query(
            "INSERT INTO account_sync_state (account_id, next_sync_at) VALUES ($1, $2) \
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
            "SELECT {RUN_COLUMNS} FROM sync_runs WHERE tenant_id = $1 AND id = $2"
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
            "SELECT {RUN_COLUMNS} FROM sync_runs WHERE account_id = $1 \
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
            "SELECT last_success_at FROM account_sync_state WHERE account_id = $1",
        )
        .bind(account.as_str())
        .fetch_optional(self.pool())
        .await?;
        Ok(at.flatten())
    }

    async fn memberships_hash(&self, account: &AccountId) -> Result<Option<i64>, StoreError> {
        let hash: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT memberships_hash FROM account_sync_state WHERE account_id = $1",
        )
        .bind(account.as_str())
        .fetch_optional(self.pool())
        .await?;
        Ok(hash.flatten())
    }

    async fn last_full_read_at(&self, account: &AccountId) -> Result<Option<i64>, StoreError> {
        let at: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT last_full_read_at FROM account_sync_state WHERE account_id = $1",
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
             WHERE a.status = 'active' AND (s.next_sync_at IS NULL OR s.next_sync_at <= $1) \
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.account_id = a.id AND j.kind = 'sync' \
                             AND j.status IN ('queued', 'running')) \
             ORDER BY s.next_sync_at LIMIT $2",
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
        let mut tx = self.pool().begin().await?;
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
            "UPDATE jobs SET status = 'running', lease_owner = $1, lease_until = $3, \
             attempts = attempts + 1, updated_at = $2 \
             WHERE id = (SELECT id FROM jobs WHERE (status = 'queued' AND run_at <= $2) \
                         OR (status = 'running' AND lease_until < $2) \
                         ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
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
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'running'",
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
        let mut tx = self.pool().begin().await?;
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
            "UPDATE jobs SET status = 'queued', run_at = $1, last_error = $2, lease_owner = NULL, \
             lease_until = NULL, updated_at = $3 \
             WHERE id = $4 AND lease_owner = $5 AND status = 'running'",
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
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"
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
            sqlx::query("DELETE FROM jobs WHERE status IN ('done', 'failed') AND updated_at < $1")
                .bind(jobs_before)
                .execute(self.pool())
                .await?;
        let deliveries = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE status IN ('succeeded', 'dead') AND updated_at < $1",
        )
        .bind(deliveries_before)
        .execute(self.pool())
        .await?;
        Ok(jobs.rows_affected() + deliveries.rows_affected())
    }

    async fn start_sync_run(&self, id: &str, attempts: i64, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sync_runs SET status = 'running', phase = 'starting', attempts = $1, \
             started_at = COALESCE(started_at, $2) WHERE id = $3 AND status IN ('queued', 'running')",
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
            "UPDATE sync_runs SET phase = $1, progress_json = $2 WHERE id = $3 AND status = 'running'",
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
        let mut tx = self.pool().begin().await?;
        if let Some(lease) = lease {
            if !holds(&mut tx, lease).await? {
                return Ok(false);
            }
            end_job_in(&mut tx, lease, JobStatus::Failed, Some(error), now).await?;
        }
        sqlx::query(
            "UPDATE sync_runs SET status = 'failed', phase = NULL, error = $1, finished_at = $2 \
             WHERE id = $3",
        )
        .bind(error)
        .bind(now)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        insert_events_in(&mut tx, std::slice::from_ref(event)).await?;
        if let Some(account) = &event.account_id {
            sqlx::query("UPDATE account_sync_state SET last_run_id = $1 WHERE account_id = $2")
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
        let mut tx = self.pool().begin().await?;
        if let Some(lease) = &c.lease {
            if !holds(&mut tx, lease).await? {
                return Ok(false);
            }
            end_job_in(&mut tx, lease, JobStatus::Done, None, c.finished_at).await?;
        }
        // Rows go in batches, each one statement reading a JSON array
        // (`jsonb_array_elements`): one statement per row costs far more in round trips
        // to the database thread than SQLite spends on the rows.
        let users: Vec<_> = c
            .upsert_users
            .iter()
            .map(|(u, hash)| {
                (
                    &u.user_id,
                    &u.email,
                    &u.status,
                    i64::from(u.is_admin),
                    &u.data_json,
                    hash,
                )
            })
            .collect();
        let groups: Vec<_> = c
            .upsert_groups
            .iter()
            .map(|g| (&g.group_id, &g.name, &g.data_json))
            .collect();
        let roles: Vec<_> = c.roles.iter().map(|r| (&r.role_id, &r.data_json)).collect();
        batched(&mut tx, account, &c.delete_users, DELETE_USERS).await?;
        batched(&mut tx, account, &users, UPSERT_USERS).await?;
        batched(&mut tx, account, &c.delete_groups, DELETE_GROUPS).await?;
        batched(&mut tx, account, &groups, UPSERT_GROUPS).await?;
        batched(&mut tx, account, &c.remove_memberships, DELETE_MEMBERSHIPS).await?;
        batched(&mut tx, account, &c.add_memberships, INSERT_MEMBERSHIPS).await?;
        sqlx::query("DELETE FROM dir_roles WHERE account_id = $1")
            .bind(account)
            .execute(&mut *tx)
            .await?;
        batched(&mut tx, account, &roles, INSERT_ROLES).await?;
        insert_events_in(&mut tx, &c.events).await?;
        sqlx::query(
            "UPDATE sync_runs SET status = 'succeeded', phase = NULL, counts_json = $1, error = NULL, \
             finished_at = $2 WHERE id = $3",
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
             VALUES ($1, $2, $3, $4, $3, $5, $6, $7) \
             ON CONFLICT (account_id) DO UPDATE SET \
             last_run_id = excluded.last_run_id, last_success_at = excluded.last_success_at, \
             last_full_read_at = COALESCE(excluded.last_full_read_at, \
                                          account_sync_state.last_full_read_at), \
             snapshot_version = account_sync_state.snapshot_version + excluded.snapshot_version, \
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
            "UPDATE sync_runs SET finished_at = $1 WHERE id = $2 AND finished_at IS NOT NULL",
        )
        .bind(at)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn snapshot_users(&self, account: &AccountId) -> Result<Vec<CachedUserRow>, StoreError> {
        keyset_chunks(
            String::new(),
            |after| {
                Box::pin(async move {
                    sqlx::query(
                        "SELECT user_id, email, status, is_admin, data_json FROM dir_users \
                         WHERE account_id = $1 AND user_id > $2 ORDER BY user_id LIMIT $3",
                    )
                    .bind(account.as_str())
                    .bind(after)
                    .bind(SNAPSHOT_CHUNK)
                    .fetch_all(self.pool())
                    .await?
                    .iter()
                    .map(user_from)
                    .collect()
                })
            },
            |row: &CachedUserRow| row.user_id.clone(),
        )
        .await
    }

    async fn snapshot_user_hashes(
        &self,
        account: &AccountId,
    ) -> Result<Vec<(String, Option<i64>)>, StoreError> {
        keyset_chunks(
            String::new(),
            |after| {
                Box::pin(async move {
                    Ok(sqlx::query_as(
                        "SELECT user_id, data_hash FROM dir_users \
                         WHERE account_id = $1 AND user_id > $2 ORDER BY user_id LIMIT $3",
                    )
                    .bind(account.as_str())
                    .bind(after)
                    .bind(SNAPSHOT_CHUNK)
                    .fetch_all(self.pool())
                    .await?)
                })
            },
            |row: &(String, Option<i64>)| row.0.clone(),
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
            let rows = sqlx::query(
                "SELECT user_id, email, status, is_admin, data_json FROM dir_users \
                 WHERE account_id = $1 AND user_id = ANY($2)",
            )
            .bind(account.as_str())
            .bind(chunk)
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
            "SELECT group_id, name, data_json FROM dir_groups WHERE account_id = $1 ORDER BY group_id",
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
        keyset_chunks(
            (String::new(), String::new()),
            |after| {
                Box::pin(async move {
                    Ok(sqlx::query_as(
                        "SELECT group_id, user_id FROM dir_memberships WHERE account_id = $1 \
                         AND (group_id, user_id) > ($2, $3) ORDER BY group_id, user_id LIMIT $4",
                    )
                    .bind(account.as_str())
                    .bind(after.0)
                    .bind(after.1)
                    .bind(SNAPSHOT_CHUNK)
                    .fetch_all(self.pool())
                    .await?)
                })
            },
            |pair: &(String, String)| pair.clone(),
        )
        .await
    }

    async fn snapshot_roles(&self, account: &AccountId) -> Result<Vec<CachedRoleRow>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT role_id, data_json FROM dir_roles WHERE account_id = $1 ORDER BY role_id",
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
        // Only the filters in use go into the statement (PostgreSQL must
        // know every parameter's type), each shape answered by an index in
        // user-id order.
        let mut sql =
            String::from("SELECT u.user_id, u.email, u.status, u.is_admin, u.data_json FROM ");
        let mut n = 2;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        let mut conditions = Vec::new();
        if f.group_id.is_some() {
            sql.push_str(
                "dir_memberships m JOIN dir_users u \
                 ON u.account_id = m.account_id AND u.user_id = m.user_id \
                 WHERE m.account_id = $1 AND m.user_id > $2",
            );
            conditions.push(format!("m.group_id = {}", next()));
        } else {
            sql.push_str("dir_users u WHERE u.account_id = $1 AND u.user_id > $2");
        }
        if f.status.is_some() {
            conditions.push(format!("u.status = {}", next()));
        }
        if f.is_admin.is_some() {
            conditions.push(format!("u.is_admin = {}", next()));
        }
        if f.email.is_some() {
            conditions.push(format!("u.email = {}", next()));
        }
        for condition in conditions {
            sql.push_str(" AND ");
            sql.push_str(&condition);
        }
        sql.push_str(&format!(" ORDER BY u.user_id LIMIT {}", next()));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account.as_str())
            .bind(after.unwrap_or(""));
        if let Some(group) = &f.group_id {
            query = query.bind(group);
        }
        if let Some(status) = &f.status {
            query = query.bind(status);
        }
        if let Some(admin) = f.is_admin {
            query = query.bind(i64::from(admin));
        }
        if let Some(email) = &f.email {
            query = query.bind(email);
        }
        query
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(user_from)
            .collect()
    }

    async fn cached_user(
        &self,
        account: &AccountId,
        id: &str,
    ) -> Result<Option<CachedUserRow>, StoreError> {
        sqlx::query(
            "SELECT user_id, email, status, is_admin, data_json FROM dir_users \
             WHERE account_id = $1 AND user_id = $2",
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
        Ok(sqlx::query_as(
            "SELECT m.user_id, m.group_id, g.name FROM dir_memberships m \
             JOIN dir_groups g ON g.account_id = m.account_id AND g.group_id = m.group_id \
             WHERE m.account_id = $1 AND m.user_id = ANY($2) \
             ORDER BY m.user_id, m.group_id",
        )
        .bind(account.as_str())
        .bind(users)
        .fetch_all(self.pool())
        .await?)
    }

    async fn cached_groups(
        &self,
        account: &AccountId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<CachedGroupRow>, StoreError> {
        sqlx::query(
            "SELECT group_id, name, data_json FROM dir_groups \
             WHERE account_id = $1 AND group_id > $2 ORDER BY group_id LIMIT $3",
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
            "SELECT group_id, name, data_json FROM dir_groups WHERE account_id = $1 AND group_id = $2",
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
        let rows = match (group_id, user_id) {
            (Some(group), user) => {
                sqlx::query_as(
                    "SELECT group_id, user_id FROM dir_memberships \
                     WHERE account_id = $1 AND group_id = $2 AND user_id > $3 \
                     AND ($4::text IS NULL OR user_id = $4) \
                     ORDER BY group_id, user_id LIMIT $5",
                )
                .bind(account.as_str())
                .bind(group)
                .bind(after_user)
                .bind(user)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?
            }
            (None, Some(user)) => {
                sqlx::query_as(
                    "SELECT group_id, user_id FROM dir_memberships \
                     WHERE account_id = $1 AND user_id = $2 AND group_id > $3 \
                     ORDER BY group_id, user_id LIMIT $4",
                )
                .bind(account.as_str())
                .bind(user)
                .bind(after_group)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?
            }
            (None, None) => {
                sqlx::query_as(
                    "SELECT group_id, user_id FROM dir_memberships \
                     WHERE account_id = $1 AND (group_id, user_id) > ($2, $3) \
                     ORDER BY group_id, user_id LIMIT $4",
                )
                .bind(account.as_str())
                .bind(after_group)
                .bind(after_user)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?
            }
        };
        Ok(rows)
    }

    async fn append_events(&self, events: &[EventRow]) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
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
            "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND seq > $2 \
             AND ($3::text IS NULL OR account_id = $3) ORDER BY seq LIMIT $4"
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
        // Creates for one tenant queue on a lock, so two concurrent creates
        // cannot both pass the cap.
        let mut tx = self.pool().begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(w.tenant_id.as_str())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) \
             SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::bytea, $7::bigint, \
                    $8::bigint \
             WHERE (SELECT count(*) FROM webhooks WHERE tenant_id = $2) < $9"
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
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn webhook(&self, tenant: &TenantId, id: &str) -> Result<Option<WebhookRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 AND id = $2"
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
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 ORDER BY id"
        )))
        .bind(tenant.as_str())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(webhook_from)
        .collect()
    }

    async fn delete_webhook(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2")
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
            "UPDATE webhooks SET secret_key_id = $1, secret_sealed = $2 \
             WHERE id = $3 AND secret_key_id = $4 AND secret_sealed = $5",
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
            let mut tx = self.pool().begin().await?;
            // Re-read the cursor inside the transaction: another worker may
            // have moved it since.
            let cursor: Option<i64> =
                sqlx::query_scalar("SELECT last_event_seq FROM webhooks WHERE id = $1 FOR UPDATE")
                    .bind(&w.id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(cursor) = cursor else { continue };
            let events: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT seq, id, type FROM events WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
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
                     VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6, $7) ON CONFLICT DO NOTHING",
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
            sqlx::query("UPDATE webhooks SET last_event_seq = $1 WHERE id = $2")
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
        let mut tx = self.pool().begin().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
             AND (lease_until IS NULL OR lease_until < $2) ORDER BY next_attempt_at, id LIMIT $3 \
             FOR UPDATE SKIP LOCKED",
        )
        .bind(now)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            sqlx::query("UPDATE webhook_deliveries SET lease_until = $1 WHERE id = $2")
                .bind(lease_until)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1"
            )))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            let delivery = delivery_from(&row)?;
            let webhook = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"
            )))
            .bind(&delivery.webhook_id)
            .fetch_one(&mut *tx)
            .await?;
            let event = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE seq = $1"
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
                 last_status = $1, last_error = NULL, lease_until = NULL, updated_at = $2, \
                 delivered_at = $3 WHERE id = $4 AND status = 'pending' AND lease_until = $5",
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
                "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, \
                 last_status = $2, last_error = $3, lease_until = NULL, \
                 next_attempt_at = COALESCE($4, next_attempt_at), updated_at = $5 \
                 WHERE id = $6 AND status = 'pending' AND lease_until = $7",
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
             WHERE webhook_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
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

/// Rows per chunk of a whole-snapshot read.
const SNAPSHOT_CHUNK: i64 = 20_000;

/// A whole snapshot listing, read `SNAPSHOT_CHUNK` rows at a time by keyset
/// (one huge result would be held twice, in the driver and as rows):
/// `chunk(after)` reads the rows past a key, in key order; `key_of` is a
/// row's key; `first` comes before every key.
async fn keyset_chunks<'a, K, T>(
    first: K,
    chunk: impl Fn(K) -> BoxFuture<'a, Result<Vec<T>, StoreError>>,
    key_of: impl Fn(&T) -> K,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    let mut after = first;
    loop {
        let rows = chunk(after).await?;
        let full = i64::try_from(rows.len()).unwrap_or(0) >= SNAPSHOT_CHUNK;
        let last = rows.last().map(&key_of);
        out.extend(rows);
        match last {
            Some(last) if full => after = last,
            _ => return Ok(out),
        }
    }
}

/// Rows per batched statement.
const BATCH_ROWS: usize = 2_000;

// `$1` is the account (events carry their own), `$2` a JSON array of rows
// (each an array, or a plain string for ids).
const DELETE_USERS: &str = "DELETE FROM dir_users WHERE account_id = $1 \
     AND user_id IN (SELECT jsonb_array_elements_text($2::jsonb))";
const UPSERT_USERS: &str = "INSERT INTO dir_users \
     (account_id, user_id, email, status, is_admin, data_json, data_hash) \
     SELECT $1, value ->> 0, value ->> 1, value ->> 2, (value ->> 3)::bigint, value ->> 4, \
     (value ->> 5)::bigint \
     FROM jsonb_array_elements($2::jsonb) ON CONFLICT (account_id, user_id) DO UPDATE SET \
     email = excluded.email, status = excluded.status, is_admin = excluded.is_admin, \
     data_json = excluded.data_json, data_hash = excluded.data_hash";
const DELETE_GROUPS: &str = "DELETE FROM dir_groups WHERE account_id = $1 \
     AND group_id IN (SELECT jsonb_array_elements_text($2::jsonb))";
const UPSERT_GROUPS: &str = "INSERT INTO dir_groups (account_id, group_id, name, data_json) \
     SELECT $1, value ->> 0, value ->> 1, value ->> 2 FROM jsonb_array_elements($2::jsonb) \
     ON CONFLICT (account_id, group_id) DO UPDATE SET name = excluded.name, \
     data_json = excluded.data_json";
const DELETE_MEMBERSHIPS: &str = "DELETE FROM dir_memberships WHERE account_id = $1 \
     AND (group_id, user_id) IN \
     (SELECT value ->> 0, value ->> 1 FROM jsonb_array_elements($2::jsonb))";
const INSERT_MEMBERSHIPS: &str = "INSERT INTO dir_memberships (account_id, group_id, user_id) \
     SELECT $1, value ->> 0, value ->> 1 FROM jsonb_array_elements($2::jsonb) \
     ON CONFLICT DO NOTHING";
const INSERT_ROLES: &str = "INSERT INTO dir_roles (account_id, role_id, data_json) \
     SELECT $1, value ->> 0, value ->> 1 FROM jsonb_array_elements($2::jsonb) \
     ON CONFLICT DO NOTHING";
const INSERT_EVENTS: &str = "INSERT INTO events \
     (id, tenant_id, account_id, type, occurred_at, data_json) \
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, (value ->> 4)::bigint, \
     value ->> 5 FROM jsonb_array_elements($2::jsonb) WHERE $1::text IS NOT NULL \
     ON CONFLICT (id) DO NOTHING";

/// The advisory lock every event-writing transaction takes first, so
/// events are numbered in commit order.
const EVENTS_LOCK: i64 = 0x726f_6c6c_6576;

/// Runs `sql` once per batch of `rows`, each batch bound as a JSON array.
async fn batched<T: serde::Serialize>(
    tx: &mut Transaction<'_, Postgres>,
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
    tx: &mut Transaction<'_, Postgres>,
    j: &JobRow,
) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO jobs ({JOB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
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
