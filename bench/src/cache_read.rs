//! cache-read: `source=cache` user pages of 100 from a snapshot of 10,000
//! users and of 1,000,000, against `GET /healthz` under the same load in
//! the same run. Goals: the page's p99 at 1M ≤ 1.5× its p99 at 10k (cost
//! flat in size), p99 ≤ 10 ms, throughput ≥ 0.5× that of `/healthz`.
//!
//! The snapshot is written straight into the store (as a sync's commit
//! would, in batches) so the scenario measures reads, not a vendor. Pages
//! are asked at random depths: every page's cursor is collected by one walk
//! first, so deep pages count as much as the first.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rollcall_core::unified::{Ref, User, UserStatus};
use rollcall_core::{Clock as _, SystemClock};
use rollcall_sim_metabase::{MetabaseSim, MetabaseSimConfig};
use rollcall_store::{CachedUserRow, Store, SyncCommit};
use serde_json::json;

use crate::{build_profile, cores, round, start_rollcall, write_result};

const SEED_BATCH: usize = 50_000;
const CONCURRENCY: usize = 4;

pub struct Options {
    pub small: usize,
    pub large: usize,
    /// Requests per measurement.
    pub requests: usize,
    pub quick: bool,
}

fn user(i: usize) -> CachedUserRow {
    let id = format!("{i:08}");
    let email = format!("user{i}@example.com");
    let data = User {
        id: id.clone(),
        username: Some(email.clone()),
        email: Some(email.clone()),
        first_name: Some(format!("First{i}")),
        last_name: Some(format!("Last{i}")),
        name: Some(format!("First{i} Last{i}")),
        status: if i.is_multiple_of(10) {
            UserStatus::Inactive
        } else {
            UserStatus::Active
        },
        is_admin: i.is_multiple_of(50),
        roles: vec![Ref {
            id: "member".into(),
            name: "Member".into(),
        }],
        groups: None,
        last_active_at: Some("2026-11-01T10:00:00.000Z".into()),
        created_at: Some("2024-01-01T00:00:00.000Z".into()),
        updated_at: None,
        remote_data: None,
    };
    CachedUserRow {
        user_id: id,
        email: Some(email),
        status: data.status.as_str().to_owned(),
        is_admin: data.is_admin,
        data_json: serde_json::to_string(&data).unwrap_or_default(),
    }
}

async fn seed(
    store: &dyn Store,
    account: &rollcall_core::id::AccountId,
    from: usize,
    to: usize,
) -> anyhow::Result<()> {
    let mut start = from;
    while start < to {
        let end = (start + SEED_BATCH).min(to);
        let commit = SyncCommit {
            run_id: format!("seed-{start}"),
            account_id: Some(account.clone()),
            upsert_users: (start..end).map(|i| user(i).with_content_hash()).collect(),
            counts_json: "{}".into(),
            finished_at: SystemClock.now_millis(),
            ..SyncCommit::default()
        };
        store.commit_sync(&commit).await?;
        start = end;
    }
    Ok(())
}

struct Measured {
    p50_ms: f64,
    p99_ms: f64,
    per_sec: f64,
}

/// `requests` GETs of `urls` (cycled) from `CONCURRENCY` tasks.
async fn measure(
    http: &reqwest::Client,
    key: &str,
    urls: &[String],
    requests: usize,
) -> anyhow::Result<Measured> {
    let urls = Arc::new(urls.to_vec());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let http = http.clone();
        let key = key.to_owned();
        let urls = urls.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = worker;
            while i < requests {
                let url = &urls[(i * 7919) % urls.len()];
                let t = Instant::now();
                let answer = http.get(url).bearer_auth(&key).send().await?;
                let status = answer.status();
                let _ = answer.bytes().await?;
                latencies.push(t.elapsed());
                anyhow::ensure!(status.is_success(), "{url}: {status}");
                i += CONCURRENCY;
            }
            Ok::<Vec<Duration>, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let at = |q: f64| {
        let index = ((all.len() as f64 - 1.0) * q).round() as usize;
        all.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Ok(Measured {
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        per_sec: all.len() as f64 / elapsed,
    })
}

/// Every page's URL of the cached active-user list, by walking it once.
async fn page_urls(
    http: &reqwest::Client,
    api: &str,
    key: &str,
    account: &str,
) -> anyhow::Result<Vec<String>> {
    let base = format!(
        "{api}/unified/user-directory/users?integrated_account_id={account}&source=cache&limit=100"
    );
    let mut urls = vec![base.clone()];
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{base}&next_cursor={}", rollcall_client::encode(c)),
            None => base.clone(),
        };
        let page: serde_json::Value = http.get(&url).bearer_auth(key).send().await?.json().await?;
        match page["next_cursor"].as_str() {
            Some(next) => {
                cursor = Some(next.to_owned());
                urls.push(format!(
                    "{base}&next_cursor={}",
                    rollcall_client::encode(next)
                ));
            }
            None => return Ok(urls),
        }
    }
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub async fn run(o: Options) -> anyhow::Result<()> {
    let loopback = "127.0.0.1:0".parse()?;
    let rollcall = start_rollcall().await?;
    let (store, api, key) = (&rollcall.store, &rollcall.api, &rollcall.key);
    // A real linked account (a small Metabase) owns the snapshot.
    let metabase = MetabaseSim::new(MetabaseSimConfig {
        users: 10,
        ..MetabaseSimConfig::default()
    })?
    .start(loopback)
    .await?;
    let f = metabase.fixtures().clone();
    let account = rollcall
        .client
        .create_account(&json!({
            "provider": "metabase",
            "config": { "base_url": metabase.base_url() },
            "credentials": { "api_key": f.admin_api_key },
        }))
        .await?;
    let account_id = rollcall_core::id::AccountId::parse(&account.id)?;
    let http = reqwest::Client::new();
    let health = vec![format!("{api}/healthz")];

    let mut rows = Vec::new();
    let mut seeded = 0;
    for size in [o.small, o.large] {
        let t = Instant::now();
        seed(store.as_ref(), &account_id, seeded, size).await?;
        seeded = size;
        let seed_secs = t.elapsed().as_secs_f64();
        let urls = page_urls(&http, api, key, &account.id)
            .await
            .context("walking the pages")?;
        // Warm both paths, then measure them back to back.
        measure(&http, key, &urls, o.requests / 10).await?;
        let healthz = measure(&http, key, &health, o.requests).await?;
        let page = measure(&http, key, &urls, o.requests).await?;
        let rss = rss_mb();
        println!(
            "| {size} users | {} pages | page p50 {:.2} ms, p99 {:.2} ms, {:.0}/s | healthz p99 {:.2} ms, {:.0}/s | throughput ratio {:.2} | RSS {:.0} MB | seeded in {:.1} s |",
            urls.len(),
            page.p50_ms,
            page.p99_ms,
            page.per_sec,
            healthz.p99_ms,
            healthz.per_sec,
            page.per_sec / healthz.per_sec,
            rss,
            seed_secs
        );
        rows.push(json!({
            "users": size,
            "pages": urls.len(),
            "page_p50_ms": round(page.p50_ms, 3),
            "page_p99_ms": round(page.p99_ms, 3),
            "page_per_sec": round(page.per_sec, 1),
            "healthz_p50_ms": round(healthz.p50_ms, 3),
            "healthz_p99_ms": round(healthz.p99_ms, 3),
            "healthz_per_sec": round(healthz.per_sec, 1),
            "throughput_vs_healthz": round(page.per_sec / healthz.per_sec, 3),
            "rss_mb": round(rss, 1),
            "seed_secs": round(seed_secs, 2),
        }));
    }
    let p99 = |i: usize| rows[i]["page_p99_ms"].as_f64().unwrap_or(0.0);
    let flatness = if p99(0) > 0.0 { p99(1) / p99(0) } else { 0.0 };
    println!(
        "p99 at {} users / p99 at {} users = {:.2} (goal ≤ 1.5); concurrency {CONCURRENCY}, {} requests each",
        o.large, o.small, flatness, o.requests
    );
    let name = if o.quick {
        "cache-read-quick"
    } else {
        "cache-read"
    };
    let path = write_result(
        name,
        &json!({
            "scenario": "cache-read",
            "profile": build_profile(),
            "cores": cores(),
            "concurrency": CONCURRENCY,
            "requests": o.requests,
            "runs": rows,
            "p99_large_over_small": round(flatness, 3),
        }),
    )?;
    println!("results: {}", path.display());
    metabase.stop().await;
    Ok(())
}
