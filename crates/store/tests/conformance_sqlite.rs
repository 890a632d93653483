//! The conformance suite on the embedded SQLite store, each case in its own
//! fresh database file.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use rollcall_store::{SqliteStore, Store};

async fn fresh_sqlite() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("rollcall.db").display());
    let store = SqliteStore::open(&url).await.expect("open");
    store.migrate().await.expect("migrate");
    (store, dir)
}

/// Keeps the temp dir alive as long as the store.
struct Fresh(SqliteStore, #[allow(dead_code)] tempfile::TempDir);

impl std::ops::Deref for Fresh {
    type Target = SqliteStore;
    fn deref(&self) -> &SqliteStore {
        &self.0
    }
}

async fn make() -> Fresh {
    let (store, dir) = fresh_sqlite().await;
    Fresh(store, dir)
}

mod sqlite {
    use super::make;
    rollcall_store::store_conformance_suite!(make());
}

#[tokio::test]
async fn wal_is_on_and_timestamps_are_integers() {
    let (store, _dir) = fresh_sqlite().await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let ty: String = sqlx::query_scalar(
        "SELECT type FROM pragma_table_info('tenants') WHERE name = 'created_at'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(ty, "INTEGER");
}
