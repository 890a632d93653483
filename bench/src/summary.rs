//! summary: every scenario's latest result against its goal, written into
//! `docs/performance.md` between the summary markers (the rest of that
//! page, with the how and the why of each figure, is kept as it is).

use std::path::Path;

use anyhow::{Context as _, bail};
use serde_json::Value;

const START: &str = "<!-- bench:summary:start -->";
const END: &str = "<!-- bench:summary:end -->";

enum Goal {
    AtMost(f64),
    AtLeast(f64),
}

struct Line {
    scenario: &'static str,
    measure: String,
    value: Option<f64>,
    goal: Goal,
    build: String,
}

fn load(name: &str, quick: bool) -> Option<Value> {
    let file = if quick {
        format!("{name}-quick.json")
    } else {
        format!("{name}.json")
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("results")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn lines(quick: bool) -> Vec<Line> {
    let mut out = Vec::new();
    let mut add = |scenario, doc: &Value, measure: &str, value: Option<f64>, goal| {
        out.push(Line {
            scenario,
            measure: measure.to_owned(),
            value,
            goal,
            build: doc["build"]
                .as_str()
                .or_else(|| doc["profile"].as_str())
                .unwrap_or("?")
                .to_owned(),
        });
    };
    if let Some(d) = load("proxy", quick) {
        add(
            "proxy",
            &d,
            "Rollcall /proxy throughput ÷ nginx",
            d["proxy_throughput_vs_nginx"].as_f64(),
            Goal::AtLeast(1.0),
        );
        add(
            "proxy",
            &d,
            "Rollcall /proxy p99 ÷ nginx",
            d["proxy_p99_vs_nginx"].as_f64(),
            Goal::AtMost(1.2),
        );
        add(
            "unified",
            &d,
            "unified 100-user page throughput ÷ /proxy",
            d["unified_vs_proxy_throughput"].as_f64(),
            Goal::AtLeast(0.85),
        );
    }
    if let Some(d) = load("mode-sync", quick) {
        for phase in d["phases"].as_array().into_iter().flatten() {
            if let Some(ratio) = phase["ratio"].as_f64() {
                let measure = format!(
                    "Mode sync ({}) ÷ lower bound",
                    phase["phase"].as_str().unwrap_or("?")
                );
                add("sync", &d, &measure, Some(ratio), Goal::AtMost(1.10));
            }
        }
    }
    if let Some(d) = load("metabase-sync", quick) {
        add(
            "sync",
            &d,
            "Metabase first sync ÷ plain download",
            d["ratio"].as_f64(),
            Goal::AtMost(1.5),
        );
        add(
            "sync",
            &d,
            "SQLite alone writing the first sync's rows ÷ plain download (a floor for the line above)",
            d["storage_floor"]["ratio_to_plain_mean"].as_f64(),
            Goal::AtMost(f64::INFINITY),
        );
        add(
            "sync",
            &d,
            "Metabase unchanged sync ÷ plain download",
            d["second_sync_no_changes"]["ratio"].as_f64(),
            Goal::AtMost(1.5),
        );
        add(
            "sync",
            &d,
            "Metabase sync memory increase (MB)",
            d["memory"]["increase_mb"].as_f64(),
            Goal::AtMost(200.0),
        );
    }
    if let Some(d) = load("cache-read", quick) {
        for run in d["runs"].as_array().into_iter().flatten() {
            let users = run["users"].as_u64().unwrap_or(0);
            add(
                "cache",
                &d,
                &format!("cached page p99 ms, {users} users"),
                run["page_p99_ms"].as_f64(),
                Goal::AtMost(10.0),
            );
            add(
                "cache",
                &d,
                &format!("cached page throughput ÷ /healthz, {users} users"),
                run["throughput_vs_healthz"].as_f64(),
                Goal::AtLeast(0.5),
            );
        }
        add(
            "cache",
            &d,
            "cached page p99, large ÷ small",
            d["p99_large_over_small"].as_f64(),
            Goal::AtMost(1.5),
        );
        if let Some(rss) = d["runs"]
            .as_array()
            .and_then(|r| r.last())
            .and_then(|r| r["rss_mb"].as_f64())
        {
            out.push(Line {
                scenario: "memory",
                measure: "RSS during the largest cached-read run (MB, reported)".into(),
                value: Some(rss),
                goal: Goal::AtMost(f64::INFINITY),
                build: d["profile"].as_str().unwrap_or("?").to_owned(),
            });
        }
    }
    if let Some(d) = load("idle-memory", quick) {
        let accounts = d["accounts"].as_u64().unwrap_or(0);
        out.push(Line {
            scenario: "memory",
            measure: format!("idle server RSS with {accounts} accounts (MB)"),
            value: d["idle_rss_mb"].as_f64(),
            goal: Goal::AtMost(100.0),
            build: d["build"].as_str().unwrap_or("?").to_owned(),
        });
    }
    out
}

fn table(quick: bool) -> String {
    let mut text = String::from(
        "| scenario | measure | value | goal | met | build |\n|---|---|---|---|---|---|\n",
    );
    for l in lines(quick) {
        let (goal, met) = match (&l.goal, l.value) {
            (Goal::AtMost(g), _) if g.is_infinite() => ("reported".to_owned(), "–"),
            (Goal::AtMost(g), Some(v)) => {
                (format!("≤ {g}"), if v <= *g { "yes" } else { "**no**" })
            }
            (Goal::AtLeast(g), Some(v)) => {
                (format!("≥ {g}"), if v >= *g { "yes" } else { "**no**" })
            }
            (Goal::AtMost(g), None) => (format!("≤ {g}"), "not run"),
            (Goal::AtLeast(g), None) => (format!("≥ {g}"), "not run"),
        };
        let value = l.value.map_or("–".to_owned(), |v| format!("{v:.3}"));
        text.push_str(&format!(
            "| {} | {} | {value} | {goal} | {met} | {} |\n",
            l.scenario, l.measure, l.build
        ));
    }
    text
}

pub fn run(quick: bool) -> anyhow::Result<()> {
    let text = table(quick);
    print!("{text}");
    if quick {
        // Quick runs prove the suite works; their figures mean nothing.
        return Ok(());
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/performance.md");
    let page = std::fs::read_to_string(&path).context(format!("cannot read {}", path.display()))?;
    let (Some(start), Some(end)) = (page.find(START), page.find(END)) else {
        bail!("{} has no {START} … {END} block", path.display());
    };
    let cores = crate::cores();
    let updated = format!(
        "{}{START}\nLatest full-size run of each scenario ({cores} cores; `bench/run` runs them all). Each ratio is measured side by side within its scenario's run; the sections below give each run's details and what was done about each miss.\n\n{text}{}",
        &page[..start],
        &page[end..]
    );
    std::fs::write(&path, updated)?;
    println!("written into {}", path.display());
    Ok(())
}
