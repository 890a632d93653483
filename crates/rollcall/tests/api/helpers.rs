use std::sync::Arc;

use rollcall_client::Client;
use rollcall_core::{SharedClock, SystemClock};
use rollcall_server::{AppState, Application};
use rollcall_store::Store;

pub struct TestApp {
    pub base_url: String,
    pub client: Client,
    pub store: Arc<dyn Store>,
    /// The same store, as its concrete type, for tests that need the pool.
    pub sqlite: rollcall_store::SqliteStore,
    pub clock: SharedClock,
    pub dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// The real application on port 0 with a fresh SQLite store in a temp dir.
pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rollcall.db").display());
    let sqlite = rollcall_store::SqliteStore::open(&url).await.unwrap();
    sqlite.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(sqlite.clone());
    let clock: SharedClock = Arc::new(SystemClock);
    let app = Application::bind(
        "127.0.0.1:0".parse().unwrap(),
        AppState {
            store: store.clone(),
            clock: clock.clone(),
        },
    )
    .await
    .unwrap();
    let base_url = format!("http://{}", app.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        client: Client::new(&base_url),
        base_url,
        store,
        sqlite,
        clock,
        dir,
        _shutdown: tx,
    }
}

/// The `rollcall` executable built for this test run.
pub fn rollcall_bin() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rollcall"));
    // Tests must not see the developer's own configuration.
    for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("ROLLCALL_")) {
        cmd.env_remove(name);
    }
    cmd
}
