//! [`GovernanceStore`] on SQLite.

use async_trait::async_trait;
use rollcall_core::id::{AccountId, TenantId};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::StoreError;
use crate::governance::{
    GovernanceStore, GrantEnd, GrantEnding, GrantFilter, GrantRow, GrantStatus, PlanClaim, PlanRow,
    PlanStatus, SnapshotState,
};
use crate::sqlite::SqliteStore;
use crate::sqlite_sync::{
    account_id, corrupt, end_job_in, holds, insert_events_in, insert_job_in, tenant_id, user_from,
};
use crate::sync::{CachedUserRow, EventRow, JobRow, JobStatus};

const GRANT_COLUMNS: &str = "id, tenant_id, account_id, user_id, group_id, reason, status, \
     preexisting, created_by, job_id, created_at, expires_at, ended_at, last_error, updated_at";

fn grant_from(row: &SqliteRow) -> Result<GrantRow, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(GrantRow {
        id: row.try_get("id")?,
        tenant_id: tenant_id(row.try_get("tenant_id")?)?,
        account_id: account_id(row.try_get("account_id")?)?,
        user_id: row.try_get("user_id")?,
        group_id: row.try_get("group_id")?,
        reason: row.try_get("reason")?,
        status: GrantStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("grant status {status}")))?,
        preexisting: row.try_get::<i64, _>("preexisting")? != 0,
        created_by: row.try_get("created_by")?,
        job_id: row.try_get("job_id")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        ended_at: row.try_get("ended_at")?,
        last_error: row.try_get("last_error")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const PLAN_COLUMNS: &str = "id, tenant_id, account_id, kind, request_json, changes_json, \
     snapshot_version, status, results_json, created_by, created_at, updated_at, applied_at";

fn plan_from(row: &SqliteRow) -> Result<PlanRow, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(PlanRow {
        id: row.try_get("id")?,
        tenant_id: tenant_id(row.try_get("tenant_id")?)?,
        account_id: account_id(row.try_get("account_id")?)?,
        kind: row.try_get("kind")?,
        request_json: row.try_get("request_json")?,
        changes_json: row.try_get("changes_json")?,
        snapshot_version: row.try_get("snapshot_version")?,
        status: PlanStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("plan status {status}")))?,
        results_json: row.try_get("results_json")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        applied_at: row.try_get("applied_at")?,
    })
}

#[async_trait]
impl GovernanceStore for SqliteStore {
    async fn snapshot_state(
        &self,
        account: &AccountId,
    ) -> Result<Option<SnapshotState>, StoreError> {
        let row = sqlx::query(
            "SELECT snapshot_version, activity_exposed, last_success_at FROM account_sync_state \
             WHERE account_id = ? AND last_success_at IS NOT NULL",
        )
        .bind(account.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(SnapshotState {
                version: r.try_get("snapshot_version")?,
                activity_exposed: r.try_get::<i64, _>("activity_exposed")? != 0,
                synced_at: r.try_get("last_success_at")?,
            })
        })
        .transpose()
    }

    async fn insert_grant(
        &self,
        g: &GrantRow,
        job: &JobRow,
        event: Option<&EventRow>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        insert_job_in(&mut tx, job).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO access_grants ({GRANT_COLUMNS}) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )))
        .bind(&g.id)
        .bind(g.tenant_id.as_str())
        .bind(g.account_id.as_str())
        .bind(&g.user_id)
        .bind(&g.group_id)
        .bind(&g.reason)
        .bind(g.status.as_str())
        .bind(i64::from(g.preexisting))
        .bind(&g.created_by)
        .bind(&g.job_id)
        .bind(g.created_at)
        .bind(g.expires_at)
        .bind(g.ended_at)
        .bind(&g.last_error)
        .bind(g.updated_at)
        .execute(&mut *tx)
        .await?;
        if let Some(event) = event {
            insert_events_in(&mut tx, std::slice::from_ref(event)).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn discard_grant(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "DELETE FROM jobs WHERE status = 'queued' \
             AND id = (SELECT job_id FROM access_grants WHERE id = ?)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM access_grants WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn grant(&self, tenant: &TenantId, id: &str) -> Result<Option<GrantRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GRANT_COLUMNS} FROM access_grants WHERE tenant_id = ? AND id = ?"
        )))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(grant_from)
        .transpose()
    }

    async fn list_grants(
        &self,
        tenant: &TenantId,
        filter: &GrantFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<GrantRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GRANT_COLUMNS} FROM access_grants \
             WHERE tenant_id = ?1 AND id > ?2 AND (?3 IS NULL OR account_id = ?3) \
             AND (?4 IS NULL OR status = ?4) ORDER BY id LIMIT ?5"
        )))
        .bind(tenant.as_str())
        .bind(after.unwrap_or(""))
        .bind(filter.account_id.as_ref().map(AccountId::as_str))
        .bind(filter.status.map(GrantStatus::as_str))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(grant_from)
        .collect()
    }

    async fn live_grants_on(
        &self,
        account: &AccountId,
        group_id: &str,
        user_id: &str,
    ) -> Result<Vec<GrantRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GRANT_COLUMNS} FROM access_grants \
             WHERE account_id = ? AND group_id = ? AND user_id = ? \
             AND status IN ('active', 'expiring') ORDER BY id"
        )))
        .bind(account.as_str())
        .bind(group_id)
        .bind(user_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(grant_from)
        .collect()
    }

    async fn end_grant(&self, end: &GrantEnd<'_>) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        if let Some(lease) = end.lease
            && !holds(&mut tx, lease).await?
        {
            return Ok(false);
        }
        let job_id: Option<String> = sqlx::query_scalar(
            "UPDATE access_grants SET status = ?, ended_at = ?, last_error = NULL, updated_at = ? \
             WHERE id = ? AND status IN ('active', 'expiring') RETURNING job_id",
        )
        .bind(end.to.as_str())
        .bind(end.now)
        .bind(end.now)
        .bind(end.grant_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(job_id) = job_id else {
            return Ok(false);
        };
        insert_events_in(&mut tx, std::slice::from_ref(end.event)).await?;
        match end.lease {
            Some(lease) => end_job_in(&mut tx, lease, JobStatus::Done, None, end.now).await?,
            // Revoked early: the expiry has nothing left to do.
            None => {
                sqlx::query(
                    "UPDATE jobs SET status = 'done', updated_at = ? \
                     WHERE id = ? AND status = 'queued'",
                )
                .bind(end.now)
                .bind(&job_id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn begin_grant_end(
        &self,
        id: &str,
        now: i64,
        retry_now: bool,
    ) -> Result<Option<GrantEnding>, StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let grant = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GRANT_COLUMNS} FROM access_grants WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(grant_from)
        .transpose()?;
        let Some(grant) = grant.filter(|g| g.status.is_live()) else {
            return Ok(None);
        };
        // Every live grant on the membership, locked: grants ending at the
        // same moment take their turns here.
        let holders: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, status FROM access_grants WHERE account_id = ? AND group_id = ? \
             AND user_id = ? AND status IN ('active', 'expiring') ORDER BY id",
        )
        .bind(grant.account_id.as_str())
        .bind(&grant.group_id)
        .bind(&grant.user_id)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("UPDATE access_grants SET status = 'expiring', updated_at = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if retry_now {
            sqlx::query(
                "UPDATE jobs SET run_at = ?, updated_at = ? WHERE id = ? AND status = 'queued'",
            )
            .bind(now)
            .bind(now)
            .bind(&grant.job_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Some(GrantEnding {
            others_active: holders
                .iter()
                .any(|(other, status)| other != id && status == "active"),
            was_expiring: grant.status == GrantStatus::Expiring,
        }))
    }

    async fn note_grant_error(&self, id: &str, error: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE access_grants SET status = 'expiring', last_error = ?, updated_at = ? \
             WHERE id = ? AND status IN ('active', 'expiring')",
        )
        .bind(error)
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn insert_plan(&self, p: &PlanRow) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO plans ({PLAN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )))
        .bind(&p.id)
        .bind(p.tenant_id.as_str())
        .bind(p.account_id.as_str())
        .bind(&p.kind)
        .bind(&p.request_json)
        .bind(&p.changes_json)
        .bind(p.snapshot_version)
        .bind(p.status.as_str())
        .bind(&p.results_json)
        .bind(&p.created_by)
        .bind(p.created_at)
        .bind(p.updated_at)
        .bind(p.applied_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn plan(&self, tenant: &TenantId, id: &str) -> Result<Option<PlanRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PLAN_COLUMNS} FROM plans WHERE tenant_id = ? AND id = ?"
        )))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(plan_from)
        .transpose()
    }

    async fn list_plans(
        &self,
        tenant: &TenantId,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PlanRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PLAN_COLUMNS} FROM plans WHERE tenant_id = ?1 AND (?2 IS NULL OR id < ?2) \
             ORDER BY id DESC LIMIT ?3"
        )))
        .bind(tenant.as_str())
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(plan_from)
        .collect()
    }

    async fn claim_plan(
        &self,
        tenant: &TenantId,
        id: &str,
        now: i64,
        abandoned_before: i64,
    ) -> Result<Option<PlanClaim>, StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let plan = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PLAN_COLUMNS} FROM plans WHERE tenant_id = ? AND id = ?"
        )))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(plan_from)
        .transpose()?;
        let Some(mut plan) = plan else {
            return Ok(None);
        };
        match plan.status {
            PlanStatus::Applied | PlanStatus::Failed => return Ok(Some(PlanClaim::Finished(plan))),
            PlanStatus::Applying if plan.updated_at >= abandoned_before => {
                return Ok(Some(PlanClaim::Busy));
            }
            PlanStatus::Applying | PlanStatus::Planned => {}
        }
        let current: i64 = sqlx::query_scalar(
            "SELECT snapshot_version FROM account_sync_state WHERE account_id = ?",
        )
        .bind(plan.account_id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or(0);
        // A plan half-applied by a dead applier is finished, stale or not:
        // its own changes moved the snapshot.
        if current != plan.snapshot_version && plan.status == PlanStatus::Planned {
            return Ok(Some(PlanClaim::Stale {
                current_version: current,
            }));
        }
        sqlx::query("UPDATE plans SET status = 'applying', updated_at = ? WHERE id = ?")
            .bind(now)
            .bind(&plan.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        plan.status = PlanStatus::Applying;
        plan.updated_at = now;
        Ok(Some(PlanClaim::Claimed(plan)))
    }

    async fn touch_plan(&self, id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE plans SET updated_at = ? WHERE id = ? AND status = 'applying'")
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn finish_plan(
        &self,
        id: &str,
        status: PlanStatus,
        results_json: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE plans SET status = ?1, results_json = NULLIF(?2, 'null'), \
             applied_at = CASE WHEN ?1 IN ('applied', 'failed') THEN ?3 END, updated_at = ?3 \
             WHERE id = ?4",
        )
        .bind(status.as_str())
        .bind(results_json)
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn report_emails(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT u.email FROM dir_users u INDEXED BY dir_users_by_email \
             WHERE u.email IS NOT NULL AND u.email > ?2 \
             AND u.account_id IN (SELECT id FROM integrated_accounts WHERE tenant_id = ?1) \
             ORDER BY u.email LIMIT ?3",
        )
        .bind(tenant.as_str())
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?)
    }

    async fn users_with_emails(
        &self,
        tenant: &TenantId,
        emails: &[String],
    ) -> Result<Vec<(AccountId, CachedUserRow)>, StoreError> {
        let emails = serde_json::to_string(emails).map_err(corrupt)?;
        sqlx::query(
            "SELECT u.account_id, u.user_id, u.email, u.status, u.is_admin, u.data_json \
             FROM dir_users u INDEXED BY dir_users_by_email \
             WHERE u.email IN (SELECT value FROM json_each(?2)) \
             AND u.account_id IN (SELECT id FROM integrated_accounts WHERE tenant_id = ?1) \
             ORDER BY u.email, u.account_id, u.user_id",
        )
        .bind(tenant.as_str())
        .bind(emails)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|row| Ok((account_id(row.try_get("account_id")?)?, user_from(row)?)))
        .collect()
    }
}
