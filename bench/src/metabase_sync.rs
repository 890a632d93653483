//! metabase-sync: a full sync of a large Metabase instance against the
//! cheapest way to read the same data, and the memory the sync needs.
//!
//! The reference is a plain client in the same process: a bare `reqwest`
//! loop with the same credential (`X-API-KEY`, the fixtures' admin key)
//! downloading exactly the pages the sync reads: `GET /api/user?status=all
//! &limit=1000&offset=N` until the vendor's `total`, then
//! `/api/permissions/group` and `/api/permissions/membership`, every body
//! read in full (the user pages are scanned only for `total` and the item
//! count, without building the users). It runs before and after the first
//! sync and the mean of the two is that sync's reference. The sync with
//! nothing changed (the steady state) runs in three rounds, each followed
//! by a plain download; its ratio is the median of the rounds' ratios.
//! Goal: sync / plain <= 1.5. CPU time (the process's, simulator included)
//! is recorded beside each: on two shared cores it explains most ratios.
//!
//! The storage floor: SQLite alone writing the rows the first sync stored
//! (`storage_floor`), measured after the syncs, against the same plain
//! download. It shows how much of the first sync's ratio no sync code can
//! remove while the rows go into SQLite with the indexes cached reads need.
//!
//! Memory: the simulator holds its data in this process too, so the
//! process's own peak is not Rollcall's. Right before the sync the kernel's
//! high-water mark is reset to the current RSS (`echo 5 >
//! /proc/self/clear_refs`), the RSS is read as the baseline, and after the
//! sync `VmHWM` is the peak during it. The increase (peak - baseline) is
//! Rollcall's part, plus the simulator's per-request buffers, and minus
//! whatever Rollcall could reuse of memory the allocator kept from before.
//! A sampler thread reading `VmRSS` every 10 ms cross-checks it. Goal:
//! increase <= 200 MB.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use rollcall_sim_metabase::{MetabaseSim, MetabaseSimConfig, RunningMetabaseSim};
use rollcall_store::{SqliteStore, Store as _};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use crate::{Synced, build_profile, cores, round, start_rollcall, sync_and_wait};

/// What the plain client needs from a user page: when to stop.
#[derive(Deserialize)]
struct UserPage {
    total: u64,
    data: Vec<IgnoredAny>,
}

struct Download {
    secs: f64,
    /// CPU time the process used meanwhile (simulator included).
    cpu_secs: f64,
    calls: u64,
    bytes: usize,
    users: usize,
}

impl Download {
    fn json(&self) -> Value {
        json!({
            "secs": round(self.secs, 3),
            "cpu_secs": round(self.cpu_secs, 2),
            "vendor_calls": self.calls,
            "bytes": self.bytes,
            "users": self.users,
        })
    }
}

async fn get(
    http: &reqwest::Client,
    url: &str,
    key: &str,
) -> anyhow::Result<impl AsRef<[u8]> + use<>> {
    let answer = http.get(url).header("X-API-KEY", key).send().await?;
    if !answer.status().is_success() {
        bail!("{url}: HTTP {}", answer.status());
    }
    Ok(answer.bytes().await?)
}

/// The pages a sync reads, as fast as a bare client can fetch them.
async fn plain_download(
    http: &reqwest::Client,
    sim: &RunningMetabaseSim,
    key: &str,
) -> anyhow::Result<Download> {
    let base = sim.base_url();
    let calls_before = sim.control().counters.snapshot().total;
    let cpu_before = cpu_secs().unwrap_or(0.0);
    let started = Instant::now();
    let (mut offset, mut bytes, mut users) = (0u64, 0usize, 0usize);
    loop {
        let url = format!("{base}/api/user?status=all&limit=1000&offset={offset}");
        let body = get(http, &url, key).await?;
        bytes += body.as_ref().len();
        let page: UserPage = serde_json::from_slice(body.as_ref())?;
        if page.data.is_empty() {
            break;
        }
        users += page.data.len();
        offset += page.data.len() as u64;
        if offset >= page.total {
            break;
        }
    }
    for path in ["/api/permissions/group", "/api/permissions/membership"] {
        bytes += get(http, &format!("{base}{path}"), key)
            .await?
            .as_ref()
            .len();
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu_secs = cpu_secs().unwrap_or(0.0) - cpu_before;
    let calls = sim
        .control()
        .counters
        .snapshot()
        .total
        .saturating_sub(calls_before);
    Ok(Download {
        secs,
        cpu_secs,
        calls,
        bytes,
        users,
    })
}

/// Rounds of the sync with nothing changed.
const UNCHANGED_ROUNDS: usize = 3;

/// One round: a sync with nothing changed, then a plain download.
struct Unchanged {
    synced: Synced,
    cpu_secs: f64,
    plain: Download,
    ratio: f64,
}

/// A `kB` line of `/proc/self/status` (`VmRSS`, `VmHWM`), in kB.
fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// CPU time this process has used so far (user + system, every thread),
/// in seconds, from `/proc/self/stat` (clock ticks of 10 ms).
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Resets `VmHWM` to the current RSS (Linux 4.0+).
fn reset_high_water_mark() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Reads `VmRSS` every 10 ms on its own thread, keeping the largest and
/// a coarse timeline (every 250 ms: seconds since the start, MB).
struct Sampler {
    stop: Arc<AtomicBool>,
    peak_kb: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<Vec<(f64, f64)>>,
}

impl Sampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_kb = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, peak_kb) = (stop.clone(), peak_kb.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut timeline = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kb) = status_kb("VmRSS") {
                        peak_kb.fetch_max(kb, Ordering::Relaxed);
                        if n.is_multiple_of(25) {
                            timeline.push((round(started.elapsed().as_secs_f64(), 2), mb(kb)));
                        }
                    }
                    n += 1;
                    #[allow(
                        clippy::disallowed_methods,
                        reason = "the sampler's own OS thread, not a runtime worker"
                    )]
                    std::thread::sleep(Duration::from_millis(10));
                }
                timeline
            })
        };
        Self {
            stop,
            peak_kb,
            thread,
        }
    }

    /// The peak in kB and the timeline.
    fn finish(self) -> (u64, Vec<(f64, f64)>) {
        self.stop.store(true, Ordering::Relaxed);
        let timeline = self.thread.join().unwrap_or_default();
        (self.peak_kb.load(Ordering::Relaxed), timeline)
    }
}

/// SQLite alone writing the rows a first sync stores: the synced users
/// and memberships, loaded into memory first, then copied by one
/// `INSERT ... SELECT` per table into an empty database with Rollcall's
/// own migrations (same tables, indexes and connection settings), in one
/// transaction. No vendor, no parsing, no binding: a first sync that
/// stores these rows on SQLite cannot take less than this, however it is
/// written. What differs only makes the copy cheaper: groups and roles (a
/// few rows) are left out, foreign keys are not checked, and rows go in in
/// key order.
#[derive(Debug)]
struct StorageFloor {
    secs: f64,
    users: u64,
    memberships: u64,
}

async fn storage_floor(synced: &Path) -> anyhow::Result<StorageFloor> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("floor.db").display());
    let store = SqliteStore::open(&url).await?;
    store.migrate().await?;
    let mut conn = store.pool().acquire().await?;
    // The copied rows point at accounts this database does not have.
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut *conn)
        .await?;
    sqlx::query("PRAGMA temp_store = MEMORY")
        .execute(&mut *conn)
        .await?;
    sqlx::query("ATTACH DATABASE ? AS synced")
        .bind(synced.display().to_string())
        .execute(&mut *conn)
        .await?;
    for staging in [
        "CREATE TEMP TABLE staged_dir_users AS SELECT * FROM synced.dir_users",
        "CREATE TEMP TABLE staged_dir_memberships AS SELECT * FROM synced.dir_memberships",
    ] {
        sqlx::query(staging).execute(&mut *conn).await?;
    }
    let started = Instant::now();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let users = sqlx::query("INSERT INTO main.dir_users SELECT * FROM staged_dir_users")
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let memberships =
        sqlx::query("INSERT INTO main.dir_memberships SELECT * FROM staged_dir_memberships")
            .execute(&mut *conn)
            .await?
            .rows_affected();
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    Ok(StorageFloor {
        secs: started.elapsed().as_secs_f64(),
        users,
        memberships,
    })
}

fn mb(kb: u64) -> f64 {
    round(kb as f64 / 1024.0, 1)
}

pub(crate) async fn run(users: usize, quick: bool) -> anyhow::Result<()> {
    let loopback = "127.0.0.1:0".parse()?;
    let seeding = Instant::now();
    let sim = MetabaseSim::new(MetabaseSimConfig {
        users,
        ..MetabaseSimConfig::default()
    })?;
    let seed_secs = seeding.elapsed().as_secs_f64();
    let sim = sim.start(loopback).await?;
    let rollcall = start_rollcall().await?;
    let key = sim.fixtures().admin_api_key.clone();
    let account = rollcall
        .client
        .create_account(&json!({
            "provider": "metabase",
            "config": { "base_url": sim.base_url() },
            "credentials": { "api_key": key },
        }))
        .await?;
    let http = reqwest::Client::new();
    eprintln!("metabase-sync: {users} users seeded in {seed_secs:.2} s; plain download ...");

    let plain_before = plain_download(&http, &sim, &key).await?;
    eprintln!("metabase-sync: plain {:.3} s; sync ...", plain_before.secs);

    let rss_before_kb = status_kb("VmRSS").unwrap_or(0);
    let hwm_reset = reset_high_water_mark();
    let hwm_before_kb = status_kb("VmHWM").unwrap_or(0);
    sim.control().counters.reset();
    let sampler = Sampler::start();
    let cpu_before = cpu_secs().unwrap_or(0.0);
    let synced = sync_and_wait(&rollcall.client, &account.id).await?;
    let sync_cpu_secs = cpu_secs().unwrap_or(0.0) - cpu_before;
    eprintln!("metabase-sync: first sync used {sync_cpu_secs:.2} s CPU");
    let (sampled_peak_kb, timeline) = sampler.finish();
    let hwm_after_kb = status_kb("VmHWM").unwrap_or(0);
    let rss_after_kb = status_kb("VmRSS").unwrap_or(0);
    let counters = sim.control().counters.snapshot();
    eprintln!(
        "metabase-sync: sync {:.3} s; plain download ...",
        synced.wall_secs
    );

    let plain_after = plain_download(&http, &sim, &key).await?;
    let plain_mean = f64::midpoint(plain_before.secs, plain_after.secs);
    // The steady state: a sync with nothing changed reads the same pages
    // but writes (almost) nothing. Short enough for the machine's noise to
    // swing one run by a third: rounds of (sync, plain download), and the
    // median of their ratios.
    let mut rounds = Vec::new();
    for _ in 0..if quick { 1 } else { UNCHANGED_ROUNDS } {
        let cpu_before = cpu_secs().unwrap_or(0.0);
        let again = sync_and_wait(&rollcall.client, &account.id).await?;
        let cpu = cpu_secs().unwrap_or(0.0) - cpu_before;
        let plain = plain_download(&http, &sim, &key).await?;
        eprintln!(
            "metabase-sync: sync with no changes {:.3} s ({cpu:.2} s CPU), plain {:.3} s ({:.2} s CPU)",
            again.wall_secs, plain.secs, plain.cpu_secs
        );
        rounds.push(Unchanged {
            ratio: again.wall_secs / plain.secs,
            cpu_secs: cpu,
            synced: again,
            plain,
        });
    }
    // Best of two, measured with nothing else running: it is a floor.
    let mut floor = storage_floor(&rollcall.database).await?;
    let second = storage_floor(&rollcall.database).await?;
    if second.secs < floor.secs {
        floor = second;
    }
    let floor_ratio = floor.secs / plain_mean;
    eprintln!(
        "metabase-sync: SQLite alone writes the {} users and {} memberships in {:.3} s ({floor_ratio:.2}× the plain download)",
        floor.users, floor.memberships, floor.secs
    );
    rounds.sort_by(|a, b| a.ratio.total_cmp(&b.ratio));
    let median = &rounds[rounds.len() / 2];
    let again = &median.synced;
    let again_ratio = median.ratio;
    let ratio = synced.wall_secs / plain_mean;
    let run_secs = synced.run.duration_ms.map(|ms| ms as f64 / 1000.0);
    let peak_kb = if hwm_reset {
        hwm_after_kb
    } else {
        sampled_peak_kb
    };
    let increase_kb = peak_kb.saturating_sub(rss_before_kb);
    let counts = synced.run.counts.clone().unwrap_or(Value::Null);
    let synced_users = counts.get("users").and_then(Value::as_u64).unwrap_or(0);

    println!();
    println!(
        "| scenario | users | plain download (mean of 2) | sync (wall) | run duration | ratio | goal | RSS before sync | peak during sync | increase | goal |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| metabase-sync ({}) | {synced_users} | {plain_mean:.2} s ({:.2} s, {:.2} s) | {:.2} s | {} | **{ratio:.2}×** | ≤ 1.5× | {} MB | {} MB | **{} MB** | ≤ 200 MB |",
        build_profile(),
        plain_before.secs,
        plain_after.secs,
        synced.wall_secs,
        run_secs.map_or_else(|| "-".to_owned(), |s| format!("{s:.2} s")),
        mb(rss_before_kb),
        mb(peak_kb),
        mb(increase_kb),
    );
    println!(
        "| metabase-sync again, no changes ({}, median of {}) | {synced_users} | {:.2} s | {:.2} s | - | **{again_ratio:.2}×** | ≤ 1.5× | - | - | - | - |",
        build_profile(),
        rounds.len(),
        median.plain.secs,
        again.wall_secs,
    );
    println!(
        "| storage floor: SQLite alone writing the first sync's {} users and {} memberships (best of 2) | - | {:.2} s | {:.2} s | - | **{floor_ratio:.2}×** | - | - | - | - | - |",
        floor.users, floor.memberships, plain_mean, floor.secs,
    );
    println!();
    println!(
        "Sync time is wall time from POST /sync to the first poll (every 10 ms) that saw the run \
         finished; run duration is the run's own started→finished. Memory: VmHWM reset to the \
         current RSS right before the sync ({}), baseline = VmRSS then (simulator data included), \
         peak = VmHWM after; increase = peak - baseline (Rollcall plus the simulator's per-request \
         buffers). Sampled VmRSS peak (10 ms): {} MB.",
        if hwm_reset {
            "clear_refs 5"
        } else {
            "reset FAILED: peak is the sampler's"
        },
        mb(sampled_peak_kb),
    );

    let result = json!({
        "scenario": "metabase-sync",
        "quick": quick,
        "build": build_profile(),
        "cores": cores(),
        "users": users,
        "seed_secs": round(seed_secs, 3),
        "plain_before": plain_before.json(),
        "plain_after": plain_after.json(),
        "plain_mean_secs": round(plain_mean, 3),
        "sync": {
            "elapsed_wall_secs": round(synced.wall_secs, 3),
            "cpu_secs": round(sync_cpu_secs, 2),
            "run_duration_secs": run_secs.map(|s| round(s, 3)),
            "run": {
                "attempts": synced.run.attempts,
                "created_at": synced.run.created_at,
                "started_at": synced.run.started_at,
                "finished_at": synced.run.finished_at,
            },
            "vendor_calls": counters.total,
            "vendor_calls_by_route": counters.by_route,
            "counts": counts,
        },
        "ratio": round(ratio, 3),
        "ratio_goal": "<= 1.5",
        "second_sync_no_changes": {
            "elapsed_wall_secs": round(again.wall_secs, 3),
            "cpu_secs": round(median.cpu_secs, 2),
            "plain": median.plain.json(),
            "ratio": round(again_ratio, 3),
            "ratio_is": "median over rounds of (sync with no changes, then a plain download) of sync / plain",
            "rounds": rounds.iter().map(|r| json!({
                "sync_secs": round(r.synced.wall_secs, 3),
                "sync_cpu_secs": round(r.cpu_secs, 2),
                "plain_secs": round(r.plain.secs, 3),
                "plain_cpu_secs": round(r.plain.cpu_secs, 2),
                "ratio": round(r.ratio, 3),
            })).collect::<Vec<_>>(),
            "counts": again.run.counts.clone().unwrap_or(Value::Null),
        },
        "storage_floor": {
            "secs": round(floor.secs, 3),
            "users": floor.users,
            "memberships": floor.memberships,
            "ratio_to_plain_mean": round(floor_ratio, 3),
            "is": "best of 2: the first sync's users and memberships, staged in memory, copied by one INSERT ... SELECT per table into an empty database with Rollcall's migrations, in one transaction; a first sync storing these rows on SQLite cannot take less",
        },
        "memory": {
            "method": "VmHWM reset via /proc/self/clear_refs (5) right before the sync; baseline VmRSS then; peak VmHWM after; the simulator shares the process",
            "hwm_reset": hwm_reset,
            "rss_before_sync_mb": mb(rss_before_kb),
            "hwm_before_sync_mb": mb(hwm_before_kb),
            "hwm_after_sync_mb": mb(hwm_after_kb),
            "sampled_peak_rss_mb": mb(sampled_peak_kb),
            "rss_after_sync_mb": mb(rss_after_kb),
            "increase_mb": mb(increase_kb),
            "goal": "increase <= 200 MB",
            "rss_timeline_secs_mb": timeline,
        },
        "elapsed_is": "wall time from POST /integrated-accounts/{id}/sync to the first 10 ms poll that saw the run finished",
    });
    let name = if quick {
        "metabase-sync-quick"
    } else {
        "metabase-sync"
    };
    let path = crate::write_result(name, &result)?;
    println!("\nraw numbers: {}", path.display());
    if plain_before.calls != counters.total {
        eprintln!(
            "metabase-sync: note: the sync made {} vendor calls, the plain client {}",
            counters.total, plain_before.calls
        );
    }
    Ok(())
}
