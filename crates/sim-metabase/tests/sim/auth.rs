//! §9 "Auth" lines, sessions and throttling.

use jiff::SignedDuration;
use reqwest::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn login_answers_a_session_id_and_cookies() {
    let sim = Sim::world().await;
    let r = sim
        .post(
            "/api/session",
            &Auth::None,
            json!({"username": "admin@example.com", "password": "s3cret1"}),
        )
        .await;
    let body = r.assert_json(200);
    let id = body["id"].as_str().unwrap();
    assert!(is_uuid(id), "{id}");
    assert_eq!(body.as_object().unwrap().len(), 1);
    let cookies = r.cookies();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with(&format!("metabase.SESSION={id};"))
                && c.contains("HttpOnly")
                && c.contains("Path=/")
                && c.contains("SameSite=Lax"))
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("metabase.TIMEOUT=alive"))
    );

    // Email matching is case-insensitive; the token works as header and as cookie.
    let auth = sim.login("ADMIN@Example.com", "s3cret1").await;
    assert_eq!(sim.get("/api/user/current", &auth).await.status, 200);
    let cookie = Auth::Headers(vec![("Cookie".into(), format!("metabase.SESSION={id}"))]);
    let me = sim.get("/api/user/current", &cookie).await.assert_json(200);
    assert_eq!(me["email"], json!("admin@example.com"));
}

#[tokio::test]
async fn login_failures_have_the_documented_bodies() {
    let sim = Sim::world().await;
    let wrong = sim
        .post(
            "/api/session",
            &Auth::None,
            json!({"username": "admin@example.com", "password": "nope"}),
        )
        .await;
    assert_eq!(
        wrong.assert_json(401),
        json!({"errors": {"password": "did not match stored password"}})
    );
    // An unknown user gets the same answer (it does not tell whether the account exists).
    let unknown = sim
        .post(
            "/api/session",
            &Auth::None,
            json!({"username": "who@example.com", "password": "x1x1x1"}),
        )
        .await;
    assert_eq!(unknown.json(), wrong.json());

    let disabled = sim
        .post(
            "/api/session",
            &Auth::None,
            json!({"username": "gone@example.com", "password": "right1"}),
        )
        .await;
    assert_eq!(
        disabled.assert_json(401),
        json!({"errors": {"_error": "Your account is disabled."}})
    );
    // Deactivated with the wrong password: the password is checked first.
    let disabled_wrong = sim
        .post(
            "/api/session",
            &Auth::None,
            json!({"username": "gone@example.com", "password": "nope"}),
        )
        .await;
    assert_eq!(disabled_wrong.json(), wrong.json());

    let empty = sim.post("/api/session", &Auth::None, json!({})).await;
    assert_eq!(
        empty.assert_json(400),
        json!({
            "errors": {"username": "value must be a non-blank string.", "password": "value must be a non-blank string."},
            "specific-errors": {"username": ["missing required key, received: nil"], "password": ["missing required key, received: nil"]}
        })
    );
    let no_password = sim
        .post(
            "/api/session",
            &Auth::None,
            json!({"username": "admin@example.com"}),
        )
        .await;
    assert_eq!(
        no_password.assert_json(400),
        json!({
            "errors": {"password": "value must be a non-blank string."},
            "specific-errors": {"password": ["missing required key, received: nil"]}
        })
    );
}

#[tokio::test]
async fn the_eleventh_failure_is_throttled() {
    let sim = Sim::world().await;
    for _ in 0..10 {
        let r = sim
            .post(
                "/api/session",
                &Auth::None,
                json!({"username": "vic@example.com", "password": "bad"}),
            )
            .await;
        assert_eq!(
            r.json()["errors"]["password"],
            json!("did not match stored password")
        );
    }
    let r = sim
        .post(
            "/api/session",
            &Auth::None,
            json!({"username": "vic@example.com", "password": "vic-pass1"}),
        )
        .await;
    let body = r.assert_json(401);
    let message = body["errors"]["username"].as_str().unwrap();
    assert!(is_wait_message(message), "{message}");
    assert_eq!(
        message,
        "Too many attempts! You must wait 15 seconds before trying again."
    );
    assert_eq!(body.as_object().unwrap().len(), 1);
    // The next refusal waits longer (~42 s): refused attempts count too.
    let r = sim
        .post(
            "/api/session",
            &Auth::None,
            json!({"username": "vic@example.com", "password": "vic-pass1"}),
        )
        .await;
    assert_eq!(
        r.json()["errors"]["username"],
        json!("Too many attempts! You must wait 42 seconds before trying again.")
    );
    // Other usernames are not affected; resetting the throttle lets Vic in.
    sim.login("uma@example.com", "old-pass1").await;
    let reset = sim
        .call(
            Method::POST,
            "/_sim/metabase/throttle/reset",
            &Auth::None,
            None,
        )
        .await;
    assert_eq!(reset.status, 204);
    sim.login("vic@example.com", "vic-pass1").await;
}

#[tokio::test]
async fn throttle_per_ip_and_after_the_delay() {
    let clock = mock_clock();
    let sim = Sim::world_with(with_mock_clock(&clock)).await;
    let from = |ip: &str| Auth::Headers(vec![("X-Forwarded-For".into(), ip.into())]);
    // 50 failures from one address over many usernames.
    for i in 0..50 {
        let r = sim
            .post(
                "/api/session",
                &from("10.0.0.1"),
                json!({"username": format!("u{i}@example.com"), "password": "bad"}),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    let r = sim
        .post(
            "/api/session",
            &from("10.0.0.1"),
            json!({"username": "admin@example.com", "password": "s3cret1"}),
        )
        .await;
    assert_eq!(
        r.json()["errors"]["username"],
        json!("Too many attempts! You must wait 15 seconds before trying again.")
    );
    // Another address logs in fine.
    let ok = sim
        .post(
            "/api/session",
            &from("10.0.0.2"),
            json!({"username": "admin@example.com", "password": "s3cret1"}),
        )
        .await;
    assert_eq!(ok.status, 200);
    // After the delay the key is still refused until failures age out of the hour.
    clock.advance(SignedDuration::from_secs(120));
    let r = sim
        .post(
            "/api/session",
            &from("10.0.0.1"),
            json!({"username": "admin@example.com", "password": "s3cret1"}),
        )
        .await;
    assert_eq!(
        r.json()["errors"]["username"],
        json!("Too many attempts! Please try again later.")
    );
    clock.advance(SignedDuration::from_secs(3_600));
    let r = sim
        .post(
            "/api/session",
            &from("10.0.0.1"),
            json!({"username": "admin@example.com", "password": "s3cret1"}),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn throttling_can_be_turned_off() {
    let sim = Sim::world_with(|c| c.login_throttle = false).await;
    for _ in 0..15 {
        let r = sim
            .post(
                "/api/session",
                &Auth::None,
                json!({"username": "vic@example.com", "password": "bad"}),
            )
            .await;
        assert_eq!(
            r.json()["errors"]["password"],
            json!("did not match stored password")
        );
    }
    sim.login("vic@example.com", "vic-pass1").await;
}

#[tokio::test]
async fn unauthenticated_requests_get_plain_text_401() {
    let clock = mock_clock();
    let sim = Sim::world_with(with_mock_clock(&clock)).await;
    let expired = sim.login("vic@example.com", "vic-pass1").await;
    clock.advance(SignedDuration::from_hours(24 * 14));
    let admin = sim.admin().await;
    let deactivated = sim.login("uma@example.com", "old-pass1").await;
    assert_eq!(
        sim.delete(&format!("/api/user/{UMA}"), &admin).await.status,
        200
    );

    for auth in [
        Auth::None,
        Auth::Session("garbage".into()),
        Auth::Session("3c9b6d7e-5f0b-4b3e-9d7e-1f2a3b4c5d6e".into()),
        expired,
        deactivated,
        Auth::Key("mb_nottherightkeyatallnottherightkeyatallnotright".into()),
        // The SCIM key is not an API key for normal routes.
        sim.scim(),
        Auth::Key(sim.f.scim_key.clone()),
    ] {
        let r = sim.get("/api/user/current", &auth).await;
        r.assert_text(401, "Unauthenticated");
    }
    // Every +auth route, known or not, answers 401 before routing.
    for path in [
        "/api/user",
        "/api/permissions/group",
        "/api/api-key",
        "/api/user/abc",
        "/api/permissions/nope",
    ] {
        sim.get(path, &Auth::None)
            .await
            .assert_text(401, "Unauthenticated");
    }
}

#[tokio::test]
async fn logout_and_unknown_endpoints() {
    let sim = Sim::world().await;
    let auth = sim.admin().await;
    let r = sim.delete("/api/session", &auth).await;
    assert_eq!((r.status, r.text.as_str()), (204, ""));
    assert!(
        r.cookies()
            .iter()
            .any(|c| c.starts_with("metabase.SESSION=;"))
    );
    sim.get("/api/user/current", &auth)
        .await
        .assert_text(401, "Unauthenticated");
    // The same token again, or none at all: 404.
    sim.delete("/api/session", &auth)
        .await
        .assert_text(404, "Not found.");
    sim.delete("/api/session", &Auth::None)
        .await
        .assert_text(404, "Not found.");

    let admin = sim.admin().await;
    sim.get("/api/nonexistent", &Auth::None)
        .await
        .assert_text(404, "API endpoint does not exist.");
    sim.get("/api/nonexistent", &admin)
        .await
        .assert_text(404, "API endpoint does not exist.");
    // A known path with the wrong method, and a non-numeric id, do not match a route.
    sim.call(Method::PATCH, "/api/user/1", &admin, None)
        .await
        .assert_text(404, "API endpoint does not exist.");
    sim.get("/api/user/abc", &admin)
        .await
        .assert_text(404, "API endpoint does not exist.");
    sim.get("/api/user/%ff", &admin)
        .await
        .assert_text(404, "API endpoint does not exist.");
    sim.get("/api/user/%ff", &Auth::None)
        .await
        .assert_text(401, "Unauthenticated");
    sim.put("/api/user/current", &admin, json!({}))
        .await
        .assert_text(404, "API endpoint does not exist.");
    assert_eq!(
        sim.get("/api/health", &Auth::None).await.assert_json(200),
        json!({"status": "ok"})
    );
}

#[tokio::test]
async fn sessions_expire_by_the_clock_and_by_control() {
    let clock = mock_clock();
    let sim = Sim::world_with(|c| {
        with_mock_clock(&clock)(c);
        c.session_max_age = std::time::Duration::from_secs(60);
    })
    .await;
    let auth = sim.admin().await;
    clock.advance(SignedDuration::from_secs(59));
    assert_eq!(sim.get("/api/user/current", &auth).await.status, 200);
    // Absolute from login, not sliding: using it did not extend it.
    clock.advance(SignedDuration::from_secs(1));
    sim.get("/api/user/current", &auth)
        .await
        .assert_text(401, "Unauthenticated");
    let again = sim.admin().await;
    assert_eq!(sim.get("/api/user/current", &again).await.status, 200);

    // The control endpoint expires every session at once.
    let member = sim.login("uma@example.com", "old-pass1").await;
    let r = sim
        .call(
            Method::POST,
            "/_sim/metabase/sessions/expire",
            &Auth::None,
            None,
        )
        .await;
    assert_eq!(r.json()["expired"].as_u64(), Some(2));
    for a in [&again, &member] {
        sim.get("/api/user/current", a)
            .await
            .assert_text(401, "Unauthenticated");
    }
    let stats = sim.get("/_sim/metabase/sessions", &Auth::None).await.json();
    assert_eq!(stats["live"], json!(0));
    let fresh = sim.admin().await;
    assert_eq!(sim.get("/api/user/current", &fresh).await.status, 200);
    // An expired session row still exists, so logging it out is a 204.
    assert_eq!(sim.delete("/api/session", &member).await.status, 204);
}

#[tokio::test]
async fn remember_me_makes_the_cookie_permanent() {
    let sim = Sim::world().await;
    let r = sim
        .post(
            "/api/session",
            &Auth::None,
            json!({"username": "admin@example.com", "password": "s3cret1", "remember": true}),
        )
        .await;
    assert!(
        r.cookies()
            .iter()
            .any(|c| c.starts_with("metabase.SESSION=") && c.contains("Max-Age=1209600"))
    );
}
