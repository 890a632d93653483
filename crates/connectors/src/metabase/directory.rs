//! The unified User Directory over Metabase's REST API (`/api/user`,
//! `/api/permissions/group`, `/api/permissions/membership`). The mapping,
//! the limits and the calls each operation makes are documented in
//! `docs/providers/metabase.md`.
//!
//! Positions (the opaque paging state the server wraps in its cursor):
//! * users: the vendor `offset` of the next user to read, in decimal;
//! * groups: the vendor `offset` of the next group, in decimal;
//! * memberships: the index of the next membership in the flattened
//!   membership map sorted by (group id, user id), in decimal.

use std::collections::HashMap;

use async_trait::async_trait;
use http::Method;
use rollcall_core::Provider;
use rollcall_core::unified::{
    Group, GroupMembership, Me, Ref, Role, RoleScope, RoleType, User, UserStatus,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::payload::{self, ADMIN_GROUP_NAME, ALL_USERS_GROUP_NAME, MAGIC_ADMIN, MAGIC_ALL_USERS};
use crate::account::{LinkedAccount, VendorAnswer, VendorRequest};
use crate::directory::{
    Added, Directory, DirectoryError, DirectorySnapshot, GroupPatch, KnownFingerprints, KnownUsers,
    Listed, MembershipQuery, NewGroup, NewUser, Page, PageRequest, ProgressSink, SnapshotProgress,
    UserPatch, UserQuery,
};
use crate::error::ConnectorError;

/// The most vendor pages one `list_users` call reads while a client-side
/// filter (exact email, `is_admin=false`) leaves its page short. A page
/// may then come back short with a next position.
const MAX_USER_CALLS_PER_PAGE: usize = 5;

/// Users per `GET /api/user` page in a snapshot (Metabase sets no maximum).
const SNAPSHOT_PAGE: u64 = 1000;

/// The email domain of Metabase's hidden API-key users.
const API_KEY_EMAIL_SUFFIX: &str = "@api-key.invalid";

/// Vendor texts (spec §2.10, §3.1, §3.4, §2.5, §2.6) that mean "refused
/// because of the state of things" rather than "bad input": a 409.
const CONFLICT_MARKERS: &[&str] = &[
    "last member of the 'admin' group",
    "you cannot edit or delete the",
    "to/from the 'all users' group",
    "a group with that name already exists",
    "email address already in use",
    "email address already associated to another user",
    "not able to modify the internal user",
];

const ACTIVE_USER_REACTIVATED: &str = "not able to reactivate an active user";

/// The Directory for one linked Metabase account.
#[derive(Debug, Clone, Copy)]
pub struct MetabaseDirectory<'a> {
    account: &'a LinkedAccount,
}

impl<'a> MetabaseDirectory<'a> {
    pub fn new(account: &'a LinkedAccount) -> Self {
        Self { account }
    }
}

/// Group ids and names, plus where the magic groups are (by
/// `magic_group_type`, never by their conventional ids).
#[derive(Debug, Default)]
struct GroupIndex {
    names: HashMap<u64, String>,
    admins: Option<u64>,
    all_users: Option<u64>,
}

impl GroupIndex {
    fn new(groups: &[payload::Group]) -> Self {
        let mut index = Self::default();
        for group in groups {
            index.names.insert(group.id, group.name.clone());
            if group.is_magic_type(MAGIC_ADMIN, ADMIN_GROUP_NAME) {
                index.admins = Some(group.id);
            }
            if group.is_magic_type(MAGIC_ALL_USERS, ALL_USERS_GROUP_NAME) {
                index.all_users = Some(group.id);
            }
        }
        index
    }

    fn refs(&self, ids: &[u64]) -> Vec<Ref> {
        ids.iter()
            .map(|id| Ref {
                id: id.to_string(),
                // A group created between our two calls: name it by id.
                name: self
                    .names
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| id.to_string()),
            })
            .collect()
    }

    fn admins(&self) -> Result<u64, DirectoryError> {
        self.admins.ok_or_else(|| {
            ConnectorError::BadResponse("Metabase lists no Administrators group".into()).into()
        })
    }

    fn all_users(&self) -> Result<u64, DirectoryError> {
        self.all_users.ok_or_else(|| {
            ConnectorError::BadResponse("Metabase lists no All Users group".into()).into()
        })
    }
}

// ---------------------------------------------------------------------------
// Small helpers: ids, positions, query strings, errors.

/// A Metabase id: a positive decimal number. Anything else names nothing.
fn vendor_id(id: &str) -> Option<u64> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok().filter(|n| *n > 0)
}

fn no_such(what: &str, id: &str) -> DirectoryError {
    DirectoryError::NotFound {
        message: format!("Metabase has no {what} `{id}`"),
        remote: None,
    }
}

fn user_id(id: &str) -> Result<u64, DirectoryError> {
    vendor_id(id).ok_or_else(|| no_such("user", id))
}

fn group_id(id: &str) -> Result<u64, DirectoryError> {
    vendor_id(id).ok_or_else(|| no_such("group", id))
}

fn position(page: &PageRequest) -> Result<u64, DirectoryError> {
    match &page.position {
        None => Ok(0),
        Some(p) => p.parse().map_err(|_| DirectoryError::Invalid {
            message: format!("`{p}` is not a Metabase paging position"),
            remote: None,
        }),
    }
}

fn limit(page: &PageRequest) -> u64 {
    u64::from(page.limit.max(1))
}

/// Percent-encodes a query-string value (everything but RFC 3986 unreserved).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn empty_page<T>() -> Page<T> {
    Page {
        items: Vec::new(),
        next_position: None,
        is_partial_response: false,
    }
}

fn is_conflict(summary: &str) -> bool {
    let lower = summary.to_lowercase();
    CONFLICT_MARKERS.iter().any(|m| lower.contains(m))
}

/// A non-success vendor answer as a directory error. `what` names the
/// object for a 404 (`user 5`, `group 7`).
fn vendor_error(answer: &VendorAnswer, what: &str) -> DirectoryError {
    let remote = answer.remote();
    let summary = remote.summary();
    match answer.status {
        404 => DirectoryError::NotFound {
            message: format!("Metabase has no {what}: {summary}"),
            remote: Some(remote),
        },
        400 | 409 if is_conflict(&summary) => DirectoryError::Conflict {
            message: format!("Metabase refused: {summary}"),
            remote: Some(remote),
        },
        400 => DirectoryError::Invalid {
            message: format!("Metabase refused the request: {summary}"),
            remote: Some(remote),
        },
        402 => DirectoryError::Unsupported(format!(
            "Metabase needs a paid feature for this: {summary}"
        )),
        // 403: the credential is not a Metabase admin; 5xx and the rest are
        // the vendor's failure. Both keep the vendor's answer.
        _ => DirectoryError::Connector(ConnectorError::Vendor(remote)),
    }
}

fn parse<'a, T: Deserialize<'a>>(answer: &'a VendorAnswer) -> Result<T, DirectoryError> {
    Ok(answer.json::<T>()?)
}

/// A user page for a snapshot, with the vendor's `total`. Each record is
/// fingerprinted as the vendor sent it; one `known` names is not built
/// (equal text, equal user), the others go straight into unified users (no
/// JSON tree, as the API's lists need for `remote_data`).
fn parse_user_page(
    answer: &VendorAnswer,
    known: Option<&KnownFingerprints>,
) -> Result<(Vec<Listed>, u64), DirectoryError> {
    let list: payload::RawUserPage<'_> = parse(answer)?;
    let no_groups = GroupIndex::default();
    let users = list
        .data
        .iter()
        .map(|raw| {
            let fingerprint = fingerprint(raw);
            // Found by its fingerprint alone: no need to read even its id.
            if let Some(id) = known.and_then(|known| known(fingerprint)) {
                return Ok(Listed::Known { id, fingerprint });
            }
            let user: payload::User = parse_raw(raw, "user record")?;
            let mut unified = to_user(&user, &no_groups, None, false);
            unified.groups = None;
            Ok(Listed::User {
                user: unified,
                fingerprint: Some(fingerprint),
            })
        })
        .collect::<Result<_, DirectoryError>>()?;
    Ok((users, list.total))
}

/// The membership map's pairs, each once, sorted as their ids' text sorts
/// (`DirectorySnapshot::memberships`), numbers turned to text only at the end.
fn membership_pairs(answer: &VendorAnswer) -> Result<Vec<(String, String)>, DirectoryError> {
    let map: payload::MembershipMap = parse(answer)?;
    let mut pairs: Vec<(u64, u64)> = map
        .into_values()
        .flatten()
        .map(|m| (m.group_id, m.user_id))
        .collect();
    // Keys computed once per pair, not at every comparison.
    pairs.sort_by_cached_key(|&(group, user)| (text_order(group), text_order(user)));
    pairs.dedup();
    Ok(pairs
        .into_iter()
        .map(|(group, user)| (group.to_string(), user.to_string()))
        .collect())
}

/// A key that orders numbers as their decimal text does ("10" < "9"): the
/// digits left-aligned, then the length (a prefix sorts first).
fn text_order(n: u64) -> (u128, u32) {
    let digits = n.checked_ilog10().map_or(1, |d| d + 1);
    (u128::from(n) * 10u128.pow(20 - digits), digits)
}

/// Bumped whenever `to_user` maps a record differently: every stored
/// fingerprint then misses once and each user is built afresh.
const FINGERPRINT_VERSION: &[u8] = b"rollcall metabase user 1\0";

/// The first 8 bytes of the SHA-256 of a user record's text as the vendor
/// sent it (Metabase writes a record the same way each time).
fn fingerprint(raw: &serde_json::value::RawValue) -> i64 {
    let digest = Sha256::new()
        .chain_update(FINGERPRINT_VERSION)
        .chain_update(raw.get().as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_le_bytes(first)
}

fn unexpected_json(what: &str, e: &serde_json::Error) -> DirectoryError {
    ConnectorError::BadResponse(format!("a Metabase {what} is not the expected JSON: {e}")).into()
}

fn parse_raw<'a, T: Deserialize<'a>>(
    raw: &'a serde_json::value::RawValue,
    what: &str,
) -> Result<T, DirectoryError> {
    serde_json::from_str(raw.get()).map_err(|e| unexpected_json(what, &e))
}

fn parse_value<T: for<'de> Deserialize<'de>>(
    value: &Value,
    what: &str,
) -> Result<T, DirectoryError> {
    T::deserialize(value).map_err(|e| unexpected_json(what, &e))
}

// ---------------------------------------------------------------------------
// Mapping.

fn role_ref(is_admin: bool) -> Ref {
    if is_admin {
        Ref {
            id: "admin".into(),
            name: "Admin".into(),
        }
    } else {
        Ref {
            id: "member".into(),
            name: "Member".into(),
        }
    }
}

fn to_user(
    user: &payload::User,
    groups: &GroupIndex,
    remote: Option<&Value>,
    include_remote_data: bool,
) -> User {
    User {
        id: user.id.to_string(),
        username: Some(user.email.clone()),
        email: Some(user.email.clone()),
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        name: user.common_name.clone(),
        status: if user.is_active == Some(false) {
            UserStatus::Inactive
        } else {
            UserStatus::Active
        },
        is_admin: user.is_superuser,
        roles: vec![role_ref(user.is_superuser)],
        groups: Some(groups.refs(&user.group_ids())),
        last_active_at: user.last_login.clone(),
        created_at: user.date_joined.clone(),
        updated_at: user.updated_at.clone(),
        remote_data: include_remote_data.then(|| remote.cloned()).flatten(),
    }
}

fn to_group(group: &payload::Group, remote: Option<&Value>, include_remote_data: bool) -> Group {
    Group {
        id: group.id.to_string(),
        name: group.name.clone(),
        description: None,
        member_count: group.member_count(),
        is_builtin: group.is_magic(),
        created_at: None,
        updated_at: None,
        remote_data: include_remote_data.then(|| remote.cloned()).flatten(),
    }
}

fn to_membership(group_id: u64, user_id: u64) -> GroupMembership {
    let (group_id, user_id) = (group_id.to_string(), user_id.to_string());
    GroupMembership {
        id: GroupMembership::id_for(&group_id, &user_id),
        group_id,
        user_id,
        created_at: None,
    }
}

fn roles() -> Vec<Role> {
    vec![
        Role::workspace_admin(),
        Role::workspace_member(),
        Role {
            id: "group_manager".into(),
            name: "Group manager".into(),
            role_type: RoleType::GroupManager,
            applicable_in: RoleScope::Group,
        },
    ]
}

/// The client-side half of a user query.
struct UserFilter {
    email: Option<String>,
    is_admin: Option<bool>,
}

impl UserFilter {
    fn is_client_side(&self) -> bool {
        self.email.is_some() || self.is_admin.is_some()
    }

    fn keeps(&self, user: &payload::User) -> bool {
        self.email
            .as_deref()
            .is_none_or(|e| user.email.to_lowercase() == e)
            && self.is_admin.is_none_or(|a| user.is_superuser == a)
    }
}

// ---------------------------------------------------------------------------
// Vendor calls.

impl MetabaseDirectory<'_> {
    /// Any answer but a 401 (which `exchange` turns into `AuthRejected`).
    async fn call(&self, request: VendorRequest) -> Result<VendorAnswer, DirectoryError> {
        Ok(self.account.exchange(request).await?)
    }

    /// A 2xx answer, or the vendor's error (`what` names the object for a 404).
    async fn ok(&self, request: VendorRequest, what: &str) -> Result<VendorAnswer, DirectoryError> {
        let answer = self.call(request).await?;
        if answer.is_success() {
            Ok(answer)
        } else {
            Err(vendor_error(&answer, what))
        }
    }

    /// Every group (`GET /api/permissions/group` without paging answers all).
    async fn all_groups(&self) -> Result<Vec<payload::Group>, DirectoryError> {
        let answer = self
            .ok(VendorRequest::get("/api/permissions/group"), "group list")
            .await?;
        parse(&answer)
    }

    async fn group_index(&self) -> Result<GroupIndex, DirectoryError> {
        Ok(GroupIndex::new(&self.all_groups().await?))
    }

    /// `GET /api/user/:id`: the user and the raw object.
    async fn fetch_user(&self, id: u64) -> Result<(payload::User, Value), DirectoryError> {
        let answer = self
            .ok(
                VendorRequest::get(format!("/api/user/{id}")),
                &format!("user {id}"),
            )
            .await?;
        let value: Value = parse(&answer)?;
        Ok((parse_value(&value, "user")?, value))
    }

    async fn fresh_user(&self, id: u64, include_remote_data: bool) -> Result<User, DirectoryError> {
        let (user, value) = self.fetch_user(id).await?;
        let groups = self.group_index().await?;
        Ok(to_user(&user, &groups, Some(&value), include_remote_data))
    }

    /// `GET /api/permissions/group/:id` (with `members`).
    async fn fetch_group(&self, id: u64) -> Result<(payload::Group, Value), DirectoryError> {
        let answer = self
            .ok(
                VendorRequest::get(format!("/api/permissions/group/{id}")),
                &format!("group {id}"),
            )
            .await?;
        let value: Value = parse(&answer)?;
        Ok((parse_value(&value, "group")?, value))
    }

    /// Every membership, sorted by (group id, user id).
    async fn all_memberships(&self) -> Result<Vec<payload::Membership>, DirectoryError> {
        let answer = self
            .ok(
                VendorRequest::get("/api/permissions/membership"),
                "membership list",
            )
            .await?;
        let map: payload::MembershipMap = parse(&answer)?;
        let mut all: Vec<payload::Membership> = map.into_values().flatten().collect();
        all.sort_by_key(|m| (m.group_id, m.user_id, m.membership_id));
        all.dedup_by_key(|m| (m.group_id, m.user_id));
        Ok(all)
    }

    /// Every membership as `(group_id, user_id)`, each once, in the order
    /// a snapshot keeps them (the ids' text order). Parsed and ordered on a
    /// task of its own: inline, the map (a few MB at 100,000 users) would
    /// hold up the user pages read alongside.
    async fn snapshot_memberships(&self) -> Result<Vec<(String, String)>, DirectoryError> {
        let answer = self
            .ok(
                VendorRequest::get("/api/permissions/membership"),
                "membership list",
            )
            .await?;
        tokio::spawn(async move { membership_pairs(&answer) })
            .await
            .map_err(|e| {
                ConnectorError::BadResponse(format!(
                    "reading the Metabase membership map failed: {e}"
                ))
            })?
    }

    /// Every personal user, active and deactivated, sorted by id:
    /// `status=all` pages until the vendor's `total` or an empty page.
    /// `include_deactivated=true` says the same to versions that predate
    /// `status` (and wins over it where both are known), so no version
    /// answers with active users only and makes the deactivated look deleted.
    ///
    /// Each page is parsed in a task of its own while the next one (where
    /// the last `total` says there is one) is already asked for: the read
    /// then costs about what the vendor takes to answer, not that plus the
    /// parse.
    async fn snapshot_users(
        &self,
        progress: &dyn ProgressSink,
    ) -> Result<Vec<User>, DirectoryError> {
        let page = |offset: u64| {
            self.ok(
                VendorRequest::get(format!(
                    "/api/user?status=all&include_deactivated=true&limit={SNAPSHOT_PAGE}&offset={offset}"
                )),
                "user list",
            )
        };
        // What the sink leaves here (it may take every page as it comes).
        let mut kept: Vec<User> = Vec::new();
        let mut listed_so_far: u64 = 0;
        let mut offset: u64 = 0;
        let mut total: Option<u64> = None;
        let mut answer = page(offset).await?;
        loop {
            let known = progress.known_fingerprints().await;
            let parsing = tokio::spawn(async move { parse_user_page(&answer, known.as_ref()) });
            // Guessed as a full page on; checked against the parsed one.
            let guess = offset.saturating_add(SNAPSHOT_PAGE);
            let (parsed, ahead) = if total.is_some_and(|t| guess < t) {
                let (parsed, ahead) = tokio::join!(parsing, page(guess));
                (parsed, Some(ahead))
            } else {
                (parsing.await, None)
            };
            let (listed, page_total) = parsed.map_err(|e| {
                ConnectorError::BadResponse(format!("parsing a Metabase user page failed: {e}"))
            })??;
            if listed.is_empty() {
                break;
            }
            let count = u64::try_from(listed.len()).unwrap_or(u64::MAX);
            offset = offset.saturating_add(count);
            listed_so_far = listed_so_far.saturating_add(count);
            kept.extend(progress.listed(listed));
            total = Some(page_total);
            progress.report(SnapshotProgress {
                phase: "users",
                done: listed_so_far.min(page_total),
                total,
            });
            if offset >= page_total {
                break;
            }
            answer = match ahead {
                Some(ahead) if offset == guess => ahead?,
                // A short page (users removed while paging): on from where it ended.
                _ => page(offset).await?,
            };
        }
        // Users added while paging shift later pages: one may be listed
        // twice. The stable sort keeps the first listed first.
        kept.sort_by_key(|u| vendor_id(&u.id));
        kept.dedup_by(|later, first| later.id == first.id);
        Ok(kept)
    }

    /// `PUT /api/user/:id/reactivate`; an already active user is fine.
    async fn reactivate(&self, id: u64) -> Result<(), DirectoryError> {
        let answer = self
            .call(VendorRequest::without_body(
                Method::PUT,
                format!("/api/user/{id}/reactivate"),
            ))
            .await?;
        if answer.is_success()
            || (answer.status == 400
                && answer
                    .remote()
                    .summary()
                    .to_lowercase()
                    .contains(ACTIVE_USER_REACTIVATED))
        {
            return Ok(());
        }
        Err(vendor_error(&answer, &format!("user {id}")))
    }

    /// `DELETE /api/user/:id`: Metabase deactivates (there is no hard delete).
    async fn deactivate(&self, id: u64) -> Result<(), DirectoryError> {
        self.ok(
            VendorRequest::without_body(Method::DELETE, format!("/api/user/{id}")),
            &format!("user {id}"),
        )
        .await?;
        Ok(())
    }

    /// After a refused membership add: name the missing user or group if
    /// that was the reason, else the vendor's own complaint.
    async fn explain_refused_add(
        &self,
        group: u64,
        user: u64,
        refused: &VendorAnswer,
    ) -> DirectoryError {
        let original = vendor_error(refused, "membership");
        if refused.status != 400 || matches!(original, DirectoryError::Conflict { .. }) {
            return original;
        }
        if let Err(e) = self.fetch_user(user).await {
            return e;
        }
        match self.fetch_group(group).await {
            Err(e) => e,
            Ok(_) => original,
        }
    }
}

#[async_trait]
impl Directory for MetabaseDirectory<'_> {
    fn provider(&self) -> Provider {
        Provider::Metabase
    }

    async fn list_users(
        &self,
        query: &UserQuery,
        page: &PageRequest,
    ) -> Result<Page<User>, DirectoryError> {
        let start = position(page)?;
        let limit = limit(page);
        let status = match query.status {
            None | Some(UserStatus::Active) => "active",
            Some(UserStatus::Inactive) => "deactivated",
            // Metabase has no invited state: nobody is invited.
            Some(UserStatus::Invited) => return Ok(empty_page()),
        };
        let group_filter = match query.group_id.as_deref().map(vendor_id) {
            None => None,
            Some(Some(id)) => Some(id),
            // Not a Metabase id: no such group, so nobody is in it.
            Some(None) => return Ok(empty_page()),
        };
        let groups = self.group_index().await?;
        // The vendor narrows by one group: the one asked for, else the
        // Administrators when only admins are wanted (is_superuser is then
        // also checked client-side, which covers both filters together).
        let vendor_group = match (group_filter, query.is_admin) {
            (Some(id), _) => Some(id),
            (None, Some(true)) => Some(groups.admins()?),
            (None, _) => None,
        };
        let filter = UserFilter {
            email: query.email.as_ref().map(|e| e.trim().to_lowercase()),
            is_admin: query.is_admin,
        };
        let mut fixed = format!("/api/user?status={status}");
        if let Some(email) = &filter.email {
            fixed.push_str(&format!("&query={}", encode(email)));
        }
        if let Some(group) = vendor_group {
            fixed.push_str(&format!("&group_id={group}"));
        }

        let mut items = Vec::new();
        let mut offset = start;
        let mut calls = 0;
        let next_position = loop {
            let want = limit.saturating_sub(u64::try_from(items.len()).unwrap_or(limit));
            let answer = self
                .ok(
                    VendorRequest::get(format!("{fixed}&limit={want}&offset={offset}")),
                    "user list",
                )
                .await?;
            calls += 1;
            // Records stay raw: each is read straight into a user, and into
            // a JSON tree only when `remote_data` is asked for.
            let list: payload::RawUserPage<'_> = parse(&answer)?;
            // Never more than asked for, whatever the vendor sends.
            let taken = list
                .data
                .len()
                .min(usize::try_from(want).unwrap_or(usize::MAX));
            let returned = u64::try_from(taken).unwrap_or(u64::MAX);
            for raw in &list.data[..taken] {
                let user: payload::User = parse_raw(raw, "user")?;
                if filter.keeps(&user) {
                    let remote: Option<Value> = if page.include_remote_data {
                        Some(parse_raw(raw, "user")?)
                    } else {
                        None
                    };
                    items.push(to_user(
                        &user,
                        &groups,
                        remote.as_ref(),
                        page.include_remote_data,
                    ));
                }
            }
            offset = offset.saturating_add(returned);
            let more = returned > 0 && offset < list.total;
            // Emails are unique: once the exact match is found, it is the only one.
            let found_email = filter.email.is_some() && !items.is_empty();
            if !more || found_email {
                break None;
            }
            let full = u64::try_from(items.len()).unwrap_or(u64::MAX) >= limit;
            if full || !filter.is_client_side() || calls >= MAX_USER_CALLS_PER_PAGE {
                break Some(offset.to_string());
            }
        };
        Ok(Page {
            items,
            next_position,
            is_partial_response: false,
        })
    }

    async fn get_user(&self, id: &str, include_remote_data: bool) -> Result<User, DirectoryError> {
        let id = user_id(id)?;
        self.fresh_user(id, include_remote_data).await
    }

    async fn create_user(&self, input: &NewUser) -> Result<User, DirectoryError> {
        let groups = self.group_index().await?;
        let mut wanted = vec![groups.all_users()?];
        for id in &input.group_ids {
            let group = vendor_id(id)
                .filter(|g| groups.names.contains_key(g))
                .ok_or_else(|| DirectoryError::Invalid {
                    message: format!("Metabase has no group `{id}` to add the new user to"),
                    remote: None,
                })?;
            wanted.push(group);
        }
        if input.is_admin {
            wanted.push(groups.admins()?);
        }
        let mut seen = std::collections::HashSet::new();
        wanted.retain(|g| seen.insert(*g));

        let mut body = Map::new();
        body.insert("email".into(), json!(input.email));
        if let Some(first) = &input.first_name {
            body.insert("first_name".into(), json!(first));
        }
        if let Some(last) = &input.last_name {
            body.insert("last_name".into(), json!(last));
        }
        body.insert(
            "user_group_memberships".into(),
            Value::Array(wanted.iter().map(|id| json!({ "id": id })).collect()),
        );
        let answer = self
            .ok(
                VendorRequest::json(Method::POST, "/api/user", &Value::Object(body)),
                "user",
            )
            .await?;
        let value: Value = parse(&answer)?;
        let user: payload::User = parse_value(&value, "user")?;
        Ok(to_user(&user, &groups, Some(&value), false))
    }

    async fn update_user(&self, id: &str, patch: &UserPatch) -> Result<User, DirectoryError> {
        let id = user_id(id)?;
        if patch.status == Some(UserStatus::Invited) {
            return Err(DirectoryError::Invalid {
                message: "Metabase users cannot be put back into an invited state \
                          (Metabase has no invitations; status is active or inactive)"
                    .into(),
                remote: None,
            });
        }
        let (current, _) = self.fetch_user(id).await?;
        let active = current.is_active != Some(false);

        let mut body = Map::new();
        if let Some(first) = &patch.first_name {
            body.insert("first_name".into(), json!(first));
        }
        if let Some(last) = &patch.last_name {
            body.insert("last_name".into(), json!(last));
        }
        if let Some(email) = &patch.email {
            body.insert("email".into(), json!(email));
        }
        if let Some(is_admin) = patch.is_admin {
            body.insert("is_superuser".into(), json!(is_admin));
        }

        if !active && patch.status != Some(UserStatus::Active) && !body.is_empty() {
            return Err(DirectoryError::Conflict {
                message: format!(
                    "Metabase cannot change the deactivated user {id}; reactivate it \
                     (status active) in the same or an earlier update"
                ),
                remote: None,
            });
        }
        if patch.status == Some(UserStatus::Active) && !active {
            self.reactivate(id).await?;
        }
        if !body.is_empty() {
            self.ok(
                VendorRequest::json(Method::PUT, format!("/api/user/{id}"), &Value::Object(body)),
                &format!("user {id}"),
            )
            .await?;
        }
        if patch.status == Some(UserStatus::Inactive) && active {
            self.deactivate(id).await?;
        }
        self.fresh_user(id, false).await
    }

    async fn delete_user(&self, id: &str) -> Result<(), DirectoryError> {
        let id = user_id(id)?;
        self.deactivate(id).await
    }

    async fn list_groups(&self, page: &PageRequest) -> Result<Page<Group>, DirectoryError> {
        let offset = position(page)?;
        let limit = limit(page);
        // One more than asked: a full page then tells whether there is more
        // (the answer is a plain array with no total).
        let answer = self
            .ok(
                VendorRequest::get(format!(
                    "/api/permissions/group?limit={}&offset={offset}",
                    limit.saturating_add(1)
                )),
                "group list",
            )
            .await?;
        let values: Vec<Value> = parse(&answer)?;
        let more = u64::try_from(values.len()).unwrap_or(u64::MAX) > limit;
        let items = values
            .iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|value| {
                let group: payload::Group = parse_value(value, "group")?;
                Ok(to_group(&group, Some(value), page.include_remote_data))
            })
            .collect::<Result<Vec<_>, DirectoryError>>()?;
        Ok(Page {
            items,
            next_position: more.then(|| offset.saturating_add(limit).to_string()),
            is_partial_response: false,
        })
    }

    async fn get_group(
        &self,
        id: &str,
        include_remote_data: bool,
    ) -> Result<Group, DirectoryError> {
        let id = group_id(id)?;
        let (group, value) = self.fetch_group(id).await?;
        Ok(to_group(&group, Some(&value), include_remote_data))
    }

    async fn create_group(&self, input: &NewGroup) -> Result<Group, DirectoryError> {
        if input.description.is_some() {
            return Err(DirectoryError::Unsupported(
                "Metabase groups have no description".into(),
            ));
        }
        let answer = self
            .ok(
                VendorRequest::json(
                    Method::POST,
                    "/api/permissions/group",
                    &json!({ "name": input.name }),
                ),
                "group",
            )
            .await?;
        let value: Value = parse(&answer)?;
        let mut group: payload::Group = parse_value(&value, "group")?;
        // A new group has no members; the answer omits the count.
        group.member_count = group.member_count().or(Some(0));
        Ok(to_group(&group, Some(&value), false))
    }

    async fn update_group(&self, id: &str, patch: &GroupPatch) -> Result<Group, DirectoryError> {
        if patch.description.is_some() {
            return Err(DirectoryError::Unsupported(
                "Metabase groups have no description".into(),
            ));
        }
        let id = group_id(id)?;
        if let Some(name) = &patch.name {
            self.ok(
                VendorRequest::json(
                    Method::PUT,
                    format!("/api/permissions/group/{id}"),
                    &json!({ "name": name }),
                ),
                &format!("group {id}"),
            )
            .await?;
        }
        let (group, value) = self.fetch_group(id).await?;
        Ok(to_group(&group, Some(&value), false))
    }

    async fn delete_group(&self, id: &str) -> Result<(), DirectoryError> {
        let id = group_id(id)?;
        // Metabase answers 204 for a group that does not exist: look first.
        self.fetch_group(id).await?;
        self.ok(
            VendorRequest::without_body(Method::DELETE, format!("/api/permissions/group/{id}")),
            &format!("group {id}"),
        )
        .await?;
        Ok(())
    }

    async fn list_group_memberships(
        &self,
        query: &MembershipQuery,
        page: &PageRequest,
    ) -> Result<Page<GroupMembership>, DirectoryError> {
        let start = position(page)?;
        let limit = limit(page);
        let filter = |value: &Option<String>| match value.as_deref().map(vendor_id) {
            None => Ok(None),
            Some(Some(id)) => Ok(Some(id)),
            Some(None) => Err(()),
        };
        let (Ok(group), Ok(user)) = (filter(&query.group_id), filter(&query.user_id)) else {
            return Ok(empty_page());
        };
        let all = self.all_memberships().await?;
        let matching: Vec<_> = all
            .iter()
            .filter(|m| group.is_none_or(|g| m.group_id == g))
            .filter(|m| user.is_none_or(|u| m.user_id == u))
            .collect();
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(limit).unwrap_or(usize::MAX));
        let items = matching
            .iter()
            .skip(start)
            .take(end - start)
            .map(|m| to_membership(m.group_id, m.user_id))
            .collect();
        Ok(Page {
            items,
            next_position: (end < matching.len()).then(|| end.to_string()),
            is_partial_response: false,
        })
    }

    async fn add_group_membership(
        &self,
        group_id_text: &str,
        user_id_text: &str,
    ) -> Result<(GroupMembership, Added), DirectoryError> {
        let group = group_id(group_id_text)?;
        let user = user_id(user_id_text)?;
        let all = self.all_memberships().await?;
        if all.iter().any(|m| m.group_id == group && m.user_id == user) {
            return Ok((to_membership(group, user), Added::AlreadyPresent));
        }
        let answer = self
            .call(VendorRequest::json(
                Method::POST,
                "/api/permissions/membership",
                &json!({ "group_id": group, "user_id": user }),
            ))
            .await?;
        if !answer.is_success() {
            return Err(self.explain_refused_add(group, user, &answer).await);
        }
        // The answer is the group's active members, not the membership.
        let _: Vec<payload::Member> = parse(&answer)?;
        Ok((to_membership(group, user), Added::Created))
    }

    async fn remove_group_membership(&self, id: &str) -> Result<(), DirectoryError> {
        let missing = || no_such("group membership", id);
        let (group, user) = GroupMembership::parse_id(id).ok_or_else(missing)?;
        let (Some(group), Some(user)) = (vendor_id(group), vendor_id(user)) else {
            return Err(missing());
        };
        let all = self.all_memberships().await?;
        let membership = all
            .iter()
            .find(|m| m.group_id == group && m.user_id == user)
            .ok_or_else(missing)?;
        self.ok(
            VendorRequest::without_body(
                Method::DELETE,
                format!("/api/permissions/membership/{}", membership.membership_id),
            ),
            &format!("group membership {id}"),
        )
        .await?;
        Ok(())
    }

    async fn list_roles(&self) -> Result<Vec<Role>, DirectoryError> {
        Ok(roles())
    }

    /// `GET /api/user?status=all` page by page, and beside it the group
    /// list and the membership map (one call each).
    async fn snapshot(
        &self,
        _known: &KnownUsers,
        progress: &dyn ProgressSink,
    ) -> Result<DirectorySnapshot, DirectoryError> {
        let report = |phase, n: usize| {
            let n = u64::try_from(n).unwrap_or(u64::MAX);
            progress.report(SnapshotProgress {
                phase,
                done: n,
                total: Some(n),
            });
        };
        // The three reads are independent: asked for side by side.
        let (users, mut groups, memberships) = tokio::try_join!(
            self.snapshot_users(progress),
            self.all_groups(),
            self.snapshot_memberships(),
        )?;
        groups.sort_by_key(|g| g.id);
        let groups: Vec<Group> = groups.iter().map(|g| to_group(g, None, false)).collect();
        report("groups", groups.len());
        report("memberships", memberships.len());
        Ok(DirectorySnapshot {
            users,
            groups,
            memberships,
            roles: roles(),
            // `last_login` is on every user (null: never logged in).
            activity_exposed: true,
        })
    }

    async fn get_role(&self, id: &str) -> Result<Role, DirectoryError> {
        roles()
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| no_such("role", id))
    }

    async fn me(&self) -> Result<Me, DirectoryError> {
        let answer = self
            .ok(VendorRequest::get("/api/user/current"), "current user")
            .await?;
        let user: payload::User = parse(&answer)?;
        let kind = if user.email.to_lowercase().ends_with(API_KEY_EMAIL_SUFFIX) {
            "api_key"
        } else {
            "user"
        };
        Ok(Me {
            id: user.id.to_string(),
            kind: kind.into(),
            username: Some(user.email.clone()),
            email: Some(user.email.clone()),
            name: user.common_name.clone(),
            is_admin: user.is_superuser,
            // `me()` takes no include_remote_data flag, and the contract
            // hands out the vendor's object only when asked for.
            remote_data: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_order_as_their_text_does() {
        let mut numbers: Vec<u64> =
            vec![0, 1, 2, 9, 10, 11, 19, 90, 99, 100, 101, 1_000, 999, 12_345];
        numbers.extend([u64::MAX, u64::MAX - 1, 10u64.pow(19), 10u64.pow(19) - 1]);
        let mut as_text: Vec<String> = numbers.iter().map(u64::to_string).collect();
        as_text.sort();
        numbers.sort_by_key(|&n| text_order(n));
        let by_key: Vec<String> = numbers.iter().map(u64::to_string).collect();
        assert_eq!(by_key, as_text);
    }

    /// Stored users are not rebuilt while their record's fingerprint holds:
    /// a change to what a record maps to must bump `FINGERPRINT_VERSION`,
    /// or users synced before keep the old mapping until they change.
    #[test]
    fn the_fingerprinted_mapping_is_pinned() {
        let record = r#"{"id":7,"email":"ada@example.com","first_name":"Ada","last_name":"Lovelace","common_name":"Ada Lovelace","date_joined":"2024-01-02T03:04:05Z","last_login":"2024-05-06T07:08:09Z","updated_at":"2024-05-06T07:08:10Z","is_superuser":true,"is_active":false,"group_ids":[1,2]}"#;
        let raw = serde_json::value::RawValue::from_string(record.to_owned()).unwrap();
        let (listed, _) = parse_user_page(
            &VendorAnswer {
                status: 200,
                body: bytes::Bytes::from(format!(r#"{{"data":[{}],"total":1}}"#, raw.get())),
            },
            None,
        )
        .unwrap();
        let [Listed::User { user, fingerprint }] = listed.as_slice() else {
            panic!("{listed:?}");
        };
        assert_eq!(*fingerprint, Some(super::fingerprint(&raw)));
        assert_eq!(
            serde_json::to_value(user).unwrap(),
            json!({
                "id": "7", "username": "ada@example.com", "email": "ada@example.com",
                "first_name": "Ada", "last_name": "Lovelace", "name": "Ada Lovelace",
                "status": "inactive", "is_admin": true,
                "roles": [{"id": "admin", "name": "Admin"}],
                "groups": null, "last_active_at": "2024-05-06T07:08:09Z",
                "created_at": "2024-01-02T03:04:05Z", "updated_at": "2024-05-06T07:08:10Z",
            }),
            "the mapping changed: bump FINGERPRINT_VERSION"
        );
    }

    #[test]
    fn a_fingerprint_is_of_the_record_as_sent() {
        let raw = |text: &str| serde_json::value::RawValue::from_string(text.to_owned()).unwrap();
        let a = fingerprint(&raw(r#"{"id":1,"email":"a@example.com"}"#));
        assert_eq!(a, fingerprint(&raw(r#"{"id":1,"email":"a@example.com"}"#)));
        assert_ne!(a, fingerprint(&raw(r#"{"id":2,"email":"a@example.com"}"#)));
        assert_ne!(a, fingerprint(&raw(r#"{"email":"a@example.com","id":1}"#)));
    }

    #[test]
    fn ids_are_positive_numbers() {
        assert_eq!(vendor_id("42"), Some(42));
        for bad in ["", "0", "-1", "4a", " 4", "1e3", "99999999999999999999999"] {
            assert_eq!(vendor_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("a.b+c@x.io"), "a.b%2Bc%40x.io");
        assert_eq!(encode("ä &="), "%C3%A4%20%26%3D");
    }

    #[test]
    fn vendor_refusals_map_to_conflicts() {
        let answer = |status: u16, body: &str| VendorAnswer {
            status,
            body: bytes::Bytes::from(body.to_owned()),
        };
        let last_admin = answer(
            400,
            "You cannot remove the last member of the 'Admin' group!",
        );
        assert!(matches!(
            vendor_error(&last_admin, "user 1"),
            DirectoryError::Conflict { .. }
        ));
        let duplicate = answer(
            400,
            r#"{"errors":{"email":"Email address already in use."}}"#,
        );
        assert!(matches!(
            vendor_error(&duplicate, "user"),
            DirectoryError::Conflict { .. }
        ));
        let bad = answer(
            400,
            r#"{"errors":{"email":"value must be a valid email address."}}"#,
        );
        assert!(matches!(
            vendor_error(&bad, "user"),
            DirectoryError::Invalid { .. }
        ));
        assert!(matches!(
            vendor_error(&answer(404, "Not found."), "user 9"),
            DirectoryError::NotFound {
                remote: Some(_),
                ..
            }
        ));
        assert!(matches!(
            vendor_error(&answer(402, "premium"), "x"),
            DirectoryError::Unsupported(_)
        ));
        for status in [403, 500, 503] {
            assert!(matches!(
                vendor_error(&answer(status, "x"), "x"),
                DirectoryError::Connector(ConnectorError::Vendor(_))
            ));
        }
    }
}
