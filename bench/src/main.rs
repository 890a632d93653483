//! Rollcall's benchmarks. Each scenario starts the real server and the
//! simulators in this process and reports a ratio against a reference
//! measured or derived in the same run, never an absolute time alone.
//!
//! ```text
//! cargo run --release -p rollcall-bench -- mode-walk [--users 1000] [--limit 7]
//! cargo run --release -p rollcall-bench -- mode-sync [--members 2000] [--groups 100]
//!     [--limit 200] [--window 10] [--incremental-limit 40] [--page-size 100]
//!     [--churn 20] [--quick]
//! cargo run --release -p rollcall-bench -- metabase-sync [--users 100000] [--quick]
//! cargo run --release -p rollcall-bench -- cache-read [--small 10000] [--large 1000000] [--quick]
//! cargo run --release -p rollcall-bench -- proxy [--quick]
//! cargo run --release -p rollcall-bench -- idle-memory [--accounts 10000] [--quick]
//! cargo run --release -p rollcall-bench -- summary [--quick]
//! ```
//!
//! `bench/run [--quick]` installs wrk and nginx, builds in release and runs
//! them all, then `summary` writes the table into `docs/performance.md`.
//!
//! mode-walk: walk every user of a Mode workspace through the unified API
//! while the simulator enforces Mode's 40 requests per 10 seconds. The
//! lower bound for N vendor calls under "L in any W seconds" is
//! floor((N - 1) / L) * W: the first L go at once, then L more per window.
//! Goal: elapsed / bound <= 1.10.
//!
//! mode-sync: a full sync of a Mode workspace under a rate limit, then
//! incremental syncs after 1% churn; each against the same lower bound
//! (see `mode_sync.rs`).
//!
//! metabase-sync: a full sync of a large Metabase instance against a plain
//! client downloading the same pages, and the process's peak memory during
//! the sync (see `metabase_sync.rs`).
//!
//! cache-read: `source=cache` pages of 100 with 10,000 and 1,000,000 users
//! in the snapshot, against `/healthz` under the same load (see
//! `cache_read.rs`).
//!
//! proxy: Rollcall's `/proxy` against nginx and the simulator directly, and
//! the unified API's page against the proxy's (see `proxy.rs`).
//!
//! idle-memory: an idle `rollcall serve` with 10,000 linked accounts (see
//! `idle_memory.rs`).
//!
//! Every scenario prints Markdown table rows and writes its raw numbers to
//! `bench/results/<scenario>.json` (`<scenario>-quick.json` with `--quick`).

mod cache_read;
mod http_load;
mod idle_memory;
mod metabase_sync;
mod mode_sync;
mod proxy;
mod summary;

// The allocator `rollcall` ships with, so the in-process server measures as
// the binary runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rollcall_client::{Client, SyncRun, encode};
use rollcall_core::SystemClock;
use rollcall_core::id::TenantName;
use rollcall_server::{AppState, Application, Settings, keys};
use rollcall_sim_mode::{ModeSim, ModeSimConfig};
use rollcall_vault::Vault;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

const USAGE: &str = "usage: rollcall-bench mode-walk [--users N] [--limit L]
       rollcall-bench mode-sync [--members 2000] [--groups 100] [--limit 200] [--window 10]
                                [--incremental-limit 40] [--page-size 100] [--churn 20] [--quick]
       rollcall-bench metabase-sync [--users 100000] [--quick]
       rollcall-bench cache-read [--small 10000] [--large 1000000] [--requests 5000] [--quick]
       rollcall-bench proxy [--quick]
       rollcall-bench idle-memory [--accounts 10000] [--quick]
       rollcall-bench summary [--quick]";

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

fn flag(args: &[String], name: &str) -> bool {
    args.iter().any(|a| a == name)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = flag(&args, "--quick");
    match args.first().map(String::as_str) {
        Some("mode-walk") => {
            mode_walk(arg(&args, "--users", 1000)?, arg(&args, "--limit", 7)?).await
        }
        Some("mode-sync") => {
            let d = if quick {
                mode_sync::Options::quick()
            } else {
                mode_sync::Options::full()
            };
            let o = mode_sync::Options {
                members: usize::try_from(arg(&args, "--members", d.members as u64)?)?,
                groups: usize::try_from(arg(&args, "--groups", d.groups as u64)?)?,
                limit: u32::try_from(arg(&args, "--limit", u64::from(d.limit))?)?,
                window_secs: arg(&args, "--window", d.window_secs)?,
                incremental_limit: u32::try_from(arg(
                    &args,
                    "--incremental-limit",
                    u64::from(d.incremental_limit),
                )?)?,
                page_size: usize::try_from(arg(&args, "--page-size", d.page_size as u64)?)?,
                churn: usize::try_from(arg(
                    &args,
                    "--churn",
                    // 1% of the members unless told otherwise.
                    arg(&args, "--members", d.members as u64)?.div_ceil(100),
                )?)?,
                quick,
            };
            mode_sync::run(o).await
        }
        Some("cache-read") => {
            let (small, large, requests) = if quick {
                (2_000, 20_000, 500)
            } else {
                (10_000, 1_000_000, 5_000)
            };
            cache_read::run(cache_read::Options {
                small: usize::try_from(arg(&args, "--small", small)?)?,
                large: usize::try_from(arg(&args, "--large", large)?)?,
                requests: usize::try_from(arg(&args, "--requests", requests)?)?,
                quick,
            })
            .await
        }
        Some("proxy") => proxy::run(quick).await,
        Some("idle-memory") => {
            let accounts = arg(&args, "--accounts", if quick { 200 } else { 10_000 })?;
            idle_memory::run(usize::try_from(accounts)?, quick).await
        }
        Some("summary") => summary::run(flag(&args, "--quick")),
        Some("metabase-sync") => {
            let users = arg(&args, "--users", if quick { 5_000 } else { 100_000 })?;
            metabase_sync::run(usize::try_from(users)?, quick).await
        }
        _ => bail!("{USAGE}"),
    }
}

/// A Rollcall server in this process, on a fresh SQLite store, with one
/// tenant and its API key.
pub(crate) struct Rollcall {
    pub client: Client,
    /// The server's store, for scenarios that seed it directly.
    pub store: Arc<dyn rollcall_store::Store>,
    /// `http://127.0.0.1:PORT`.
    pub api: String,
    pub key: String,
    /// The server's SQLite database file.
    pub database: PathBuf,
    _dir: tempfile::TempDir,
}

/// Starts the server. The sync scheduler is off: it would sync a newly
/// linked account at once and spend the same vendor allowance the
/// scenario measures. Syncs asked for through the API still run.
pub(crate) async fn start_rollcall() -> anyhow::Result<Rollcall> {
    let loopback = "127.0.0.1:0".parse()?;
    let dir = tempfile::tempdir()?;
    let database = dir.path().join("bench.db");
    let settings = Settings {
        database_url: format!("sqlite://{}", database.display()),
        vendor_deadline_secs: 120,
        sync_scheduler: false,
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
    let app = Application::bind(
        loopback,
        AppState::new(store.clone(), clock, settings, vault)?,
    )
    .await?;
    let api = format!("http://{}", app.local_addr()?);
    tokio::spawn(app.run_until(std::future::pending()));
    let key = key.key.expose_secret().to_owned();
    Ok(Rollcall {
        client: Client::new(&api).with_api_key(&key),
        store,
        api,
        key,
        database,
        _dir: dir,
    })
}

/// A finished, successful sync run and the wall time from the POST that
/// queued it to the first poll that saw it finished.
pub(crate) struct Synced {
    pub run: SyncRun,
    pub wall_secs: f64,
}

/// How often a waiting bench asks for the run's state: the wall time is
/// late by at most this much (a tenth of the plain download the Metabase
/// sync is held to is 25-50 ms).
const POLL: Duration = Duration::from_millis(10);
/// A sync that takes longer than this has hung.
const SYNC_TIMEOUT: Duration = Duration::from_secs(3_600);

/// Queues a sync of the account and waits for it to end.
pub(crate) async fn sync_and_wait(client: &Client, account: &str) -> anyhow::Result<Synced> {
    let started = Instant::now();
    let queued = client.start_sync(account).await?;
    if !queued.queued {
        bail!(
            "a sync of {account} was already queued or running ({}); the scenario would measure someone else's run",
            queued.sync_run_id
        );
    }
    loop {
        let run = client.sync_run(&queued.sync_run_id).await?;
        if run.is_finished() {
            let wall_secs = started.elapsed().as_secs_f64();
            if run.status != "succeeded" {
                bail!(
                    "sync run {} {}: {}",
                    run.id,
                    run.status,
                    run.error.as_deref().unwrap_or("(no error given)")
                );
            }
            return Ok(Synced { run, wall_secs });
        }
        if started.elapsed() > SYNC_TIMEOUT {
            bail!("sync run {} did not finish within an hour", run.id);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `x` rounded to `digits` decimals, for printing and the result files.
pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub(crate) fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// Writes `bench/results/<name>.json` and returns its path.
pub(crate) fn write_result(name: &str, value: &Value) -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&dir).context(format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{name}.json"));
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    std::fs::write(&path, text).context(format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// For N calls under "L in any W seconds": floor((N - 1) / L) * W.
pub(crate) fn lower_bound_secs(calls: u64, limit: u64, window_secs: u64) -> u64 {
    calls.saturating_sub(1) / limit.max(1) * window_secs
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
    let rollcall = start_rollcall().await?;
    let client = &rollcall.client;
    let f = mode.fixtures().clone();
    let account = client
        .create_account(&json!({
            "provider": "mode",
            "config": { "base_url": mode.base_url(), "workspace": f.workspace },
            "credentials": { "token": f.admin.token, "secret": f.admin.secret },
        }))
        .await?;

    // Start from an empty window so the bound below is the true one.
    tokio::time::sleep(Duration::from_secs(window_secs + 1)).await;
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
    let bound = lower_bound_secs(calls, limit, window_secs) as f64;
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
        "elapsed_secs": round(elapsed, 2),
        "lower_bound_secs": bound,
        "ratio": round(ratio, 3),
        "goal": "<= 1.10",
        "cores": cores(),
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    if rate_limited > 0 {
        bail!(
            "the simulator answered 429 {rate_limited} time(s): the limiter let too much through"
        );
    }
    Ok(())
}
