//! Moving a deployment from SQLite to PostgreSQL: every table copied, in one
//! PostgreSQL transaction (all or nothing), into a migrated, empty
//! database. Columns are read by the types the PostgreSQL schema gives them
//! (the schema-equality test keeps both backends' columns in step).

use futures_util::TryStreamExt as _;
use sqlx::Row;

use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use crate::{Store as _, StoreError};

/// Parents before children, so foreign keys hold at every insert.
const TABLES: &[&str] = &[
    "tenants",
    "api_keys",
    "integrated_accounts",
    "audit_log",
    "link_tokens",
    "idempotency_keys",
    "jobs",
    "sync_runs",
    "account_sync_state",
    "dir_users",
    "dir_groups",
    "dir_memberships",
    "dir_roles",
    "events",
    "webhooks",
    "webhook_deliveries",
    "access_grants",
    "plans",
    "vendor_sends",
];

/// Rows per insert statement.
const BATCH: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// `(table, rows)` in copy order.
    pub tables: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
    Bytes,
}

/// One column's values of a batch.
enum Values {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

impl Values {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Int => Self::Int(Vec::with_capacity(BATCH)),
            Kind::Text => Self::Text(Vec::with_capacity(BATCH)),
            Kind::Bytes => Self::Bytes(Vec::with_capacity(BATCH)),
        }
    }
}

/// Copies everything in `from` into `to`, which must be migrated and hold
/// no tenant yet. Nothing is written unless all of it is.
pub async fn sqlite_to_postgres(
    from: &SqliteStore,
    to: &PgStore,
) -> Result<CopyReport, StoreError> {
    from.migrate().await?;
    to.migrate().await?;
    let mut tx = to.pool().begin().await?;
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&mut *tx)
        .await?;
    if existing > 0 {
        return Err(StoreError::Conflict {
            what: "destination database",
            field: "data (it must be empty)",
        });
    }
    let mut report = CopyReport { tables: Vec::new() };
    for table in TABLES {
        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&mut *tx)
        .await?;
        let kinds = columns
            .iter()
            .map(|(name, ty)| match ty.as_str() {
                "bigint" => Ok(Kind::Int),
                "text" => Ok(Kind::Text),
                "bytea" => Ok(Kind::Bytes),
                other => Err(StoreError::Corrupt(format!(
                    "{table}.{name} has type {other}, which the copy does not know"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        let list = names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let arrays = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let ty = match k {
                    Kind::Int => "bigint[]",
                    Kind::Text => "text[]",
                    Kind::Bytes => "bytea[]",
                };
                format!("${}::{ty}", i + 1)
            })
            .collect::<Vec<_>>()
            .join(", ");
        // `events.seq` is an identity column: its values are kept as they
        // were, so cursors handed out before the move stay valid.
        let overriding = if *table == "events" {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        let insert =
            format!("INSERT INTO {table} ({list}){overriding} SELECT * FROM UNNEST({arrays})");
        let select = format!("SELECT {list} FROM {table}");
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(select)).fetch(from.pool());
        let mut batch: Vec<Values> = kinds.iter().map(|k| Values::new(*k)).collect();
        let mut pending = 0_usize;
        let mut copied = 0_u64;
        while let Some(row) = rows.try_next().await? {
            for (i, values) in batch.iter_mut().enumerate() {
                match values {
                    Values::Int(v) => v.push(row.try_get::<Option<i64>, _>(i)?),
                    Values::Text(v) => v.push(row.try_get::<Option<String>, _>(i)?),
                    Values::Bytes(v) => v.push(row.try_get::<Option<Vec<u8>>, _>(i)?),
                }
            }
            pending += 1;
            if pending == BATCH {
                copied += flush(&mut tx, &insert, &mut batch, &kinds).await?;
                pending = 0;
            }
        }
        if pending > 0 {
            copied += flush(&mut tx, &insert, &mut batch, &kinds).await?;
        }
        report.tables.push(((*table).to_owned(), copied));
    }
    // New events continue after the copied ones.
    sqlx::query(
        "SELECT setval(pg_get_serial_sequence('events', 'seq'), \
         GREATEST((SELECT max(seq) FROM events), 1), (SELECT count(*) > 0 FROM events))",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(report)
}

async fn flush(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    insert: &str,
    batch: &mut [Values],
    kinds: &[Kind],
) -> Result<u64, StoreError> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(insert.to_owned()));
    for (values, kind) in batch.iter_mut().zip(kinds) {
        query = match std::mem::replace(values, Values::new(*kind)) {
            Values::Int(v) => query.bind(v),
            Values::Text(v) => query.bind(v),
            Values::Bytes(v) => query.bind(v),
        };
    }
    Ok(query.execute(&mut **tx).await?.rows_affected())
}
