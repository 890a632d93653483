//! `rollcall webhooks`: subscriptions and deliveries through a running
//! server, and `verify`, the check a receiver runs on each delivery.

use std::io::Read as _;
use std::process::ExitCode;

use rollcall_client::Client;
use rollcall_core::{Clock as _, SystemClock};

use super::directory::{dash, finish, out, print_json, print_table};
use crate::cli::{Server, WebhooksCommand};

fn client(server: &Server) -> Client {
    Client::new(&server.url).with_api_key(&server.api_key)
}

pub async fn run(command: WebhooksCommand) -> anyhow::Result<ExitCode> {
    match command {
        WebhooksCommand::Create {
            server,
            url,
            events,
        } => {
            let events: Vec<&str> = events.iter().map(String::as_str).collect();
            let hook = client(&server).create_webhook(&url, &events).await?;
            if server.json {
                return print_json(&serde_json::json!({
                    "id": hook.id, "url": hook.url, "events": hook.events,
                    "created_at": hook.created_at, "secret": hook.secret,
                }));
            }
            eprintln!(
                "webhook {} created; its signing secret (shown only now):",
                hook.id
            );
            finish(out(hook.secret.as_deref().unwrap_or("")))
        }
        WebhooksCommand::List { server } => {
            let page = client(&server).webhooks().await?;
            if server.json {
                let hooks: Vec<_> = page
                    .result
                    .iter()
                    .map(|h| serde_json::json!({"id": h.id, "url": h.url, "events": h.events, "created_at": h.created_at}))
                    .collect();
                return print_json(&hooks);
            }
            let rows = page
                .result
                .iter()
                .map(|h| vec![h.id.clone(), h.url.clone(), h.events.join(",")])
                .collect();
            finish(print_table(&["id", "url", "events"], rows))
        }
        WebhooksCommand::Delete { server, id } => {
            client(&server).delete_webhook(&id).await?;
            eprintln!("webhook {id} deleted");
            Ok(ExitCode::SUCCESS)
        }
        WebhooksCommand::Deliveries { server, id } => {
            let page = client(&server).deliveries(&id).await?;
            if server.json {
                let rows: Vec<_> = page
                    .result
                    .iter()
                    .map(|d| serde_json::json!({
                        "id": d.id, "event_id": d.event_id, "status": d.status, "attempts": d.attempts,
                        "last_status": d.last_status, "last_error": d.last_error,
                        "next_attempt_at": d.next_attempt_at, "delivered_at": d.delivered_at,
                    }))
                    .collect();
                return print_json(&rows);
            }
            let rows = page
                .result
                .iter()
                .map(|d| {
                    vec![
                        d.id.clone(),
                        d.event_id.clone(),
                        d.status.clone(),
                        d.attempts.to_string(),
                        d.last_status.map_or("-".into(), |s| s.to_string()),
                        dash(d.last_error.as_deref()),
                    ]
                })
                .collect();
            finish(print_table(
                &[
                    "id",
                    "event",
                    "status",
                    "attempts",
                    "last status",
                    "last error",
                ],
                rows,
            ))
        }
        WebhooksCommand::Verify {
            secret,
            signature,
            body,
            tolerance,
        } => {
            let mut raw = Vec::new();
            if body.as_os_str() == "-" {
                std::io::stdin().read_to_end(&mut raw)?;
            } else {
                raw = std::fs::read(&body)?;
            }
            let now = SystemClock.now().as_second();
            match rollcall_jobs::webhooks::verify(
                secret.as_bytes(),
                &signature,
                &raw,
                now,
                tolerance,
            ) {
                Ok(()) => {
                    eprintln!("signature valid");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("signature invalid: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
