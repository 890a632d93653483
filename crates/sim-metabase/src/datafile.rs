//! Loading users, groups and keys from a JSON file instead of seeding
//! (`--data FILE`). The format is documented in the crate docs.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::MetabaseFixtures;
use crate::MetabaseSimError;
use crate::db::{ADMINS, ALL_USERS, Db, NewUser, Sso, UserKind};
use crate::http::{is_email, normalize_locale};
use crate::seed::Credentials;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataFile {
    #[serde(default)]
    groups: Vec<FileGroup>,
    users: Vec<FileUser>,
    #[serde(default)]
    api_keys: Vec<FileApiKey>,
    #[serde(default)]
    scim_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    name: String,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUser {
    email: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    is_superuser: bool,
    #[serde(default = "yes")]
    is_active: bool,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    sso_source: Option<String>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    login_attributes: Option<Map<String, Value>>,
    #[serde(default)]
    date_joined: Option<Timestamp>,
    #[serde(default)]
    last_login: Option<Timestamp>,
    #[serde(default)]
    is_qbnewb: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApiKey {
    name: String,
    group: String,
    #[serde(default)]
    key: Option<String>,
}

fn bad(path: &Path, message: impl Into<String>) -> MetabaseSimError {
    MetabaseSimError::Data {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn valid_key(key: &str) -> bool {
    key.len() == 47 && key.starts_with("mb_") && key.is_ascii()
}

pub fn load(path: &Path, seed: u64, now: i64) -> Result<(Db, MetabaseFixtures), MetabaseSimError> {
    let text = std::fs::read_to_string(path).map_err(|source| MetabaseSimError::DataFile {
        path: path.to_owned(),
        source,
    })?;
    let file: DataFile = serde_json::from_str(&text)
        .map_err(|e| bad(path, format!("not a valid data file: {e}")))?;
    build(path, file, seed, now)
}

fn build(
    path: &Path,
    file: DataFile,
    seed: u64,
    now: i64,
) -> Result<(Db, MetabaseFixtures), MetabaseSimError> {
    let creds = Credentials::from_seed(seed);
    let mut db = Db::new(seed, now);
    for g in &file.groups {
        if g.name.trim().is_empty() {
            return Err(bad(path, "a group name is blank"));
        }
        db.create_group(&g.name).map_err(|_| {
            bad(
                path,
                format!("group `{}` is listed twice (or is a magic group)", g.name),
            )
        })?;
    }
    let group_id = |db: &Db, name: &str| -> Option<u32> {
        db.groups
            .values()
            .find(|g| g.name.eq_ignore_ascii_case(name))
            .map(|g| g.id)
    };

    let mut emails = HashSet::new();
    let mut admin: Option<(String, String)> = None;
    let mut member: Option<(String, String)> = None;
    for (n, u) in file.users.iter().enumerate() {
        let at = |what: String| bad(path, format!("users[{n}]: {what}"));
        if !is_email(&u.email) {
            return Err(at(format!("`{}` is not an email address", u.email)));
        }
        if !emails.insert(u.email.to_lowercase()) {
            return Err(at(format!("email `{}` is used twice", u.email)));
        }
        let sso_source = match u.sso_source.as_deref() {
            None => None,
            Some(s) => Some(Sso::parse(s).ok_or_else(|| at(format!("unknown sso_source `{s}`")))?),
        };
        let locale = match u.locale.as_deref() {
            None => None,
            Some(l) => {
                Some(normalize_locale(l).ok_or_else(|| at(format!("unknown locale `{l}`")))?)
            }
        };
        if u.login_attributes
            .as_ref()
            .is_some_and(|m| m.keys().any(|k| k.starts_with('@')))
        {
            return Err(at("login attribute keys must not start with `@`".into()));
        }
        let mut wanted = BTreeSet::from([ALL_USERS]);
        if u.is_superuser {
            wanted.insert(ADMINS);
        }
        for g in &u.groups {
            let id = group_id(&db, g).ok_or_else(|| at(format!("unknown group `{g}`")))?;
            if id == ADMINS && !u.is_superuser {
                return Err(at("in Administrators but not is_superuser".into()));
            }
            wanted.insert(id);
        }
        let joined = u.date_joined.map_or(now, |t| t.as_millisecond());
        let password = u
            .password
            .clone()
            .unwrap_or_else(|| format!("unusable-{}", db.rng.hex(16)));
        let id = db.create_user(
            NewUser {
                email: u.email.clone(),
                first_name: u.first_name.clone(),
                last_name: u.last_name.clone(),
                password,
                kind: UserKind::Personal,
                is_active: u.is_active,
                sso_source,
                locale,
                login_attributes: u.login_attributes.clone(),
            },
            joined,
        );
        db.set_user_groups(id, &wanted, joined)
            .map_err(|_| at("cannot place the user in its groups".into()))?;
        if let Some(user) = db.user_mut(id) {
            user.last_login = u.last_login.map(|t| t.as_millisecond());
            user.first_login = user.last_login;
            user.updated_at = user.last_login.unwrap_or(joined).max(joined);
            user.is_qbnewb = u.is_qbnewb.unwrap_or(user.last_login.is_none());
        }
        if let (true, Some(pw)) = (u.is_active, &u.password) {
            let slot = if u.is_superuser {
                &mut admin
            } else {
                &mut member
            };
            if slot.is_none() {
                *slot = Some((u.email.to_lowercase(), pw.clone()));
            }
        }
    }
    if !db.users.iter().any(|u| u.is_superuser && u.is_active) {
        return Err(bad(
            path,
            "needs at least one active user with is_superuser: true",
        ));
    }
    let (admin_email, admin_password) = admin.ok_or_else(|| {
        bad(
            path,
            "needs an active superuser with a password (the admin fixture)",
        )
    })?;
    let (member_email, member_password) = member.ok_or_else(|| {
        bad(
            path,
            "needs an active non-superuser with a password (the member fixture)",
        )
    })?;

    let mut names = HashSet::new();
    let mut admin_key = None;
    let mut member_key = None;
    for (n, k) in file.api_keys.iter().enumerate() {
        let at = |what: String| bad(path, format!("api_keys[{n}]: {what}"));
        if k.name.trim().is_empty() || !names.insert(k.name.clone()) {
            return Err(at(format!("name `{}` is blank or used twice", k.name)));
        }
        let group =
            group_id(&db, &k.group).ok_or_else(|| at(format!("unknown group `{}`", k.group)))?;
        if let Some(key) = &k.key
            && !valid_key(key)
        {
            return Err(at("a key is `mb_` and 44 base64 characters".into()));
        }
        let id = db
            .create_api_key(&k.name, group, k.key.clone(), 1, now)
            .map_err(|_| at("cannot create the key".into()))?;
        let secret = db.api_keys.get(&id).map(|a| a.key.clone());
        let slot = if group == ADMINS {
            &mut admin_key
        } else {
            &mut member_key
        };
        if slot.is_none() {
            *slot = secret;
        }
    }
    let first_custom = db
        .groups
        .keys()
        .copied()
        .find(|&g| g > ADMINS)
        .unwrap_or(ALL_USERS);
    let admin_api_key = match admin_key {
        Some(k) => k,
        None => {
            let id = db
                .create_api_key(
                    "Rollcall admin",
                    ADMINS,
                    Some(creds.admin_api_key.clone()),
                    1,
                    now,
                )
                .map_err(|_| bad(path, "cannot create the admin API key"))?;
            db.api_keys
                .get(&id)
                .map(|a| a.key.clone())
                .unwrap_or_default()
        }
    };
    let member_api_key = match member_key {
        Some(k) => k,
        None => {
            let id = db
                .create_api_key(
                    "Rollcall member",
                    first_custom,
                    Some(creds.member_api_key.clone()),
                    1,
                    now,
                )
                .map_err(|_| bad(path, "cannot create the member API key"))?;
            db.api_keys
                .get(&id)
                .map(|a| a.key.clone())
                .unwrap_or_default()
        }
    };
    let scim_key = match file.scim_key {
        Some(k) if valid_key(&k) => k,
        Some(_) => return Err(bad(path, "scim_key is `mb_` and 44 base64 characters")),
        None => creds.scim_key.clone(),
    };
    db.scim.key = Some(scim_key.clone());
    db.scim.key_id = db.reserve_api_key_id();
    Ok((
        db,
        MetabaseFixtures {
            admin_email,
            admin_password,
            member_email,
            member_password,
            admin_api_key,
            member_api_key,
            scim_key,
            seeded_password: creds.seeded_password,
        },
    ))
}
