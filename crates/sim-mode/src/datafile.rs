//! Loading users and groups from a JSON file (`--data FILE`). The format is
//! documented in the crate docs; every problem is reported with the file
//! name, never a panic.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use crate::ModeSimError;
use crate::config::validate_workspace_name;
use crate::store::{
    DATA_ANCHOR_MS, GroupState, MemberState, Membership, Named, Store, new_named, to_u32,
};
use crate::tokens::parse_hex12;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataFile {
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    workspace_name: Option<String>,
    #[serde(default)]
    users: Vec<FileUser>,
    #[serde(default)]
    groups: Vec<FileGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUser {
    username: String,
    #[serde(default)]
    name: Option<String>,
    email: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    state: FileState,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    activated_at: Option<String>,
    #[serde(default)]
    banned_at: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FileState {
    #[default]
    Active,
    Pending,
    Deactivated,
    /// A user in no workspace (like the outsider).
    None,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    name: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    state: FileGroupState,
    #[serde(default)]
    creator: Option<String>,
    #[serde(default)]
    members: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FileGroupState {
    #[default]
    Active,
    SoftDeleted,
}

struct Planned {
    person: Named,
    created_ms: i64,
    membership: Option<Membership>,
    token: Option<u64>,
}

pub(crate) fn load(path: &Path, default_workspace: &str, seed: u64) -> Result<Store, ModeSimError> {
    let text = std::fs::read_to_string(path).map_err(|source| ModeSimError::DataRead {
        path: path.to_owned(),
        source,
    })?;
    let fail = |message: String| ModeSimError::DataFormat {
        path: path.to_owned(),
        message,
    };
    let file: DataFile = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
    let workspace = file.workspace.as_deref().unwrap_or(default_workspace);
    validate_workspace_name(workspace).map_err(|e| fail(e.to_string()))?;
    let mut store = Store::empty(workspace, file.workspace_name.as_deref(), seed);
    let domain = store.workspace.domain.clone();

    let mut planned = Vec::with_capacity(file.users.len() + 3);
    let mut usernames = HashSet::new();
    let mut emails = HashSet::new();
    for (n, user) in file.users.into_iter().enumerate() {
        let at = |what: &str| format!("users[{n}] ({}): {what}", user.username);
        let valid_name = !user.username.is_empty()
            && user.username.len() <= 64
            && user
                .username
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid_name || store.username_taken(&user.username) {
            return Err(fail(at(
                "usernames need letters, digits, `_`, `.` or `-` and must not be the workspace or a reserved path",
            )));
        }
        if !usernames.insert(user.username.clone()) {
            return Err(fail(at("duplicate username")));
        }
        if !is_email(&user.email) || !emails.insert(user.email.to_ascii_lowercase()) {
            return Err(fail(at("missing, malformed or duplicate email")));
        }
        let token = match &user.token {
            None => None,
            Some(t) => Some(
                parse_hex12(t)
                    .ok_or_else(|| fail(at("token must be 12 lowercase hex characters")))?,
            ),
        };
        let time = |field: &Option<String>, default: i64| -> Result<i64, ModeSimError> {
            match field {
                None => Ok(default),
                Some(t) => t
                    .parse::<jiff::Timestamp>()
                    .map(|ts| ts.as_millisecond())
                    .map_err(|e| fail(at(&format!("bad time `{t}`: {e}")))),
            }
        };
        let created_ms = time(&user.created_at, DATA_ANCHOR_MS)?;
        let activated_ms = time(&user.activated_at, created_ms)?;
        let state = match user.state {
            FileState::Active => Some(MemberState::Active),
            FileState::Pending => Some(MemberState::Pending),
            FileState::Deactivated => Some(MemberState::Deactivated),
            FileState::None => None,
        };
        let banned_ms = if state == Some(MemberState::Deactivated) {
            Some(time(&user.banned_at, activated_ms)?)
        } else {
            None
        };
        let membership = state.map(|state| Membership {
            admin: user.admin,
            invited: state == MemberState::Pending,
            state,
            activated_ms,
            banned_ms,
        });
        let fixture_ok = match user.username.as_str() {
            "alice" => membership
                .as_ref()
                .is_some_and(|m| m.admin && m.state == MemberState::Active),
            "bob" => membership
                .as_ref()
                .is_some_and(|m| !m.admin && m.state == MemberState::Active),
            "outsider" => membership.is_none(),
            _ => true,
        };
        if !fixture_ok {
            return Err(fail(at(
                "the fixture users must keep their roles: alice an active admin, bob an active non-admin, outsider in no workspace",
            )));
        }
        planned.push(Planned {
            person: new_named(
                user.username.clone(),
                user.name.unwrap_or_else(|| user.username.clone()),
                user.email,
            ),
            created_ms,
            membership,
            token,
        });
    }

    // The fixture users exist in every dataset; add the ones the file lacks.
    let active = |admin: bool| Membership {
        admin,
        invited: false,
        state: MemberState::Active,
        activated_ms: DATA_ANCHOR_MS,
        banned_ms: None,
    };
    for (username, name, email, membership) in [
        (
            "alice",
            "Alice Admin",
            format!("alice@{domain}"),
            Some(active(true)),
        ),
        (
            "bob",
            "Bob Member",
            format!("bob@{domain}"),
            Some(active(false)),
        ),
        (
            "outsider",
            "Oscar Outsider",
            "oscar@outside.example".to_owned(),
            None,
        ),
    ] {
        if usernames.contains(username) {
            continue;
        }
        if !emails.insert(email.clone()) {
            return Err(fail(format!(
                "email {email} is reserved for the fixture user {username}, which the file does not define"
            )));
        }
        usernames.insert(username.to_owned());
        planned.push(Planned {
            person: new_named(username.to_owned(), name.to_owned(), email),
            created_ms: DATA_ANCHOR_MS,
            membership,
            token: None,
        });
    }

    // Pin every given token before any user exists, so permuted tokens of
    // later users step around them.
    for (i, p) in planned.iter().enumerate() {
        if let Some(token) = p.token
            && !store.user_tokens.pin(to_u32(i), token, 0)
        {
            return Err(fail(format!("user token {token:012x} is used twice")));
        }
    }
    for p in planned {
        let verified = p
            .membership
            .as_ref()
            .is_none_or(|m| m.state != MemberState::Pending);
        store.add_named_user(p.person, p.created_ms, verified, p.membership);
    }
    let find = |name: &str| store.find_username(name).unwrap_or(0);
    let fixtures = crate::store::FixtureUsers {
        alice: find("alice"),
        bob: find("bob"),
        outsider: find("outsider"),
    };
    store.fixtures = fixtures;

    let mut group_names = HashSet::new();
    for (g, group) in file.groups.iter().enumerate() {
        let at = |what: &str| format!("groups[{g}] ({}): {what}", group.name);
        if group.name.trim().is_empty() || !group_names.insert(group.name.clone()) {
            return Err(fail(at("group names must be non-empty and unique")));
        }
        if let Some(t) = &group.token {
            let token = parse_hex12(t)
                .ok_or_else(|| fail(at("token must be 12 lowercase hex characters")))?;
            if !store.group_tokens.pin(to_u32(g), token, 0) {
                return Err(fail(at("group token used twice")));
            }
        }
    }
    for (g, group) in file.groups.into_iter().enumerate() {
        let at = |what: &str| format!("groups[{g}] ({}): {what}", group.name);
        let creator = match &group.creator {
            None => store.fixtures.alice,
            Some(name) => store
                .find_username(name)
                .ok_or_else(|| fail(at(&format!("unknown creator `{name}`"))))?,
        };
        let state = match group.state {
            FileGroupState::Active => GroupState::Active,
            FileGroupState::SoftDeleted => GroupState::SoftDeleted,
        };
        let index = store.add_group(group.name.clone(), state, creator);
        for member in &group.members {
            let user = store
                .find_username(member)
                .filter(|&u| {
                    store
                        .membership(u)
                        .is_some_and(|m| m.state != MemberState::Deactivated)
                })
                .ok_or_else(|| {
                    fail(at(&format!(
                        "member `{member}` is not a current member of the workspace"
                    )))
                })?;
            if store.group_has_user(index, user) {
                return Err(fail(at(&format!("member `{member}` is listed twice"))));
            }
            store.add_group_member(index, user, creator);
        }
    }
    Ok(store)
}

/// The check invites use too: one `@` with text on both sides, no spaces.
pub(crate) fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && text.len() <= 254
        && !text.chars().any(char::is_whitespace)
}
