//! No credential ever lands in clear in the database files or the logs.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{captured_logs, spawn_app};

#[tokio::test]
async fn no_credential_is_stored_or_logged_in_clear() {
    let app = spawn_app().await;
    let m = app.mode.fixtures().clone();
    let f = app.metabase.fixtures().clone();
    let mode_body = json!({
        "provider": "mode",
        "config": { "base_url": app.mode.base_url(), "workspace": m.workspace },
        "credentials": { "token": m.admin.token, "secret": m.admin.secret, "discovery_token": m.discovery_token },
    });
    let accounts = [
        app.acme.create_account(&mode_body).await.unwrap(),
        app.acme
            .create_account(&app.metabase_password_body())
            .await
            .unwrap(),
        app.acme
            .create_account(&app.metabase_api_key_body(&f.admin_api_key))
            .await
            .unwrap(),
    ];
    // Exercise every credential: proxy calls and a failed link.
    for account in &accounts {
        app.proxy(Method::GET, &account.id, "/api/user/current")
            .send()
            .await
            .unwrap();
    }
    let _ = app
        .acme
        .create_account(&json!({
            "provider": "metabase",
            "config": { "base_url": app.metabase.base_url() },
            "credentials": { "username": f.admin_email, "password": "Wr0ng-but-secret-pass" },
        }))
        .await;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(app.sqlite.pool())
        .await
        .unwrap();

    let secrets = [
        m.admin.secret.as_str(),
        m.discovery_token.as_str(),
        f.admin_password.as_str(),
        f.admin_api_key.as_str(),
        "Wr0ng-but-secret-pass",
    ];
    let mut haystacks = vec![("logs".to_owned(), captured_logs())];
    for file in ["rollcall.db", "rollcall.db-wal", "rollcall.db-shm"] {
        let bytes = std::fs::read(app.dir.path().join(file)).unwrap_or_default();
        haystacks.push((
            file.to_owned(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    assert!(
        haystacks[0].1.contains("logging in to Metabase"),
        "the logs were captured"
    );
    for (name, text) in &haystacks {
        for secret in secrets {
            assert!(!text.contains(secret), "{name} holds a credential in clear");
        }
    }
}
