//! idle-memory: resident memory of a `rollcall serve` process (its own
//! process, release build beside this bench) with 10,000 linked Metabase
//! accounts, idle, against the same process before the first account.
//! Goal: ≤ 100 MB. The sync scheduler is off: with it on the server is not
//! idle (it would sync 10,000 accounts).

use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use rollcall_client::Client;
use rollcall_sim_metabase::{MetabaseSim, MetabaseSimConfig};
use serde_json::json;

use crate::{build_profile, cores, round, write_result};

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn status_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub async fn run(accounts: usize, quick: bool) -> anyhow::Result<()> {
    let binary = std::env::current_exe()?.with_file_name("rollcall");
    if !binary.exists() {
        bail!(
            "{} is missing: build it with the bench (cargo build --release -p rollcall -p rollcall-bench)",
            binary.display()
        );
    }
    let metabase = MetabaseSim::new(MetabaseSimConfig {
        users: 10,
        ..MetabaseSimConfig::default()
    })?
    .start("127.0.0.1:0".parse()?)
    .await?;
    let dir = tempfile::tempdir()?;
    let command = |args: &[&str]| {
        let mut cmd = std::process::Command::new(&binary);
        cmd.args(args)
            .env(
                "ROLLCALL_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("idle.db").display()),
            )
            .env("ROLLCALL_SYNC_SCHEDULER", "false")
            .env("ROLLCALL_LOG", "warn");
        cmd
    };
    let key = command(&["keys", "create", "--tenant", "bench"]).output()?;
    if !key.status.success() {
        bail!(
            "keys create failed: {}",
            String::from_utf8_lossy(&key.stderr)
        );
    }
    let key = String::from_utf8(key.stdout)?.trim().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let serve = Serve(
        command(&["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start rollcall serve")?,
    );
    let pid = serve.0.id();
    let client = Client::new(&format!("http://127.0.0.1:{port}")).with_api_key(&key);
    for _ in 0..200 {
        if client.readyz().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let empty_mb = status_mb(pid, "VmRSS:");

    let api_key = metabase.fixtures().admin_api_key.clone();
    let base_url = metabase.base_url();
    let started = std::time::Instant::now();
    let mut linking = futures_util::stream::iter(0..accounts)
        .map(|i| {
            let client = client.clone();
            let body = json!({
                "provider": "metabase",
                "label": format!("customer {i}"),
                "tenant_ref": format!("customer-{i}"),
                "config": { "base_url": base_url },
                "credentials": { "api_key": api_key },
            });
            async move { client.create_account(&body).await }
        })
        .buffer_unordered(8);
    let mut linked = 0_usize;
    while let Some(done) = linking.next().await {
        done.context("linking an account")?;
        linked += 1;
    }
    let link_secs = started.elapsed().as_secs_f64();
    // Idle: nothing asked of it for a while.
    tokio::time::sleep(Duration::from_secs(if quick { 2 } else { 10 })).await;
    let idle_mb = status_mb(pid, "VmRSS:");
    let peak_mb = status_mb(pid, "VmHWM:");
    println!(
        "| {linked} linked accounts, idle | RSS {idle_mb:.1} MB (goal ≤ 100) | before any account {empty_mb:.1} MB | peak while linking {peak_mb:.1} MB | linked in {link_secs:.1} s |"
    );
    let name = if quick {
        "idle-memory-quick"
    } else {
        "idle-memory"
    };
    let path = write_result(
        name,
        &json!({
            "scenario": "idle-memory",
            "quick": quick,
            "build": build_profile(),
            "cores": cores(),
            "accounts": linked,
            "idle_rss_mb": round(idle_mb, 1),
            "empty_rss_mb": round(empty_mb, 1),
            "peak_rss_while_linking_mb": round(peak_mb, 1),
            "link_secs": round(link_secs, 1),
            "goal": "idle RSS <= 100 MB",
            "method": "VmRSS of a separate `rollcall serve` (SQLite, scheduler off) after an idle pause",
        }),
    )?;
    println!("results: {}", path.display());
    Ok(())
}
