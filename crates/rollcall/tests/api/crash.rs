//! Durability across a crash: the real `rollcall serve` is killed (SIGKILL)
//! in the middle of a sync and started again; the sync is taken up again
//! once its lease runs out and its events are written exactly once.

use std::collections::BTreeMap;
use std::time::Duration;

use rollcall_client::Client;
use rollcall_sim_metabase::{MetabaseSim, MetabaseSimConfig};
use serde_json::json;

use crate::helpers::{Node, free_port, rollcall_bin};
use crate::helpers::{clear_faults, fault};
use crate::sync::{all_events, finished, sync};

fn command(dir: &std::path::Path, args: &[&str]) -> std::process::Command {
    // The master key file is created next to the database on first start.
    let mut cmd = rollcall_bin();
    cmd.args(args)
        .env(
            "ROLLCALL_DATABASE_URL",
            format!("sqlite://{}", dir.join("rollcall.db").display()),
        )
        .env("ROLLCALL_JOB_LEASE_SECS", "2")
        .env("ROLLCALL_SYNC_SCHEDULER", "false")
        .env("ROLLCALL_LOG", "warn");
    cmd
}

async fn serve(dir: &std::path::Path, port: u16) -> Node {
    let listen = format!("127.0.0.1:{port}");
    Node::start(command(dir, &["serve", "--listen", &listen]), port).await
}

#[tokio::test]
async fn a_sync_killed_midway_finishes_after_restart_with_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let metabase = MetabaseSim::new(MetabaseSimConfig {
        users: 25,
        ..MetabaseSimConfig::default()
    })
    .unwrap()
    .start("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap();
    let key = command(dir.path(), &["keys", "create", "--tenant", "acme"])
        .output()
        .unwrap();
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    let key = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let api = Client::new(&base).with_api_key(&key);

    let node = serve(dir.path(), port).await;
    let f = metabase.fixtures();
    let account = api
        .create_account(&json!({
            "provider": "metabase",
            "config": { "base_url": metabase.base_url() },
            "credentials": { "api_key": f.admin_api_key },
        }))
        .await
        .unwrap();
    assert_eq!(sync(&api, &account.id).await.status, "succeeded");
    let baseline = all_events(&api).await.len();

    // A change at the vendor, then a sync that is killed while it waits on
    // the vendor's slow membership map (every user already read; the
    // membership map is asked for beside the user pages).
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!(
            "{base}/unified/user-directory/users?integrated_account_id={}",
            account.id
        ))
        .bearer_auth(&key)
        .json(&json!({ "email": "crash.test@example.com" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_user = created["id"].as_str().unwrap().to_owned();
    fault(
        &metabase.base_url(),
        "latency=5000@always@/api/permissions/membership",
    )
    .await;
    let started = api.start_sync(&account.id).await.unwrap();
    let mut reached = false;
    for _ in 0..200 {
        let run = api.sync_run(&started.sync_run_id).await.unwrap();
        let progress = run.progress.unwrap_or_default();
        if run.phase.as_deref() == Some("users")
            && progress["total"].as_u64().is_some()
            && progress["done"] == progress["total"]
        {
            reached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(reached, "the sync got as far as the membership map");
    drop(node); // SIGKILL
    clear_faults(&metabase.base_url()).await;

    // Restarted: the abandoned run is taken up again after its lease.
    let _node = serve(dir.path(), port).await;
    let during = api.sync_run(&started.sync_run_id).await.unwrap();
    assert_eq!(
        during.status, "running",
        "nothing was committed: {during:?}"
    );
    let run = finished(&api, &started.sync_run_id).await;
    assert_eq!(run.status, "succeeded", "{run:?}");
    assert_eq!(
        run.attempts, 2,
        "one interrupted attempt, one that finished"
    );

    let events = all_events(&api).await;
    let new = &events[baseline..];
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in new {
        let object = e.data["object_id"]
            .as_str()
            .or_else(|| e.data["sync_run_id"].as_str())
            .unwrap_or_default()
            .to_owned();
        *seen.entry((e.event_type.clone(), object)).or_default() += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "no event twice: {seen:?}");
    assert_eq!(
        seen.get(&("user.created".into(), new_user.clone())),
        Some(&1)
    );
    assert_eq!(
        seen.get(&("sync_run.completed".into(), started.sync_run_id.clone())),
        Some(&1)
    );
    assert!(
        new.iter().all(|e| e.event_type != "sync_run.failed"),
        "{new:?}"
    );
    // Nothing else changed at the vendor: just the user and its All Users membership.
    let kinds: Vec<&str> = new.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "user.created",
            "group_membership.added",
            "sync_run.completed"
        ],
        "{new:?}"
    );
}

#[tokio::test]
async fn a_grant_that_expires_while_rollcall_is_down_ends_right_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let metabase = MetabaseSim::new(MetabaseSimConfig {
        users: 10,
        ..MetabaseSimConfig::default()
    })
    .unwrap()
    .start("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap();
    let key = command(dir.path(), &["keys", "create", "--tenant", "acme"])
        .output()
        .unwrap();
    assert!(key.status.success());
    let key = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    let port = free_port();
    let api = Client::new(&format!("http://127.0.0.1:{port}")).with_api_key(&key);

    let node = serve(dir.path(), port).await;
    let f = metabase.fixtures();
    let account = api
        .create_account(&json!({
            "provider": "metabase",
            "config": { "base_url": metabase.base_url() },
            "credentials": { "api_key": f.admin_api_key },
        }))
        .await
        .unwrap();
    let groups = api.groups(&account.id, "limit=1000").await.unwrap().result;
    let group = groups.iter().find(|g| !g.is_builtin).unwrap().id.clone();
    let in_group = |api: Client, account: String, group: String| async move {
        api.memberships(&account, &format!("group_id={group}&limit=1000"))
            .await
            .unwrap()
            .result
            .into_iter()
            .map(|m| m.user_id)
            .collect::<Vec<_>>()
    };
    let before = in_group(api.clone(), account.id.clone(), group.clone()).await;
    let users = api
        .users(&account.id, "status=active&limit=1000")
        .await
        .unwrap();
    let user = users
        .result
        .iter()
        .find(|u| !before.contains(&u.id) && !u.is_admin)
        .unwrap()
        .id
        .clone();
    let grant = api
        .create_grant(&json!({
            "integrated_account_id": account.id, "user_id": user, "group_id": group,
            "duration_seconds": 2,
        }))
        .await
        .unwrap();
    drop(node); // SIGKILL while the grant is active
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let _node = serve(dir.path(), port).await;
    let restarted = std::time::Instant::now();
    loop {
        let now = api.grant(&grant.id).await.unwrap();
        if now.status == "expired" {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(3),
            "not ended within a tick or two of the restart: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = in_group(api.clone(), account.id.clone(), group.clone()).await;
    assert!(!after.contains(&user), "the membership is gone");
    let ends = all_events(&api)
        .await
        .into_iter()
        .filter(|e| e.event_type == "access_grant.expired")
        .count();
    assert_eq!(ends, 1, "ended once");
}
