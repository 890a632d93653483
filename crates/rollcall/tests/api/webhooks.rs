//! Webhooks: subscriptions are checked, the secret is shown once and kept
//! sealed, deliveries are signed (checked here with an HMAC written from
//! the RFC, not the server's), retried until a 2xx and dead-lettered after
//! the last attempt.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use rollcall_server::Settings;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{Options, TestApp, rollcall_bin, spawn_app_with};
use crate::sync::sync;

/// HMAC-SHA256 as RFC 2104 defines it, independent of the server's crate.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner_pad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer_pad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&inner_pad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&outer_pad)
        .chain_update(inner)
        .finalize()
        .into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks `t=<unix>,v1=<hex>` over `"<t>.<body>"`.
fn signature_is_valid(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value.to_owned()),
            Some(("v1", value)) => v1 = Some(value.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(body);
    hex(&hmac_sha256(secret.as_bytes(), &message)) == v1
}

#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    answered: u16,
}

/// A receiver that fails the first `failures` deliveries with a 500.
#[derive(Clone, Default)]
struct Receiver {
    failures: Arc<Mutex<u32>>,
    seen: Arc<Mutex<Vec<Received>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let status = {
        let mut failures = r.failures.lock().unwrap();
        if *failures > 0 {
            *failures -= 1;
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::NO_CONTENT
        }
    };
    r.seen.lock().unwrap().push(Received {
        headers,
        body,
        answered: status.as_u16(),
    });
    status
}

async fn start_receiver(failures: u32) -> (Receiver, SocketAddr) {
    let receiver = Receiver {
        failures: Arc::new(Mutex::new(failures)),
        ..Receiver::default()
    };
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, addr)
}

fn fast_retries(max_attempts: i64) -> Options {
    Options {
        mode_unlimited: true,
        settings: Some(Settings {
            webhook_retry_base_ms: 20,
            webhook_max_attempts: max_attempts,
            // The test receivers listen on loopback.
            webhook_allow_private_networks: true,
            ..Settings::default()
        }),
        ..Options::default()
    }
}

async fn linked_metabase(app: &TestApp) -> String {
    app.acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap()
        .id
}

async fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_receiver_failing_three_times_gets_the_event_once_acknowledged() {
    let app = spawn_app_with(fast_retries(10)).await;
    let account = linked_metabase(&app).await;
    let (receiver, addr) = start_receiver(3).await;
    let hook = app
        .acme
        .create_webhook(&format!("http://{addr}/hook"), &["sync_run.*"])
        .await
        .unwrap();
    let secret = hook.secret.clone().expect("the secret, once");
    assert!(secret.starts_with("whsec_"));

    let run = sync(&app.acme, &account).await;
    assert_eq!(run.status, "succeeded");
    let seen = receiver.seen.clone();
    wait_for(
        || seen.lock().unwrap().iter().any(|r| r.answered == 204),
        "an acknowledged delivery",
    )
    .await;
    // Give a wrongly repeated delivery the chance to show up.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let seen = receiver.seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().map(|r| r.answered).collect::<Vec<_>>(),
        vec![500, 500, 500, 204],
        "retried until a 2xx, then never again"
    );
    let events = app.acme.events(None, 100).await.unwrap().result;
    let completed = events
        .iter()
        .find(|e| e.event_type == "sync_run.completed")
        .unwrap();
    for received in &seen {
        let signature = received.headers["x-rollcall-signature"].to_str().unwrap();
        assert!(
            signature_is_valid(&secret, signature, &received.body),
            "{signature}"
        );
        assert!(!signature_is_valid(
            "whsec_wrong",
            signature,
            &received.body
        ));
        let mut tampered = received.body.to_vec();
        tampered.push(b' ');
        assert!(!signature_is_valid(&secret, signature, &tampered));
        let body: Value = serde_json::from_slice(&received.body).unwrap();
        assert_eq!(
            body["id"],
            completed.id.as_str(),
            "the same event id every time"
        );
        assert_eq!(body["type"], "sync_run.completed");
        assert_eq!(body["integrated_account_id"], account.as_str());
        assert_eq!(
            received.headers["x-rollcall-event-id"],
            completed.id.as_str()
        );
        assert_eq!(received.headers["content-type"], "application/json");
    }
    let deliveries = app.acme.deliveries(&hook.id).await.unwrap().result;
    assert_eq!(deliveries.len(), 1);
    let d = &deliveries[0];
    assert_eq!(
        (d.status.as_str(), d.attempts, d.last_status),
        ("succeeded", 4, Some(204))
    );
    assert!(d.delivered_at.is_some());
    assert_eq!(d.event_id, completed.id);
}

#[tokio::test]
async fn a_delivery_is_dead_lettered_after_the_last_attempt() {
    let app = spawn_app_with(fast_retries(2)).await;
    let account = linked_metabase(&app).await;
    let (receiver, addr) = start_receiver(u32::MAX).await;
    let hook = app
        .acme
        .create_webhook(&format!("http://{addr}/hook"), &["*"])
        .await
        .unwrap();
    assert_eq!(sync(&app.acme, &account).await.status, "succeeded");
    let client = app.acme.clone();
    let hook_id = hook.id.clone();
    let mut dead = false;
    for _ in 0..200 {
        let deliveries = client.deliveries(&hook_id).await.unwrap().result;
        if deliveries.iter().any(|d| d.status == "dead") {
            dead = true;
            let d = &deliveries[0];
            assert_eq!(d.attempts, 2);
            assert_eq!(d.last_status, Some(500));
            assert!(d.last_error.as_deref().unwrap().contains("500"));
            assert_eq!(d.next_attempt_at, None);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(dead, "the delivery was dead-lettered");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        receiver.seen.lock().unwrap().len(),
        2,
        "no attempt after the last"
    );
}

#[tokio::test]
async fn subscriptions_are_checked_and_secrets_shown_once() {
    let app = spawn_app_with(fast_retries(3)).await;
    for (body, what) in [
        (
            json!({"url": "ftp://example.com/x", "events": ["*"]}),
            "scheme",
        ),
        (
            json!({"url": "https://u:p@example.com/x", "events": ["*"]}),
            "credentials",
        ),
        (json!({"url": "not a url", "events": ["*"]}), "url"),
        (
            json!({"url": "https://example.com/x", "events": []}),
            "no events",
        ),
        (
            json!({"url": "https://example.com/x", "events": ["user.exploded"]}),
            "unknown event",
        ),
        (
            json!({"url": "https://example.com/x", "events": ["*"], "extra": 1}),
            "unknown field",
        ),
    ] {
        let answer = reqwest::Client::new()
            .post(format!("{}/webhooks", app.base_url))
            .bearer_auth(&app.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400, "{what}");
        let error: Value = answer.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_request", "{what}");
    }
    let hook = app
        .acme
        .create_webhook(
            "https://hooks.example.com/rollcall",
            &["user.*", "group.created"],
        )
        .await
        .unwrap();
    let secret = hook.secret.clone().unwrap();
    let listed = app.acme.webhooks().await.unwrap().result;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].secret, None, "never shown again");
    assert_eq!(listed[0].events, vec!["user.*", "group.created"]);
    assert!(app.globex.webhooks().await.unwrap().result.is_empty());
    assert_eq!(
        app.globex
            .delete_webhook(&hook.id)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    // Sealed at rest: the database never holds the secret in clear.
    let db = std::fs::read(app.dir.path().join("rollcall.db")).unwrap();
    let wal = std::fs::read(app.dir.path().join("rollcall.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "secret in the store"
        );
    }
    assert!(!crate::helpers::captured_logs().contains(&secret));
    // Creating and deleting are audited.
    let audit: Value = reqwest::Client::new()
        .get(format!("{}/audit-log?action=webhook.created", app.base_url))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(audit["result"][0]["target_id"], hook.id.as_str());
    app.acme.delete_webhook(&hook.id).await.unwrap();
    assert_eq!(
        app.acme
            .delete_webhook(&hook.id)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    assert_eq!(
        app.acme.deliveries(&hook.id).await.unwrap_err().status(),
        Some(404)
    );
}

#[tokio::test]
async fn the_cli_verifies_a_real_delivery() {
    let app = spawn_app_with(fast_retries(3)).await;
    let account = linked_metabase(&app).await;
    let (receiver, addr) = start_receiver(0).await;
    let hook = app
        .acme
        .create_webhook(&format!("http://{addr}/hook"), &["sync_run.completed"])
        .await
        .unwrap();
    assert_eq!(sync(&app.acme, &account).await.status, "succeeded");
    let seen = receiver.seen.clone();
    wait_for(|| !seen.lock().unwrap().is_empty(), "a delivery").await;
    let received = receiver.seen.lock().unwrap()[0].clone();
    let body_file = app.dir.path().join("body.json");
    std::fs::write(&body_file, &received.body).unwrap();
    let signature = received.headers["x-rollcall-signature"]
        .to_str()
        .unwrap()
        .to_owned();
    let verify = |secret: &str, file: &std::path::Path| {
        rollcall_bin()
            .args(["webhooks", "verify", "--signature", &signature, "--body"])
            .arg(file)
            .env("ROLLCALL_WEBHOOK_SECRET", secret)
            .output()
            .unwrap()
    };
    let ok = verify(hook.secret.as_deref().unwrap(), &body_file);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let wrong = verify("whsec_other", &body_file);
    assert!(!wrong.status.success());
    let tampered = app.dir.path().join("tampered.json");
    let mut body = received.body.to_vec();
    body.extend_from_slice(b"\n");
    std::fs::write(&tampered, body).unwrap();
    let bad = verify(hook.secret.as_deref().unwrap(), &tampered);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("does not match"));
}

#[tokio::test]
async fn a_receiver_that_hangs_does_not_hold_up_syncs() {
    let app = spawn_app_with(fast_retries(3)).await;
    let account = linked_metabase(&app).await;
    // Accepts the connection and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            keep.lock().unwrap().push(socket);
        }
    });
    app.acme
        .create_webhook(&format!("http://{addr}/hook"), &["*"])
        .await
        .unwrap();
    let started = std::time::Instant::now();
    for _ in 0..3 {
        assert_eq!(sync(&app.acme, &account).await.status, "succeeded");
    }
    wait_for(|| !held.lock().unwrap().is_empty(), "a delivery attempt").await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "syncs waited on the receiver: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn webhooks_cannot_reach_private_networks_by_default() {
    let app = spawn_app_with(Options {
        mode_unlimited: true,
        settings: Some(Settings {
            webhook_retry_base_ms: 20,
            webhook_max_attempts: 1,
            ..Settings::default()
        }),
        ..Options::default()
    })
    .await;
    let account = linked_metabase(&app).await;
    let (receiver, addr) = start_receiver(0).await;
    // An address literal is refused at once.
    let refused = app
        .acme
        .create_webhook(&format!("http://{addr}/hook"), &["*"])
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(400));
    assert!(refused.to_string().contains("private network"), "{refused}");
    // A name that resolves to loopback is refused when it is resolved.
    let hook = app
        .acme
        .create_webhook(&format!("http://localhost:{}/hook", addr.port()), &["*"])
        .await
        .unwrap();
    assert_eq!(sync(&app.acme, &account).await.status, "succeeded");
    let client = app.acme.clone();
    let mut dead = None;
    for _ in 0..200 {
        let deliveries = client.deliveries(&hook.id).await.unwrap().result;
        if let Some(d) = deliveries.into_iter().find(|d| d.status == "dead") {
            dead = Some(d);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead = dead.expect("the delivery was given up");
    assert_eq!(dead.last_status, None, "nothing answered");
    assert!(
        receiver.seen.lock().unwrap().is_empty(),
        "the receiver was never reached"
    );
}
