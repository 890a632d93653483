//! `rollcall reports`, `grants`, `plan` and `apply`: governance through a
//! running server, as readable tables or `--json`.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use rollcall_client::{Client, Plan};
use serde_json::{Value, json};

use super::directory::{dash, finish, out, print_json, print_table};
use crate::cli::{ApplyArgs, GrantsCommand, PlanArgs, ReportKind, ReportsArgs, Server, Target};

fn client(url: &str, key: &str) -> Client {
    Client::new(url).with_api_key(key)
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub async fn reports(args: ReportsArgs) -> anyhow::Result<ExitCode> {
    let ReportsArgs {
        server,
        report,
        days,
        csv,
    } = args;
    let api = client(&server.url, &server.api_key);
    let (name, query) = match report {
        ReportKind::People => ("people", String::new()),
        ReportKind::Admins => ("admins", String::new()),
        ReportKind::Inactive => ("inactive", format!("days={days}")),
    };
    if csv {
        let body = api.report_csv(name, &query).await?;
        return finish(out(body.trim_end()));
    }
    // Every page, so the table is the whole report.
    let mut rows: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = format!("limit=1000&{query}");
        if let Some(c) = &cursor {
            q.push_str(&format!("&next_cursor={}", rollcall_client::encode(c)));
        }
        let page = api.report(name, &q).await?;
        rows.extend(page.result);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if server.json {
        return print_json(&rows);
    }
    let table = match report {
        ReportKind::People => {
            let lines = rows
                .iter()
                .map(|p| {
                    let accounts = p["accounts"].as_array().cloned().unwrap_or_default();
                    let summary = accounts
                        .iter()
                        .map(|a| {
                            let admin = if a["is_admin"] == true { ",admin" } else { "" };
                            format!("{}:{}{admin}", text(&a["provider"]), text(&a["status"]))
                        })
                        .collect::<Vec<_>>()
                        .join(" ");
                    vec![
                        text(&p["email"]),
                        text(&p["name"]),
                        accounts.len().to_string(),
                        summary,
                        text(&p["last_active_at"]),
                    ]
                })
                .collect();
            print_table(
                &["email", "name", "accounts", "status", "last active"],
                lines,
            )
        }
        ReportKind::Admins | ReportKind::Inactive => {
            let lines = rows
                .iter()
                .map(|u| {
                    vec![
                        text(&u["provider"]),
                        text(&u["account_label"]),
                        text(&u["user_id"]),
                        text(&u["email"]),
                        text(&u["status"]),
                        text(&u["last_active_at"]),
                        if report == ReportKind::Inactive {
                            text(&u["activity"])
                        } else {
                            u["roles"]
                                .as_array()
                                .map(|r| r.iter().map(text).collect::<Vec<_>>().join(","))
                                .unwrap_or_default()
                        },
                    ]
                })
                .collect();
            let last = if report == ReportKind::Inactive {
                "activity"
            } else {
                "roles"
            };
            print_table(
                &[
                    "provider",
                    "account",
                    "user",
                    "email",
                    "status",
                    "last active",
                    last,
                ],
                lines,
            )
        }
    };
    eprintln!("{} rows", rows.len());
    finish(table)
}

/// `90m`, `8h`, `2d`, `3600s` or plain seconds.
fn parse_duration(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .with_context(|| format!("`{text}` is not a duration like 90m, 8h or 2d"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => bail!("unknown duration unit `{other}` (use s, m, h or d)"),
    };
    Ok(n.saturating_mul(unit))
}

fn grant_row(g: &rollcall_client::Grant) -> Vec<String> {
    vec![
        g.id.clone(),
        g.status.clone(),
        g.user_id.clone(),
        g.group_id.clone(),
        g.expires_at.clone(),
        dash(g.reason.as_deref()),
        dash(g.last_error.as_deref()),
    ]
}

const GRANT_HEADERS: &[&str] = &[
    "id", "status", "user", "group", "expires", "reason", "error",
];

pub async fn grants(command: GrantsCommand) -> anyhow::Result<ExitCode> {
    match command {
        GrantsCommand::Create {
            target,
            user,
            group,
            duration,
            expires_at,
            reason,
        } => {
            let Target {
                url,
                api_key,
                account,
                json,
            } = target;
            let mut body = json!({
                "integrated_account_id": account,
                "user_id": user,
                "group_id": group,
                "reason": reason,
            });
            match (duration, expires_at) {
                (Some(d), _) => body["duration_seconds"] = json!(parse_duration(&d)?),
                (None, Some(at)) => body["expires_at"] = json!(at),
                (None, None) => bail!("give --duration or --expires-at"),
            }
            let grant = client(&url, &api_key).create_grant(&body).await?;
            if json {
                return print_json(&grant);
            }
            if grant.membership_preexisted {
                eprintln!("the user was already in the group; it stays after the grant ends");
            }
            finish(print_table(GRANT_HEADERS, vec![grant_row(&grant)]))
        }
        GrantsCommand::List { server, status } => {
            let api = client(&server.url, &server.api_key);
            let mut grants = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut q = "limit=1000".to_owned();
                if let Some(s) = &status {
                    q.push_str(&format!("&status={}", rollcall_client::encode(s)));
                }
                if let Some(c) = &cursor {
                    q.push_str(&format!("&next_cursor={}", rollcall_client::encode(c)));
                }
                let page = api.grants(&q).await?;
                grants.extend(page.result);
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            if server.json {
                return print_json(&grants);
            }
            finish(print_table(
                GRANT_HEADERS,
                grants.iter().map(grant_row).collect(),
            ))
        }
        GrantsCommand::Revoke { server, id } => {
            let grant = client(&server.url, &server.api_key)
                .revoke_grant(&id)
                .await?;
            if server.json {
                return print_json(&grant);
            }
            finish(print_table(GRANT_HEADERS, vec![grant_row(&grant)]))
        }
    }
}

/// A desired-state file: `groups:` (and optionally `prune:`), as YAML or JSON.
fn desired_from_file(path: &std::path::Path) -> anyhow::Result<(Value, Option<bool>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    // YAML is a superset of JSON, so one parser reads both.
    let mut doc: Value = serde_norway::from_str(&text)
        .with_context(|| format!("{} is not valid YAML or JSON", path.display()))?;
    let Some(map) = doc.as_object_mut() else {
        bail!("{} must be a mapping with a `groups:` key", path.display());
    };
    let prune = match map.remove("prune") {
        None => None,
        Some(Value::Bool(b)) => Some(b),
        Some(other) => bail!("prune must be true or false, not {other}"),
    };
    if !map.contains_key("groups") {
        bail!(
            "{} has no `groups:` key (expected groups: {{<group name or id>: [emails]}})",
            path.display()
        );
    }
    Ok((doc, prune))
}

fn print_plan(plan: &Plan, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        return print_json(plan);
    }
    let results = plan.results.as_deref().unwrap_or_default();
    let rows = plan
        .changes
        .iter()
        .map(|c| {
            let result = results.iter().find(|r| r.index == c.index);
            let mut row = vec![
                c.index.to_string(),
                c.action.clone(),
                dash(c.email.as_deref().or(Some(c.user_id.as_str()))),
                dash(c.group_name.as_deref()),
                c.reason.clone(),
            ];
            if plan.results.is_some() {
                row.push(result.map_or("-".to_owned(), |r| {
                    let detail = r
                        .error
                        .as_ref()
                        .and_then(|e| e["message"].as_str().map(str::to_owned))
                        .or_else(|| r.detail.clone());
                    match detail {
                        Some(d) => format!("{}: {d}", r.status),
                        None => r.status.clone(),
                    }
                }));
            }
            row
        })
        .collect();
    let mut headers = vec!["#", "action", "user", "group", "why"];
    if plan.results.is_some() {
        headers.push("result");
    }
    print_table(&headers, rows)?;
    for warning in &plan.warnings {
        eprintln!("warning: {warning}");
    }
    eprintln!(
        "plan {} ({}, {}): {} changes",
        plan.id,
        plan.kind,
        plan.status,
        plan.changes.len()
    );
    if plan.status == "planned" && !plan.changes.is_empty() {
        eprintln!("apply it with: rollcall apply {}", plan.id);
    }
    Ok(if plan.status == "failed" {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub async fn plan(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let PlanArgs {
        target,
        file,
        prune,
        deprovision_inactive,
        days,
        include_admins,
    } = args;
    let body = if deprovision_inactive {
        json!({
            "integrated_account_id": target.account,
            "kind": "deprovision_inactive",
            "desired": { "days": days, "include_admins": include_admins },
        })
    } else {
        let Some(file) = file else {
            bail!("give -f desired.yaml (a group sync) or --deprovision-inactive");
        };
        let (desired, file_prune) = desired_from_file(&file)?;
        json!({
            "integrated_account_id": target.account,
            "kind": "group_sync",
            "desired": desired,
            "prune": prune || file_prune.unwrap_or(false),
        })
    };
    let plan = client(&target.url, &target.api_key)
        .create_plan(&body)
        .await?;
    print_plan(&plan, target.json)
}

pub async fn apply(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let ApplyArgs { server, plan_id } = args;
    let Server { url, api_key, json } = server;
    let plan = client(&url, &api_key).apply_plan(&plan_id).await?;
    print_plan(&plan, json)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_units() {
        assert_eq!(parse_duration("90m").unwrap(), 5400);
        assert_eq!(parse_duration("8h").unwrap(), 28_800);
        assert_eq!(parse_duration("2d").unwrap(), 172_800);
        assert_eq!(parse_duration("45").unwrap(), 45);
        assert!(parse_duration("3 weeks").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn desired_files_read_as_yaml_or_json() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("desired.yaml");
        std::fs::write(
            &yaml,
            "prune: true\ngroups:\n  Analysts:\n    - a@x.example\n",
        )
        .unwrap();
        let (doc, prune) = desired_from_file(&yaml).unwrap();
        assert_eq!(prune, Some(true));
        assert_eq!(doc, json!({"groups": {"Analysts": ["a@x.example"]}}));
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "teams: {}\n").unwrap();
        assert!(desired_from_file(&bad).is_err());
    }
}
