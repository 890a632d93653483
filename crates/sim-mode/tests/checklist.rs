//! The Mode simulator over real HTTP: one test per checklist exchange
//! (C1–C18 of `shared/specs/mode-api.md`), then auth modes, the rate limit,
//! faults, counters, pagination, the Discovery API, data files, bad input,
//! determinism and scale.

// Helpers outside `#[test]` fns are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use rollcall_core::MockClock;
use rollcall_sim_mode::{ModeCredential, ModeFixtures, ModeSim, ModeSimConfig, RunningModeSim};
use serde_json::{Value, json};

// ---- harness -------------------------------------------------------------

struct Sim {
    running: RunningModeSim,
    http: reqwest::Client,
    fx: ModeFixtures,
    clock: MockClock,
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or_default()
    }

    #[track_caller]
    fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert_eq!(self.content_type(), "application/hal+json", "{}", self.text);
        self.json()
    }

    /// Asserts a Mode error body with this status and id.
    #[track_caller]
    fn error(&self, status: u16, id: &str) -> Value {
        let body = self.expect(status);
        assert_eq!(body["id"], id, "{body}");
        assert!(body["message"].is_string(), "{body}");
        assert_eq!(body["_links"]["help"]["href"], "https://mode.com/help");
        body
    }
}

fn start_time() -> Timestamp {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

/// Rate limit off unless a test turns it on; a mock clock always.
fn test_config() -> (ModeSimConfig, MockClock) {
    let clock = MockClock::new(start_time());
    let config = ModeSimConfig {
        rate_limit: None,
        clock: Arc::new(clock.clone()),
        ..ModeSimConfig::default()
    };
    (config, clock)
}

async fn start_with(config: ModeSimConfig, clock: MockClock) -> Sim {
    let sim = ModeSim::new(config).unwrap();
    let fx = sim.fixtures();
    let running = sim.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    Sim {
        running,
        http: reqwest::Client::new(),
        fx,
        clock,
    }
}

async fn start() -> Sim {
    let (config, clock) = test_config();
    start_with(config, clock).await
}

impl Sim {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.base_url())
    }

    async fn call(
        &self,
        method: Method,
        cred: Option<&ModeCredential>,
        path: &str,
        body: Option<&str>,
    ) -> Reply {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("accept", "application/hal+json");
        if let Some(cred) = cred {
            request = request.basic_auth(&cred.token, Some(&cred.secret));
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    async fn get(&self, cred: &ModeCredential, path: &str) -> Reply {
        self.call(Method::GET, Some(cred), path, None).await
    }

    async fn post(&self, cred: &ModeCredential, path: &str, body: Value) -> Reply {
        self.call(Method::POST, Some(cred), path, Some(&body.to_string()))
            .await
    }

    async fn patch(&self, cred: &ModeCredential, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, Some(cred), path, Some(&body.to_string()))
            .await
    }

    async fn delete(&self, cred: &ModeCredential, path: &str) -> Reply {
        self.call(Method::DELETE, Some(cred), path, None).await
    }

    async fn control_get(&self, path: &str) -> Value {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        assert!(response.status().is_success());
        response.json().await.unwrap()
    }

    async fn control_post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn memberships(&self) -> Vec<Value> {
        let body = self
            .get(&self.fx.admin, "/api/acme/memberships")
            .await
            .expect(200);
        items(&body, "memberships")
    }

    async fn membership_of(&self, username: &str) -> Value {
        self.memberships()
            .await
            .into_iter()
            .find(|m| m["member_username"] == username)
            .unwrap_or_else(|| panic!("no membership for {username}"))
    }

    async fn groups(&self) -> Vec<Value> {
        let body = self
            .get(&self.fx.admin, "/api/acme/groups")
            .await
            .expect(200);
        items(&body, "groups")
    }

    async fn new_group(&self, name: &str) -> Value {
        self.post(
            &self.fx.admin,
            "/api/acme/groups",
            json!({"user_group": {"name": name}}),
        )
        .await
        .expect(200)
    }
}

/// `_embedded.<key>`, a missing key read as `[]` (the empty-list form).
fn items(body: &Value, key: &str) -> Vec<Value> {
    assert!(body["_embedded"].is_object(), "{body}");
    body["_embedded"]
        .get(key)
        .map(|v| v.as_array().unwrap().clone())
        .unwrap_or_default()
}

#[track_caller]
fn assert_hex12(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    assert_eq!(s.len(), 12, "{s}");
    assert!(
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{s}"
    );
}

#[track_caller]
fn assert_time(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    // YYYY-MM-DDTHH:MM:SS.mmmZ
    assert_eq!(s.len(), 24, "{s}");
    assert_eq!(&s[10..11], "T", "{s}");
    assert_eq!(&s[19..20], ".", "{s}");
    assert!(s.ends_with('Z'), "{s}");
    s.parse::<Timestamp>().unwrap();
}

#[track_caller]
fn assert_keys(v: &Value, keys: &[&str]) {
    let object = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    let mut have: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut want = keys.to_vec();
    have.sort_unstable();
    want.sort_unstable();
    assert_eq!(have, want, "{v}");
}

#[track_caller]
fn href(v: &Value, name: &str) -> String {
    let href = v["_links"][name]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("no _links.{name}: {v}"))
        .to_owned();
    assert!(href.starts_with('/'), "hrefs are relative paths: {href}");
    href
}

fn last_segment(href: &str) -> String {
    href.rsplit('/').next().unwrap().to_owned()
}

// ---- C1–C4: account and users --------------------------------------------------

#[tokio::test]
async fn c01_account_is_the_authorizing_user_and_refuses_workspace_tokens() {
    let sim = start().await;
    let body = sim.get(&sim.fx.admin, "/api/account").await.expect(200);
    assert_eq!(body["username"], "alice");
    assert_eq!(body["name"], "Alice Admin");
    assert_eq!(body["email"], "alice@acme.example");
    assert!(body["id"].is_u64());
    assert_hex12(&body["token"]);
    assert_eq!(body["user"], true);
    assert_eq!(body["email_verified"], true);
    assert_eq!(body["organizations_count"], 1);
    assert!(body["dataset_size_limit_mb"].is_u64());
    assert!(body["query_run_size_limit_mb"].is_u64());
    assert!(body["data_source_count"].is_u64());
    assert_eq!(body["avatar"]["type"], "initials");
    assert_eq!(body["avatar"]["initials"], "AA");
    assert_eq!(body["avatar"]["seed"], body["token"]);
    assert_time(&body["created_at"]);
    assert_eq!(href(&body, "self"), "/api/alice");
    assert_eq!(href(&body, "web"), "/alice");
    assert_eq!(href(&body, "organizations"), "/api/alice/organizations");

    let refused = sim.get(&sim.fx.workspace_api, "/api/account").await;
    let body = refused.error(400, "bad_request");
    assert_eq!(
        body["message"],
        "This endpoint is unsupported for use with Api Keys"
    );
}

#[tokio::test]
async fn c02_verify_names_the_workspace_for_a_workspace_token() {
    let sim = start().await;
    let body = sim
        .get(&sim.fx.workspace_api, "/api/verify")
        .await
        .expect(200);
    assert_keys(&body, &["workspace", "workspace_token", "_links"]);
    assert_eq!(body["workspace"], "acme");
    assert_hex12(&body["workspace_token"]);
    assert_eq!(href(&body, "self"), "/api/acme");
    let ws = sim.get(&sim.fx.admin, "/api/acme").await.expect(200);
    assert_eq!(body["workspace_token"], ws["token"]);

    // A personal token gets its user object (the spec's guess).
    let body = sim.get(&sim.fx.member, "/api/verify").await.expect(200);
    assert_eq!(body["username"], "bob");
    // Even a user in no workspace can verify credentials.
    let body = sim.get(&sim.fx.outsider, "/api/verify").await.expect(200);
    assert_eq!(body["username"], "outsider");
    assert_eq!(body["organizations_count"], 0);
}

#[tokio::test]
async fn c03_user_by_username_carries_the_email() {
    let sim = start().await;
    let body = sim.get(&sim.fx.workspace_api, "/api/bob").await.expect(200);
    assert_eq!(body["username"], "bob");
    assert_eq!(body["email"], "bob@acme.example");
    assert_eq!(href(&body, "self"), "/api/bob");

    // Every member's user link resolves, and the email matches the pattern.
    let member = sim
        .memberships()
        .await
        .into_iter()
        .find(|m| m["member_username"] != "alice" && m["member_username"] != "bob")
        .unwrap();
    let body = sim
        .get(&sim.fx.admin, &href(&member, "user"))
        .await
        .expect(200);
    assert_eq!(body["username"], member["member_username"]);
    assert_eq!(body["token"], member["member_token"]);
    assert!(body["email"].as_str().unwrap().ends_with("@acme.example"));

    sim.get(&sim.fx.admin, "/api/nobody_here")
        .await
        .error(404, "not_found");
    // The outsider shares no workspace with alice.
    sim.get(&sim.fx.outsider, "/api/alice")
        .await
        .error(404, "not_found");
    sim.get(&sim.fx.outsider, "/api/outsider").await.expect(200);
}

#[tokio::test]
async fn c04_workspace_account() {
    let sim = start().await;
    let body = sim.get(&sim.fx.admin, "/api/acme").await.expect(200);
    assert_eq!(body["username"], "acme");
    assert_eq!(body["name"], "Acme Corp");
    assert!(body["id"].is_u64());
    assert_hex12(&body["token"]);
    assert_eq!(body["user"], false);
    assert_eq!(body["avatar"]["type"], "initials");
    assert_eq!(body["membership_type"], "admin");
    assert_eq!(body["plan_code"], "plus");
    assert_eq!(body["trial_state"], "expired");
    assert_eq!(body["authorized_domains"], json!(["acme.example"]));
    assert_eq!(body["scim_enabled"], "false");
    assert_time(&body["created_at"]);
    assert_eq!(href(&body, "self"), "/api/acme");
    assert_eq!(href(&body, "memberships"), "/api/acme/memberships");
    assert_eq!(href(&body, "groups"), "/api/acme/groups");
    assert_eq!(href(&body, "web_groups"), "/organizations/acme/groups");

    let body = sim.get(&sim.fx.member, "/api/acme").await.expect(200);
    assert_eq!(body["membership_type"], "full");
    let body = sim
        .get(&sim.fx.workspace_api, "/api/acme")
        .await
        .expect(200);
    assert_eq!(body["membership_type"], "admin");
    sim.get(&sim.fx.outsider, "/api/acme")
        .await
        .error(404, "not_found");
    // A trailing slash, as opsbot sends, reaches the same resource.
    sim.get(&sim.fx.admin, "/api/acme/").await.expect(200);
}

// ---- C5–C7: workspace memberships ---------------------------------------------------

#[tokio::test]
async fn c05_list_memberships() {
    let sim = start().await;
    let body = sim
        .get(&sim.fx.admin, "/api/acme/memberships")
        .await
        .expect(200);
    assert_keys(&body, &["_links", "_embedded"]);
    assert_eq!(href(&body, "self"), "/api/acme/memberships");
    let list = items(&body, "memberships");
    assert_eq!(list.len(), 50, "default --users 50, outsider not listed");
    assert_eq!(list[0]["member_username"], "alice");
    assert_eq!(list[0]["admin"], true);
    assert_eq!(list[1]["member_username"], "bob");
    assert_eq!(list[1]["admin"], false);
    for m in &list {
        assert_keys(
            m,
            &[
                "admin",
                "invited",
                "state",
                "member_username",
                "member_token",
                "activated_at",
                "managed_by_scim",
                "_links",
            ],
        );
        assert!(m["admin"].is_boolean());
        assert!(m["invited"].is_boolean());
        assert_eq!(m["managed_by_scim"], false);
        assert_hex12(&m["member_token"]);
        assert_time(&m["activated_at"]);
        let token = last_segment(&href(m, "self"));
        assert_hex12(&json!(token));
        assert_ne!(
            json!(token),
            m["member_token"],
            "membership token is its own"
        );
        assert_eq!(href(m, "self"), format!("/api/acme/memberships/{token}"));
        assert_eq!(
            href(m, "web_self"),
            format!("/organizations/acme/memberships/{token}")
        );
        assert_eq!(href(m, "organization"), "/api/acme");
        assert_eq!(
            href(m, "user"),
            format!("/api/{}", m["member_username"].as_str().unwrap())
        );
        assert_eq!(
            href(m, "groups"),
            format!("/api/acme/memberships/{token}/groups")
        );
        match m["state"].as_str().unwrap() {
            "active" => assert_eq!(m["invited"], false),
            "pending" => {
                assert_eq!(m["invited"], true);
                href(m, "web_self_approve");
            }
            "deactivated" => {
                assert_eq!(m["admin"], false);
                href(m, "web_self_unban");
            }
            other => panic!("unexpected state {other}"),
        }
    }
    let state = sim.control_get("/_sim/mode/state").await;
    assert_eq!(state["members"]["total"], 50);
    assert!(state["members"]["admins"].as_u64().unwrap() >= 1);

    // Any Accept header is fine, and bob (a member) may list too.
    let response = sim
        .http
        .get(sim.url("/api/acme/memberships"))
        .basic_auth(&sim.fx.member.token, Some(&sim.fx.member.secret))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn c06_get_one_membership() {
    let sim = start().await;
    let bob = sim.membership_of("bob").await;
    let body = sim
        .get(&sim.fx.member, &href(&bob, "self"))
        .await
        .expect(200);
    assert_eq!(body, bob);
    let body = sim
        .get(&sim.fx.admin, "/api/acme/memberships/000000000000")
        .await
        .error(404, "not_found");
    assert_eq!(body["message"], "Membership not found");
    sim.get(&sim.fx.admin, "/api/acme/memberships/not-a-token")
        .await
        .error(404, "not_found");
}

#[tokio::test]
async fn c07_delete_membership_makes_a_former_member() {
    let sim = start().await;
    let bob = sim.membership_of("bob").await;
    let path = href(&bob, "self");
    // Put bob in a group first, to see the removal from groups.
    let group = sim.new_group("Bob's Team").await;
    sim.post(
        &sim.fx.admin,
        &href(&group, "group_memberships"),
        json!({"membership": {"member_token": bob["member_token"]}}),
    )
    .await
    .expect(200);

    // A member may not remove anyone.
    sim.delete(&sim.fx.member, &path)
        .await
        .error(403, "forbidden");

    let body = sim.delete(&sim.fx.admin, &path).await.expect(200);
    assert_eq!(body["state"], "deactivated");
    assert_eq!(body["member_username"], "bob");
    assert_eq!(body["admin"], false);
    assert_eq!(href(&body, "self"), path);
    href(&body, "web_self_unban");

    // Still listed, as a former member; out of every group.
    let listed = sim.membership_of("bob").await;
    assert_eq!(listed["state"], "deactivated");
    let group = sim
        .get(&sim.fx.admin, &href(&group, "self"))
        .await
        .expect(200);
    assert_eq!(group["member_count"], 0);
    // A former member has no access any more.
    sim.get(&sim.fx.member, "/api/acme/memberships")
        .await
        .error(404, "not_found");
    // Deleting again answers the same object.
    let again = sim.delete(&sim.fx.admin, &path).await.expect(200);
    assert_eq!(again["state"], "deactivated");

    // With former members hidden, the deleted membership vanishes.
    let (status, settings) = sim
        .control_post("/_sim/mode/settings", json!({"former_members": "hidden"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(settings["former_members"], "hidden");
    assert!(
        sim.memberships()
            .await
            .iter()
            .all(|m| m["state"] != "deactivated")
    );
    sim.get(&sim.fx.admin, &path).await.error(404, "not_found");
}

// ---- C8: invites ------------------------------------------------------------------------

#[tokio::test]
async fn c08_invite_creates_a_pending_member() {
    let sim = start().await;
    let body = sim
        .post(
            &sim.fx.admin,
            "/api/acme/invites",
            json!({"invite": {"invitee": {"email": "carol@acme.example"}, "message": "Join us"}}),
        )
        .await
        .expect(200);
    assert_eq!(body["email"], "carol@acme.example");
    assert_eq!(body["message"], "Join us");
    let alice = sim.get(&sim.fx.admin, "/api/alice").await.expect(200);
    let ws = sim.get(&sim.fx.admin, "/api/acme").await.expect(200);
    assert_eq!(body["inviter_id"], alice["id"]);
    assert_eq!(body["organization_id"], ws["id"]);
    assert!(body["invitee_id"].is_u64());
    assert_eq!(body["limited"], false);
    assert_eq!(body["sent_at"], "2026-03-01T12:00:00.000Z");
    assert_eq!(body["created_at"], "2026-03-01T12:00:00.000Z");
    assert_eq!(body["expires_at"], "2026-03-15T12:00:00.000Z");
    for null in ["resent_at", "clicked_at", "accepted_at"] {
        assert!(body[null].is_null(), "{null}");
    }
    assert_eq!(href(&body, "inviter"), "/api/alice");
    assert_eq!(href(&body, "invitee"), "/api/carol");
    let resend = href(&body, "web_self_resend");
    assert!(resend.starts_with("/organizations/acme/invites/") && resend.ends_with("/resend"));

    let carol = sim.membership_of("carol").await;
    assert_eq!(carol["invited"], true);
    assert_eq!(carol["state"], "pending");
    assert_eq!(carol["admin"], false);
    let user = sim.get(&sim.fx.admin, "/api/carol").await.expect(200);
    assert_eq!(user["email"], "carol@acme.example");
    assert_eq!(user["id"], body["invitee_id"]);
    assert_eq!(user["email_verified"], false);

    // Inviting her again re-sends.
    let again = sim
        .post(
            &sim.fx.admin,
            "/api/acme/invites",
            json!({"invite": {"invitee": {"email": "Carol@acme.example"}, "message": ""}}),
        )
        .await
        .expect(200);
    assert_eq!(again["invitee_id"], body["invitee_id"]);
    assert_time(&again["resent_at"]);

    // The outsider can be invited into the workspace.
    let outsider = sim
        .post(
            &sim.fx.admin,
            "/api/acme/invites",
            json!({"invite": {"invitee": {"email": "oscar@outside.example"}, "message": "hi"}}),
        )
        .await
        .expect(200);
    assert_eq!(href(&outsider, "invitee"), "/api/outsider");
    assert_eq!(sim.membership_of("outsider").await["state"], "pending");

    // A current member cannot be invited.
    sim.post(
        &sim.fx.admin,
        "/api/acme/invites",
        json!({"invite": {"invitee": {"email": "bob@acme.example"}, "message": "hi"}}),
    )
    .await
    .error(400, "bad_request");
}

#[tokio::test]
async fn c08_invite_validation_and_refusals() {
    let sim = start().await;
    let ok = json!({"invite": {"invitee": {"email": "dan@acme.example"}, "message": "hi"}});
    // Workspace API tokens cannot invite (spec: 400 with the Api Keys text, a guess).
    let body = sim
        .post(&sim.fx.workspace_api, "/api/acme/invites", ok.clone())
        .await
        .error(400, "bad_request");
    assert_eq!(
        body["message"],
        "This endpoint is unsupported for use with Api Keys"
    );
    sim.post(&sim.fx.member, "/api/acme/invites", ok.clone())
        .await
        .error(403, "forbidden");
    sim.post(&sim.fx.outsider, "/api/acme/invites", ok)
        .await
        .error(404, "not_found");
    for bad in [
        json!({}),
        json!({"invite": null}),
        json!({"invite": "dan@acme.example"}),
        json!({"invite": {"message": "hi"}}),
        json!({"invite": {"invitee": {}, "message": "hi"}}),
        json!({"invite": {"invitee": {"email": ""}, "message": "hi"}}),
        json!({"invite": {"invitee": {"email": "not-an-email"}, "message": "hi"}}),
        json!({"invite": {"invitee": {"email": 42}, "message": "hi"}}),
        json!({"invite": {"invitee": {"email": "dan@acme.example"}}}),
        json!({"invite": {"invitee": {"email": "dan@acme.example"}, "message": ["x"]}}),
        json!([1, 2]),
    ] {
        sim.post(&sim.fx.admin, "/api/acme/invites", bad.clone())
            .await
            .error(400, "bad_request");
    }
    assert!(
        sim.memberships()
            .await
            .iter()
            .all(|m| m["member_username"] != "dan")
    );
}

// ---- C9–C13: groups ------------------------------------------------------------------------

#[tokio::test]
async fn c09_list_groups() {
    let sim = start().await;
    let body = sim.get(&sim.fx.admin, "/api/acme/groups").await.expect(200);
    assert_keys(&body, &["_links", "_embedded"]);
    assert_eq!(href(&body, "self"), "/api/acme/groups");
    let groups = items(&body, "groups");
    assert!(!groups.is_empty());
    for g in &groups {
        assert_keys(
            g,
            &[
                "token",
                "group_type",
                "name",
                "description",
                "state",
                "member_count",
                "spaces_count",
                "data_sources_count",
                "managed",
                "_links",
            ],
        );
        assert_hex12(&g["token"]);
        let token = g["token"].as_str().unwrap();
        assert_eq!(g["group_type"], "custom");
        assert_eq!(g["state"], "active");
        assert!(g["member_count"].is_u64());
        assert!(g["spaces_count"].is_u64());
        assert!(g["data_sources_count"].is_u64());
        assert_eq!(g["managed"], false);
        assert_eq!(href(g, "self"), format!("/api/acme/groups/{token}"));
        assert_eq!(
            href(g, "web"),
            format!("/organizations/acme/groups/{token}")
        );
        assert!(href(g, "creator").starts_with("/api/"));
        assert_eq!(
            href(g, "group_memberships"),
            format!("/api/acme/groups/{token}/memberships")
        );
        assert_eq!(g["_links"]["membership_by_id"]["templated"], true);
        assert_eq!(
            g["_links"]["membership_by_id"]["href"],
            format!("/api/acme/groups/{token}/memberships{{/id}}")
        );
        assert_eq!(
            href(g, "memberships_preview"),
            format!("/api/acme/groups/{token}/memberships/preview")
        );
    }
    // The seeded data has soft-deleted groups, which the list leaves out.
    let state = sim.control_get("/_sim/mode/state").await;
    assert!(state["groups"]["soft_deleted"].as_u64().unwrap() >= 1);
    assert_eq!(state["groups"]["active"], groups.len());

    sim.get(&sim.fx.member, "/api/acme/groups")
        .await
        .error(403, "forbidden");
    sim.get(&sim.fx.workspace_api, "/api/acme/groups")
        .await
        .expect(200);
}

#[tokio::test]
async fn c10_create_group() {
    let sim = start().await;
    let body = sim
        .post(
            &sim.fx.admin,
            "/api/acme/groups",
            json!({"user_group": {"name": "Engineers", "colour": "ignored"}}),
        )
        .await
        .expect(200);
    assert_eq!(body["name"], "Engineers");
    assert_eq!(body["state"], "active");
    assert_eq!(body["member_count"], 0);
    assert_eq!(body["description"], "");
    assert_hex12(&body["token"]);
    assert_eq!(href(&body, "creator"), "/api/alice");
    assert!(
        sim.groups()
            .await
            .iter()
            .any(|g| g["token"] == body["token"])
    );

    // The workspace token creates groups too, without a creator link.
    let by_key = sim
        .post(
            &sim.fx.workspace_api,
            "/api/acme/groups",
            json!({"user_group": {"name": "Robots"}}),
        )
        .await
        .expect(200);
    assert!(by_key["_links"].get("creator").is_none());

    for bad in [
        json!({"user_group": {"name": ""}}),
        json!({"user_group": {"name": "   "}}),
        json!({"user_group": {}}),
        json!({"user_group": {"name": 7}}),
        json!({"name": "Flat"}),
        json!({"user_group": {"name": "Engineers"}}),
    ] {
        sim.post(&sim.fx.admin, "/api/acme/groups", bad)
            .await
            .error(400, "bad_request");
    }
    sim.post(
        &sim.fx.member,
        "/api/acme/groups",
        json!({"user_group": {"name": "Sneaky"}}),
    )
    .await
    .error(403, "forbidden");
}

#[tokio::test]
async fn c11_get_group() {
    let sim = start().await;
    let group = sim.groups().await.remove(0);
    let body = sim
        .get(&sim.fx.admin, &href(&group, "self"))
        .await
        .expect(200);
    assert_eq!(body, group);
    sim.get(&sim.fx.admin, "/api/acme/groups/000000000000")
        .await
        .error(404, "not_found");
    sim.get(&sim.fx.member, &href(&group, "self"))
        .await
        .error(403, "forbidden");
    sim.get(&sim.fx.outsider, &href(&group, "self"))
        .await
        .error(404, "not_found");
}

#[tokio::test]
async fn c12_rename_group() {
    let sim = start().await;
    let group = sim.new_group("Analysts Team").await;
    let body = sim
        .patch(
            &sim.fx.admin,
            &href(&group, "self"),
            json!({"user_group": {"name": "Data Analysts"}}),
        )
        .await
        .expect(200);
    assert_eq!(body["name"], "Data Analysts");
    assert_eq!(body["token"], group["token"]);
    let again = sim
        .get(&sim.fx.admin, &href(&group, "self"))
        .await
        .expect(200);
    assert_eq!(again["name"], "Data Analysts");
    // Renaming to its own name is fine; to another group's is not.
    sim.patch(
        &sim.fx.admin,
        &href(&group, "self"),
        json!({"user_group": {"name": "Data Analysts"}}),
    )
    .await
    .expect(200);
    let other = sim.new_group("Other").await;
    sim.patch(
        &sim.fx.admin,
        &href(&other, "self"),
        json!({"user_group": {"name": "Data Analysts"}}),
    )
    .await
    .error(400, "bad_request");
    sim.patch(&sim.fx.admin, &href(&other, "self"), json!({}))
        .await
        .error(400, "bad_request");
    sim.patch(
        &sim.fx.member,
        &href(&other, "self"),
        json!({"user_group": {"name": "X"}}),
    )
    .await
    .error(403, "forbidden");
}

#[tokio::test]
async fn c13_delete_group_is_a_soft_delete() {
    let sim = start().await;
    let group = sim.new_group("Temporary").await;
    let path = href(&group, "self");
    sim.delete(&sim.fx.member, &path)
        .await
        .error(403, "forbidden");
    let body = sim.delete(&sim.fx.admin, &path).await.expect(200);
    assert_eq!(body["state"], "soft_deleted");
    assert_eq!(body["token"], group["token"]);
    assert!(
        sim.groups()
            .await
            .iter()
            .all(|g| g["token"] != group["token"])
    );
    // GET still answers, soft-deleted (the spec's preference).
    let body = sim.get(&sim.fx.admin, &path).await.expect(200);
    assert_eq!(body["state"], "soft_deleted");
    // The name stays taken.
    sim.post(
        &sim.fx.admin,
        "/api/acme/groups",
        json!({"user_group": {"name": "Temporary"}}),
    )
    .await
    .error(400, "bad_request");
    // A deleted group takes no new members and no rename.
    let bob = sim.membership_of("bob").await;
    sim.post(
        &sim.fx.admin,
        &href(&group, "group_memberships"),
        json!({"membership": {"member_token": bob["member_token"]}}),
    )
    .await
    .error(404, "not_found");
    sim.patch(
        &sim.fx.admin,
        &path,
        json!({"user_group": {"name": "Back"}}),
    )
    .await
    .error(404, "not_found");
}

// ---- C14–C17: group memberships ---------------------------------------------------------------

#[tokio::test]
async fn c14_list_group_memberships() {
    let sim = start().await;
    let group = sim
        .groups()
        .await
        .into_iter()
        .find(|g| g["member_count"].as_u64().unwrap() > 0)
        .expect("a seeded group with members");
    let body = sim
        .get(&sim.fx.admin, &href(&group, "group_memberships"))
        .await
        .expect(200);
    assert_keys(&body, &["_links", "_embedded"]);
    assert_eq!(href(&body, "self"), href(&group, "group_memberships"));
    let list = items(&body, "group_memberships");
    assert_eq!(list.len() as u64, group["member_count"].as_u64().unwrap());
    let members = sim.memberships().await;
    for gm in &list {
        assert_keys(gm, &["token", "member_token", "_links"]);
        assert_hex12(&gm["token"]);
        assert_hex12(&gm["member_token"]);
        assert_eq!(
            href(gm, "self"),
            format!(
                "{}/{}",
                href(&group, "group_memberships"),
                gm["token"].as_str().unwrap()
            )
        );
        assert_eq!(href(gm, "user_group"), href(&group, "self"));
        assert!(href(gm, "creator").starts_with("/api/"));
        // Joinable with workspace memberships by member_token.
        let member = members
            .iter()
            .find(|m| m["member_token"] == gm["member_token"])
            .expect("group member is a workspace member");
        assert_eq!(href(gm, "member"), href(member, "user"));
    }
    // An empty group: `_embedded` without the key.
    let empty = sim.new_group("Empty").await;
    let body = sim
        .get(&sim.fx.admin, &href(&empty, "group_memberships"))
        .await
        .expect(200);
    assert_eq!(body["_embedded"], json!({}));
    sim.get(&sim.fx.member, &href(&group, "group_memberships"))
        .await
        .error(403, "forbidden");
    sim.get(&sim.fx.admin, "/api/acme/groups/000000000000/memberships")
        .await
        .error(404, "not_found");
}

#[tokio::test]
async fn c15_add_group_member() {
    let sim = start().await;
    let group = sim.new_group("Engineers").await;
    let bob = sim.membership_of("bob").await;
    let add = |token: Value| json!({"membership": {"member_token": token}});
    let body = sim
        .post(
            &sim.fx.admin,
            &href(&group, "group_memberships"),
            add(bob["member_token"].clone()),
        )
        .await
        .expect(200);
    assert_hex12(&body["token"]);
    assert_eq!(body["member_token"], bob["member_token"]);
    assert_eq!(href(&body, "member"), "/api/bob");
    assert_eq!(href(&body, "creator"), "/api/alice");
    let after = sim
        .get(&sim.fx.admin, &href(&group, "self"))
        .await
        .expect(200);
    assert_eq!(after["member_count"], 1);

    // Already present: 400. Not a workspace member: 404.
    sim.post(
        &sim.fx.admin,
        &href(&group, "group_memberships"),
        add(bob["member_token"].clone()),
    )
    .await
    .error(400, "bad_request");
    let outsider = sim.get(&sim.fx.outsider, "/api/outsider").await.expect(200);
    sim.post(
        &sim.fx.admin,
        &href(&group, "group_memberships"),
        add(outsider["token"].clone()),
    )
    .await
    .error(404, "not_found");
    sim.post(
        &sim.fx.admin,
        &href(&group, "group_memberships"),
        add(json!("ffffffffffff")),
    )
    .await
    .error(404, "not_found");
    for bad in [
        json!({}),
        json!({"membership": {}}),
        json!({"membership": {"member_token": 12}}),
        json!({"membership": "bob"}),
    ] {
        sim.post(&sim.fx.admin, &href(&group, "group_memberships"), bad)
            .await
            .error(400, "bad_request");
    }
    sim.post(
        &sim.fx.member,
        &href(&group, "group_memberships"),
        add(bob["member_token"].clone()),
    )
    .await
    .error(403, "forbidden");
    let after = sim
        .get(&sim.fx.admin, &href(&group, "self"))
        .await
        .expect(200);
    assert_eq!(after["member_count"], 1);
}

#[tokio::test]
async fn c16_get_group_membership() {
    let sim = start().await;
    let group = sim.new_group("Engineers").await;
    let bob = sim.membership_of("bob").await;
    let added = sim
        .post(
            &sim.fx.admin,
            &href(&group, "group_memberships"),
            json!({"membership": {"member_token": bob["member_token"]}}),
        )
        .await
        .expect(200);
    let body = sim
        .get(&sim.fx.admin, &href(&added, "self"))
        .await
        .expect(200);
    assert_eq!(body, added);
    sim.get(
        &sim.fx.admin,
        &format!("{}/000000000000", href(&group, "group_memberships")),
    )
    .await
    .error(404, "not_found");
    // The group-membership token, not the user token, names it.
    sim.get(
        &sim.fx.admin,
        &format!(
            "{}/{}",
            href(&group, "group_memberships"),
            bob["member_token"].as_str().unwrap()
        ),
    )
    .await
    .error(404, "not_found");
    // Another group's membership token does not resolve under this group.
    let other = sim.new_group("Other").await;
    sim.get(
        &sim.fx.admin,
        &format!(
            "{}/{}",
            href(&other, "group_memberships"),
            added["token"].as_str().unwrap()
        ),
    )
    .await
    .error(404, "not_found");
}

#[tokio::test]
async fn c17_remove_group_member() {
    let sim = start().await;
    let group = sim.new_group("Engineers").await;
    let bob = sim.membership_of("bob").await;
    let added = sim
        .post(
            &sim.fx.admin,
            &href(&group, "group_memberships"),
            json!({"membership": {"member_token": bob["member_token"]}}),
        )
        .await
        .expect(200);
    sim.delete(&sim.fx.member, &href(&added, "self"))
        .await
        .error(403, "forbidden");
    let body = sim
        .delete(&sim.fx.admin, &href(&added, "self"))
        .await
        .expect(200);
    assert_eq!(body["token"], added["token"]);
    assert_eq!(body["member_token"], bob["member_token"]);
    sim.get(&sim.fx.admin, &href(&added, "self"))
        .await
        .error(404, "not_found");
    sim.delete(&sim.fx.admin, &href(&added, "self"))
        .await
        .error(404, "not_found");
    let after = sim
        .get(&sim.fx.admin, &href(&group, "self"))
        .await
        .expect(200);
    assert_eq!(after["member_count"], 0);
    // And bob can be added again.
    sim.post(
        &sim.fx.admin,
        &href(&group, "group_memberships"),
        json!({"membership": {"member_token": bob["member_token"]}}),
    )
    .await
    .expect(200);
}

// ---- C18: errors ---------------------------------------------------------------------------------

#[tokio::test]
async fn c18_error_bodies() {
    let sim = start().await;
    // 401: no header, wrong secret, unknown token, wrong scheme, garbage.
    let body = sim
        .call(Method::GET, None, "/api/acme/memberships", None)
        .await
        .error(401, "unauthorized");
    assert_eq!(body["message"], "Unauthorized");
    let wrong = ModeCredential {
        secret: "nope".into(),
        ..sim.fx.admin.clone()
    };
    sim.get(&wrong, "/api/acme")
        .await
        .error(401, "unauthorized");
    let unknown = ModeCredential {
        token: "000000000000".into(),
        ..sim.fx.admin.clone()
    };
    sim.get(&unknown, "/api/account")
        .await
        .error(401, "unauthorized");
    for header in [
        format!("Bearer {}", sim.fx.discovery_token),
        "Basic !!!notbase64".to_owned(),
        "Basic".to_owned(),
        "Basic bm9jb2xvbg==".to_owned(), // "nocolon"
    ] {
        let response = sim
            .http
            .get(sim.url("/api/account"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
    }
    // Unknown paths need auth first, then 404.
    sim.call(Method::GET, None, "/api/acme/nothing/here", None)
        .await
        .error(401, "unauthorized");
    sim.get(&sim.fx.admin, "/api/acme/nothing/here")
        .await
        .error(404, "not_found");
    // An unrouted verb is a Mode 404, not a bare 405.
    sim.call(
        Method::PUT,
        Some(&sim.fx.admin),
        "/api/acme/groups",
        Some("{}"),
    )
    .await
    .error(404, "not_found");
    // 403 and 404 for a workspace that does not exist.
    sim.get(&sim.fx.member, "/api/acme/groups")
        .await
        .error(403, "forbidden");
    let body = sim
        .get(&sim.fx.admin, "/api/globex/memberships")
        .await
        .error(404, "not_found");
    assert_eq!(body["message"], "Workspace not found");
    let body = sim
        .get(&sim.fx.outsider, "/api/acme/memberships")
        .await
        .error(404, "not_found");
    assert_eq!(body["message"], "Membership not found for Workspace");
}

// ---- token kinds ----------------------------------------------------------------------------------

#[tokio::test]
async fn workspace_token_is_admin_but_personal_tokens_follow_their_user() {
    let sim = start().await;
    let fx = &sim.fx;
    assert!(fx.workspace_api.username.is_none());
    assert_eq!(fx.admin.username.as_deref(), Some("alice"));
    assert_eq!(fx.member.username.as_deref(), Some("bob"));
    assert_eq!(fx.outsider.username.as_deref(), Some("outsider"));
    for cred in [&fx.admin, &fx.member, &fx.outsider, &fx.workspace_api] {
        assert_hex12(&json!(cred.token));
    }

    let cases: [(&ModeCredential, &str, u16); 12] = [
        (&fx.workspace_api, "/api/account", 400),
        (&fx.workspace_api, "/api/acme/memberships", 200),
        (&fx.workspace_api, "/api/acme/groups", 200),
        (&fx.admin, "/api/account", 200),
        (&fx.admin, "/api/acme/groups", 200),
        (&fx.member, "/api/account", 200),
        (&fx.member, "/api/acme/memberships", 200),
        (&fx.member, "/api/acme/groups", 403),
        (&fx.outsider, "/api/account", 200),
        (&fx.outsider, "/api/acme", 404),
        (&fx.outsider, "/api/acme/memberships", 404),
        (&fx.outsider, "/api/acme/groups", 404),
    ];
    for (cred, path, status) in cases {
        let reply = sim.get(cred, path).await;
        assert_eq!(
            reply.status, status,
            "{:?} {path}: {}",
            cred.username, reply.text
        );
    }
    // The workspace token may remove members and manage groups.
    let some = sim
        .memberships()
        .await
        .into_iter()
        .find(|m| {
            m["state"] == "active"
                && m["member_username"] != "alice"
                && m["member_username"] != "bob"
        })
        .unwrap();
    let body = sim
        .delete(&fx.workspace_api, &href(&some, "self"))
        .await
        .expect(200);
    assert_eq!(body["state"], "deactivated");
}

// ---- rate limit -------------------------------------------------------------------------------------

#[tokio::test]
async fn rate_limit_40_per_10s_per_token_on_the_mock_clock() {
    let (mut config, clock) = test_config();
    config.rate_limit = Some((40, Duration::from_secs(10)));
    let sim = start_with(config, clock).await;
    for n in 0..40_u32 {
        let reply = sim.get(&sim.fx.admin, "/api/acme").await;
        assert_eq!(reply.status, 200, "request {n}");
        assert_eq!(reply.header("x-ratelimit-limit"), Some("40"));
        assert_eq!(
            reply.header("x-ratelimit-remaining"),
            Some((39 - n).to_string().as_str())
        );
        assert_eq!(reply.header("x-ratelimit-reset"), Some("10"));
    }
    sim.clock.advance(SignedDuration::from_secs(3));
    let limited = sim.get(&sim.fx.admin, "/api/acme").await;
    let body = limited.error(429, "rate_limited");
    assert_eq!(body["message"], "Rate limited");
    assert_eq!(limited.header("retry-after"), Some("7"));
    assert_eq!(limited.header("x-ratelimit-limit"), Some("40"));
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));

    // Another credential has its own window.
    sim.get(&sim.fx.member, "/api/acme").await.expect(200);

    // Once the window has slid past the first burst, alice is admitted again.
    sim.clock.advance(SignedDuration::from_secs(7));
    let again = sim.get(&sim.fx.admin, "/api/acme").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("x-ratelimit-remaining"), Some("39"));

    let counters = sim.control_get("/_sim/counters").await;
    assert_eq!(counters["events"]["rate_limited"], 1);
    assert_eq!(counters["by_status"]["429"], 1);
    assert_eq!(counters["by_route"]["GET /api/{name}"], 43);
    assert_eq!(counters["by_credential"][&sim.fx.admin.token], 42);
}

#[tokio::test]
async fn rate_limit_without_retry_after_and_switched_at_run_time() {
    let (mut config, clock) = test_config();
    config.rate_limit = Some((2, Duration::from_secs(10)));
    config.retry_after = false;
    let sim = start_with(config, clock).await;
    sim.get(&sim.fx.admin, "/api/account").await.expect(200);
    sim.get(&sim.fx.admin, "/api/account").await.expect(200);
    let limited = sim.get(&sim.fx.admin, "/api/account").await;
    limited.error(429, "rate_limited");
    assert_eq!(limited.header("retry-after"), None);
    assert_eq!(limited.header("x-ratelimit-limit"), Some("2"));

    // Turn Retry-After on at run time.
    let (status, settings) = sim
        .control_post("/_sim/mode/settings", json!({"retry_after": true}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(settings["rate_limit"], "2/10s");
    let limited = sim.get(&sim.fx.admin, "/api/account").await;
    assert_eq!(limited.header("retry-after"), Some("10"));

    // Turn the limit off: no 429 and no rate-limit headers.
    let (_, settings) = sim
        .control_post("/_sim/mode/settings", json!({"rate_limit": "off"}))
        .await;
    assert_eq!(settings["rate_limit"], "off");
    let reply = sim.get(&sim.fx.admin, "/api/account").await;
    reply.expect(200);
    assert_eq!(reply.header("x-ratelimit-limit"), None);

    // Back on with a new limit, then reset the windows.
    sim.control_post("/_sim/mode/settings", json!({"rate_limit": "1/1m"}))
        .await;
    sim.get(&sim.fx.admin, "/api/account").await.expect(200);
    sim.get(&sim.fx.admin, "/api/account")
        .await
        .error(429, "rate_limited");
    let response = sim
        .http
        .post(sim.url("/_sim/mode/rate-limit/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    sim.get(&sim.fx.admin, "/api/account").await.expect(200);

    let (status, _) = sim
        .control_post("/_sim/mode/settings", json!({"rate_limit": "fast"}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = sim
        .control_post("/_sim/mode/settings", json!({"colour": "red"}))
        .await;
    assert_eq!(status, 400);
}

// ---- faults and counters -------------------------------------------------------------------------------

#[tokio::test]
async fn faults_from_config_flags() {
    let (mut config, clock) = test_config();
    config.faults = vec![
        "429,retry_after=2@next=1".parse().unwrap(),
        "503@every=3@/api/acme/groups".parse().unwrap(),
    ];
    let sim = start_with(config, clock).await;
    let first = sim.get(&sim.fx.admin, "/api/acme/memberships").await;
    first.error(429, "rate_limited");
    assert_eq!(first.header("retry-after"), Some("2"));
    // Spent after one.
    sim.get(&sim.fx.admin, "/api/acme/memberships")
        .await
        .expect(200);

    let statuses: Vec<u16> = {
        let mut out = Vec::new();
        for _ in 0..6 {
            out.push(sim.get(&sim.fx.admin, "/api/acme/groups").await.status);
        }
        out
    };
    assert_eq!(statuses, vec![200, 200, 503, 200, 200, 503]);
    // Deeper paths match the prefix too: the 7th and 8th pass, the 9th fails.
    sim.get(&sim.fx.admin, "/api/acme/groups/000000000000")
        .await
        .error(404, "not_found");
    sim.get(&sim.fx.admin, "/api/acme/groups").await.expect(200);
    let reply = sim.get(&sim.fx.admin, "/api/acme/groups").await;
    reply.error(503, "service_unavailable");

    let counters = sim.control_get("/_sim/counters").await;
    assert_eq!(counters["faults_injected"], 4);
    assert_eq!(counters["by_status"]["503"], 3);
    assert_eq!(counters["by_status"]["429"], 1);
    // Injected 429s are not the simulator's own rate limit.
    assert!(counters["events"].get("rate_limited").is_none());
}

#[tokio::test]
async fn faults_through_the_control_endpoint() {
    let sim = start().await;
    let add = |spec: &str| json!({"spec": spec});

    let (status, _) = sim
        .control_post("/_sim/faults", add("truncate@next=1"))
        .await;
    assert_eq!(status, 201);
    let reply = sim.get(&sim.fx.admin, "/api/acme/memberships").await;
    assert_eq!(reply.status, 200);
    assert!(
        serde_json::from_str::<Value>(&reply.text).is_err(),
        "truncated"
    );
    assert!(!reply.text.is_empty());

    sim.control_post("/_sim/faults", add("malformed@next=1"))
        .await;
    let reply = sim.get(&sim.fx.admin, "/api/acme").await;
    assert_eq!(reply.status, 200);
    assert!(
        serde_json::from_str::<Value>(&reply.text).is_err(),
        "malformed"
    );

    sim.control_post("/_sim/faults", add("latency=150@next=1"))
        .await;
    let started = Instant::now();
    sim.get(&sim.fx.admin, "/api/acme").await.expect(200);
    assert!(started.elapsed() >= Duration::from_millis(150));

    sim.control_post(
        "/_sim/faults",
        add("429,retry_after=3@next=1@/api/acme/groups"),
    )
    .await;
    sim.get(&sim.fx.admin, "/api/acme").await.expect(200);
    let limited = sim.get(&sim.fx.admin, "/api/acme/groups").await;
    limited.error(429, "rate_limited");
    assert_eq!(limited.header("retry-after"), Some("3"));

    sim.control_post("/_sim/faults", add("500@every=2")).await;
    let rules = sim.control_get("/_sim/faults").await;
    assert_eq!(rules.as_array().unwrap().len(), 1);
    sim.get(&sim.fx.admin, "/api/acme").await.expect(200);
    sim.get(&sim.fx.admin, "/api/acme")
        .await
        .error(500, "internal_server_error");
    let response = sim
        .http
        .delete(sim.url("/_sim/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    sim.get(&sim.fx.admin, "/api/acme").await.expect(200);
    sim.get(&sim.fx.admin, "/api/acme").await.expect(200);

    let (status, _) = sim.control_post("/_sim/faults", add("explode")).await;
    assert_eq!(status, 400);

    let counters = sim.control_get("/_sim/counters").await;
    assert_eq!(counters["faults_injected"], 5);
}

#[tokio::test]
async fn counters_count_vendor_calls_by_route_status_and_credential() {
    let sim = start().await;
    sim.get(&sim.fx.admin, "/api/acme/memberships")
        .await
        .expect(200);
    sim.get(&sim.fx.admin, "/api/acme/memberships")
        .await
        .expect(200);
    sim.get(&sim.fx.member, "/api/acme/groups")
        .await
        .error(403, "forbidden");
    sim.call(Method::GET, None, "/api/acme/groups", None)
        .await
        .error(401, "unauthorized");
    // Control endpoints are not counted.
    sim.control_get("/_sim/mode/state").await;
    let counters = sim.control_get("/_sim/counters").await;
    assert_eq!(counters["total"], 4);
    assert_eq!(counters["by_route"]["GET /api/{ws}/memberships"], 2);
    assert_eq!(counters["by_route"]["GET /api/{ws}/groups"], 2);
    assert_eq!(counters["by_status"]["200"], 2);
    assert_eq!(counters["by_status"]["403"], 1);
    assert_eq!(counters["by_status"]["401"], 1);
    assert_eq!(counters["by_credential"][&sim.fx.admin.token], 2);
    assert_eq!(counters["by_credential"][&sim.fx.member.token], 1);

    // The in-process handle sees the same numbers, and reset clears them.
    assert_eq!(sim.running.control().counters.snapshot().total, 4);
    let response = sim
        .http
        .post(sim.url("/_sim/counters/reset"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_eq!(sim.control_get("/_sim/counters").await["total"], 0);
}

// ---- pagination ------------------------------------------------------------------------------------------

#[tokio::test]
async fn pagination_mode_pages_lists_with_links() {
    let (mut config, clock) = test_config();
    config.users = 45;
    config.page_size = Some(10);
    let sim = start_with(config, clock).await;

    let first = sim
        .get(&sim.fx.admin, "/api/acme/memberships")
        .await
        .expect(200);
    assert_eq!(
        first["pagination"],
        json!({"page": 1, "per_page": 10, "count": 10, "total_pages": 5, "total_count": 45})
    );
    assert_eq!(
        href(&first, "self"),
        "/api/acme/memberships?page=1&per_page=10"
    );
    assert_eq!(
        href(&first, "next_page"),
        "/api/acme/memberships?page=2&per_page=10"
    );
    assert!(first["_links"].get("prev_page").is_none());

    // Follow next_page to the end.
    let mut seen = Vec::new();
    let mut next = Some("/api/acme/memberships".to_owned());
    let mut pages = 0;
    while let Some(path) = next {
        let body = sim.get(&sim.fx.admin, &path).await.expect(200);
        pages += 1;
        if pages > 1 {
            href(&body, "prev_page");
        }
        seen.extend(items(&body, "memberships"));
        next = body["_links"]
            .get("next_page")
            .map(|l| l["href"].as_str().unwrap().to_owned());
    }
    assert_eq!(pages, 5);
    assert_eq!(seen.len(), 45);
    let mut tokens: Vec<String> = seen.iter().map(|m| href(m, "self")).collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 45);

    // per_page overrides; a page past the end is the empty form.
    let body = sim
        .get(&sim.fx.admin, "/api/acme/memberships?page=2&per_page=30")
        .await
        .expect(200);
    assert_eq!(body["pagination"]["count"], 15);
    let past = sim
        .get(&sim.fx.admin, "/api/acme/memberships?page=9")
        .await
        .expect(200);
    assert_eq!(past["_embedded"], json!({}));
    assert_eq!(past["pagination"]["count"], 0);
    assert!(past["_links"].get("next_page").is_none());
    sim.get(&sim.fx.admin, "/api/acme/memberships?page=abc")
        .await
        .error(400, "bad_request");

    // Groups and group memberships page the same way.
    let groups = sim
        .get(&sim.fx.admin, "/api/acme/groups?per_page=2")
        .await
        .expect(200);
    assert_eq!(groups["pagination"]["per_page"], 2);
    assert!(items(&groups, "groups").len() <= 2);

    // Paging off again at run time: whole lists, no pagination block, and
    // page parameters are ignored.
    sim.control_post("/_sim/mode/settings", json!({"page_size": null}))
        .await;
    let whole = sim
        .get(&sim.fx.admin, "/api/acme/memberships?page=2&per_page=10")
        .await
        .expect(200);
    assert!(whole.get("pagination").is_none());
    assert_eq!(items(&whole, "memberships").len(), 45);
}

// ---- Discovery API -------------------------------------------------------------------------------------------

#[tokio::test]
async fn discovery_api_lists_members_with_activity() {
    let (mut config, clock) = test_config();
    config.users = 120;
    let sim = start_with(config, clock).await;
    let bearer = format!("Bearer {}", sim.fx.discovery_token);
    let fetch = |path: String, auth: Option<String>| {
        let mut request = sim.http.get(sim.url(&path));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        async move {
            let response = request.send().await.unwrap();
            Reply {
                status: response.status().as_u16(),
                headers: response.headers().clone(),
                text: response.text().await.unwrap(),
            }
        }
    };

    let body = fetch("/batch/acme/members".into(), Some(bearer.clone()))
        .await
        .expect(200);
    assert_eq!(
        body["pagination"],
        json!({"page": 1, "per_page": 1000, "count": 120, "total_pages": 1, "total_count": 120})
    );
    let members = body["members"].as_array().unwrap();
    assert_eq!(members.len(), 120);
    let fields = [
        "id",
        "token",
        "state",
        "member_email",
        "member_token",
        "member_username",
        "banned_at",
        "activated_at",
        "last_report_created_at",
        "last_report_edited_at",
        "last_report_viewed_at",
        "last_report_run_at",
        "last_day_engaged",
        "last_day_api_engaged",
        "last_day_in_app_engaged",
        "total_days_engaged",
        "last_exploration_created_at",
        "last_exploration_updated_at",
    ];
    let rest = sim.memberships().await;
    let mut engaged = 0;
    for m in members {
        assert_keys(m, &fields);
        assert!(m["id"].is_u64());
        assert_hex12(&m["token"]);
        assert_hex12(&m["member_token"]);
        assert_time(&m["activated_at"]);
        assert!(m["total_days_engaged"].is_u64());
        let same = rest
            .iter()
            .find(|r| r["member_token"] == m["member_token"])
            .unwrap();
        assert_eq!(m["member_username"], same["member_username"]);
        assert_eq!(m["state"], same["state"]);
        assert_eq!(
            m["token"].as_str().unwrap(),
            last_segment(&href(same, "self"))
        );
        match m["state"].as_str().unwrap() {
            "deactivated" => assert_time(&m["banned_at"]),
            _ => assert!(m["banned_at"].is_null()),
        }
        if let Some(day) = m["last_day_engaged"].as_str() {
            engaged += 1;
            assert_eq!(day.len(), 10, "{day}");
            assert!(m["total_days_engaged"].as_u64().unwrap() >= 1);
            assert_time(&m["last_report_viewed_at"]);
        }
        if m["state"] == "pending" {
            assert!(m["last_day_engaged"].is_null());
        }
    }
    assert!(engaged > 50);
    let alice = members
        .iter()
        .find(|m| m["member_username"] == "alice")
        .unwrap();
    assert_eq!(alice["member_email"], "alice@acme.example");

    // Paging: next_page / prev_page links.
    let page2 = fetch(
        "/batch/acme/members?page=2&per_page=50".into(),
        Some(bearer.clone()),
    )
    .await
    .expect(200);
    assert_eq!(page2["pagination"]["count"], 50);
    assert_eq!(page2["pagination"]["total_pages"], 3);
    assert_eq!(
        page2["_links"]["next_page"]["href"],
        "/batch/acme/members?page=3&per_page=50"
    );
    assert_eq!(
        page2["_links"]["prev_page"]["href"],
        "/batch/acme/members?page=1&per_page=50"
    );
    let page3 = fetch(
        "/batch/acme/members?page=3&per_page=50".into(),
        Some(bearer.clone()),
    )
    .await
    .expect(200);
    assert_eq!(page3["members"].as_array().unwrap().len(), 20);
    assert!(page3["_links"].get("next_page").is_none());

    // Auth: a bad bearer or a Basic credential is 401; another workspace 404.
    fetch("/batch/acme/members".into(), Some("Bearer nope".into()))
        .await
        .error(401, "unauthorized");
    fetch("/batch/acme/members".into(), None)
        .await
        .error(401, "unauthorized");
    fetch(
        "/batch/acme/members".into(),
        Some(sim.fx.admin.basic_auth()),
    )
    .await
    .error(401, "unauthorized");
    fetch("/batch/globex/members".into(), Some(bearer))
        .await
        .error(404, "not_found");
    // The bearer is not a Basic credential on /api.
    let response = sim
        .http
        .get(sim.url("/api/acme"))
        .header(
            "authorization",
            format!("Bearer {}", sim.fx.discovery_token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

// ---- data file ------------------------------------------------------------------------------------------------

fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "rollcall-sim-mode-{}-{name}.json",
        std::process::id()
    ));
    std::fs::write(&path, contents).unwrap();
    path
}

#[tokio::test]
async fn load_users_and_groups_from_a_file() {
    let file = json!({
        "workspace": "globex",
        "workspace_name": "Globex Corporation",
        "users": [
            {"username": "alice", "name": "Alice Admin", "email": "alice@globex.example",
             "token": "a11ce0000001", "admin": true, "created_at": "2021-11-29T19:32:33.401Z"},
            {"username": "dave", "email": "dave@globex.example", "state": "pending"},
            {"username": "erin", "name": "Erin Ex", "email": "erin@globex.example",
             "state": "deactivated", "activated_at": "2023-01-01T00:00:00Z",
             "banned_at": "2024-01-01T00:00:00Z"},
            {"username": "frank", "email": "frank@globex.example", "admin": true},
            {"username": "gina", "email": "gina@else.example", "state": "none"}
        ],
        "groups": [
            {"name": "Analysts", "token": "9f0000000001", "members": ["alice", "dave"]},
            {"name": "Old", "state": "soft_deleted", "creator": "frank", "members": ["frank"]}
        ]
    });
    let path = temp_file("good", &file.to_string());
    let (mut config, clock) = test_config();
    config.data_file = Some(path.clone());
    let sim = start_with(config, clock).await;
    assert_eq!(sim.fx.workspace, "globex");

    let alice = sim.get(&sim.fx.admin, "/api/account").await.expect(200);
    assert_eq!(alice["token"], "a11ce0000001");
    assert_eq!(alice["created_at"], "2021-11-29T19:32:33.401Z");
    let ws = sim.get(&sim.fx.admin, "/api/globex").await.expect(200);
    assert_eq!(ws["name"], "Globex Corporation");
    assert_eq!(ws["authorized_domains"], json!(["globex.example"]));

    let list = items(
        &sim.get(&sim.fx.admin, "/api/globex/memberships")
            .await
            .expect(200),
        "memberships",
    );
    let names: Vec<&str> = list
        .iter()
        .map(|m| m["member_username"].as_str().unwrap())
        .collect();
    // bob was added because the file lacks him; gina and outsider are in no workspace.
    assert_eq!(names, ["alice", "dave", "erin", "frank", "bob"]);
    assert_eq!(list[1]["state"], "pending");
    assert_eq!(list[1]["invited"], true);
    assert_eq!(list[2]["state"], "deactivated");
    assert_eq!(list[2]["activated_at"], "2023-01-01T00:00:00.000Z");
    assert_eq!(list[3]["admin"], true);
    assert_eq!(list[4]["admin"], false);

    let groups = items(
        &sim.get(&sim.fx.admin, "/api/globex/groups")
            .await
            .expect(200),
        "groups",
    );
    assert_eq!(groups.len(), 1, "soft-deleted group not listed");
    assert_eq!(groups[0]["token"], "9f0000000001");
    assert_eq!(groups[0]["member_count"], 2);
    let old = sim.control_get("/_sim/mode/state").await;
    assert_eq!(old["groups"]["soft_deleted"], 1);
    assert_eq!(old["users_without_workspace"], 2);
    sim.get(&sim.fx.outsider, "/api/globex")
        .await
        .error(404, "not_found");
    std::fs::remove_file(path).unwrap();

    // Broken files are refused with a reason, never a panic.
    for (name, contents) in [
        ("notjson", "{ nope".to_owned()),
        ("unknown", json!({"users": [], "colour": 1}).to_string()),
        (
            "bobadmin",
            json!({"users": [{"username": "bob", "email": "b@x.example", "admin": true}]})
                .to_string(),
        ),
        (
            "dupe",
            json!({"users": [
                {"username": "zed", "email": "z@x.example"},
                {"username": "zed", "email": "z2@x.example"}
            ]})
            .to_string(),
        ),
        (
            "badtoken",
            json!({"users": [{"username": "zed", "email": "z@x.example", "token": "XYZ"}]})
                .to_string(),
        ),
        (
            "stranger",
            json!({"groups": [{"name": "G", "members": ["nobody"]}]}).to_string(),
        ),
        (
            "outsidermember",
            json!({"groups": [{"name": "G", "members": ["outsider"]}]}).to_string(),
        ),
    ] {
        let path = temp_file(name, &contents);
        let (mut config, _) = test_config();
        config.data_file = Some(path.clone());
        let err = ModeSim::new(config).unwrap_err();
        assert!(
            matches!(err, rollcall_sim_mode::ModeSimError::DataFormat { .. }),
            "{name}: {err}"
        );
        std::fs::remove_file(path).unwrap();
    }
    let (mut config, _) = test_config();
    config.data_file = Some("/nonexistent/rollcall/mode.json".into());
    assert!(matches!(
        ModeSim::new(config).unwrap_err(),
        rollcall_sim_mode::ModeSimError::DataRead { .. }
    ));
}

// ---- bad input ----------------------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_input_is_answered_never_a_5xx() {
    let sim = start().await;
    let group = sim.new_group("Target").await;
    let targets = [
        (Method::POST, "/api/acme/invites".to_owned()),
        (Method::POST, "/api/acme/groups".to_owned()),
        (Method::PATCH, href(&group, "self")),
        (Method::POST, href(&group, "group_memberships")),
    ];
    let bodies = [
        "{",
        "not json",
        "",
        "null",
        "[]",
        "42",
        "\"string\"",
        "{\"user_group\": []}",
        "{\"user_group\": {\"name\": null}}",
        "{\"user_group\": {\"name\": {\"deep\": true}}}",
        "{\"membership\": {\"member_token\": null}}",
        "{\"invite\": {\"invitee\": [], \"message\": 1}}",
        "{\"a\":1,\"a\":2}",
        "\u{0}\u{1}",
    ];
    for (method, path) in &targets {
        for body in bodies {
            let reply = sim
                .call(method.clone(), Some(&sim.fx.admin), path, Some(body))
                .await;
            assert!(
                reply.status == 400 || reply.status == 404,
                "{method} {path} {body:?}: {} {}",
                reply.status,
                reply.text
            );
            reply.error(reply.status, reply.json()["id"].as_str().unwrap());
        }
    }
    // Unknown fields beside valid ones are ignored.
    sim.post(
        &sim.fx.admin,
        "/api/acme/groups",
        json!({"user_group": {"name": "Extra", "description": "x", "x": [1]}, "other": true}),
    )
    .await
    .expect(200);
    // A body over the limit is a 413 payload_too_large.
    let huge = format!(
        "{{\"user_group\":{{\"name\":\"{}\"}}}}",
        "x".repeat((1 << 20) + 1000)
    );
    sim.call(
        Method::POST,
        Some(&sim.fx.admin),
        "/api/acme/groups",
        Some(&huge),
    )
    .await
    .error(413, "payload_too_large");
    // Odd paths and queries.
    for path in [
        "/api/acme/memberships/%00",
        "/api/acme/groups/%ZZ",
        "/api/acme/groups/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "/api/%E2%98%83",
        "/batch/acme/members",
        "/nothing",
    ] {
        let reply = sim.get(&sim.fx.admin, path).await;
        assert!(
            (400..500).contains(&reply.status),
            "{path}: {} {}",
            reply.status,
            reply.text
        );
    }
}

// ---- determinism and scale ----------------------------------------------------------------------------------------

#[tokio::test]
async fn same_seed_same_data_and_credentials() {
    let a = start().await;
    let b = start().await;
    assert_eq!(a.fx, b.fx);
    let list_a = a.get(&a.fx.admin, "/api/acme/memberships").await.text;
    let list_b = b.get(&b.fx.admin, "/api/acme/memberships").await.text;
    assert_eq!(list_a, list_b);
    let groups_a = a.get(&a.fx.admin, "/api/acme/groups").await.text;
    let groups_b = b.get(&b.fx.admin, "/api/acme/groups").await.text;
    assert_eq!(groups_a, groups_b);

    let (mut config, clock) = test_config();
    config.seed = 8;
    let c = start_with(config, clock).await;
    assert_ne!(a.fx.admin.token, c.fx.admin.token);
    let list_c = c.get(&c.fx.admin, "/api/acme/memberships").await.text;
    assert_ne!(list_a, list_c);
}

#[tokio::test]
async fn a_million_users_seed_quickly_and_page_correctly() {
    let (mut config, clock) = test_config();
    config.users = 1_000_000;
    config.page_size = Some(1000);
    let started = Instant::now();
    let sim = ModeSim::new(config).unwrap();
    let seeded_in = started.elapsed();
    let fx = sim.fixtures();
    let running = sim.start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let sim = Sim {
        running,
        http: reqwest::Client::new(),
        fx,
        clock,
    };
    eprintln!("seeded 1,000,000 members in {seeded_in:?}");

    let state = sim.control_get("/_sim/mode/state").await;
    assert_eq!(state["members"]["total"], 1_000_000);
    assert_eq!(state["users"], 1_000_001);
    let active = state["members"]["active"].as_u64().unwrap();
    let admins = state["members"]["admins"].as_u64().unwrap();
    assert!((850_000..950_000).contains(&active), "{active}");
    assert!((35_000..60_000).contains(&admins), "{admins}");
    assert!(state["groups"]["total"].as_u64().unwrap() > 16);

    let first = sim
        .get(&sim.fx.admin, "/api/acme/memberships")
        .await
        .expect(200);
    assert_eq!(first["pagination"]["total_count"], 1_000_000);
    assert_eq!(first["pagination"]["total_pages"], 1000);
    assert_eq!(items(&first, "memberships").len(), 1000);
    let last = sim
        .get(&sim.fx.admin, "/api/acme/memberships?page=1000")
        .await
        .expect(200);
    let last_items = items(&last, "memberships");
    assert_eq!(last_items.len(), 1000);
    assert!(last["_links"].get("next_page").is_none());
    // The last seeded member resolves by token and by username.
    let m = last_items.last().unwrap();
    sim.get(&sim.fx.admin, &href(m, "self")).await.expect(200);
    let user = sim.get(&sim.fx.admin, &href(m, "user")).await.expect(200);
    assert_eq!(user["token"], m["member_token"]);

    let discovery = sim
        .http
        .get(sim.url("/batch/acme/members?page=1000"))
        .header(
            "authorization",
            format!("Bearer {}", sim.fx.discovery_token),
        )
        .send()
        .await
        .unwrap();
    let body: Value = discovery.json().await.unwrap();
    assert_eq!(body["pagination"]["total_count"], 1_000_000);
    assert_eq!(body["members"].as_array().unwrap().len(), 1000);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

// ---- flags -----------------------------------------------------------------------------------------------------

#[test]
fn flags_parse_into_a_config() {
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        mode: rollcall_sim_mode::ModeSimArgs,
    }

    let defaults = Cli::try_parse_from(["sim"])
        .unwrap()
        .mode
        .into_config()
        .unwrap();
    assert_eq!(defaults.users, 50);
    assert_eq!(defaults.seed, 7);
    assert_eq!(defaults.workspace, "acme");
    assert_eq!(defaults.rate_limit, Some((40, Duration::from_secs(10))));
    assert!(defaults.retry_after);
    assert_eq!(defaults.page_size, None);
    assert!(defaults.faults.is_empty());

    let custom = Cli::try_parse_from([
        "sim",
        "--users",
        "1000",
        "--seed",
        "99",
        "--workspace",
        "globex",
        "--rate-limit",
        "off",
        "--no-retry-after",
        "--page-size",
        "30",
        "--fault",
        "429,retry_after=2@every=5",
        "--fault",
        "503@next=3@/api/globex/groups",
        "--data",
        "/tmp/mode.json",
    ])
    .unwrap()
    .mode
    .into_config()
    .unwrap();
    assert_eq!(custom.users, 1000);
    assert_eq!(custom.seed, 99);
    assert_eq!(custom.workspace, "globex");
    assert_eq!(custom.rate_limit, None);
    assert!(!custom.retry_after);
    assert_eq!(custom.page_size, Some(30));
    assert_eq!(custom.faults.len(), 2);
    assert_eq!(
        custom.data_file.as_deref(),
        Some(std::path::Path::new("/tmp/mode.json"))
    );

    for bad in [
        vec!["sim", "--fault", "explode"],
        vec!["sim", "--rate-limit", "lots"],
        vec!["sim", "--users", "1"],
        vec!["sim", "--workspace", "account"],
    ] {
        let parsed = Cli::try_parse_from(bad.iter().copied()).unwrap();
        assert!(parsed.mode.into_config().is_err(), "{bad:?}");
    }
}
