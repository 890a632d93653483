//! `rollcall sync`: queue a sync and follow it, drawing its progress on
//! stderr (a bar on a terminal, a line per phase otherwise) and printing a
//! summary on stdout. `rollcall events`: the change events.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use rollcall_client::{Client, SyncRun};
use serde_json::Value;

use super::directory::{client, dash, finish, out, print_json, print_table};
use crate::cli::{EventsArgs, SyncArgs};

const POLL: Duration = Duration::from_millis(250);
const BAR_WIDTH: usize = 30;

fn number(value: Option<&Value>) -> Option<u64> {
    value.and_then(Value::as_u64)
}

/// `users  [=========>          ] 1200/2000` or `users 1200` without a total.
fn progress_line(run: &SyncRun) -> String {
    let phase = run.phase.as_deref().unwrap_or(run.status.as_str());
    let progress = run.progress.as_ref();
    let done = number(progress.and_then(|p| p.get("done")));
    let total = number(progress.and_then(|p| p.get("total")));
    match (done, total) {
        (Some(done), Some(total)) if total > 0 => {
            let filled = usize::try_from(done.min(total) * BAR_WIDTH as u64 / total).unwrap_or(0);
            let bar: String = (0..BAR_WIDTH)
                .map(|i| match i.cmp(&filled) {
                    std::cmp::Ordering::Less => '=',
                    std::cmp::Ordering::Equal => '>',
                    std::cmp::Ordering::Greater => ' ',
                })
                .collect();
            format!("{phase:<13} [{bar}] {done}/{total}")
        }
        (Some(done), _) => format!("{phase:<13} {done}"),
        _ => phase.to_owned(),
    }
}

async fn follow(client: &Client, id: &str) -> anyhow::Result<SyncRun> {
    let terminal = std::io::stderr().is_terminal();
    let mut last_phase = String::new();
    loop {
        let run = client.sync_run(id).await?;
        let line = progress_line(&run);
        let mut err = std::io::stderr().lock();
        if terminal {
            // Redraw in place; pad to wipe a longer previous line.
            let _ = write!(err, "\r{line:<60}");
            let _ = err.flush();
        } else {
            let phase = run.phase.clone().unwrap_or_else(|| run.status.clone());
            if phase != last_phase {
                let _ = writeln!(err, "{line}");
                last_phase = phase;
            }
        }
        if run.is_finished() {
            if terminal {
                let _ = writeln!(err);
            }
            return Ok(run);
        }
        drop(err);
        tokio::time::sleep(POLL).await;
    }
}

pub async fn run(args: SyncArgs) -> anyhow::Result<ExitCode> {
    let client = client(&args.target);
    let started = client.start_sync(&args.target.account).await?;
    if !started.queued {
        eprintln!("a sync of this account was already under way; following it");
    }
    if args.no_wait {
        if args.target.json {
            return print_json(&serde_json::json!({ "sync_run_id": started.sync_run_id }));
        }
        return finish(out(&started.sync_run_id));
    }
    let run = follow(&client, &started.sync_run_id).await?;
    let code = if run.status == "succeeded" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if args.target.json {
        let view = serde_json::json!({
            "id": run.id, "status": run.status, "counts": run.counts, "error": run.error,
            "duration_ms": run.duration_ms, "attempts": run.attempts,
        });
        print_json(&view)?;
        return Ok(code);
    }
    let counts = run.counts.clone().unwrap_or(Value::Null);
    let count = |key: &str| number(counts.get(key)).map_or("-".to_owned(), |n| n.to_string());
    let seconds = run
        .duration_ms
        .map_or("-".to_owned(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
    let mut rows = vec![
        vec!["sync run".to_owned(), run.id.clone()],
        vec!["status".to_owned(), run.status.clone()],
        vec!["took".to_owned(), seconds],
    ];
    if let Some(error) = &run.error {
        rows.push(vec!["error".to_owned(), error.clone()]);
    } else {
        for key in [
            "users",
            "groups",
            "memberships",
            "roles",
            "events",
            "user_details_fetched",
        ] {
            rows.push(vec![key.replace('_', " "), count(key)]);
        }
    }
    finish(print_table(&["", ""], rows))?;
    Ok(code)
}

pub async fn events(args: EventsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.server.url).with_api_key(&args.server.api_key);
    let page = client.events(args.after.as_deref(), args.limit).await?;
    if args.server.json {
        let events: Vec<Value> = page
            .result
            .iter()
            .map(|e| {
                serde_json::json!({
                    "id": e.id, "type": e.event_type, "integrated_account_id": e.integrated_account_id,
                    "occurred_at": e.occurred_at, "data": e.data,
                })
            })
            .collect();
        return print_json(&serde_json::json!({
            "result": events, "next_cursor": page.next_cursor, "has_more": page.has_more,
        }));
    }
    let rows = page
        .result
        .iter()
        .map(|e| {
            vec![
                e.occurred_at.clone(),
                e.event_type.clone(),
                dash(e.integrated_account_id.as_deref()),
                dash(e.data.get("object_id").and_then(Value::as_str)),
            ]
        })
        .collect();
    let printed = print_table(&["at", "type", "account", "object"], rows)
        .and_then(|()| out(&format!("next: --after {}", page.next_cursor)));
    finish(printed)
}
