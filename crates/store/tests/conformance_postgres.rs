//! The conformance suite on PostgreSQL, each case in a fresh schema of the
//! database `ROLLCALL_TEST_POSTGRES_URL` names (e.g.
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

const URL_VAR: &str = "ROLLCALL_TEST_POSTGRES_URL";

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
