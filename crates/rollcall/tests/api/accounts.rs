//! Linking accounts with good and bad credentials of every kind, listing,
//! updating, unlinking, and cross-tenant isolation.

use rollcall_core::ErrorCode;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test]
async fn every_good_credential_kind_links() {
    let app = spawn_app().await;
    let m = app.mode.fixtures().clone();
    let mb = app.metabase.fixtures().clone();
    let mode_base = json!({ "base_url": app.mode.base_url(), "workspace": m.workspace });
    let bodies = [
        (app.mode_link_body(), "mode_token"),
        (
            json!({"provider":"mode","config":mode_base,
                   "credentials":{"token":m.workspace_api.token,"secret":m.workspace_api.secret}}),
            "mode_token",
        ),
        (
            json!({"provider":"mode","config":mode_base,
                   "credentials":{"token":m.admin.token,"secret":m.admin.secret,"discovery_token":m.discovery_token}}),
            "mode_token+discovery",
        ),
        (
            app.metabase_api_key_body(&mb.admin_api_key),
            "metabase_api_key",
        ),
        (app.metabase_password_body(), "metabase_password"),
    ];
    for (body, kind) in bodies {
        let account = app.acme.create_account(&body).await.unwrap();
        assert_eq!(account.status, "active");
        assert_eq!(account.credential_type, kind);
        assert!(account.id.starts_with("acct_"));
        let shown = serde_json::to_string(&account.config).unwrap();
        assert!(
            !shown.contains("secret") && !shown.contains("password"),
            "{shown}"
        );
    }
    let page = app.acme.accounts("").await.unwrap();
    assert_eq!(page.result_count, 5);
    assert_eq!(page.next_cursor, None);
}

#[tokio::test]
async fn bad_credentials_are_422_with_the_vendors_answer_and_nothing_is_saved() {
    let app = spawn_app().await;
    let m = app.mode.fixtures().clone();
    let mb = app.metabase.fixtures().clone();
    let mode_config = json!({ "base_url": app.mode.base_url(), "workspace": m.workspace });
    let cases = [
        (
            json!({"provider":"mode","config":mode_config,"credentials":{"token":m.admin.token,"secret":"wrong"}}),
            401,
        ),
        (
            json!({"provider":"mode","config":{"base_url":app.mode.base_url(),"workspace":"no-such-ws"},
                   "credentials":{"token":m.admin.token,"secret":m.admin.secret}}),
            404,
        ),
        (
            json!({"provider":"mode","config":mode_config,
                   "credentials":{"token":m.admin.token,"secret":m.admin.secret,"discovery_token":"bogus"}}),
            401,
        ),
        (
            app.metabase_api_key_body("mb_notarealkeynotarealkeynotarealkeynotarealk="),
            401,
        ),
        (
            json!({"provider":"metabase","config":{"base_url":app.metabase.base_url()},
                   "credentials":{"username":mb.admin_email,"password":"wrong-pass1"}}),
            401,
        ),
    ];
    for (body, vendor_status) in cases {
        let err = app.acme.create_account(&body).await.unwrap_err();
        assert_eq!(err.status(), Some(422), "{err}");
        assert_eq!(err.code(), Some(ErrorCode::ProviderAuthFailed));
        let rollcall_client::ClientError::Api { envelope, .. } = &err else {
            unreachable!()
        };
        assert_eq!(
            envelope.error.remote.as_ref().unwrap().status,
            vendor_status,
            "{err}"
        );
    }
    assert_eq!(app.acme.accounts("").await.unwrap().result_count, 0);
}

#[tokio::test]
async fn malformed_link_requests_are_400_and_name_the_problem() {
    let app = spawn_app().await;
    let cases = [
        (json!({"provider":"tableau"}), "unknown provider"),
        (
            json!({"provider":"mode","config":{"base_url":"https://app.mode.com"},"credentials":{}}),
            "workspace",
        ),
        (
            json!({"provider":"mode","config":{"base_url":"ftp://x","workspace":"a"},"credentials":{}}),
            "http",
        ),
        (
            json!({"provider":"metabase","config":{"base_url":"https://m.example"},"credentials":{"api_key":"k","password":"p"}}),
            "not both",
        ),
        (
            json!({"provider":"metabase","config":{"base_url":"https://m.example"},"credentials":{"api_key":"k"},"colour":"red"}),
            "colour",
        ),
        (json!([1, 2]), "object"),
    ];
    for (body, expected) in cases {
        let err = app.acme.create_account(&body).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::InvalidRequest), "{body}");
        assert!(
            err.to_string().contains(expected),
            "{err} should mention {expected}"
        );
    }
    let raw = reqwest::Client::new()
        .post(format!("{}/integrated-accounts", app.base_url))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_401() {
    let app = spawn_app().await;
    let err = app.client.accounts("").await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), Some(ErrorCode::Unauthenticated))
    );
    let forged = rollcall_client::Client::new(&app.base_url).with_api_key(format!("{}x", app.key));
    assert_eq!(forged.accounts("").await.unwrap_err().status(), Some(401));
    let raw = reqwest::get(format!("{}/integrated-accounts", app.base_url))
        .await
        .unwrap();
    assert_eq!(
        raw.headers()["www-authenticate"],
        "Bearer realm=\"rollcall\""
    );
}

#[tokio::test]
async fn another_tenants_account_is_a_404_everywhere() {
    let app = spawn_app().await;
    let account = app
        .acme
        .create_account(&app.mode_link_body())
        .await
        .unwrap();
    assert_eq!(app.globex.accounts("").await.unwrap().result_count, 0);
    for err in [
        app.globex.account(&account.id).await.unwrap_err(),
        app.globex
            .update_account(&account.id, &json!({"label":"mine now"}))
            .await
            .unwrap_err(),
        app.globex.delete_account(&account.id).await.unwrap_err(),
    ] {
        assert_eq!(
            (err.status(), err.code()),
            (Some(404), Some(ErrorCode::NotFound))
        );
    }
    let ws = &app.mode.fixtures().workspace;
    let proxied = reqwest::Client::new()
        .get(format!(
            "{}/proxy/{}/api/{ws}/memberships",
            app.base_url, account.id
        ))
        .bearer_auth(app.globex_key())
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 404);
    assert_eq!(proxied.headers()["x-rollcall-error"], "1");
    // Still intact for its owner.
    assert_eq!(
        app.acme.account(&account.id).await.unwrap().label,
        "Acme Mode"
    );
}

#[tokio::test]
async fn lists_page_with_cursors_bound_to_tenant_and_filters() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.acme
            .create_account(&app.mode_link_body())
            .await
            .unwrap();
    }
    app.acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    let first = app.acme.accounts("limit=2").await.unwrap();
    assert_eq!(first.result_count, 2);
    let cursor = first.next_cursor.clone().unwrap();
    let second = app
        .acme
        .accounts(&format!("limit=2&next_cursor={cursor}"))
        .await
        .unwrap();
    assert_eq!(second.result_count, 2);
    assert_eq!(second.next_cursor, None);
    let mut ids: Vec<String> = first
        .result
        .iter()
        .chain(&second.result)
        .map(|a| a.id.clone())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 4, "no account twice, none skipped");

    assert_eq!(
        app.acme
            .accounts("provider=metabase")
            .await
            .unwrap()
            .result_count,
        1
    );
    for bad in [
        format!("limit=2&provider=mode&next_cursor={cursor}"),
        format!("next_cursor={cursor}x"),
        "next_cursor=garbage".to_owned(),
        "limit=0".to_owned(),
        "limit=5000".to_owned(),
        "provider=tableau".to_owned(),
    ] {
        let err = app.acme.accounts(&bad).await.unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (Some(400), Some(ErrorCode::InvalidRequest)),
            "{bad}"
        );
    }
    let stolen = app
        .globex
        .accounts(&format!("limit=2&next_cursor={cursor}"))
        .await
        .unwrap_err();
    assert_eq!(
        stolen.status(),
        Some(400),
        "another tenant's cursor never yields data"
    );
}

#[tokio::test]
async fn patch_replaces_credentials_only_after_the_vendor_accepts_them() {
    let app = spawn_app().await;
    let account = app
        .acme
        .create_account(&app.mode_link_body())
        .await
        .unwrap();
    let renamed = app
        .acme
        .update_account(
            &account.id,
            &json!({"label":"Renamed","tenant_ref":"cust-7"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (renamed.label.as_str(), renamed.tenant_ref.as_deref()),
        ("Renamed", Some("cust-7"))
    );

    let m = app.mode.fixtures().clone();
    let bad = app
        .acme
        .update_account(
            &account.id,
            &json!({"credentials":{"token":m.admin.token,"secret":"nope"}}),
        )
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some(ErrorCode::ProviderAuthFailed));
    let ws = &m.workspace;
    let still = app
        .proxy(reqwest::Method::GET, &account.id, &format!("/api/{ws}"))
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 200, "the old credentials were kept");

    let swapped = app
        .acme
        .update_account(
            &account.id,
            &json!({"credentials":{"token":m.workspace_api.token,"secret":m.workspace_api.secret}}),
        )
        .await
        .unwrap();
    assert_eq!(swapped.status, "active");
    let proxied = app
        .proxy(reqwest::Method::GET, &account.id, &format!("/api/{ws}"))
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 200);

    let disabled = app
        .acme
        .update_account(&account.id, &json!({"status":"disabled"}))
        .await
        .unwrap();
    assert_eq!(disabled.status, "disabled");
    // New credentials for a disabled account do not switch it back on.
    let still_disabled = app
        .acme
        .update_account(
            &account.id,
            &json!({"credentials":{"token":m.workspace_api.token,"secret":m.workspace_api.secret}}),
        )
        .await
        .unwrap();
    assert_eq!(still_disabled.status, "disabled");
    // Stored credentials never follow the account to another host.
    let moved = app
        .acme
        .update_account(
            &account.id,
            &json!({"config":{"base_url":"https://elsewhere.example"}}),
        )
        .await
        .unwrap_err();
    assert_eq!(moved.code(), Some(ErrorCode::InvalidRequest));
    assert!(moved.to_string().contains("new credentials"), "{moved}");
    let refused = app
        .proxy(reqwest::Method::GET, &account.id, &format!("/api/{ws}"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    let enabled = app
        .acme
        .update_account(&account.id, &json!({"status":"active"}))
        .await
        .unwrap();
    assert_eq!(enabled.status, "active");

    let err = app
        .acme
        .update_account(&account.id, &json!({"provider":"metabase"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidRequest));
}

#[tokio::test]
async fn delete_unlinks_and_every_change_is_audited() {
    let app = spawn_app().await;
    let account = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    app.acme
        .update_account(&account.id, &json!({"label":"BI"}))
        .await
        .unwrap();
    // Called once, so this node holds the account in its cache.
    let live = app
        .proxy(reqwest::Method::GET, &account.id, "/api/user/current")
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    app.acme.delete_account(&account.id).await.unwrap();
    assert_eq!(
        app.acme.account(&account.id).await.unwrap_err().status(),
        Some(404)
    );
    let gone = app
        .proxy(reqwest::Method::GET, &account.id, "/api/user/current")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);

    let tenant = app.store.tenant_by_name("acme").await.unwrap().unwrap();
    let audit = app
        .store
        .list_audit(&tenant.id, &Default::default(), None, 10)
        .await
        .unwrap();
    let actions: Vec<&str> = audit.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "integrated_account.deleted",
            "integrated_account.updated",
            "integrated_account.created"
        ]
    );
    let password = &app.metabase.fixtures().admin_password;
    for row in &audit {
        assert!(row.actor.starts_with("key:key"), "{}", row.actor);
        assert!(row.request_id.as_deref().is_some_and(|id| !id.is_empty()));
        let text = format!("{:?}{:?}", row.before_json, row.after_json);
        assert!(!text.contains(password.as_str()));
    }
    let updated = &audit[1];
    assert!(
        updated
            .before_json
            .as_deref()
            .unwrap()
            .contains("\"label\"")
    );
    assert!(updated.after_json.as_deref().unwrap().contains("\"BI\""));
}

/// A node reads an account for vendor calls at most every
/// `ACCOUNT_CACHE_TTL_MS`: a change made elsewhere (another node, or here
/// straight in the database) reaches its proxy within that, while its own
/// changes (above) apply at once.
#[tokio::test]
async fn an_account_changed_elsewhere_is_seen_within_the_cache_ttl() {
    use rollcall_core::{Clock as _, MockClock, SharedClock, SystemClock};
    use std::sync::Arc;

    let clock = MockClock::new(SystemClock.now());
    let shared: SharedClock = Arc::new(clock.clone());
    let app = crate::helpers::spawn_app_with(crate::helpers::Options {
        clock: Some(shared),
        ..crate::helpers::Options::default()
    })
    .await;
    let account = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    let call = || async {
        app.proxy(reqwest::Method::GET, &account.id, "/api/user/current")
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(call().await, 200);

    sqlx::query("UPDATE integrated_accounts SET status = 'disabled' WHERE id = ?")
        .bind(&account.id)
        .execute(app.sqlite.pool())
        .await
        .unwrap();
    assert_eq!(call().await, 200, "read less than the ttl ago");
    clock.advance(jiff::SignedDuration::from_millis(
        rollcall_server::accounts::ACCOUNT_CACHE_TTL_MS,
    ));
    assert_eq!(call().await, 409, "read again after the ttl");
}
