//! Metabase username/password accounts: sessions are reused, renewed before
//! the configured age, re-established once after the vendor drops them,
//! with one login however many calls wait for it; refused logins mark the
//! account and are not retried in a loop.

use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use reqwest::Method;
use rollcall_core::{MockClock, SharedClock};
use serde_json::{Value, json};

use crate::helpers::{Options, spawn_app, spawn_app_with};

#[tokio::test]
async fn sessions_are_reused_and_reestablished_after_the_vendor_expires_them() {
    let app = spawn_app().await;
    let account = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    let logins_after_link = app.metabase_event("login_ok");
    assert_eq!(logins_after_link, 1);
    for _ in 0..3 {
        let ok = app
            .proxy(Method::GET, &account.id, "/api/user/current")
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
    }
    assert_eq!(
        app.metabase_event("login_ok"),
        1,
        "one session serves every call"
    );

    let expired = reqwest::Client::new()
        .post(format!(
            "{}/_sim/metabase/sessions/expire",
            app.metabase.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert!(expired.status().is_success());
    // A write, so the replay must resend the body.
    let created = app
        .proxy(Method::POST, &account.id, "/api/permissions/group")
        .json(&json!({"name":"After Expiry"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200, "the caller never sees the 401");
    assert_eq!(
        created.json::<Value>().await.unwrap()["name"],
        "After Expiry"
    );
    assert_eq!(app.metabase_event("login_ok"), 2);
    assert_eq!(
        app.acme.account(&account.id).await.unwrap().status,
        "active"
    );
}

#[tokio::test]
async fn concurrent_calls_during_a_relogin_share_one_login() {
    let app = spawn_app().await;
    let account = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    reqwest::Client::new()
        .post(format!(
            "{}/_sim/metabase/sessions/expire",
            app.metabase.base_url()
        ))
        .send()
        .await
        .unwrap();
    let before = app.metabase_event("login");
    let calls = (0..20).map(|_| {
        app.proxy(Method::GET, &account.id, "/api/user?limit=1")
            .send()
    });
    let results = futures_util::future::join_all(calls).await;
    for result in results {
        assert_eq!(result.unwrap().status(), 200);
    }
    assert_eq!(
        app.metabase_event("login") - before,
        1,
        "exactly one login for twenty callers"
    );
}

#[tokio::test]
async fn sessions_are_renewed_before_the_configured_age() {
    let clock = MockClock::new("2026-06-01T00:00:00Z".parse().unwrap());
    let shared: SharedClock = Arc::new(clock.clone());
    let app = spawn_app_with(Options {
        clock: Some(shared),
        metabase_session_max_age: Some(Duration::from_secs(600)),
        ..Options::default()
    })
    .await;
    let mut body = app.metabase_password_body();
    body["config"]["session_max_age_minutes"] = json!(10);
    let account = app.acme.create_account(&body).await.unwrap();
    assert_eq!(app.metabase_event("login_ok"), 1);

    clock.advance(SignedDuration::from_secs(8 * 60));
    assert_eq!(
        app.proxy(Method::GET, &account.id, "/api/user/current")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.metabase_event("login_ok"),
        1,
        "eight minutes in, the session is still young"
    );

    clock.advance(SignedDuration::from_secs(60 + 30));
    let unauthorized_before = app
        .metabase
        .control()
        .counters
        .snapshot()
        .by_status
        .get(&401)
        .copied()
        .unwrap_or(0);
    assert_eq!(
        app.proxy(Method::GET, &account.id, "/api/user/current")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.metabase_event("login_ok"),
        2,
        "renewed at 90% of ten minutes"
    );
    let unauthorized_after = app
        .metabase
        .control()
        .counters
        .snapshot()
        .by_status
        .get(&401)
        .copied()
        .unwrap_or(0);
    assert_eq!(
        unauthorized_after, unauthorized_before,
        "renewed before the vendor could refuse it"
    );
}

#[tokio::test]
async fn a_refused_login_marks_the_account_and_is_not_retried_in_a_loop() {
    let app = spawn_app().await;
    let account = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    let f = app.metabase.fixtures().clone();
    // The customer's admin changes the password at the vendor (which also
    // ends the admin's other sessions).
    let http = reqwest::Client::new();
    let found: Value = http
        .get(format!("{}/api/user", app.metabase.base_url()))
        .query(&[("query", f.admin_email.as_str())])
        .header("x-api-key", &f.admin_api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin_id = found["data"][0]["id"].as_i64().unwrap();
    let changed = http
        .put(format!(
            "{}/api/user/{admin_id}/password",
            app.metabase.base_url()
        ))
        .header("x-api-key", &f.admin_api_key)
        .json(&json!({"password":"brand-new-pass9"}))
        .send()
        .await
        .unwrap();
    assert!(changed.status().is_success(), "{}", changed.status());
    http.post(format!(
        "{}/_sim/metabase/sessions/expire",
        app.metabase.base_url()
    ))
    .send()
    .await
    .unwrap();

    let attempts_before = app.metabase_event("login");
    let refused = app
        .proxy(Method::GET, &account.id, "/api/user/current")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    assert_eq!(refused.headers()["x-rollcall-error"], "1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "provider_auth_failed");
    assert_eq!(body["error"]["remote"]["status"], 401);
    assert_eq!(
        app.acme.account(&account.id).await.unwrap().status,
        "needs_reauth"
    );

    for _ in 0..5 {
        let again = app
            .proxy(Method::GET, &account.id, "/api/user/current")
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 422);
    }
    assert_eq!(
        app.metabase_event("login") - attempts_before,
        1,
        "one attempt, then a pause"
    );

    let fixed = app
        .acme
        .update_account(
            &account.id,
            &json!({"credentials":{"username": f.admin_email, "password": "brand-new-pass9"}}),
        )
        .await
        .unwrap();
    assert_eq!(fixed.status, "active");
    assert_eq!(
        app.proxy(Method::GET, &account.id, "/api/user/current")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
