//! The Proxy API: vendor answers pass through unchanged, credentials are
//! injected and the caller's replaced, paths cannot escape, and Rollcall's
//! own failures are marked.

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test]
async fn gets_with_query_strings_match_the_vendor_byte_for_byte() {
    let app = spawn_app().await;
    let mb = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    let through = app
        .proxy(Method::GET, &mb.id, "/api/user?limit=2&offset=1")
        .send()
        .await
        .unwrap();
    assert_eq!(through.status(), 200);
    assert!(
        through.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert!(through.headers().get("x-rollcall-error").is_none());
    let through: Value = through.json().await.unwrap();
    let direct: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/user?limit=2&offset=1",
            app.metabase.base_url()
        ))
        .header("x-api-key", &app.metabase.fixtures().admin_api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(through, direct);
    assert_eq!(
        (through["limit"].as_i64(), through["offset"].as_i64()),
        (Some(2), Some(1))
    );

    let mode = app
        .acme
        .create_account(&app.mode_link_body())
        .await
        .unwrap();
    let ws = app.mode.fixtures().workspace.clone();
    let memberships = app
        .proxy(Method::GET, &mode.id, &format!("/api/{ws}/memberships"))
        .send()
        .await
        .unwrap();
    assert_eq!(memberships.status(), 200);
    assert!(
        memberships.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("hal+json")
    );
    let body: Value = memberships.json().await.unwrap();
    assert!(
        body["_embedded"]["memberships"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    );
}

#[tokio::test]
async fn writes_carry_bodies_and_vendor_statuses_pass_through() {
    let app = spawn_app().await;
    let mb = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    let created = app
        .proxy(Method::POST, &mb.id, "/api/permissions/group")
        .json(&json!({"name":"Proxy Made"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let group: Value = created.json().await.unwrap();
    let id = group["id"].as_i64().unwrap();

    let renamed = app
        .proxy(Method::PUT, &mb.id, &format!("/api/permissions/group/{id}"))
        .json(&json!({"name":"Proxy Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    assert_eq!(
        renamed.json::<Value>().await.unwrap()["name"],
        "Proxy Renamed"
    );

    let duplicate = app
        .proxy(Method::POST, &mb.id, "/api/permissions/group")
        .json(&json!({"name":"proxy renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(duplicate.status(), 400, "the vendor's own error, unchanged");
    assert!(duplicate.headers().get("x-rollcall-error").is_none());
    assert_eq!(
        duplicate.text().await.unwrap(),
        "A group with that name already exists."
    );

    let deleted = app
        .proxy(
            Method::DELETE,
            &mb.id,
            &format!("/api/permissions/group/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let missing = app
        .proxy(Method::GET, &mb.id, &format!("/api/permissions/group/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            missing.status().as_u16(),
            missing.text().await.unwrap().as_str()
        ),
        (404, "Not found.")
    );

    let mode = app
        .acme
        .create_account(&app.mode_link_body())
        .await
        .unwrap();
    let ws = app.mode.fixtures().workspace.clone();
    let group = app
        .proxy(Method::POST, &mode.id, &format!("/api/{ws}/groups"))
        .json(&json!({"user_group":{"name":"Via Proxy"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(group.status(), 200, "Mode answers creates with 200");
    assert_eq!(group.json::<Value>().await.unwrap()["name"], "Via Proxy");
}

#[tokio::test]
async fn the_rollcall_key_works_in_the_vendors_own_credential_slot() {
    let app = spawn_app().await;
    let mb = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    // A Metabase client library pointed at /proxy/<id> with the Rollcall key as its API key.
    let as_metabase_client = http
        .get(format!("{}/proxy/{}/api/user/current", app.base_url, mb.id))
        .header("x-api-key", &app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(as_metabase_client.status(), 200);
    assert_eq!(
        as_metabase_client.json::<Value>().await.unwrap()["email"],
        app.metabase.fixtures().admin_email.as_str()
    );

    // A Mode client library: Basic auth with the key as user name.
    let mode = app
        .acme
        .create_account(&app.mode_link_body())
        .await
        .unwrap();
    let ws = app.mode.fixtures().workspace.clone();
    let as_mode_client = http
        .get(format!(
            "{}/proxy/{}/api/{ws}/groups",
            app.base_url, mode.id
        ))
        .basic_auth(&app.key, Some("anything"))
        .send()
        .await
        .unwrap();
    assert_eq!(as_mode_client.status(), 200);

    // A vendor credential the caller sends is replaced by the stored one.
    let replaced = http
        .get(format!("{}/proxy/{}/api/user/current", app.base_url, mb.id))
        .bearer_auth(&app.key)
        .header("x-metabase-session", "00000000-0000-0000-0000-000000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    // Without any Rollcall key, nothing passes.
    let anonymous = http
        .get(format!("{}/proxy/{}/api/user/current", app.base_url, mb.id))
        .header("x-api-key", &app.metabase.fixtures().admin_api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["x-rollcall-error"], "1");
    let basic = base64::engine::general_purpose::STANDARD.encode("rk_forged:x");
    let forged = http
        .get(format!("{}/proxy/{}/api/user/current", app.base_url, mb.id))
        .header("authorization", format!("Basic {basic}"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
}

#[tokio::test]
async fn paths_cannot_escape_and_our_failures_are_marked() {
    let app = spawn_app().await;
    let mb = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    for path in ["/api/..%2f..%2fetc", "/api%2Fuser", "//evil.example/api"] {
        let response = app.proxy(Method::GET, &mb.id, path).send().await.unwrap();
        assert_eq!(response.status(), 400, "{path}");
        assert_eq!(response.headers()["x-rollcall-error"], "1");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request");
    }
    // HTTP clients normalise dot segments before sending; a hostile one need
    // not, so these go out as raw bytes.
    for raw in ["/%2e%2e/%2e%2e/admin", "/api/../../admin", "/api/%2E%2E/x"] {
        let (status, head) =
            raw_get(&app.base_url, &format!("/proxy/{}{raw}", mb.id), &app.key).await;
        assert_eq!(status, 400, "{raw}");
        assert!(
            head.to_ascii_lowercase().contains("x-rollcall-error: 1"),
            "{head}"
        );
    }
    let unknown = app
        .proxy(
            Method::GET,
            "acct_0000000000000000000000000000000f",
            "/api/user",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            unknown.status().as_u16(),
            unknown.headers()["x-rollcall-error"].to_str().unwrap()
        ),
        (404, "1")
    );

    let huge = vec![b'x'; app.state.settings.proxy_max_body_bytes + 1];
    let too_big = app
        .proxy(Method::POST, &mb.id, "/api/permissions/group")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);
    assert_eq!(too_big.headers()["x-rollcall-error"], "1");
}

#[tokio::test]
async fn cookies_are_not_passed_back() {
    let app = spawn_app().await;
    let mb = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    let f = app.metabase.fixtures().clone();
    let login = app
        .proxy(Method::POST, &mb.id, "/api/session")
        .json(&json!({"username": f.member_email, "password": f.member_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert!(login.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn an_unreachable_vendor_is_a_marked_503() {
    let app = spawn_app().await;
    let mb = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    let proxy = app.proxy(Method::GET, &mb.id, "/api/user/current");
    // Stop the vendor but keep the server, its store and its temp dir alive.
    let crate::helpers::TestApp {
        metabase,
        _shutdown,
        dir,
        state,
        ..
    } = app;
    metabase.stop().await;
    let response = proxy.send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["x-rollcall-error"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "provider_unavailable");
    drop((_shutdown, dir, state));
}

#[tokio::test]
async fn a_revoked_vendor_credential_marks_the_account_and_new_ones_restore_it() {
    let app = spawn_app().await;
    let f = app.metabase.fixtures().clone();
    let account = app
        .acme
        .create_account(&app.metabase_api_key_body(&f.member_api_key))
        .await
        .unwrap();
    // The vendor's admin deletes every API key but their own.
    let http = reqwest::Client::new();
    let keys: Value = http
        .get(format!("{}/api/api-key", app.metabase.base_url()))
        .header("x-api-key", &f.admin_api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin_prefix = &f.admin_api_key[..7];
    for key in keys.as_array().unwrap() {
        if key["masked_key"]
            .as_str()
            .is_some_and(|m| !m.starts_with(admin_prefix))
        {
            let id = key["id"].as_i64().unwrap();
            let deleted = http
                .delete(format!("{}/api/api-key/{id}", app.metabase.base_url()))
                .header("x-api-key", &f.admin_api_key)
                .send()
                .await
                .unwrap();
            assert_eq!(deleted.status(), 204);
        }
    }
    let refused = app
        .proxy(Method::GET, &account.id, "/api/user/current")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "the vendor's answer passes through");
    assert!(refused.headers().get("x-rollcall-error").is_none());
    let marked = app.acme.account(&account.id).await.unwrap();
    assert_eq!(marked.status, "needs_reauth");
    assert!(marked.status_detail.is_some());
    let events = app.acme.events(None, 100).await.unwrap().result;
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, vec!["integrated_account.authentication_error"]);
    assert_eq!(
        events[0].integrated_account_id.as_deref(),
        Some(account.id.as_str())
    );

    let restored = app
        .acme
        .update_account(
            &account.id,
            &json!({"credentials":{"api_key": f.admin_api_key}}),
        )
        .await
        .unwrap();
    assert_eq!(restored.status, "active");
    let events = app.acme.events(None, 100).await.unwrap().result;
    assert_eq!(
        events.last().map(|e| e.event_type.as_str()),
        Some("integrated_account.reactivated")
    );
    assert_eq!(
        app.proxy(Method::GET, &account.id, "/api/user/current")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// A GET written byte for byte, so the path reaches the server unnormalised.
async fn raw_get(base_url: &str, path: &str, key: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer.split_whitespace().nth(1).unwrap().parse().unwrap();
    let head = answer.split("\r\n\r\n").next().unwrap().to_owned();
    (status, head)
}

#[tokio::test]
async fn slow_vendors_are_cut_off_at_the_configured_timeout() {
    let app = crate::helpers::spawn_app_with(crate::helpers::Options {
        settings: Some(rollcall_server::Settings {
            vendor_timeout_secs: 1,
            ..rollcall_server::Settings::default()
        }),
        ..crate::helpers::Options::default()
    })
    .await;
    let mb = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    let fault = reqwest::Client::new()
        .post(format!("{}/_sim/faults", app.metabase.base_url()))
        .json(&json!({"spec": "latency=3000@next=1@/api/user"}))
        .send()
        .await
        .unwrap();
    assert_eq!(fault.status(), 201);
    let started = std::time::Instant::now();
    let response = app
        .proxy(Method::GET, &mb.id, "/api/user?limit=1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["x-rollcall-error"], "1");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2_900),
        "gave up before the vendor answered"
    );
}

/// A vendor that redirects: `/same` to a path on itself, `/away` to another
/// origin (which counts any request it gets).
async fn redirecting_vendor() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use axum::routing::get;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let elsewhere_hits = Arc::new(AtomicUsize::new(0));
    let hits = elsewhere_hits.clone();
    let elsewhere = axum::Router::new().fallback(move || {
        hits.fetch_add(1, Ordering::SeqCst);
        async { "stolen" }
    });
    let elsewhere_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere_addr = elsewhere_listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(elsewhere_listener, elsewhere).await });

    let away = format!("http://localhost:{}/collect", elsewhere_addr.port());
    let vendor = axum::Router::new()
        .route(
            "/same",
            get(|| async { axum::response::Redirect::temporary("/final") }),
        )
        .route("/final", get(|| async { "arrived" }))
        .route(
            "/away",
            get(move || async move { axum::response::Redirect::temporary(&away) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, vendor).await });
    (format!("http://{addr}"), elsewhere_hits)
}

#[tokio::test]
async fn redirects_are_followed_only_within_the_vendors_origin() {
    use rollcall_connectors::{AccountConfig, Credentials};
    use rollcall_core::id::AccountId;
    use rollcall_store::{AccountRow, AccountStatus};

    let app = spawn_app().await;
    let (vendor, elsewhere_hits) = redirecting_vendor().await;
    // Stored directly: this vendor cannot pass a credential check.
    let tenant = app.store.tenant_by_name("acme").await.unwrap().unwrap();
    let id = AccountId::generate();
    let credentials = Credentials::parse(
        rollcall_core::Provider::Metabase,
        json!({"api_key":"mb_redirect_test"}),
    )
    .unwrap();
    let aad = format!("rollcall/v1/{}/{id}/credentials", tenant.id);
    let (key_id, sealed) = app
        .state
        .vault
        .seal(&credentials.to_sealable(), aad.as_bytes())
        .unwrap();
    let config = AccountConfig::parse(
        rollcall_core::Provider::Metabase,
        json!({"base_url": vendor}),
    )
    .unwrap();
    app.store
        .insert_account(&AccountRow {
            id: id.clone(),
            tenant_id: tenant.id.clone(),
            provider: rollcall_core::Provider::Metabase,
            label: "redirector".into(),
            tenant_ref: None,
            config_json: config.to_json().to_string(),
            credentials_key_id: key_id.to_string(),
            credentials_sealed: sealed,
            status: AccountStatus::Active,
            status_detail: None,
            created_at: 0,
            updated_at: 0,
        })
        .await
        .unwrap();

    let same = app
        .proxy(Method::GET, id.as_str(), "/same")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (same.status().as_u16(), same.text().await.unwrap().as_str()),
        (200, "arrived")
    );

    let away = app
        .proxy(Method::GET, id.as_str(), "/away")
        .send()
        .await
        .unwrap();
    let away_status = away.status();
    let away_body = away.text().await.unwrap();
    assert_eq!(
        away_status, 307,
        "the redirect is handed back, not followed: {away_body}"
    );
    assert_eq!(
        elsewhere_hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "credentials never left the origin"
    );
}
