//! Governance against the simulators: time-bound access grants (expiry on
//! an injected clock, pre-existing and overlapping memberships, vendor
//! failure at expiry), plans from a YAML file through the CLI, stale plans,
//! and the people report joining Mode and Metabase users by email.

use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use rollcall_client::{Client, Grant};
use rollcall_core::{Clock as _, MockClock, SharedClock, SystemClock};
use rollcall_server::Settings;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, clear_faults, fault, rollcall_bin, spawn_app_with};
use crate::sync::{all_events, sync};

/// The app on a clock the test moves (starting at the real time: the
/// simulators' seeded activity is recent).
async fn app_on_mock_clock() -> (MockClock, TestApp) {
    // A vendor that stays down fails a call fast instead of being retried
    // for half a minute.
    app_on_mock_clock_with_deadline(1).await
}

async fn app_on_mock_clock_with_deadline(vendor_deadline_secs: u64) -> (MockClock, TestApp) {
    let clock = MockClock::new(SystemClock.now());
    let shared: SharedClock = Arc::new(clock.clone());
    let app = spawn_app_with(Options {
        clock: Some(shared),
        mode_unlimited: true,
        settings: Some(Settings {
            vendor_deadline_secs,
            ..Settings::default()
        }),
        ..Options::default()
    })
    .await;
    (clock, app)
}

/// A linked Metabase account, with a custom group and an active user who
/// is not in it.
async fn metabase_with_outsider(app: &TestApp) -> (rollcall_client::Account, String, String) {
    let account = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    let (user, group) = outsider_and_group(&app.acme, &account.id).await;
    (account, user, group)
}

/// A custom Metabase group and an active user who is not in it.
async fn outsider_and_group(api: &Client, account: &str) -> (String, String) {
    let groups = api.groups(account, "limit=1000").await.unwrap().result;
    let group = groups
        .iter()
        .find(|g| !g.is_builtin)
        .expect("a custom group");
    let members: Vec<String> = api
        .memberships(account, &format!("group_id={}&limit=1000", group.id))
        .await
        .unwrap()
        .result
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    let users = api
        .users(account, "status=active&limit=1000")
        .await
        .unwrap()
        .result;
    let user = users
        .iter()
        .find(|u| !members.contains(&u.id) && !u.is_admin)
        .expect("a user outside the group");
    (user.id.clone(), group.id.clone())
}

async fn is_member(api: &Client, account: &str, user: &str, group: &str) -> bool {
    !api.memberships(account, &format!("group_id={group}&user_id={user}"))
        .await
        .unwrap()
        .result
        .is_empty()
}

/// Polls until the grant leaves `active`/`expiring` (or has `status`).
async fn grant_reaches(api: &Client, id: &str, status: &str) -> Grant {
    for _ in 0..100 {
        let grant = api.grant(id).await.unwrap();
        if grant.status == status {
            return grant;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "grant {id} never became {status}: {:?}",
        api.grant(id).await
    );
}

#[tokio::test]
async fn a_grant_adds_a_membership_and_its_expiry_removes_it() {
    let (clock, app) = app_on_mock_clock().await;
    let api = &app.acme;
    let (account, user, group) = metabase_with_outsider(&app).await;

    let grant = api
        .create_grant(&json!({
            "integrated_account_id": account.id, "user_id": user, "group_id": group,
            "duration_seconds": 3600, "reason": "incident 42",
        }))
        .await
        .unwrap();
    assert_eq!(grant.status, "active");
    assert!(!grant.membership_preexisted);
    assert!(is_member(api, &account.id, &user, &group).await);
    // Another tenant cannot see it.
    assert_eq!(
        app.globex.grant(&grant.id).await.unwrap_err().status(),
        Some(404)
    );

    // Nothing happens before the expiry, however long the wall clock runs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(api.grant(&grant.id).await.unwrap().status, "active");

    clock.advance(SignedDuration::from_secs(3601));
    let ended = grant_reaches(api, &grant.id, "expired").await;
    assert!(ended.ended_at.is_some());
    assert!(!is_member(api, &account.id, &user, &group).await);

    let kinds: Vec<String> = all_events(api)
        .await
        .into_iter()
        .filter(|e| e.event_type.starts_with("access_grant."))
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        kinds,
        vec!["access_grant.activated", "access_grant.expired"]
    );
    // Both vendor changes are audited: the add by the key, the removal by the grant.
    let audit: Value = app
        .http_get_json("/audit-log?action=group_membership.removed")
        .await;
    let rows = audit["result"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{audit}");
    assert_eq!(
        rows[0]["actor"],
        format!("system:access_grant:{}", grant.id)
    );
    assert_eq!(rows[0]["outcome"], "success");
}

#[tokio::test]
async fn a_grant_never_removes_a_membership_it_did_not_add() {
    let (_clock, app) = app_on_mock_clock().await;
    let api = &app.acme;
    let (account, user, group) = metabase_with_outsider(&app).await;
    api.add_member(&account.id, &group, &user).await.unwrap();

    let body = json!({
        "integrated_account_id": account.id, "user_id": user, "group_id": group,
        "duration_seconds": 600,
    });
    let over_existing = api.create_grant(&body).await.unwrap();
    assert!(over_existing.membership_preexisted);
    let revoked = api.revoke_grant(&over_existing.id).await.unwrap();
    assert_eq!(revoked.status, "revoked");
    assert!(
        is_member(api, &account.id, &user, &group).await,
        "it was there before"
    );

    // Overlapping grants on a fresh membership: it stays until the last ends.
    api.remove_member(&account.id, &group, &user).await.unwrap();
    let other = user.clone();
    let first = api.create_grant(&body).await.unwrap();
    let second = api.create_grant(&body).await.unwrap();
    assert!(!first.membership_preexisted);
    assert!(
        !second.membership_preexisted,
        "held by a grant, not from before"
    );
    api.revoke_grant(&first.id).await.unwrap();
    assert!(
        is_member(api, &account.id, &other, &group).await,
        "the second grant holds it"
    );
    api.revoke_grant(&second.id).await.unwrap();
    assert!(!is_member(api, &account.id, &other, &group).await);
    // Revoking again changes nothing and says how it ended.
    assert_eq!(
        api.revoke_grant(&second.id).await.unwrap().status,
        "revoked"
    );
}

#[tokio::test]
async fn a_grant_the_vendor_refuses_leaves_nothing_behind() {
    let (_clock, app) = app_on_mock_clock().await;
    let api = &app.acme;
    let (account, user, group) = metabase_with_outsider(&app).await;
    // The membership check passes; adding the membership is refused.
    app.metabase
        .control()
        .faults
        .add(rollcall_sim_kit::FaultRule {
            action: rollcall_sim_kit::FaultAction::Status {
                status: 400,
                retry_after: None,
                body: None,
                content_type: None,
            },
            trigger: rollcall_sim_kit::FaultTrigger::Always,
            path_prefix: Some("/api/permissions/membership".into()),
            method: Some("POST".into()),
        });
    let refused = api
        .create_grant(&json!({
            "integrated_account_id": account.id, "user_id": user, "group_id": group,
            "duration_seconds": 60,
        }))
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(400), "{refused}");
    assert!(
        api.grants("").await.unwrap().result.is_empty(),
        "no grant kept"
    );
    assert!(
        all_events(api)
            .await
            .iter()
            .all(|e| !e.event_type.starts_with("access_grant.")),
        "no grant event"
    );
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'grant_expiry'")
        .fetch_one(app.sqlite.pool())
        .await
        .unwrap();
    assert_eq!(jobs, 0, "no expiry job left");
}

#[tokio::test]
async fn vendor_failure_at_expiry_is_retried_until_the_removal_succeeds() {
    let (clock, app) = app_on_mock_clock().await;
    let api = &app.acme;
    let (account, user, group) = metabase_with_outsider(&app).await;
    let grant = api
        .create_grant(&json!({
            "integrated_account_id": account.id, "user_id": user, "group_id": group,
            "duration_seconds": 60,
        }))
        .await
        .unwrap();

    fault(
        &app.metabase.base_url(),
        "503@always@/api/permissions/membership/",
    )
    .await;
    clock.advance(SignedDuration::from_secs(61));
    let failing = grant_reaches(api, &grant.id, "expiring").await;
    assert!(failing.last_error.is_some(), "{failing:?}");
    assert!(is_member(api, &account.id, &user, &group).await);

    clear_faults(&app.metabase.base_url()).await;
    // The retry is due a few seconds later on the (injected) clock.
    clock.advance(SignedDuration::from_secs(600));
    let ended = grant_reaches(api, &grant.id, "expired").await;
    assert_eq!(ended.last_error, None);
    assert!(!is_member(api, &account.id, &user, &group).await);
}

#[tokio::test]
async fn a_grant_made_while_another_is_being_removed_keeps_its_membership() {
    // Slow, not failing: the removal below takes two seconds.
    let (clock, app) = app_on_mock_clock_with_deadline(10).await;
    let api = &app.acme;
    let (account, user, group) = metabase_with_outsider(&app).await;
    let body = json!({
        "integrated_account_id": account.id, "user_id": user, "group_id": group,
        "duration_seconds": 60,
    });
    let first = api.create_grant(&body).await.unwrap();

    // The first grant's removal reaches Metabase and waits there two
    // seconds before it is carried out; a second grant is made meanwhile,
    // and finds the membership still there.
    fault(
        &app.metabase.base_url(),
        "latency=2000@next=1@/api/permissions/membership/",
    )
    .await;
    clock.advance(SignedDuration::from_secs(61));
    grant_reaches(api, &first.id, "expiring").await;
    let second = api.create_grant(&body).await.unwrap();
    assert_eq!(second.status, "active");
    assert!(!second.membership_preexisted, "held by the first grant");

    let ended = grant_reaches(api, &first.id, "expired").await;
    assert_eq!(ended.last_error, None);
    assert!(
        is_member(api, &account.id, &user, &group).await,
        "the second grant's membership is back"
    );
    assert_eq!(api.grant(&second.id).await.unwrap().status, "active");
    // Both changes the first grant's end made are audited (newest first).
    let audit: Value = app
        .http_get_json(&format!(
            "/audit-log?actor=system:access_grant:{}",
            first.id
        ))
        .await;
    let actions: Vec<&str> = audit["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["group_membership.added", "group_membership.removed"],
        "{audit}"
    );

    // The second grant's own end removes it for good.
    clock.advance(SignedDuration::from_secs(61));
    grant_reaches(api, &second.id, "expired").await;
    assert!(!is_member(api, &account.id, &user, &group).await);
}

fn write_desired(dir: &std::path::Path, yaml: &str) -> std::path::PathBuf {
    let path = dir.join("desired.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Runs the CLI against the app; off the runtime's thread, which must keep
/// serving the CLI's requests meanwhile.
async fn cli(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let mut command = rollcall_bin();
    command
        .args(args)
        .env("ROLLCALL_URL", &app.base_url)
        .env("ROLLCALL_API_KEY", &app.key);
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_group_sync_plan_from_yaml_is_exactly_the_diff_and_applying_it_matches() {
    let (_clock, app) = app_on_mock_clock().await;
    let api = &app.acme;
    let account = api
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    assert_eq!(sync(api, &account.id).await.status, "succeeded");
    let groups = api.groups(&account.id, "limit=1000").await.unwrap().result;
    let group = groups.iter().find(|g| !g.is_builtin).unwrap().clone();
    let members: Vec<String> = api
        .memberships(&account.id, &format!("group_id={}&limit=1000", group.id))
        .await
        .unwrap()
        .result
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    let users = api
        .users(&account.id, "status=active&limit=1000")
        .await
        .unwrap()
        .result;
    let email_of = |id: &str| {
        users
            .iter()
            .find(|u| u.id == id)
            .and_then(|u| u.email.clone())
    };
    let keep = members.first().cloned().expect("the group has a member");
    let newcomers: Vec<_> = users
        .iter()
        .filter(|u| !members.contains(&u.id))
        .take(2)
        .collect();
    assert_eq!(newcomers.len(), 2);
    let yaml = format!(
        "# who should be in {name}\nprune: true\ngroups:\n  {name}:\n    - {keep}\n    - {a}\n    - {b}\n    - nobody@nowhere.example\n",
        name = group.name,
        keep = email_of(&keep).unwrap().to_uppercase(),
        a = newcomers[0].email.as_deref().unwrap(),
        b = newcomers[1].email.as_deref().unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write_desired(dir.path(), &yaml);
    let (ok, stdout, stderr) = cli(
        &app,
        &[
            "plan",
            "--account",
            &account.id,
            "-f",
            file.to_str().unwrap(),
            "--json",
        ],
    )
    .await;
    assert!(ok, "{stderr}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    let mut diff: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap().to_owned(),
                c["user_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    diff.sort();
    let mut expected: Vec<(String, String)> = newcomers
        .iter()
        .map(|u| ("add_group_membership".to_owned(), u.id.clone()))
        .chain(
            members
                .iter()
                .filter(|m| **m != keep)
                .map(|m| ("remove_group_membership".to_owned(), m.clone())),
        )
        .collect();
    expected.sort();
    assert_eq!(diff, expected, "{plan}");
    assert!(
        plan["warnings"]
            .to_string()
            .contains("nobody@nowhere.example"),
        "{plan}"
    );
    let plan_id = plan["id"].as_str().unwrap();

    let (ok, stdout, stderr) = cli(&app, &["apply", plan_id]).await;
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("succeeded"), "{stdout}");
    let mut now: Vec<String> = api
        .memberships(&account.id, &format!("group_id={}&limit=1000", group.id))
        .await
        .unwrap()
        .result
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    now.sort();
    let mut wanted = vec![
        keep.clone(),
        newcomers[0].id.clone(),
        newcomers[1].id.clone(),
    ];
    wanted.sort();
    assert_eq!(now, wanted, "the simulator matches the desired state");

    // Applying again changes nothing: the same results, no vendor calls.
    // (The sync the apply queued runs first, so its calls are not counted.)
    assert_eq!(sync(api, &account.id).await.status, "succeeded");
    let before = app.metabase_requests();
    let again = api.apply_plan(plan_id).await.unwrap();
    assert_eq!(again.status, "applied");
    assert_eq!(app.metabase_requests(), before);
    // Every change is audited one by one.
    let audit: Value = app.http_get_json("/audit-log?limit=1000").await;
    let membership_rows = audit["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["action"]
                .as_str()
                .unwrap_or("")
                .starts_with("group_membership.")
        })
        .count();
    assert_eq!(membership_rows, expected.len());

    // After the sync the apply queued, a fresh plan has nothing to do.
    let mut tries = 0;
    let fresh = loop {
        tries += 1;
        let plan = api
            .create_plan(&json!({
                "integrated_account_id": account.id, "kind": "group_sync", "prune": true,
                "desired": desired_groups(&group.name, &[&email_of(&keep).unwrap(), newcomers[0].email.as_deref().unwrap(), newcomers[1].email.as_deref().unwrap()]),
            }))
            .await
            .unwrap();
        if plan.changes.is_empty() {
            break plan;
        }
        assert!(tries < 100, "the snapshot never caught up: {plan:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(fresh.status, "planned");
}

fn desired_groups(group: &str, emails: &[&str]) -> Value {
    json!({ "groups": { group: emails } })
}

#[tokio::test]
async fn a_plan_is_refused_once_a_sync_changed_the_snapshot() {
    let (_clock, app) = app_on_mock_clock().await;
    let api = &app.acme;
    let account = api
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    let body = json!({
        "integrated_account_id": account.id, "kind": "group_sync",
        "desired": { "groups": { "Administrators": ["member@example.com"] } },
    });
    // No snapshot yet: a plan cannot be computed.
    assert_eq!(
        api.create_plan(&body).await.unwrap_err().status(),
        Some(409)
    );
    assert_eq!(sync(api, &account.id).await.status, "succeeded");
    let plan = api.create_plan(&body).await.unwrap();
    assert_eq!(plan.changes.len(), 1, "{plan:?}");

    // An unchanged directory keeps the plan fresh; a change makes it stale.
    assert_eq!(sync(api, &account.id).await.status, "succeeded");
    api.users(&account.id, "limit=1").await.unwrap();
    let created = app
        .call(reqwest::Method::POST, "users", &account.id, "")
        .json(&json!({ "email": "late.joiner@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(sync(api, &account.id).await.status, "succeeded");
    let refused = api.apply_plan(&plan.id).await.unwrap_err();
    assert_eq!(refused.status(), Some(409));
    assert!(refused.to_string().contains("stale"), "{refused}");
    assert!(
        !is_member(api, &account.id, "2", "2").await,
        "nothing was applied"
    );
}

#[tokio::test]
async fn the_people_report_joins_mode_and_metabase_users_by_email() {
    let (_clock, app) = app_on_mock_clock().await;
    let api = &app.acme;
    let mode = api
        .create_account(&app.mode_link_body_with_discovery())
        .await
        .unwrap();
    let metabase = api
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    // The same person in both tools (Mode's emails as Metabase users).
    let mode_users = api.users(&mode.id, "status=active&limit=5").await.unwrap();
    let mode_user = api.user(&mode.id, &mode_users.result[0].id).await.unwrap();
    let shared_email = mode_user.email.clone().unwrap();
    let created = app
        .call(reqwest::Method::POST, "users", &metabase.id, "")
        .json(&json!({ "email": shared_email.to_uppercase() }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(sync(api, &mode.id).await.status, "succeeded");
    assert_eq!(sync(api, &metabase.id).await.status, "succeeded");

    let mut people = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = "limit=7".to_owned();
        if let Some(c) = &cursor {
            q.push_str(&format!("&next_cursor={}", rollcall_client::encode(c)));
        }
        let page = api.report("people", &q).await.unwrap();
        people.extend(page.result);
        match page.next_cursor {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let emails: Vec<&str> = people
        .iter()
        .map(|p| p["email"].as_str().unwrap())
        .collect();
    let mut sorted = emails.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(emails, sorted, "one row per person, in email order");
    let person = people
        .iter()
        .find(|p| p["email"] == shared_email.to_lowercase())
        .expect("the shared person");
    let providers: Vec<&str> = person["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers.len(), 2, "{person}");
    assert!(providers.contains(&"mode") && providers.contains(&"metabase"));

    // The admins report lists the simulators' admins; CSV streams the same.
    let admins = api.report("admins", "limit=1000").await.unwrap();
    assert!(
        admins
            .result
            .iter()
            .any(|a| a["email"] == "admin@example.com")
    );
    assert!(
        admins
            .result
            .iter()
            .all(|a| a["roles"].to_string().contains("Admin"))
    );
    let csv = api.report_csv("people", "").await.unwrap();
    assert!(csv.starts_with("\"email\",\"name\""), "{csv}");
    assert!(csv.contains(&shared_email.to_lowercase()));

    // Mode without Discovery activity would be unknown; this Mode account
    // has a Discovery token, so its users' activity is known too.
    let inactive = api.report("inactive", "days=1&limit=1000").await.unwrap();
    assert!(
        inactive
            .result
            .iter()
            .any(|u| u["provider"] == "mode" && u["activity"] == "inactive"),
        "{:?}",
        inactive.result.iter().take(3).collect::<Vec<_>>()
    );
}
