//! Syncs against the simulators: the snapshot equals the vendor's own
//! state, a second sync emits exactly the changes as events, a failed sync
//! leaves the snapshot and events as they were, cached reads page the
//! snapshot, and the account shows its last sync.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::Method;
use rollcall_client::{Client, Event, SyncRun};
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, clear_faults, fault, spawn_app_with};

/// Waits for a sync run to finish (succeeded or failed).
pub async fn finished(client: &Client, id: &str) -> SyncRun {
    for _ in 0..600 {
        let run = client.sync_run(id).await.unwrap();
        if run.is_finished() {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sync run {id} did not finish");
}

/// Syncs the account and waits for the run to end.
pub async fn sync(client: &Client, account: &str) -> SyncRun {
    let started = client.start_sync(account).await.unwrap();
    finished(client, &started.sync_run_id).await
}

/// Every event of the tenant so far.
pub async fn all_events(client: &Client) -> Vec<Event> {
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = client.events(after.as_deref(), 1000).await.unwrap();
        events.extend(page.result);
        after = Some(page.next_cursor);
        if !page.has_more {
            return events;
        }
    }
}

/// `(type, object_id)` of the object events, sorted.
fn changes(events: &[Event]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = events
        .iter()
        .filter(|e| !e.event_type.starts_with("sync_run."))
        .map(|e| {
            (
                e.event_type.clone(),
                e.data["object_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Every cached user of every status, through the API, in pages of 7.
async fn cached_users(app: &TestApp, account: &str) -> BTreeMap<String, Value> {
    let mut users = BTreeMap::new();
    for status in ["active", "inactive", "invited"] {
        let mut cursor: Option<String> = None;
        loop {
            let mut query = format!("source=cache&status={status}&limit=7");
            if let Some(c) = &cursor {
                query.push_str(&format!("&next_cursor={}", rollcall_client::encode(c)));
            }
            let page: Value = app.get_json("users", account, &query).await;
            for user in page["result"].as_array().unwrap() {
                let id = user["id"].as_str().unwrap().to_owned();
                assert!(users.insert(id, user.clone()).is_none(), "each user once");
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
    }
    users
}

async fn cached_memberships(app: &TestApp, account: &str) -> BTreeSet<(String, String)> {
    let mut pairs = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = "source=cache&limit=5".to_owned();
        if let Some(c) = &cursor {
            query.push_str(&format!("&next_cursor={}", rollcall_client::encode(c)));
        }
        let page: Value = app.get_json("group-memberships", account, &query).await;
        for m in page["result"].as_array().unwrap() {
            let pair = (
                m["group_id"].as_str().unwrap().to_owned(),
                m["user_id"].as_str().unwrap().to_owned(),
            );
            assert!(pairs.insert(pair), "each membership once");
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return pairs,
        }
    }
}

async fn cached_group_ids(app: &TestApp, account: &str) -> BTreeSet<String> {
    let page: Value = app
        .get_json("groups", account, "source=cache&limit=1000")
        .await;
    page["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The vendor's own answer, read raw through the proxy.
async fn raw(app: &TestApp, account: &str, path: &str) -> Value {
    let answer = app.proxy(Method::GET, account, path).send().await.unwrap();
    assert!(answer.status().is_success(), "{path}: {}", answer.status());
    answer.json().await.unwrap()
}

fn quick_app() -> Options {
    Options {
        mode_unlimited: true,
        ..Options::default()
    }
}

#[tokio::test]
async fn a_metabase_sync_is_the_simulators_state_and_cached_reads_page_it() {
    let app = spawn_app_with(Options {
        metabase_users: Some(45),
        ..quick_app()
    })
    .await;
    let account = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    // Before any sync, the cache says so.
    let early = app
        .call(Method::GET, "users", &account.id, "source=cache")
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), 409);

    let run = sync(&app.acme, &account.id).await;
    assert_eq!(run.status, "succeeded", "{run:?}");
    assert_eq!(run.trigger, "api");
    assert!(run.duration_ms.is_some());

    let vendor = raw(&app, &account.id, "/api/user?status=all&limit=1000").await;
    let vendor_users: BTreeMap<String, &Value> = vendor["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["id"].to_string(), u))
        .collect();
    let cached = cached_users(&app, &account.id).await;
    assert_eq!(
        cached.keys().collect::<Vec<_>>(),
        vendor_users.keys().collect::<Vec<_>>()
    );
    for (id, user) in &cached {
        let v = vendor_users[id];
        assert_eq!(user["email"], v["email"], "{id}");
        let active = v["is_active"] != false;
        assert_eq!(
            user["status"],
            if active { "active" } else { "inactive" },
            "{id}"
        );
        assert_eq!(user["is_admin"], v["is_superuser"], "{id}");
    }
    assert!(
        cached.values().any(|u| u["status"] == "inactive"),
        "deactivated users are synced too"
    );
    assert_eq!(run.counts.as_ref().unwrap()["users"], vendor_users.len());

    let vendor_groups: BTreeSet<String> = raw(&app, &account.id, "/api/permissions/group")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].to_string())
        .collect();
    assert_eq!(cached_group_ids(&app, &account.id).await, vendor_groups);
    let vendor_memberships: BTreeSet<(String, String)> =
        raw(&app, &account.id, "/api/permissions/membership")
            .await
            .as_object()
            .unwrap()
            .values()
            .flat_map(|list| list.as_array().unwrap().clone())
            .map(|m| (m["group_id"].to_string(), m["user_id"].to_string()))
            .collect();
    assert_eq!(
        cached_memberships(&app, &account.id).await,
        vendor_memberships
    );

    // Cached users carry their groups; filters work on the snapshot.
    let (group, user) = vendor_memberships.iter().next().unwrap().clone();
    let one: rollcall_client::User = serde_json::from_value(
        app.get_json(&format!("users/{user}"), &account.id, "source=cache")
            .await,
    )
    .unwrap();
    assert!(one.groups.unwrap().iter().any(|g| g.id == group));
    let in_group: Value = app
        .get_json(
            "users",
            &account.id,
            &format!("source=cache&status=active&group_id={group}&limit=1000"),
        )
        .await;
    assert!(
        in_group["result"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["id"] == user)
    );
    let admins: Value = app
        .get_json("users", &account.id, "source=cache&is_admin=true")
        .await;
    assert!(!admins["result"].as_array().unwrap().is_empty());
    assert!(
        admins["result"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["is_admin"] == true)
    );
    let email = cached.values().next().unwrap()["email"]
        .as_str()
        .unwrap()
        .to_uppercase();
    let by_email: Value = app
        .get_json(
            "users",
            &account.id,
            &format!("source=cache&status=active&email={email}"),
        )
        .await;
    assert!(by_email["result_count"].as_u64().unwrap() <= 1);

    // A cursor from one cached query is refused by another.
    let first: Value = app
        .get_json("users", &account.id, "source=cache&limit=2")
        .await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let wrong = app
        .call(
            Method::GET,
            "users",
            &account.id,
            &format!(
                "source=cache&status=inactive&next_cursor={}",
                rollcall_client::encode(cursor)
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 400);
    // remote_data is not kept.
    let remote = app
        .call(
            Method::GET,
            "users",
            &account.id,
            "source=cache&include_remote_data=true",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(remote.status(), 400);

    // The account shows its last sync; the first sync is a silent baseline.
    let shown: Value = reqwest::Client::new()
        .get(format!(
            "{}/integrated-accounts/{}",
            app.base_url, account.id
        ))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["last_sync"]["status"], "succeeded");
    assert_eq!(shown["last_sync"]["sync_run_id"], run.id.as_str());
    let events = all_events(&app.acme).await;
    assert_eq!(changes(&events), Vec::<(String, String)>::new());
    assert_eq!(
        events
            .iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        vec!["sync_run.completed"]
    );
    // Another tenant sees neither the run nor the events nor the cache.
    assert_eq!(
        app.globex.sync_run(&run.id).await.unwrap_err().status(),
        Some(404)
    );
    assert!(app.globex.events(None, 10).await.unwrap().result.is_empty());
    assert_eq!(
        app.globex
            .users(&account.id, "source=cache")
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    // Unlinked, the account's cache is gone at once.
    app.acme.delete_account(&account.id).await.unwrap();
    assert_eq!(
        app.acme
            .users(&account.id, "source=cache")
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
}

#[tokio::test]
async fn a_second_sync_emits_exactly_the_changes_made_at_the_vendor() {
    let app = spawn_app_with(quick_app()).await;
    let account = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    let id = account.id.as_str();
    assert_eq!(sync(&app.acme, id).await.status, "succeeded");
    let before = all_events(&app.acme).await;

    // Changes at the vendor, made through the unified API.
    let created: Value = app
        .call(Method::POST, "users", id, "")
        .json(&json!({ "email": "new.hire@example.com", "first_name": "New", "last_name": "Hire" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_user = created["id"].as_str().unwrap().to_owned();
    let group: Value = app
        .call(Method::POST, "groups", id, "")
        .json(&json!({ "name": "Sync Test Group" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let group_id = group["id"].as_str().unwrap().to_owned();
    let added = app.acme.add_member(id, &group_id, &new_user).await.unwrap();
    assert_eq!(added.group_id, group_id);
    let users = app.acme.users(id, "limit=50").await.unwrap();
    let victim = users
        .result
        .iter()
        .find(|u| !u.is_admin && u.id != new_user)
        .unwrap()
        .id
        .clone();
    let renamed = users
        .result
        .iter()
        .find(|u| !u.is_admin && u.id != new_user && u.id != victim)
        .unwrap()
        .id
        .clone();
    let gone = app
        .call(Method::DELETE, &format!("users/{victim}"), id, "")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    let patched = app
        .call(Method::PATCH, &format!("users/{renamed}"), id, "")
        .json(&json!({ "first_name": "Renamed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    // Metabase puts every new user in All Users as well.
    let all_users = app
        .acme
        .memberships(id, &format!("user_id={new_user}"))
        .await
        .unwrap()
        .result
        .into_iter()
        .map(|m| m.group_id)
        .filter(|g| *g != group_id)
        .collect::<Vec<_>>();

    let run = sync(&app.acme, id).await;
    assert_eq!(run.status, "succeeded", "{run:?}");
    let after = all_events(&app.acme).await;
    let new_events = &after[before.len()..];
    let mut expected = vec![
        ("group.created".to_owned(), group_id.clone()),
        (
            "group_membership.added".to_owned(),
            format!("{group_id}:{new_user}"),
        ),
        ("user.created".to_owned(), new_user.clone()),
        ("user.deactivated".to_owned(), victim.clone()),
        ("user.updated".to_owned(), renamed.clone()),
    ];
    for g in all_users {
        expected.push((
            "group_membership.added".to_owned(),
            format!("{g}:{new_user}"),
        ));
    }
    expected.sort();
    assert_eq!(changes(new_events), expected);
    assert_eq!(new_events.last().unwrap().event_type, "sync_run.completed");
    assert_eq!(run.counts.as_ref().unwrap()["events"], expected.len());

    // Each event says what changed, before and after.
    let renamed_event = new_events
        .iter()
        .find(|e| e.event_type == "user.updated")
        .unwrap();
    assert_eq!(renamed_event.integrated_account_id.as_deref(), Some(id));
    assert_eq!(renamed_event.data["after"]["first_name"], "Renamed");
    assert_ne!(renamed_event.data["before"]["first_name"], "Renamed");
    assert_eq!(renamed_event.data["sync_run_id"], run.id.as_str());
    let deactivated = new_events
        .iter()
        .find(|e| e.event_type == "user.deactivated")
        .unwrap();
    assert_eq!(deactivated.data["before"]["status"], "active");
    assert_eq!(deactivated.data["after"]["status"], "inactive");
    let ids: BTreeSet<&str> = after.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), after.len(), "event ids are unique");

    // Nothing changed since: a third sync adds no object events.
    assert_eq!(sync(&app.acme, id).await.status, "succeeded");
    let last = all_events(&app.acme).await;
    assert_eq!(changes(&last[after.len()..]), vec![]);

    // Reading on from a cursor gives only what came after it.
    let page = app.acme.events(None, 2).await.unwrap();
    assert!(page.has_more);
    let rest = app
        .acme
        .events(Some(&page.next_cursor), 1000)
        .await
        .unwrap();
    assert_eq!(rest.result.len(), last.len() - 2);
    assert_eq!(rest.result[0].id, last[2].id);
    let tail = app.acme.events(Some(&rest.next_cursor), 10).await.unwrap();
    assert!(tail.result.is_empty() && !tail.has_more);
}

#[tokio::test]
async fn a_sync_failing_halfway_changes_nothing() {
    let app = spawn_app_with(quick_app()).await;
    let account = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    let id = account.id.as_str();
    assert_eq!(sync(&app.acme, id).await.status, "succeeded");
    let users_before = cached_users(&app, id).await;
    let memberships_before = cached_memberships(&app, id).await;
    let events_before = all_events(&app.acme).await;

    // A change at the vendor that the failing sync must not record.
    let created = app
        .call(Method::POST, "users", id, "")
        .json(&json!({ "email": "half.way@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    // Users are read, then the membership map fails (500 is not retried).
    fault(
        &app.metabase.base_url(),
        "500@always@/api/permissions/membership",
    )
    .await;
    let run = sync(&app.acme, id).await;
    assert_eq!(run.status, "failed", "{run:?}");
    assert!(run.error.as_deref().unwrap().contains("500"), "{run:?}");
    assert_eq!(cached_users(&app, id).await, users_before);
    assert_eq!(cached_memberships(&app, id).await, memberships_before);
    let events = all_events(&app.acme).await;
    let new: Vec<&str> = events[events_before.len()..]
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(new, vec!["sync_run.failed"]);
    assert_eq!(events.last().unwrap().data["sync_run_id"], run.id.as_str());

    // Once the vendor recovers, the next sync records the change once.
    clear_faults(&app.metabase.base_url()).await;
    assert_eq!(sync(&app.acme, id).await.status, "succeeded");
    let events = all_events(&app.acme).await;
    let created: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "user.created")
        .collect();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].data["after"]["email"], "half.way@example.com");
}

#[tokio::test]
async fn a_mode_sync_reads_details_only_for_new_members() {
    let app = spawn_app_with(quick_app()).await;
    let account = app
        .acme
        .create_account(&app.mode_link_body())
        .await
        .unwrap();
    let id = account.id.as_str();
    let first = sync(&app.acme, id).await;
    assert_eq!(first.status, "succeeded", "{first:?}");
    let counts = first.counts.clone().unwrap();
    let members = raw(
        &app,
        id,
        &format!("/api/{}/memberships", app.mode.fixtures().workspace),
    )
    .await;
    let raw_members = members["_embedded"]["memberships"].as_array().unwrap();
    assert_eq!(counts["users"], raw_members.len());
    assert_eq!(counts["user_details_fetched"], raw_members.len());
    let cached = cached_users(&app, id).await;
    assert_eq!(cached.len(), raw_members.len());
    assert!(
        cached.values().all(|u| u["email"].is_string()),
        "every member has an email"
    );
    for m in raw_members {
        let user = &cached[m["member_token"].as_str().unwrap()];
        assert_eq!(user["username"], m["member_username"]);
    }
    // Groups and memberships are Mode's own, read raw through the proxy.
    let ws = app.mode.fixtures().workspace.clone();
    let groups = raw(&app, id, &format!("/api/{ws}/groups")).await;
    let live: BTreeSet<String> = groups["_embedded"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["state"] != "soft_deleted")
        .map(|g| g["token"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cached_group_ids(&app, id).await, live);
    let mut pairs = BTreeSet::new();
    for group in &live {
        let members = raw(&app, id, &format!("/api/{ws}/groups/{group}/memberships")).await;
        // An empty group may leave the list out altogether.
        let list = members["_embedded"]["group_memberships"]
            .as_array()
            .cloned();
        for m in list.unwrap_or_default() {
            pairs.insert((
                group.clone(),
                m["member_token"].as_str().unwrap().to_owned(),
            ));
        }
    }
    assert!(!pairs.is_empty());
    assert_eq!(cached_memberships(&app, id).await, pairs);

    // Invite one: the next sync asks Mode about that member only.
    let invited = app
        .call(Method::POST, "users", id, "")
        .json(&json!({ "email": "invitee@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(invited.status(), 201);
    let second = sync(&app.acme, id).await;
    assert_eq!(second.status, "succeeded", "{second:?}");
    assert_eq!(second.counts.as_ref().unwrap()["user_details_fetched"], 1);
    let events = all_events(&app.acme).await;
    let created: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "user.created")
        .collect();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].data["after"]["status"], "invited");
    assert_eq!(created[0].data["after"]["email"], "invitee@example.com");
    let invitee = created[0].data["object_id"].as_str().unwrap().to_owned();
    assert_eq!(changes(&events), vec![("user.created".to_owned(), invitee)]);
}

#[tokio::test]
async fn sync_requests_are_checked_and_one_runs_per_account() {
    let app = spawn_app_with(quick_app()).await;
    let account = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    // Slow the vendor so the first sync is still running when asked again.
    fault(
        &app.metabase.base_url(),
        "latency=300@always@/api/permissions",
    )
    .await;
    let first = app.acme.start_sync(&account.id).await.unwrap();
    assert!(first.queued);
    let second = app.acme.start_sync(&account.id).await.unwrap();
    assert!(!second.queued);
    assert_eq!(second.sync_run_id, first.sync_run_id);
    assert_eq!(
        finished(&app.acme, &first.sync_run_id).await.status,
        "succeeded"
    );
    clear_faults(&app.metabase.base_url()).await;

    assert_eq!(
        app.globex
            .start_sync(&account.id)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    assert_eq!(
        app.acme.start_sync("acct_nope").await.unwrap_err().status(),
        Some(404)
    );
    assert_eq!(
        app.acme.sync_run("sync_nope").await.unwrap_err().status(),
        Some(404)
    );
    let bad_cursor = app.acme.events(Some("garbage"), 10).await.unwrap_err();
    assert_eq!(bad_cursor.status(), Some(400));
    // A disabled account is not synced.
    app.acme
        .update_account(&account.id, &json!({ "status": "disabled" }))
        .await
        .unwrap();
    assert_eq!(
        app.acme.start_sync(&account.id).await.unwrap_err().status(),
        Some(409)
    );
}

#[tokio::test]
async fn the_scheduler_syncs_a_new_account_on_its_own() {
    let app = spawn_app_with(Options {
        scheduler: true,
        ..quick_app()
    })
    .await;
    let account = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    for _ in 0..200 {
        let shown = app.acme.accounts("").await.unwrap();
        assert_eq!(shown.result.len(), 1);
        let events = app.acme.events(None, 10).await.unwrap();
        if let Some(done) = events
            .result
            .iter()
            .find(|e| e.event_type == "sync_run.completed")
        {
            let run = app
                .acme
                .sync_run(done.data["sync_run_id"].as_str().unwrap())
                .await
                .unwrap();
            assert_eq!(run.trigger, "schedule");
            assert_eq!(run.integrated_account_id, account.id);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the scheduler never synced the new account");
}

#[tokio::test]
async fn the_cli_syncs_with_progress_and_a_summary() {
    let app = spawn_app_with(quick_app()).await;
    let account = app
        .acme
        .create_account(&app.metabase_password_body())
        .await
        .unwrap();
    let run = |extra: &[&str]| {
        let mut cmd = crate::helpers::rollcall_bin();
        cmd.args(["sync", "--url", &app.base_url, "--account", &account.id])
            .args(extra)
            .env("ROLLCALL_API_KEY", &app.key);
        // The server runs on this test's runtime: wait for the CLI elsewhere.
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    let out = run(&[]).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("succeeded"), "{stdout}");
    for row in ["users", "groups", "memberships", "events", "took"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(row)),
            "{row}: {stdout}"
        );
    }
    // Progress goes to stderr, one line per phase when not on a terminal.
    assert!(!stderr.trim().is_empty(), "progress was shown");
    let json_out = run(&["--json"]).await.unwrap();
    assert!(json_out.status.success());
    let summary: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(summary["status"], "succeeded");
    assert!(summary["counts"]["users"].as_u64().unwrap() > 0);
    let events = all_events(&app.acme).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event_type == "sync_run.completed")
            .count(),
        2
    );
    // A failing sync exits non-zero and says why.
    fault(
        &app.metabase.base_url(),
        "500@always@/api/permissions/group",
    )
    .await;
    let failed = run(&[]).await.unwrap();
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stdout).contains("error"));
}

#[tokio::test]
async fn a_mode_sync_rereads_every_member_once_a_day() {
    let clock = rollcall_core::MockClock::new("2026-06-01T08:00:00Z".parse().unwrap());
    let app = spawn_app_with(Options {
        clock: Some(std::sync::Arc::new(clock.clone())),
        ..quick_app()
    })
    .await;
    let account = app
        .acme
        .create_account(&app.mode_link_body())
        .await
        .unwrap();
    let details = |run: &SyncRun| run.counts.as_ref().unwrap()["user_details_fetched"].clone();
    let first = sync(&app.acme, &account.id).await;
    let members = first.counts.as_ref().unwrap()["users"].clone();
    assert_eq!(details(&first), members);
    clock.advance(jiff::SignedDuration::from_hours(1));
    assert_eq!(details(&sync(&app.acme, &account.id).await), 0);
    // A day after the last full read, every member's email and name are
    // read again: Mode's member list would not show them changing.
    clock.advance(jiff::SignedDuration::from_hours(24));
    assert_eq!(details(&sync(&app.acme, &account.id).await), members);
    assert_eq!(details(&sync(&app.acme, &account.id).await), 0);
}
