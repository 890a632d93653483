//! Rollcall's benchmarks. Each scenario starts the real server and the
//! simulators in this process and reports a ratio against a reference
//! measured or derived in the same run, never an absolute time alone.
//!
//! `cargo run --release -p rollcall-bench -- mode-walk [--users 1000] [--limit 7]`
//!
//! mode-walk: walk every user of a Mode workspace through the unified API
//! while the simulator enforces Mode's 40 requests per 10 seconds. The
//! lower bound for N vendor calls under "L in any W seconds" is
//! floor((N - 1) / L) * W: the first L go at once, then L more per window.
//! Goal: elapsed / bound <= 1.10.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use rollcall_client::{Client, encode};
use rollcall_core::SystemClock;
use rollcall_core::id::TenantName;
use rollcall_server::{AppState, Application, Settings, keys};
use rollcall_sim_mode::{ModeSim, ModeSimConfig};
use rollcall_vault::Vault;
use secrecy::ExposeSecret;
use serde_json::json;

fn arg(args: &[String], name: &str, default: u64) -> anyhow::Result<u64> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .context(format!("{name} needs a value"))?
            .parse()
            .context(format!("{name} needs a number")),
        None => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("mode-walk") => {
            mode_walk(arg(&args, "--users", 1000)?, arg(&args, "--limit", 7)?).await
        }
        _ => bail!("usage: rollcall-bench mode-walk [--users N] [--limit L]"),
    }
}

async fn mode_walk(users: u64, page_limit: u64) -> anyhow::Result<()> {
    let loopback = "127.0.0.1:0".parse()?;
    let (limit, window_secs) = (40u64, 10u64);
    let mode = ModeSim::new(ModeSimConfig {
        users: usize::try_from(users)?,
        page_size: Some(100),
        ..ModeSimConfig::default()
    })?
    .start(loopback)
    .await?;
    let dir = tempfile::tempdir()?;
    let settings = Settings {
        database_url: format!("sqlite://{}", dir.path().join("bench.db").display()),
        vendor_deadline_secs: 120,
        ..Settings::default()
    };
    let store = rollcall_store::open(&settings.database_url).await?;
    store.migrate().await?;
    let (vault, _) = Vault::load_or_create_file(&dir.path().join("master.key"))?;
    let clock = Arc::new(SystemClock);
    let key = keys::issue(
        store.as_ref(),
        clock.as_ref(),
        &TenantName::parse("bench")?,
        "bench",
    )
    .await?;
    let app = Application::bind(loopback, AppState::new(store, clock, settings, vault)?).await?;
    let api = format!("http://{}", app.local_addr()?);
    tokio::spawn(app.run_until(std::future::pending()));
    let client = Client::new(&api).with_api_key(key.key.expose_secret());
    let f = mode.fixtures().clone();
    let account = client
        .create_account(&json!({
            "provider": "mode",
            "config": { "base_url": mode.base_url(), "workspace": f.workspace },
            "credentials": { "token": f.admin.token, "secret": f.admin.secret },
        }))
        .await?;

    // Start from an empty window so the bound below is the true one.
    tokio::time::sleep(std::time::Duration::from_secs(window_secs + 1)).await;
    let before = mode.control().counters.snapshot().total;
    let started = Instant::now();
    let mut seen = 0usize;
    let mut cursor: Option<String> = None;
    loop {
        let mut query = format!("limit={page_limit}&status=active");
        if let Some(c) = &cursor {
            query.push_str(&format!("&next_cursor={}", encode(c)));
        }
        let page = client.users(&account.id, &query).await?;
        seen += page.result.len();
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let counters = mode.control().counters.snapshot();
    let calls = counters.total - before;
    let rate_limited = counters.events.get("rate_limited").copied().unwrap_or(0);
    let bound = ((calls.saturating_sub(1)) / limit * window_secs) as f64;
    let ratio = if bound > 0.0 {
        elapsed / bound
    } else {
        f64::NAN
    };
    let result = json!({
        "scenario": "mode-walk",
        "users_seen": seen,
        "page_limit": page_limit,
        "vendor_calls": calls,
        "vendor_429s": rate_limited,
        "limit": format!("{limit}/{window_secs}s"),
        "elapsed_secs": (elapsed * 100.0).round() / 100.0,
        "lower_bound_secs": bound,
        "ratio": (ratio * 1000.0).round() / 1000.0,
        "goal": "<= 1.10",
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    if rate_limited > 0 {
        bail!(
            "the simulator answered 429 {rate_limited} time(s): the limiter let too much through"
        );
    }
    Ok(())
}
