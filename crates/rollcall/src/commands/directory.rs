//! `rollcall users|groups|members`: the unified API of a running server,
//! as tables or JSON.

use std::process::ExitCode;

use rollcall_client::{Client, Page, encode};
use serde::Serialize;

use crate::cli::{GroupsCommand, MembersCommand, Target, UsersCommand};

pub(crate) fn client(target: &Target) -> Client {
    Client::new(&target.url).with_api_key(&target.api_key)
}

/// Fetches one page, or every page with `all`.
async fn collect<T, F, Fut>(
    limit: u32,
    all: bool,
    base_query: String,
    fetch: F,
) -> anyhow::Result<(Vec<T>, bool)>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, rollcall_client::ClientError>>,
{
    let mut items = Vec::new();
    let mut partial = false;
    let mut cursor: Option<String> = None;
    loop {
        let mut query = format!("limit={limit}{base_query}");
        if let Some(c) = &cursor {
            query.push_str(&format!("&next_cursor={}", encode(c)));
        }
        let page = fetch(query).await?;
        partial |= page.is_partial_response;
        items.extend(page.result);
        match page.next_cursor {
            Some(next) if all => cursor = Some(next),
            _ => break,
        }
    }
    Ok((items, partial))
}

fn opt(name: &str, value: Option<&str>) -> String {
    value
        .map(|v| format!("&{name}={}", encode(v)))
        .unwrap_or_default()
}

/// Writes a line to stdout. A reader that went away (`| head`) ends the
/// output quietly instead of panicking as `println!` would.
pub(crate) fn out(line: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
}

pub(crate) fn finish(result: std::io::Result<()>) -> anyhow::Result<ExitCode> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        other => {
            other?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<ExitCode> {
    finish(out(&serde_json::to_string_pretty(value)?))
}

/// Left-aligned columns sized to their widest cell.
pub(crate) fn print_table(headers: &[&str], rows: Vec<Vec<String>>) -> std::io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    out(&line(headers.iter().map(|h| h.to_uppercase()).collect()))?;
    for row in rows {
        out(&line(row))?;
    }
    Ok(())
}

pub(crate) fn dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

pub async fn users(command: UsersCommand) -> anyhow::Result<ExitCode> {
    match command {
        UsersCommand::List {
            target,
            status,
            email,
            admin,
            group,
            limit,
            all,
            cache,
        } => {
            let client = client(&target);
            let filters = format!(
                "{}{}{}{}{}",
                if cache { "&source=cache" } else { "" },
                opt("status", status.as_deref()),
                opt("email", email.as_deref()),
                opt("is_admin", admin.map(|a| a.to_string()).as_deref()),
                opt("group_id", group.as_deref())
            );
            let (users, partial) = collect(limit, all, filters, |q| {
                let client = client.clone();
                let account = target.account.clone();
                async move { client.users(&account, &q).await }
            })
            .await?;
            if target.json {
                return print_json(&users);
            }
            let printed = print_table(
                &[
                    "id",
                    "username",
                    "email",
                    "name",
                    "status",
                    "admin",
                    "last active",
                ],
                users
                    .iter()
                    .map(|u| {
                        vec![
                            u.id.clone(),
                            dash(u.username.as_deref()),
                            dash(u.email.as_deref()),
                            dash(u.name.as_deref()),
                            u.status.as_str().to_owned(),
                            if u.is_admin {
                                "yes".into()
                            } else {
                                "no".into()
                            },
                            dash(u.last_active_at.as_deref()),
                        ]
                    })
                    .collect(),
            );
            if partial {
                eprintln!(
                    "(the vendor's list leaves some fields out; `rollcall users get` has them all)"
                );
            }
            finish(printed)
        }
        UsersCommand::Get { target, id } => {
            let user = client(&target).user(&target.account, &id).await?;
            if target.json {
                return print_json(&user);
            }
            let groups = user.groups.as_ref().map(|g| {
                g.iter()
                    .map(|r| r.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            let roles = user
                .roles
                .iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
                .join(", ");
            let printed = print_table(
                &["field", "value"],
                vec![
                    vec!["id".into(), user.id.clone()],
                    vec!["username".into(), dash(user.username.as_deref())],
                    vec!["email".into(), dash(user.email.as_deref())],
                    vec!["name".into(), dash(user.name.as_deref())],
                    vec!["status".into(), user.status.as_str().to_owned()],
                    vec!["admin".into(), user.is_admin.to_string()],
                    vec!["roles".into(), roles],
                    vec!["groups".into(), dash(groups.as_deref())],
                    vec!["last active".into(), dash(user.last_active_at.as_deref())],
                ],
            );
            finish(printed)
        }
    }
}

pub async fn groups(command: GroupsCommand) -> anyhow::Result<ExitCode> {
    match command {
        GroupsCommand::List { target, limit, all } => {
            let client = client(&target);
            let (groups, _) = collect(limit, all, String::new(), |q| {
                let client = client.clone();
                let account = target.account.clone();
                async move { client.groups(&account, &q).await }
            })
            .await?;
            if target.json {
                return print_json(&groups);
            }
            let printed = print_table(
                &["id", "name", "members", "built-in"],
                groups
                    .iter()
                    .map(|g| {
                        vec![
                            g.id.clone(),
                            g.name.clone(),
                            g.member_count.map_or("-".into(), |c| c.to_string()),
                            if g.is_builtin {
                                "yes".into()
                            } else {
                                "no".into()
                            },
                        ]
                    })
                    .collect(),
            );
            finish(printed)
        }
        GroupsCommand::Get { target, id } => {
            let group = client(&target).group(&target.account, &id).await?;
            if target.json {
                return print_json(&group);
            }
            let printed = print_table(
                &["id", "name", "members", "built-in"],
                vec![vec![
                    group.id.clone(),
                    group.name.clone(),
                    group.member_count.map_or("-".into(), |c| c.to_string()),
                    group.is_builtin.to_string(),
                ]],
            );
            finish(printed)
        }
    }
}

pub async fn members(command: MembersCommand) -> anyhow::Result<ExitCode> {
    match command {
        MembersCommand::List {
            target,
            group,
            user,
            limit,
            all,
        } => {
            let client = client(&target);
            let filters = format!(
                "{}{}",
                opt("group_id", group.as_deref()),
                opt("user_id", user.as_deref())
            );
            let (memberships, _) = collect(limit, all, filters, |q| {
                let client = client.clone();
                let account = target.account.clone();
                async move { client.memberships(&account, &q).await }
            })
            .await?;
            if target.json {
                return print_json(&memberships);
            }
            let printed = print_table(
                &["id", "group", "user"],
                memberships
                    .iter()
                    .map(|m| vec![m.id.clone(), m.group_id.clone(), m.user_id.clone()])
                    .collect(),
            );
            finish(printed)
        }
        MembersCommand::Add {
            target,
            group,
            user,
        } => {
            let membership = client(&target)
                .add_member(&target.account, &group, &user)
                .await?;
            if target.json {
                return print_json(&membership);
            }
            finish(out(&format!(
                "{} is a member of {} ({})",
                membership.user_id, membership.group_id, membership.id
            )))
        }
        MembersCommand::Remove {
            target,
            group,
            user,
        } => {
            client(&target)
                .remove_member(&target.account, &group, &user)
                .await?;
            if target.json {
                return Ok(ExitCode::SUCCESS);
            }
            finish(out(&format!("{user} removed from {group}")))
        }
    }
}
