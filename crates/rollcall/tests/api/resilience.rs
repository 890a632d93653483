//! Vendor limits and faults: rate limiting per credential, retries with
//! backoff, deadlines, circuit breaking, bad answers.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{Options, TestApp, fault, spawn_app_with};

async fn ok_json(response: reqwest::Response) -> Value {
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn walk_users(app: &TestApp, account: &str, limit: u32) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = format!("limit={limit}&status=active");
        if let Some(c) = &cursor {
            query.push_str(&format!("&next_cursor={}", rollcall_client::encode(c)));
        }
        let page = ok_json(
            app.call(Method::GET, "users", account, &query)
                .send()
                .await
                .unwrap(),
        )
        .await;
        ids.extend(
            page["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn a_thousand_user_walk_survives_one_vendor_answer_in_five_failing() {
    let app = spawn_app_with(Options {
        mode_users: Some(1_000),
        metabase_users: Some(1_000),
        mode_page_size: Some(100),
        ..Options::default()
    })
    .await;
    let mode = app
        .acme
        .create_account(&app.mode_link_body())
        .await
        .unwrap()
        .id;
    let metabase = app
        .acme
        .create_account(&app.metabase_api_key_body(&app.metabase.fixtures().admin_api_key))
        .await
        .unwrap()
        .id;
    let clean_mode = walk_users(&app, &mode, 50).await;
    let clean_metabase = walk_users(&app, &metabase, 50).await;

    // One answer in five is a 429 (Metabase) or a 503 (Mode) from now on.
    fault(&app.metabase.base_url(), "429@every=5@/api/").await;
    fault(&app.mode.base_url(), "503@every=5@/api/").await;
    assert_eq!(walk_users(&app, &mode, 50).await, clean_mode);
    assert_eq!(walk_users(&app, &metabase, 50).await, clean_metabase);
    for id in clean_metabase.iter().take(60) {
        let user = ok_json(
            app.call(Method::GET, &format!("users/{id}"), &metabase, "")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(user["id"], id.as_str());
    }
    let faulted = |counters: rollcall_sim_kit::CountersSnapshot| counters.faults_injected;
    assert!(
        faulted(app.metabase.control().counters.snapshot()) >= 10,
        "faults were injected"
    );
    assert!(
        faulted(app.mode.control().counters.snapshot()) >= 2,
        "faults were injected"
    );
}

#[tokio::test]
async fn fifty_concurrent_callers_stay_inside_modes_limit() {
    let app = spawn_app_with(Options::default()).await;
    let mode = app
        .acme
        .create_account(&app.mode_link_body())
        .await
        .unwrap()
        .id;
    let started = Instant::now();
    let calls = (0..50).map(|_| app.call(Method::GET, "users", &mode, "limit=5").send());
    let responses = futures_util::future::join_all(calls).await;
    for response in responses {
        let response = response.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("ratelimit-limit").is_some());
        assert!(response.headers().get("ratelimit-remaining").is_some());
    }
    // 51 calls (the link's check included) cannot fit in one 10 s window.
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "callers waited for room"
    );
    let counters = app.mode.control().counters.snapshot();
    assert_eq!(
        counters.events.get("rate_limited").copied().unwrap_or(0),
        0,
        "Mode never answered 429"
    );
    assert_eq!(counters.by_status.get(&429).copied().unwrap_or(0), 0);
}

#[tokio::test]
async fn a_vendor_that_is_down_gives_a_clear_error_within_the_deadline() {
    let app = spawn_app_with(Options {
        settings: Some(rollcall_server::Settings {
            vendor_deadline_secs: 2,
            ..rollcall_server::Settings::default()
        }),
        ..Options::default()
    })
    .await;
    let metabase = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap()
        .id;
    let request = app.call(Method::GET, "users", &metabase, "");
    let crate::helpers::TestApp {
        metabase: sim,
        _shutdown,
        dir,
        state,
        ..
    } = app;
    sim.stop().await;
    let started = Instant::now();
    let response = request.send().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "provider_unavailable");
    assert!(
        elapsed < Duration::from_millis(3_500),
        "gave up at the deadline, took {elapsed:?}"
    );
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    drop((_shutdown, dir, state));
}

#[tokio::test]
async fn repeated_failures_open_the_circuit_and_one_probe_closes_it() {
    let app = spawn_app_with(Options {
        settings: Some(rollcall_server::Settings {
            vendor_deadline_secs: 1,
            circuit_cooldown_secs: 1,
            ..rollcall_server::Settings::default()
        }),
        ..Options::default()
    })
    .await;
    let metabase = app
        .acme
        .create_account(&app.metabase_api_key_body(&app.metabase.fixtures().admin_api_key))
        .await
        .unwrap()
        .id;
    fault(&app.metabase.base_url(), "500@next=5@/api/").await;
    for _ in 0..5 {
        let failed = app
            .call(Method::GET, "users", &metabase, "")
            .send()
            .await
            .unwrap();
        assert_eq!(
            failed.status(),
            502,
            "a 500 is not retried and passes as provider_error"
        );
    }
    assert_eq!(app.acme.account(&metabase).await.unwrap().status, "active");
    let account: Value = reqwest::Client::new()
        .get(format!("{}/integrated-accounts/{metabase}", app.base_url))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account["circuit"], "open");
    let calls_before = app.metabase.control().counters.snapshot().total;
    let fast = Instant::now();
    let refused = app
        .call(Method::GET, "users", &metabase, "")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().get("retry-after").is_some());
    assert!(
        fast.elapsed() < Duration::from_millis(200),
        "fails fast while open"
    );
    assert_eq!(
        app.metabase.control().counters.snapshot().total,
        calls_before,
        "no vendor call while open"
    );

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let probe = app
        .call(Method::GET, "users", &metabase, "")
        .send()
        .await
        .unwrap();
    assert_eq!(
        probe.status(),
        200,
        "the probe succeeds and closes the circuit"
    );
    let account: Value = reqwest::Client::new()
        .get(format!("{}/integrated-accounts/{metabase}", app.base_url))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account["circuit"], "closed");
}

#[tokio::test]
async fn malformed_and_truncated_answers_are_provider_errors() {
    let app = spawn_app_with(Options::default()).await;
    let metabase = app
        .acme
        .create_account(&app.metabase_api_key_body(&app.metabase.fixtures().admin_api_key))
        .await
        .unwrap()
        .id;
    for spec in [
        "malformed@next=1@/api/user",
        "truncate@next=1@/api/user",
        "empty@next=1@/api/user",
    ] {
        fault(&app.metabase.base_url(), spec).await;
        let response = app
            .call(Method::GET, "users", &metabase, "")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 502, "{spec}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "provider_error", "{spec}");
        assert!(body["error"]["request_id"].is_string());
    }
}

#[tokio::test]
async fn a_session_expiring_mid_run_composes_with_retries() {
    let app = spawn_app_with(Options::default()).await;
    let metabase = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap()
        .id;
    let logins = app.metabase_event("login");
    reqwest::Client::new()
        .post(format!(
            "{}/_sim/metabase/sessions/expire",
            app.metabase.base_url()
        ))
        .send()
        .await
        .unwrap();
    fault(&app.metabase.base_url(), "503@next=2@/api/user").await;
    let calls = (0..10).map(|_| app.call(Method::GET, "users", &metabase, "limit=3").send());
    for response in futures_util::future::join_all(calls).await {
        assert_eq!(response.unwrap().status(), 200);
    }
    assert_eq!(
        app.metabase_event("login") - logins,
        1,
        "one re-login, no storm"
    );
}
