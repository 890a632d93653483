//! proxy: one small Metabase call (`GET /api/user/current`) under the same
//! `wrk` load directly at the simulator, through nginx configured as a
//! reverse proxy that injects the same credential header, and through
//! Rollcall's `/proxy`. Goals: Rollcall's throughput ≥ 1.0× nginx's, its p99
//! ≤ 1.2× nginx's.
//!
//! unified: a 100-user page through the unified API (live) against the same
//! vendor page through `/proxy`. Goal: ≥ 0.85× the proxy's throughput.

use rollcall_sim_metabase::{MetabaseSim, MetabaseSimConfig};
use serde_json::json;

use crate::http_load::{Load, Nginx, wrk};
use crate::{build_profile, cores, round, start_rollcall, write_result};

const CONNECTIONS: u32 = 16;

fn row(name: &str, l: &Load) -> serde_json::Value {
    json!({
        "target": name,
        "per_sec": round(l.per_sec, 1),
        "p50_ms": round(l.p50_ms, 3),
        "p99_ms": round(l.p99_ms, 3),
        "errors": l.errors,
    })
}

pub async fn run(quick: bool) -> anyhow::Result<()> {
    let secs = if quick { 2 } else { 10 };
    let metabase = MetabaseSim::new(MetabaseSimConfig {
        users: 300,
        ..MetabaseSimConfig::default()
    })?
    .start("127.0.0.1:0".parse()?)
    .await?;
    let rc = start_rollcall().await?;
    let api_key = metabase.fixtures().admin_api_key.clone();
    let account = rc
        .client
        .create_account(&json!({
            "provider": "metabase",
            "config": { "base_url": metabase.base_url() },
            "credentials": { "api_key": api_key },
        }))
        .await?;
    let upstream = metabase
        .base_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let nginx = Nginx::start(&upstream, ("X-API-KEY", &api_key)).await?;
    let bearer = format!("Bearer {}", rc.key);
    let small = "/api/user/current";

    // Each target warmed up first (connections, caches), then measured.
    let measure = |url: String, headers: Vec<(&'static str, String)>| {
        let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        wrk(&url, &h, CONNECTIONS, 1)?;
        wrk(&url, &h, CONNECTIONS, secs)
    };
    let direct = measure(
        format!("{}{small}", metabase.base_url().trim_end_matches('/')),
        vec![("X-API-KEY", api_key.clone())],
    )?;
    let via_nginx = measure(format!("{}{small}", nginx.url), vec![])?;
    let via_rollcall = measure(
        format!("{}/proxy/{}{small}", rc.api, account.id),
        vec![("Authorization", bearer.clone())],
    )?;
    let proxy_page = measure(
        format!("{}/proxy/{}/api/user?limit=100", rc.api, account.id),
        vec![("Authorization", bearer.clone())],
    )?;
    let unified_page = measure(
        format!(
            "{}/unified/user-directory/users?integrated_account_id={}&limit=100",
            rc.api, account.id
        ),
        vec![("Authorization", bearer.clone())],
    )?;

    let throughput = via_rollcall.per_sec / via_nginx.per_sec;
    let p99 = via_rollcall.p99_ms / via_nginx.p99_ms;
    let unified = unified_page.per_sec / proxy_page.per_sec;
    println!("| target | req/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|");
    for (name, l) in [
        ("simulator directly", &direct),
        ("nginx", &via_nginx),
        ("Rollcall /proxy", &via_rollcall),
        ("100-user page via /proxy", &proxy_page),
        ("100-user page via unified", &unified_page),
    ] {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {} |",
            l.per_sec, l.p50_ms, l.p99_ms, l.errors
        );
    }
    println!(
        "proxy throughput vs nginx {throughput:.2} (goal ≥ 1.0); p99 vs nginx {p99:.2} (goal ≤ 1.2); unified vs proxy throughput {unified:.2} (goal ≥ 0.85)"
    );
    let name = if quick { "proxy-quick" } else { "proxy" };
    let path = write_result(
        name,
        &json!({
            "scenario": "proxy",
            "quick": quick,
            "build": build_profile(),
            "cores": cores(),
            "wrk": { "threads": 2, "connections": CONNECTIONS, "seconds": secs },
            "runs": [
                row("direct", &direct),
                row("nginx", &via_nginx),
                row("rollcall_proxy", &via_rollcall),
                row("proxy_page_100", &proxy_page),
                row("unified_page_100", &unified_page),
            ],
            "proxy_throughput_vs_nginx": round(throughput, 3),
            "proxy_p99_vs_nginx": round(p99, 3),
            "unified_vs_proxy_throughput": round(unified, 3),
        }),
    )?;
    println!("results: {}", path.display());
    drop(nginx);
    Ok(())
}
