//! Two `rollcall serve` processes on one PostgreSQL database, in front of
//! one Mode simulator: 100 grants expiring at once are each ended exactly
//! once, syncs of one account never overlap, the simulator never sees more
//! than its limit for the credential, and a node killed mid-sync leaves the
//! job to the other once its lease runs out.
//!
//! Needs `POSTGRES_TEST_URL` (`.ci/run` sets it); without it the
//! test passes without running and says so.

use std::process::Stdio;
use std::str::FromStr;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use rollcall_client::Client;
use rollcall_core::Clock as _;
use rollcall_sim_mode::{ModeSim, ModeSimConfig};
use serde_json::json;
use sqlx::postgres::PgConnectOptions;

use crate::helpers::{Node, clear_faults, fault, free_port, rollcall_bin};
use crate::sync::{all_events, finished};

struct Cluster {
    database_url: String,
    master_key: String,
}

impl Cluster {
    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = rollcall_bin();
        cmd.args(args)
            .env("ROLLCALL_DATABASE_URL", &self.database_url)
            .env("ROLLCALL_MASTER_KEY", &self.master_key)
            .env("ROLLCALL_JOB_LEASE_SECS", "2")
            .env("ROLLCALL_SYNC_SCHEDULER", "false")
            .env("ROLLCALL_LOG", "warn");
        cmd
    }

    async fn serve(&self, port: u16) -> Node {
        let listen = format!("127.0.0.1:{port}");
        Node::start(self.command(&["serve", "--listen", &listen]), port).await
    }
}

/// A fresh schema in the test database, as a URL that selects it.
async fn fresh_database() -> Option<String> {
    let Ok(url) = std::env::var("POSTGRES_TEST_URL") else {
        eprintln!("POSTGRES_TEST_URL is not set: the two-node PostgreSQL test was NOT run");
        return None;
    };
    let admin = sqlx::PgPool::connect_with(PgConnectOptions::from_str(&url).unwrap())
        .await
        .unwrap_or_else(|e| panic!("POSTGRES_TEST_URL={url} is unreachable: {e}"));
    let schema = format!("rc_n_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .execute(&admin)
        .await
        .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    Some(format!(
        "{url}{separator}options=-c%20search_path%3D{schema}"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgres_share_jobs_and_the_vendor_limit() {
    let Some(database_url) = fresh_database().await else {
        return;
    };
    // A limit of 200 requests in any 10 s: each node alone could exceed it
    // (its own limiter allows as much), so only the shared window keeps two
    // within it.
    let mode = ModeSim::new(ModeSimConfig {
        users: 130,
        rate_limit: Some((200, Duration::from_secs(10))),
        ..ModeSimConfig::default()
    })
    .unwrap()
    .start("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap();
    let master_key = rollcall_bin()
        .args(["keys", "generate-master"])
        .output()
        .unwrap();
    let cluster = Cluster {
        database_url,
        master_key: String::from_utf8(master_key.stdout)
            .unwrap()
            .trim()
            .to_owned(),
    };
    let migrated = cluster.command(&["migrate"]).output().unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let key = cluster
        .command(&["keys", "create", "--tenant", "acme"])
        .output()
        .unwrap();
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    let key = String::from_utf8(key.stdout).unwrap().trim().to_owned();

    let (port_a, port_b) = (free_port(), free_port());
    let node_a = cluster.serve(port_a).await;
    let mut node_b = Some(cluster.serve(port_b).await);
    let a = Client::new(&format!("http://127.0.0.1:{port_a}")).with_api_key(&key);
    let b = Client::new(&format!("http://127.0.0.1:{port_b}")).with_api_key(&key);

    let f = mode.fixtures();
    let account = a
        .create_account(&json!({
            "provider": "mode",
            "config": {
                "base_url": mode.base_url(), "workspace": f.workspace,
                "rate_limit": { "requests": 200, "per_seconds": 10 },
            },
            "credentials": { "token": f.admin.token, "secret": f.admin.secret },
        }))
        .await
        .unwrap();
    // Either node serves the account it did not create.
    assert_eq!(b.account(&account.id).await.unwrap().id, account.id);

    // Syncs asked of both nodes at once are one sync.
    let (sa, sb) = tokio::join!(a.start_sync(&account.id), b.start_sync(&account.id));
    let (sa, sb) = (sa.unwrap(), sb.unwrap());
    assert_eq!(
        sa.sync_run_id, sb.sync_run_id,
        "one sync per account at a time"
    );
    assert_eq!(finished(&a, &sa.sync_run_id).await.status, "succeeded");

    // A new group, and 100 members granted into it through both nodes,
    // all expiring at the same moment.
    let group = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{port_a}/unified/user-directory/groups?integrated_account_id={}",
            account.id
        ))
        .bearer_auth(&key)
        .json(&json!({ "name": "On call" }))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let group = group["id"].as_str().expect("group created").to_owned();
    let users = a
        .users(&account.id, "source=cache&status=active&limit=1000")
        .await
        .unwrap()
        .result;
    assert!(users.len() >= 100, "{} users", users.len());
    // The serve processes read the real clock, so the test does too.
    let expires_at = rollcall_core::SystemClock.now() + jiff::SignedDuration::from_secs(60);
    let mut grants = Vec::new();
    let started = Instant::now();
    let creations = users.iter().take(100).enumerate().map(|(i, user)| {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        let body = json!({
            "integrated_account_id": account.id, "user_id": user.id, "group_id": group,
            "expires_at": expires_at.to_string(),
        });
        async move { node.create_grant(&body).await }
    });
    let mut creations = futures_util::stream::iter(creations).buffer_unordered(8);
    while let Some(grant) = creations.next().await {
        grants.push(grant.expect("grant created"));
    }
    eprintln!(
        "100 grants created in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        started.elapsed() < Duration::from_secs(58),
        "the grants must all exist before they expire"
    );

    // Meanwhile syncs keep coming through both nodes.
    let again = b.start_sync(&account.id).await.unwrap();
    let _ = a.start_sync(&account.id).await.unwrap();
    finished(&a, &again.sync_run_id).await;

    // Every grant ends, once, on one node or the other.
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let page = a.grants("status=expired&limit=1000").await.unwrap();
        if page.result.len() == 100 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of 100 grants expired",
            page.result.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let counters = mode.control().counters.snapshot();
    let removals: u64 = counters
        .by_route
        .iter()
        .filter(|(route, _)| route.starts_with("DELETE ") && route.contains("/groups/"))
        .map(|(_, n)| *n)
        .sum();
    assert_eq!(
        removals, 100,
        "each membership removed exactly once: {counters:?}"
    );
    assert_eq!(
        counters.by_status.get(&429).copied().unwrap_or(0),
        0,
        "the simulator's limit was never exceeded: {counters:?}"
    );
    let expired = all_events(&a)
        .await
        .iter()
        .filter(|e| e.event_type == "access_grant.expired")
        .count();
    assert_eq!(expired, 100, "one event per grant");

    // Sync runs of the account never overlapped.
    let pool = sqlx::PgPool::connect(&cluster.database_url).await.unwrap();
    let runs: Vec<(Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT started_at, finished_at FROM sync_runs WHERE account_id = $1 ORDER BY started_at",
    )
    .bind(&account.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(runs.len() >= 2);
    for pair in runs.windows(2) {
        let (Some(_), Some(end)) = pair[0] else {
            panic!("unfinished run {pair:?}")
        };
        let Some(next_start) = pair[1].0 else {
            panic!("unstarted run {pair:?}")
        };
        assert!(next_start >= end, "syncs overlapped: {runs:?}");
    }

    // A node killed mid-sync: the other takes the job over after the lease.
    drop(node_b.take());
    let slow_path = format!("latency=4000@always@/api/{}/groups/", f.workspace);
    fault(&mode.base_url(), &slow_path).await;
    let slow = a.start_sync(&account.id).await.unwrap();
    let mut running = false;
    for _ in 0..200 {
        if a.sync_run(&slow.sync_run_id).await.unwrap().status == "running" {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(running);
    drop(node_a); // SIGKILL mid-sync
    clear_faults(&mode.base_url()).await;
    let _node_b = cluster.serve(port_b).await;
    let run = finished(&b, &slow.sync_run_id).await;
    assert_eq!(run.status, "succeeded", "{run:?}");
    assert_eq!(run.attempts, 2, "taken over after the lease: {run:?}");
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
        cluster
            .database_url
            .rsplit("search_path%3D")
            .next()
            .unwrap_or_default()
    )))
    .execute(&pool)
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_deployment_moves_to_postgres_with_copy_store() {
    let Some(database_url) = fresh_database().await else {
        return;
    };
    let metabase = rollcall_sim_metabase::MetabaseSim::new(
        rollcall_sim_metabase::MetabaseSimConfig::default(),
    )
    .unwrap()
    .start("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("rollcall.db").display());
    let on_sqlite = |args: &[&str]| {
        let mut cmd = rollcall_bin();
        cmd.args(args)
            .env("ROLLCALL_DATABASE_URL", &sqlite_url)
            .env("ROLLCALL_SYNC_SCHEDULER", "false")
            .env("ROLLCALL_LOG", "warn");
        cmd
    };
    let key = on_sqlite(&["keys", "create", "--tenant", "acme"])
        .output()
        .unwrap();
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    let key = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    let port = free_port();
    let node = Node {
        child: on_sqlite(&["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    };
    let api = Client::new(&format!("http://127.0.0.1:{port}")).with_api_key(&key);
    for _ in 0..200 {
        if api.readyz().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let f = metabase.fixtures();
    let account = api
        .create_account(&json!({
            "provider": "metabase",
            "config": { "base_url": metabase.base_url() },
            "credentials": { "api_key": f.admin_api_key },
        }))
        .await
        .unwrap();
    drop(node);

    let copied = rollcall_bin()
        .args(["copy-store", "--from", &sqlite_url, "--to", &database_url])
        .env("ROLLCALL_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    assert!(String::from_utf8_lossy(&copied.stdout).contains("integrated_accounts"));
    // A second copy into the same database is refused.
    let again = rollcall_bin()
        .args(["copy-store", "--from", &sqlite_url, "--to", &database_url])
        .output()
        .unwrap();
    assert!(!again.status.success());

    // A PostgreSQL node with the SQLite deployment's master key serves the
    // same key, account and credentials.
    let master_key = std::fs::read_to_string(dir.path().join("rollcall.master.key")).unwrap();
    let cluster = Cluster {
        database_url,
        master_key: master_key.trim().to_owned(),
    };
    let _node = cluster.serve(port).await;
    assert_eq!(api.account(&account.id).await.unwrap().label, account.label);
    let users = api.users(&account.id, "limit=5").await.unwrap();
    assert!(
        !users.result.is_empty(),
        "the sealed credentials still open"
    );
}
