//! The conformance suite on PostgreSQL, each case in a fresh schema of the
//! database `POSTGRES_TEST_URL` names (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`), plus the check that both
//! backends' migrations build the same schema.
//!
//! With the variable set, an unreachable database fails every case loudly.
//! Without it the cases pass without running and say so: a laptop without
//! PostgreSQL still runs the SQLite half. `.ci/run` always sets it.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::str::FromStr;

use rollcall_store::{PgStore, SqliteStore, Store};
use sqlx::postgres::PgConnectOptions;

const URL_VAR: &str = "POSTGRES_TEST_URL";

/// A migrated store in its own schema (dropped with the store... by the
/// next run: schemas of runs older than an hour are dropped first).
struct Fresh(PgStore);

impl std::ops::Deref for Fresh {
    type Target = PgStore;
    fn deref(&self) -> &PgStore {
        &self.0
    }
}

fn url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("{URL_VAR} is not set: the PostgreSQL conformance suite was NOT run");
            None
        }
    }
}

fn now_secs() -> u64 {
    use rollcall_core::Clock as _;
    u64::try_from(rollcall_core::SystemClock.now().as_second()).unwrap_or(0)
}

async fn fresh_schema(url: &str) -> PgConnectOptions {
    let admin = sqlx::PgPool::connect(url)
        .await
        .unwrap_or_else(|e| panic!("{URL_VAR}={url} is set but PostgreSQL is unreachable: {e}"));
    // Leftovers of earlier runs (an hour old or more).
    let old: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'rc\\_t\\_%'",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    for schema in old {
        let born: u64 = schema
            .split('_')
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if born + 3600 < now_secs() {
            let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await;
        }
    }
    let schema = format!("rc_t_{}_{}", now_secs(), uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    PgConnectOptions::from_str(url)
        .unwrap()
        .options([("search_path", schema.as_str())])
}

async fn make() -> Option<Fresh> {
    let url = url()?;
    let store = PgStore::open_with(fresh_schema(&url).await).await.unwrap();
    store.migrate().await.unwrap();
    Some(Fresh(store))
}

mod postgres {
    use super::make;
    rollcall_store::store_conformance_suite!(optional make());
}

#[test]
fn both_backends_carry_the_same_migration_versions() {
    let versions = |m: &sqlx::migrate::Migrator| {
        m.iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        versions(&rollcall_store::sqlite::MIGRATOR),
        versions(&rollcall_store::postgres::MIGRATOR)
    );
}

/// `(table, column, type, not null)` with SQLite's types named as their
/// PostgreSQL counterparts.
type Columns = BTreeSet<(String, String, String, bool)>;

#[tokio::test]
async fn both_backends_build_the_same_tables_and_columns() {
    let Some(url) = url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&format!(
        "sqlite://{}",
        dir.path().join("schema.db").display()
    ))
    .await
    .unwrap();
    sqlite.migrate().await.unwrap();
    let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT m.name, p.name, p.type, p.\"notnull\", p.pk FROM sqlite_master m \
         JOIN pragma_table_info(m.name) p WHERE m.type = 'table' \
         AND m.name NOT LIKE 'sqlite_%' AND m.name != '_sqlx_migrations'",
    )
    .fetch_all(sqlite.pool())
    .await
    .unwrap();
    let lite: Columns = rows
        .into_iter()
        .map(|(table, column, ty, notnull, pk)| {
            let ty = match ty.as_str() {
                "INTEGER" => "bigint",
                "TEXT" => "text",
                "BLOB" => "bytea",
                other => panic!("SQLite type {other} has no PostgreSQL counterpart here"),
            };
            // A WITHOUT ROWID or plain primary key column is NOT NULL in both.
            (table, column, ty.to_owned(), notnull != 0 || pk > 0)
        })
        .collect();

    let pg = PgStore::open_with(fresh_schema(&url).await).await.unwrap();
    pg.migrate().await.unwrap();
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text \
         FROM information_schema.columns WHERE table_schema = current_schema() \
         AND table_name != '_sqlx_migrations'",
    )
    .fetch_all(pg.pool())
    .await
    .unwrap();
    let postgres: Columns = rows
        .into_iter()
        .map(|(table, column, ty, nullable)| (table, column, ty, nullable == "NO"))
        .collect();
    let only_sqlite: Vec<_> = lite.difference(&postgres).collect();
    let only_postgres: Vec<_> = postgres.difference(&lite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "schemas differ:\n only in SQLite: {only_sqlite:#?}\n only in PostgreSQL: {only_postgres:#?}"
    );
}

mod copy {
    use rollcall_core::Provider;
    use rollcall_core::id::{AccountId, TenantId};
    use rollcall_store::{
        AccountRow, AccountStatus, AuditOutcome, AuditRow, CachedGroupRow, CachedUserRow, EventRow,
        GrantRow, GrantStatus, JobRow, JobStatus, Lease, PgStore, PlanRow, PlanStatus, SqliteStore,
        Store, StoreError, SyncCommit, SyncRunRow, SyncStatus, TenantRow,
    };
    use rollcall_store::{GovernanceStore as _, SyncStore as _};

    use super::{fresh_schema, url};

    fn event(tenant: &TenantId, account: &AccountId, kind: &str) -> EventRow {
        EventRow {
            seq: 0,
            id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
            tenant_id: tenant.clone(),
            account_id: Some(account.clone()),
            event_type: kind.into(),
            occurred_at: 100,
            data_json: r#"{"x":1}"#.into(),
        }
    }

    fn job(kind: &str, account: &AccountRow, payload: String) -> JobRow {
        JobRow {
            id: format!("job_{}", uuid::Uuid::now_v7().simple()),
            kind: kind.into(),
            tenant_id: Some(account.tenant_id.clone()),
            account_id: Some(account.id.clone()),
            payload_json: payload,
            status: JobStatus::Queued,
            run_at: 100,
            attempts: 0,
            max_attempts: 3,
            lease_owner: None,
            lease_until: None,
            last_error: None,
            created_at: 100,
            updated_at: 100,
        }
    }

    /// A deployment with a bit of everything.
    async fn populated(store: &SqliteStore) -> (TenantId, AccountId) {
        let tenant = TenantRow {
            id: TenantId::generate(),
            name: "acme".into(),
            created_at: 1,
        };
        store.insert_tenant(&tenant).await.unwrap();
        let account = AccountRow {
            id: AccountId::generate(),
            tenant_id: tenant.id.clone(),
            provider: Provider::Metabase,
            label: "BI".into(),
            tenant_ref: None,
            config_json: r#"{"base_url":"https://x"}"#.into(),
            credentials_key_id: "k1".into(),
            credentials_sealed: vec![0, 1, 2, 255],
            status: AccountStatus::Active,
            status_detail: None,
            created_at: 2,
            updated_at: 2,
        };
        store.insert_account(&account).await.unwrap();
        store
            .append_audit(&AuditRow {
                id: "au_1".into(),
                tenant_id: tenant.id.clone(),
                at: 3,
                actor: "key:k".into(),
                action: "integrated_account.created".into(),
                target_type: "integrated_account".into(),
                target_id: account.id.to_string(),
                request_id: None,
                before_json: None,
                after_json: Some("{}".into()),
                outcome: AuditOutcome::Success,
                detail: None,
            })
            .await
            .unwrap();
        let run = SyncRunRow {
            id: "sync_1".into(),
            tenant_id: tenant.id.clone(),
            account_id: account.id.clone(),
            trigger: "api".into(),
            status: SyncStatus::Queued,
            phase: None,
            progress_json: None,
            counts_json: None,
            error: None,
            attempts: 0,
            created_at: 100,
            started_at: None,
            finished_at: None,
        };
        let sync_job = job("sync", &account, r#"{"sync_run_id":"sync_1"}"#.into());
        store.enqueue_sync(&run, &sync_job, 1_000).await.unwrap();
        let claimed = store.claim_job("n1", 100, 1_000).await.unwrap().unwrap();
        let users: Vec<CachedUserRow> = (0..2_500)
            .map(|i| CachedUserRow {
                user_id: format!("u{i:05}"),
                email: Some(format!("u{i}@example.com")),
                status: "active".into(),
                is_admin: i % 100 == 0,
                data_json: format!(r#"{{"id":"u{i:05}"}}"#),
            })
            .collect();
        let commit = SyncCommit {
            lease: Some(Lease {
                job_id: claimed.id,
                owner: "n1".into(),
            }),
            run_id: "sync_1".into(),
            account_id: Some(account.id.clone()),
            upsert_users: users
                .into_iter()
                .map(CachedUserRow::with_content_hash)
                .collect(),
            upsert_groups: vec![CachedGroupRow {
                group_id: "g1".into(),
                name: "Eng".into(),
                data_json: "{}".into(),
            }],
            add_memberships: vec![("g1".into(), "u00001".into())],
            events: (0..3)
                .map(|_| event(&tenant.id, &account.id, "user.created"))
                .collect(),
            counts_json: "{}".into(),
            finished_at: 500,
            activity_exposed: true,
            snapshot_changed: true,
            ..SyncCommit::default()
        };
        assert!(store.commit_sync(&commit).await.unwrap());
        let expiry = job("grant_expiry", &account, r#"{"grant_id":"ag_1"}"#.into());
        let grant = GrantRow {
            id: "ag_1".into(),
            tenant_id: tenant.id.clone(),
            account_id: account.id.clone(),
            user_id: "u00002".into(),
            group_id: "g1".into(),
            reason: Some("on call".into()),
            status: GrantStatus::Active,
            preexisting: false,
            created_by: "key:k".into(),
            job_id: expiry.id.clone(),
            created_at: 600,
            expires_at: 9_000,
            ended_at: None,
            last_error: None,
            updated_at: 600,
        };
        store
            .insert_grant(
                &grant,
                &expiry,
                Some(&event(&tenant.id, &account.id, "access_grant.activated")),
            )
            .await
            .unwrap();
        store
            .insert_plan(&PlanRow {
                id: "plan_1".into(),
                tenant_id: tenant.id.clone(),
                account_id: account.id.clone(),
                kind: "group_sync".into(),
                request_json: "{}".into(),
                changes_json: r#"{"changes":[],"warnings":[]}"#.into(),
                snapshot_version: 1,
                status: PlanStatus::Planned,
                results_json: None,
                created_by: "key:k".into(),
                created_at: 700,
                updated_at: 700,
                applied_at: None,
            })
            .await
            .unwrap();
        (tenant.id, account.id)
    }

    #[tokio::test]
    async fn a_sqlite_deployment_moves_to_postgres_whole() {
        let Some(url) = url() else { return };
        let dir = tempfile::tempdir().unwrap();
        let sqlite =
            SqliteStore::open(&format!("sqlite://{}", dir.path().join("old.db").display()))
                .await
                .unwrap();
        sqlite.migrate().await.unwrap();
        let (tenant, account) = populated(&sqlite).await;
        let pg = PgStore::open_with(fresh_schema(&url).await).await.unwrap();

        let report = rollcall_store::copy::sqlite_to_postgres(&sqlite, &pg)
            .await
            .unwrap();
        let copied = |t: &str| report.tables.iter().find(|(n, _)| n == t).map(|(_, n)| *n);
        assert_eq!(copied("dir_users"), Some(2_500));
        assert_eq!(copied("events"), Some(4));
        assert_eq!(copied("access_grants"), Some(1));

        // Everything reads the same through the store on either side.
        assert_eq!(
            pg.account(&tenant, &account).await.unwrap(),
            sqlite.account(&tenant, &account).await.unwrap()
        );
        assert_eq!(
            pg.snapshot_users(&account).await.unwrap(),
            sqlite.snapshot_users(&account).await.unwrap()
        );
        assert_eq!(
            pg.snapshot_memberships(&account).await.unwrap(),
            sqlite.snapshot_memberships(&account).await.unwrap()
        );
        let events = sqlite.list_events(&tenant, None, 0, 100).await.unwrap();
        assert_eq!(pg.list_events(&tenant, None, 0, 100).await.unwrap(), events);
        assert_eq!(
            pg.grant(&tenant, "ag_1").await.unwrap(),
            sqlite.grant(&tenant, "ag_1").await.unwrap()
        );
        assert_eq!(
            pg.plan(&tenant, "plan_1").await.unwrap(),
            sqlite.plan(&tenant, "plan_1").await.unwrap()
        );
        assert_eq!(
            pg.snapshot_state(&account).await.unwrap(),
            sqlite.snapshot_state(&account).await.unwrap()
        );
        assert_eq!(
            pg.list_audit(&tenant, &Default::default(), None, 10)
                .await
                .unwrap(),
            sqlite
                .list_audit(&tenant, &Default::default(), None, 10)
                .await
                .unwrap()
        );
        // The grant's expiry job moved with it and is claimable there.
        let due = pg.claim_job("n2", 10_000, 20_000).await.unwrap().unwrap();
        assert_eq!(due.kind, "grant_expiry");

        // New events continue after the moved ones.
        let last = events.last().unwrap().seq;
        pg.append_events(&[event(&tenant, &account, "user.updated")])
            .await
            .unwrap();
        let after = pg.list_events(&tenant, None, last, 10).await.unwrap();
        assert_eq!(after.len(), 1);
        assert!(after[0].seq > last);

        // A destination with data is refused, and left as it was.
        let again = rollcall_store::copy::sqlite_to_postgres(&sqlite, &pg).await;
        assert!(
            matches!(again, Err(StoreError::Conflict { .. })),
            "{again:?}"
        );
        assert_eq!(
            pg.list_events(&tenant, None, 0, 100).await.unwrap().len(),
            5
        );
    }
}
