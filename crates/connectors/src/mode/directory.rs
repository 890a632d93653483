//! [`ModeDirectory`]: the unified User Directory over Mode's REST API. The
//! mapping, what Mode cannot do and which calls each operation makes are
//! written up in `docs/providers/mode.md`.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use http::{HeaderValue, Method};
use rollcall_core::Provider;
use rollcall_core::unified::{Group, GroupMembership, Me, Ref, Role, User, UserStatus};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::paging::{self, CrossCursor, Cursor, PER_PAGE, Placement, Window};
use super::payload::{
    self, Account, DiscoveryPage, GroupMember, Invite, Item, Keyed, Membership, WorkspaceAccount,
    WorkspaceVerify,
};
use crate::account::{LinkedAccount, VendorAnswer, VendorRequest};
use crate::config::ModeConfig;
use crate::credentials::Credentials;
use crate::directory::{
    Added, Directory, DirectoryError, DirectorySnapshot, GroupPatch, KnownUsers, MembershipQuery,
    NewGroup, NewUser, Page, PageRequest, ProgressSink, SnapshotProgress, UserPatch, UserQuery,
};
use crate::error::ConnectorError;

/// The invitation text when the caller gives none (Mode requires one).
pub const DEFAULT_INVITE_MESSAGE: &str = "You have been invited to Mode by your administrator.";
/// Vendor calls one list page may make before it returns what it has (with
/// a next position). 1000 unfiltered users take 10–11.
const MAX_LIST_CALLS: usize = 20;
/// `get_user` fills `groups` only when checking every group costs at most
/// this many group-membership pages; otherwise `groups` is null.
const GROUP_LOOKUP_CALLS: u64 = 10;
const MAX_LIMIT: u32 = 1000;
/// Reads a snapshot keeps in flight (user accounts, group member lists);
/// the account's rate limiter paces them.
const SNAPSHOT_CONCURRENCY: usize = 4;
/// The Discovery API's own largest (and default) page.
const DISCOVERY_PER_PAGE: u32 = 1000;

const MEMBERSHIPS: &str = "memberships";
const GROUPS: &str = "groups";
const GROUP_MEMBERSHIPS: &str = "group_memberships";

/// The unified directory over one linked Mode workspace.
pub struct ModeDirectory<'a> {
    account: &'a LinkedAccount,
    config: &'a ModeConfig,
}

impl std::fmt::Debug for ModeDirectory<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModeDirectory")
            .field("workspace", &self.config.workspace)
            .finish_non_exhaustive()
    }
}

// ---- small helpers ----------------------------------------------------------------

/// A path segment, percent-encoded; `None` for what cannot be one (empty,
/// `.`, `..`, which URL parsers would resolve away).
fn segment(text: &str) -> Option<String> {
    if text.is_empty() || text == "." || text == ".." {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Some(out)
}

/// Caller-supplied ids are Mode tokens; anything that cannot be one names
/// nothing (and is never sent to Mode).
fn plausible_token(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn not_found(message: String) -> DirectoryError {
    DirectoryError::NotFound {
        message,
        remote: None,
    }
}

fn bad_response(message: String) -> DirectoryError {
    DirectoryError::Connector(ConnectorError::BadResponse(message))
}

fn bad_position() -> DirectoryError {
    DirectoryError::Invalid {
        message: "the position does not belong to this Mode list".into(),
        remote: None,
    }
}

fn limit_of(page: &PageRequest) -> usize {
    usize::try_from(page.limit.clamp(1, MAX_LIMIT)).unwrap_or(100)
}

/// Mode refused the credential's rights (403), as a directory error.
fn is_forbidden(error: &DirectoryError) -> bool {
    matches!(error, DirectoryError::Connector(c) if c.remote().is_some_and(|r| r.status == 403))
}

fn non_empty(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn report(progress: &dyn ProgressSink, phase: &'static str, done: usize, total: usize) {
    progress.report(SnapshotProgress {
        phase,
        done: count(done),
        total: Some(count(total)),
    });
}

/// Takes email and name from the last snapshot when the member list shows
/// the member unchanged and that snapshot had read their account; `false`
/// when the account must be read again.
fn reuse_known(user: &mut User, known: &KnownUsers) -> bool {
    let Some(old) = known.get(&user.id) else {
        return false;
    };
    if old.email.is_none()
        || old.username != user.username
        || old.status != user.status
        || old.is_admin != user.is_admin
    {
        return false;
    }
    user.email.clone_from(&old.email);
    user.first_name.clone_from(&old.first_name);
    user.last_name.clone_from(&old.last_name);
    user.name.clone_from(&old.name);
    true
}

// ---- mapping ------------------------------------------------------------------------

/// `state` active → active; pending (or `invited: true`) → invited;
/// deactivated, banned, former and anything else → inactive. A membership
/// without a state counts as active unless it says it is invited.
pub(crate) fn status_of(m: &Membership) -> UserStatus {
    let state = m.state.as_deref().map(str::to_ascii_lowercase);
    match state.as_deref() {
        Some("active") => UserStatus::Active,
        Some("pending" | "invited") => UserStatus::Invited,
        _ if m.invited == Some(true) => UserStatus::Invited,
        None | Some("") => UserStatus::Active,
        Some(_) => UserStatus::Inactive,
    }
}

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

/// What a membership alone says (lists): no email or name, groups unknown.
fn user_from_membership(item: &Item<Membership>, include_remote_data: bool) -> User {
    let m = &item.data;
    let is_admin = m.admin.unwrap_or(false);
    User {
        id: m.member_token.clone(),
        username: Some(m.member_username.clone()),
        email: None,
        first_name: None,
        last_name: None,
        name: None,
        status: status_of(m),
        is_admin,
        roles: vec![role_ref(is_admin)],
        groups: None,
        last_active_at: None,
        created_at: m.activated_at.clone(),
        updated_at: None,
        remote_data: include_remote_data.then(|| item.raw.clone()),
    }
}

/// `"Ada Lovelace King"` → (`Ada`, `Lovelace King`); one word is a first name.
pub(crate) fn split_name(name: &str) -> (Option<String>, Option<String>) {
    let name = name.trim();
    match name.split_once(' ') {
        Some((first, last)) => (
            Some(first.to_owned()).filter(|s| !s.is_empty()),
            Some(last.trim().to_owned()).filter(|s| !s.is_empty()),
        ),
        None if name.is_empty() => (None, None),
        None => (Some(name.to_owned()), None),
    }
}

/// Email and name, which only the user account has.
fn fill_from_account(user: &mut User, account: &Account) {
    let name = non_empty(account.name.as_deref()).map(str::to_owned);
    let (first, last) = name.as_deref().map(split_name).unwrap_or_default();
    user.email = non_empty(account.email.as_deref()).map(str::to_owned);
    user.first_name = first;
    user.last_name = last;
    user.name = name;
}

fn group_from(item: &Item<payload::Group>, include_remote_data: bool) -> Group {
    let g = &item.data;
    Group {
        id: g.token.clone(),
        name: g.name.clone().unwrap_or_default(),
        description: non_empty(g.description.as_deref()).map(str::to_owned),
        member_count: g.member_count,
        is_builtin: g.is_builtin(),
        created_at: None,
        updated_at: None,
        remote_data: include_remote_data.then(|| item.raw.clone()),
    }
}

fn membership_from(group_id: &str, user_id: &str) -> GroupMembership {
    GroupMembership {
        id: GroupMembership::id_for(group_id, user_id),
        group_id: group_id.to_owned(),
        user_id: user_id.to_owned(),
        created_at: None,
    }
}

fn static_roles() -> Vec<Role> {
    vec![Role::workspace_admin(), Role::workspace_member()]
}

// ---- calling Mode -------------------------------------------------------------------

impl<'a> ModeDirectory<'a> {
    pub fn new(account: &'a LinkedAccount, config: &'a ModeConfig) -> Self {
        Self { account, config }
    }

    fn ws(&self) -> &str {
        &self.config.workspace
    }

    /// `/api/{workspace}{rest}`.
    fn ws_path(&self, rest: &str) -> String {
        let ws = segment(self.ws()).unwrap_or_default();
        format!("/api/{ws}{rest}")
    }

    fn group_path(&self, group: &str, rest: &str) -> Result<String, DirectoryError> {
        if !plausible_token(group) {
            return Err(self.no_group(group));
        }
        Ok(self.ws_path(&format!("/groups/{group}{rest}")))
    }

    fn no_group(&self, group: &str) -> DirectoryError {
        not_found(format!(
            "Mode has no group `{group}` in workspace `{}`",
            self.ws()
        ))
    }

    fn no_user(&self, user: &str) -> DirectoryError {
        not_found(format!(
            "Mode has no user `{user}` in workspace `{}`",
            self.ws()
        ))
    }

    async fn send(&self, mut request: VendorRequest) -> Result<VendorAnswer, DirectoryError> {
        request.headers.insert(
            http::header::ACCEPT,
            HeaderValue::from_static("application/hal+json"),
        );
        Ok(self.account.exchange(request).await?)
    }

    /// A non-2xx answer as a directory error. `missing` words a 404.
    fn failure(&self, answer: &VendorAnswer, missing: impl FnOnce() -> String) -> DirectoryError {
        let remote = answer.remote();
        let summary = remote.summary();
        match answer.status {
            404 => DirectoryError::NotFound {
                message: missing(),
                remote: Some(remote),
            },
            400 | 422 => {
                let lower = summary.to_ascii_lowercase();
                if lower.contains("api key") {
                    DirectoryError::Unsupported(format!(
                        "Mode does not allow this with a Workspace API token (Mode: \"{summary}\"); \
                         link a personal API token of a workspace admin to use it"
                    ))
                } else if lower.contains("already") || lower.contains("taken") {
                    DirectoryError::Conflict {
                        message: format!("Mode refused: {summary}"),
                        remote: Some(remote),
                    }
                } else {
                    DirectoryError::Invalid {
                        message: format!("Mode refused the request: {summary}"),
                        remote: Some(remote),
                    }
                }
            }
            // The credential works but is not an admin of the workspace: a
            // problem with the linked account rather than with this call.
            403 => DirectoryError::Connector(ConnectorError::NotFound {
                message: format!(
                    "the linked Mode credential lacks admin rights in workspace `{}` (Mode answered 403: {summary}); \
                     groups, invites and removing members need a workspace admin's token",
                    self.ws()
                ),
                remote,
            }),
            _ => DirectoryError::Connector(ConnectorError::Vendor(remote)),
        }
    }

    /// Sends and insists on a 2xx.
    async fn call(
        &self,
        request: VendorRequest,
        missing: impl FnOnce() -> String,
    ) -> Result<VendorAnswer, DirectoryError> {
        let answer = self.send(request).await?;
        if answer.is_success() {
            Ok(answer)
        } else {
            Err(self.failure(&answer, missing))
        }
    }

    async fn fetch<T: DeserializeOwned>(
        &self,
        request: VendorRequest,
        missing: impl FnOnce() -> String,
    ) -> Result<Item<T>, DirectoryError> {
        let answer = self.call(request, missing).await?;
        let raw: Value = answer.json()?;
        Item::parse(raw).map_err(|e| {
            bad_response(format!(
                "HTTP {} answer is not the expected Mode object: {e}",
                answer.status
            ))
        })
    }

    // ---- lists ----------------------------------------------------------------------

    /// The run of Mode's list at `path` that holds `cursor` (module
    /// `paging` explains the reading).
    async fn window<T: DeserializeOwned + Keyed>(
        &self,
        path: &str,
        key: &str,
        cursor: &Cursor,
        missing: &(dyn Fn() -> String + Sync),
    ) -> Result<Window<T>, DirectoryError> {
        let mut per_page = PER_PAGE;
        let mut may_retry = true;
        loop {
            let page = paging::page_for(cursor.index, per_page);
            let request = VendorRequest::get(format!("{path}?page={page}&per_page={PER_PAGE}"));
            let answer = self.call(request, missing).await?;
            let listing = payload::parse_collection::<T>(&answer.body, key)?;
            match paging::place(page, per_page, &listing, cursor, may_retry) {
                Placement::Retry { per_page: stated } => {
                    per_page = stated;
                    may_retry = false;
                }
                Placement::Window { base, more } => {
                    return Ok(Window {
                        base,
                        items: listing.items,
                        more,
                        page,
                        per_page,
                    });
                }
            }
        }
    }

    /// Walks the list at `path` from `start`, handing each item to `visit`
    /// until it says stop, the list ends, or `max_calls` pages were read.
    /// Returns where to continue (`None`: the list is done).
    async fn scan<T: DeserializeOwned + Keyed>(
        &self,
        path: &str,
        key: &str,
        start: Cursor,
        max_calls: Option<usize>,
        missing: &(dyn Fn() -> String + Sync),
        mut visit: impl FnMut(&Item<T>) -> bool + Send,
    ) -> Result<Option<Cursor>, DirectoryError> {
        let mut cursor = start;
        let mut calls = 0;
        loop {
            if max_calls.is_some_and(|max| calls >= max) {
                return Ok(Some(cursor));
            }
            let window = self.window::<T>(path, key, &cursor, missing).await?;
            calls += 1;
            cursor.index = paging::aligned_start(&window, &cursor);
            let from = cursor.index.saturating_sub(window.base);
            for (k, item) in window.items.iter().enumerate().skip(from) {
                let index = window.base + k;
                cursor = Cursor::after(index, item.data.key());
                if !visit(item) {
                    return Ok((!window.exhausted_at(cursor.index)).then_some(cursor));
                }
            }
            if window.exhausted_at(cursor.index) {
                return Ok(None);
            }
        }
    }

    /// A page of a flat list: `keep` maps the items that pass a filter.
    async fn list_page<T: DeserializeOwned + Keyed, U: Send>(
        &self,
        path: &str,
        key: &str,
        page: &PageRequest,
        missing: &(dyn Fn() -> String + Sync),
        mut keep: impl FnMut(&Item<T>) -> Option<U> + Send,
    ) -> Result<(Vec<U>, Option<String>), DirectoryError> {
        let start = match &page.position {
            Some(p) => Cursor::parse(p).ok_or_else(bad_position)?,
            None => Cursor::default(),
        };
        let limit = limit_of(page);
        let mut out = Vec::new();
        let next = self
            .scan::<T>(path, key, start, Some(MAX_LIST_CALLS), missing, |item| {
                if let Some(u) = keep(item) {
                    out.push(u);
                }
                out.len() < limit
            })
            .await?;
        Ok((out, next.map(|c| c.encode())))
    }

    /// Every item of the list at `path` that `pick` wants, reading it all.
    async fn collect<T: DeserializeOwned + Keyed + Clone + Send>(
        &self,
        path: &str,
        key: &str,
        missing: &(dyn Fn() -> String + Sync),
        mut pick: impl FnMut(&Item<T>) -> bool + Send,
    ) -> Result<Vec<Item<T>>, DirectoryError> {
        let mut out = Vec::new();
        self.scan::<T>(path, key, Cursor::default(), None, missing, |item| {
            if pick(item) {
                out.push(item.clone());
            }
            true
        })
        .await?;
        Ok(out)
    }

    /// The first item of the list at `path` that `pick` wants.
    async fn find<T: DeserializeOwned + Keyed + Clone + Send>(
        &self,
        path: &str,
        key: &str,
        missing: &(dyn Fn() -> String + Sync),
        pick: impl Fn(&T) -> bool + Send + Sync,
    ) -> Result<Option<Item<T>>, DirectoryError> {
        let mut found = None;
        self.scan::<T>(path, key, Cursor::default(), None, missing, |item| {
            if pick(&item.data) {
                found = Some(item.clone());
                false
            } else {
                true
            }
        })
        .await?;
        Ok(found)
    }

    fn no_workspace(&self) -> impl Fn() -> String + Sync + '_ {
        move || {
            format!(
                "Mode has no workspace `{}` that the linked credential belongs to",
                self.ws()
            )
        }
    }

    // ---- users ----------------------------------------------------------------------

    async fn find_membership(
        &self,
        pick: impl Fn(&Membership) -> bool + Send + Sync,
    ) -> Result<Option<Item<Membership>>, DirectoryError> {
        let path = self.ws_path("/memberships");
        self.find::<Membership>(&path, MEMBERSHIPS, &self.no_workspace(), pick)
            .await
    }

    async fn membership_of(&self, user_id: &str) -> Result<Item<Membership>, DirectoryError> {
        if !plausible_token(user_id) {
            return Err(self.no_user(user_id));
        }
        self.find_membership(|m| m.member_token == user_id)
            .await?
            .ok_or_else(|| self.no_user(user_id))
    }

    /// `GET /api/{username}`: the user account, the only place with a
    /// member's email and name.
    async fn fetch_account(&self, username: &str) -> Result<Item<Account>, DirectoryError> {
        let Some(name_segment) = segment(username) else {
            return Err(bad_response(format!(
                "Mode lists a member with the unusable username `{username}`"
            )));
        };
        self.fetch(VendorRequest::get(format!("/api/{name_segment}")), || {
            format!("Mode has no user account `{username}`")
        })
        .await
    }

    /// Each member's last activity from the Discovery API, by member
    /// token (`None` inside: never active), or `None` when the account has
    /// no Discovery token.
    async fn discovery_activity(
        &self,
    ) -> Result<Option<HashMap<String, Option<String>>>, DirectoryError> {
        let has_token = matches!(
            self.account.credentials(),
            Credentials::Mode(c) if c.discovery_token.is_some()
        );
        if !has_token {
            return Ok(None);
        }
        let ws = segment(self.ws()).unwrap_or_default();
        let mut activity = HashMap::new();
        let mut page = 1_u64;
        loop {
            let request = VendorRequest::get(format!(
                "/batch/{ws}/members?page={page}&per_page={DISCOVERY_PER_PAGE}"
            ));
            let answer = self
                .call(request, || format!("Mode has no workspace `{ws}`"))
                .await?;
            let body: DiscoveryPage = answer.json()?;
            let last = body.members.len() < DISCOVERY_PER_PAGE as usize;
            for member in &body.members {
                activity.insert(member.member_token.clone(), member.last_active_at());
            }
            let total = body.pagination.and_then(|p| p.total_pages);
            if total.map_or(last, |t| page >= t) || body.members.is_empty() {
                return Ok(Some(activity));
            }
            page += 1;
        }
    }

    /// The full user: the membership plus `GET /api/{username}` (email,
    /// name) and, when cheap, the groups.
    async fn complete_user(
        &self,
        membership: &Item<Membership>,
        include_remote_data: bool,
    ) -> Result<User, DirectoryError> {
        let account = self.fetch_account(&membership.data.member_username).await?;
        let groups = self.groups_of(&membership.data.member_token).await?;
        let mut user = user_from_membership(membership, false);
        fill_from_account(&mut user, &account.data);
        user.groups = groups;
        user.remote_data =
            include_remote_data.then(|| json!({"membership": membership.raw, "user": account.raw}));
        Ok(user)
    }

    /// The live groups (soft-deleted ones left out), reading the whole list.
    async fn live_groups(&self) -> Result<Vec<Item<payload::Group>>, DirectoryError> {
        let path = self.ws_path("/groups");
        self.collect::<payload::Group>(&path, GROUPS, &self.no_workspace(), |g| {
            !g.data.is_deleted()
        })
        .await
    }

    /// The groups a user is in, if that is cheap: every live group with
    /// members is checked, which costs one page per 100 members. Over
    /// [`GROUP_LOOKUP_CALLS`] pages, or without admin rights, `None`.
    async fn groups_of(&self, user_id: &str) -> Result<Option<Vec<Ref>>, DirectoryError> {
        let groups = match self.live_groups().await {
            Ok(groups) => groups,
            Err(e) if is_forbidden(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let per_page = PER_PAGE as u64;
        let cost: u64 = groups
            .iter()
            .map(|g| match g.data.member_count {
                Some(0) => 0,
                Some(n) => n.div_ceil(per_page),
                None => 1,
            })
            .sum();
        if cost > GROUP_LOOKUP_CALLS {
            return Ok(None);
        }
        let mut refs = Vec::new();
        for group in groups.iter().filter(|g| g.data.member_count != Some(0)) {
            if self
                .group_entry(&group.data.token, user_id)
                .await?
                .is_some()
            {
                refs.push(Ref {
                    id: group.data.token.clone(),
                    name: group.data.name.clone().unwrap_or_default(),
                });
            }
        }
        Ok(Some(refs))
    }

    /// The user tokens of a group's members, reading the whole list.
    async fn member_tokens(&self, group_id: &str) -> Result<HashSet<String>, DirectoryError> {
        let path = self.group_path(group_id, "/memberships")?;
        let missing = || self.no_group_text(group_id);
        let mut tokens = HashSet::new();
        self.scan::<GroupMember>(
            &path,
            GROUP_MEMBERSHIPS,
            Cursor::default(),
            None,
            &missing,
            |item| {
                tokens.insert(item.data.member_token.clone());
                true
            },
        )
        .await?;
        Ok(tokens)
    }

    /// Every member in every state, sorted by id, with email and name
    /// from `known` or, for new and changed members, from their account.
    async fn snapshot_users(
        &self,
        known: &KnownUsers,
        progress: &dyn ProgressSink,
    ) -> Result<Vec<User>, DirectoryError> {
        let path = self.ws_path("/memberships");
        let memberships = self
            .collect::<Membership>(&path, MEMBERSHIPS, &self.no_workspace(), |_| true)
            .await?;
        let mut users: Vec<User> = memberships
            .iter()
            .map(|m| user_from_membership(m, false))
            .collect();
        users.sort_by(|a, b| a.id.cmp(&b.id));
        // A list that shifted while it was read may show a member twice.
        users.dedup_by(|a, b| a.id == b.id);
        report(progress, "users", users.len(), users.len());

        let mut stale = Vec::new();
        for (index, user) in users.iter_mut().enumerate() {
            if reuse_known(user, known) {
                continue;
            }
            let username = user.username.clone().unwrap_or_default();
            if segment(&username).is_none() {
                // No URL reaches this account; failing every sync over one
                // odd member would be worse than a missing email.
                tracing::warn!(user = %user.id, "Mode member with an unusable username; no email");
                continue;
            }
            stale.push((index, username));
        }
        let total = stale.len();
        let mut details = stream::iter(stale)
            .map(|(index, username)| async move {
                match self.fetch_account(&username).await {
                    Ok(account) => Ok((index, Some(account.data))),
                    // Gone since the list was read: no email this time, and
                    // without one the next sync asks again.
                    Err(DirectoryError::NotFound { .. }) => Ok((index, None)),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(SNAPSHOT_CONCURRENCY);
        let mut done = 0;
        while let Some(detail) = details.next().await {
            let (index, account) = detail?;
            if let (Some(account), Some(user)) = (account, users.get_mut(index)) {
                fill_from_account(user, &account);
            }
            done += 1;
            report(progress, "user_details", done, total);
        }
        Ok(users)
    }

    /// The live groups, sorted by id, and their `(group, user)` pairs. A
    /// group deleted between the group list and its member list is left out.
    async fn snapshot_groups(
        &self,
        progress: &dyn ProgressSink,
    ) -> Result<(Vec<Group>, Vec<(String, String)>), DirectoryError> {
        let live = self.live_groups().await?;
        report(progress, "groups", live.len(), live.len());
        let total = live.len();
        let mut reads = stream::iter(live)
            .map(|group| async move {
                // An empty group needs no call (as in list_all_memberships).
                if group.data.member_count == Some(0) {
                    return Ok((group, Some(HashSet::new())));
                }
                match self.member_tokens(&group.data.token).await {
                    Ok(tokens) => Ok((group, Some(tokens))),
                    Err(DirectoryError::NotFound { .. }) => Ok((group, None)),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(SNAPSHOT_CONCURRENCY);
        let mut groups = Vec::with_capacity(total);
        let mut memberships = Vec::new();
        let mut done = 0;
        while let Some(read) = reads.next().await {
            let (group, tokens) = read?;
            if let Some(tokens) = tokens {
                let id = &group.data.token;
                memberships.extend(tokens.into_iter().map(|user| (id.clone(), user)));
                groups.push(group_from(&group, false));
            }
            done += 1;
            report(progress, "memberships", done, total);
        }
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        groups.dedup_by(|a, b| a.id == b.id);
        memberships.sort();
        memberships.dedup();
        Ok((groups, memberships))
    }

    fn no_group_text(&self, group: &str) -> String {
        format!("Mode has no group `{group}` in workspace `{}`", self.ws())
    }

    // ---- groups ---------------------------------------------------------------------

    /// A group that exists and is not soft-deleted.
    async fn live_group(&self, id: &str) -> Result<Item<payload::Group>, DirectoryError> {
        let path = self.group_path(id, "")?;
        let group: Item<payload::Group> = self
            .fetch(VendorRequest::get(path), || self.no_group_text(id))
            .await?;
        if group.data.is_deleted() {
            return Err(not_found(format!(
                "Mode group `{id}` in workspace `{}` was deleted",
                self.ws()
            )));
        }
        Ok(group)
    }

    /// The Mode group membership of a user in a group, if any.
    async fn group_entry(
        &self,
        group_id: &str,
        user_id: &str,
    ) -> Result<Option<Item<GroupMember>>, DirectoryError> {
        let path = self.group_path(group_id, "/memberships")?;
        let missing = || self.no_group_text(group_id);
        self.find::<GroupMember>(&path, GROUP_MEMBERSHIPS, &missing, |gm| {
            gm.member_token == user_id
        })
        .await
    }

    /// Memberships across every live group, in group order.
    async fn list_all_memberships(
        &self,
        user_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<GroupMembership>, DirectoryError> {
        let limit = limit_of(page);
        let mut pos = match &page.position {
            Some(p) => CrossCursor::parse(p).ok_or_else(bad_position)?,
            None => CrossCursor::default(),
        };
        let groups_path = self.ws_path("/groups");
        let no_workspace = self.no_workspace();
        let mut items = Vec::new();
        let mut calls = 0;
        let mut groups: Option<Window<payload::Group>> = None;
        let done = |items, next: Option<CrossCursor>| {
            Ok(Page {
                items,
                next_position: next.map(|c| c.encode()),
                is_partial_response: false,
            })
        };
        loop {
            // The group list around the current group.
            let window = match groups.take() {
                Some(w) if w.covers(pos.group.index) => w,
                Some(w) if w.exhausted_at(pos.group.index) => return done(items, None),
                _ => {
                    if calls >= MAX_LIST_CALLS {
                        return done(items, Some(pos));
                    }
                    let w = self
                        .window::<payload::Group>(&groups_path, GROUPS, &pos.group, &no_workspace)
                        .await?;
                    calls += 1;
                    // The group being walked, wherever it is now; else just
                    // after the group walked before it.
                    let current = pos
                        .current
                        .as_deref()
                        .and_then(|c| w.items.iter().position(|g| g.data.token == c));
                    pos.group.index = match current {
                        Some(k) => w.base + k,
                        None => paging::aligned_start(&w, &pos.group),
                    };
                    if w.exhausted_at(pos.group.index) {
                        return done(items, None);
                    }
                    if !w.covers(pos.group.index) {
                        groups = None;
                        // The next page of groups.
                        pos.group.last = None;
                        continue;
                    }
                    w
                }
            };
            let Some(group) = window.get(pos.group.index).cloned() else {
                return done(items, None);
            };
            groups = Some(window);
            let token = group.data.token.clone();
            if pos.current.as_deref() != Some(token.as_str()) {
                // A fresh group, or the list shifted under the position.
                pos.current = Some(token.clone());
                pos.member = Cursor::default();
            }
            if group.data.is_deleted() || group.data.member_count == Some(0) {
                pos.next_group(&token);
                continue;
            }
            if calls >= MAX_LIST_CALLS {
                return done(items, Some(pos));
            }
            let members_path = self.group_path(&token, "/memberships")?;
            let missing = || self.no_group_text(&token);
            let members = self
                .window::<GroupMember>(&members_path, GROUP_MEMBERSHIPS, &pos.member, &missing)
                .await?;
            calls += 1;
            pos.member.index = paging::aligned_start(&members, &pos.member);
            let from = pos.member.index.saturating_sub(members.base);
            for (k, item) in members.items.iter().enumerate().skip(from) {
                pos.member = Cursor::after(members.base + k, item.data.key());
                if user_id.is_none_or(|u| u == item.data.member_token) {
                    items.push(membership_from(&token, &item.data.member_token));
                }
                if items.len() >= limit {
                    if members.exhausted_at(pos.member.index) {
                        pos.next_group(&token);
                        if groups
                            .as_ref()
                            .is_some_and(|w| w.exhausted_at(pos.group.index))
                        {
                            return done(items, None);
                        }
                    }
                    return done(items, Some(pos));
                }
            }
            if members.exhausted_at(pos.member.index) {
                pos.next_group(&token);
            }
        }
    }
}

// ---- the Directory --------------------------------------------------------------------

#[async_trait]
impl Directory for ModeDirectory<'_> {
    fn provider(&self) -> Provider {
        Provider::Mode
    }

    /// Mode's email and name cost one call per member; unchanged members
    /// keep the ones the last snapshot has.
    fn reuses_known_users(&self) -> bool {
        true
    }

    /// Reads `GET /api/{ws}/memberships` only: emails, names and groups are
    /// left out (`is_partial_response`).
    async fn list_users(
        &self,
        query: &UserQuery,
        page: &PageRequest,
    ) -> Result<Page<User>, DirectoryError> {
        if query.email.is_some() {
            return Err(DirectoryError::Unsupported(
                "Mode's member list has no email addresses, so it cannot be filtered by email \
                 without one call per member; list without the filter, or get users by id"
                    .into(),
            ));
        }
        let status = query.status.unwrap_or(UserStatus::Active);
        let in_group = match &query.group_id {
            Some(group) => {
                if page.position.is_none() {
                    self.live_group(group).await?;
                }
                Some(self.member_tokens(group).await?)
            }
            None => None,
        };
        let path = self.ws_path("/memberships");
        let include = page.include_remote_data;
        let (items, next_position) = self
            .list_page::<Membership, User>(&path, MEMBERSHIPS, page, &self.no_workspace(), |item| {
                let m = &item.data;
                let wanted = status_of(m) == status
                    && query
                        .is_admin
                        .is_none_or(|admin| m.admin.unwrap_or(false) == admin)
                    && in_group
                        .as_ref()
                        .is_none_or(|set| set.contains(&m.member_token));
                wanted.then(|| user_from_membership(item, include))
            })
            .await?;
        Ok(Page {
            items,
            next_position,
            is_partial_response: true,
        })
    }

    async fn get_user(&self, id: &str, include_remote_data: bool) -> Result<User, DirectoryError> {
        let membership = self.membership_of(id).await?;
        self.complete_user(&membership, include_remote_data).await
    }

    /// The invite flow: `POST /api/{ws}/invites`, then the invitee's
    /// pending membership, then any groups.
    async fn create_user(&self, input: &NewUser) -> Result<User, DirectoryError> {
        if input.is_admin {
            return Err(DirectoryError::Unsupported(
                "Mode has no API to make a member an admin; invite them as a member, then \
                 promote them in Mode (Workspace Settings > People)"
                    .into(),
            ));
        }
        if non_empty(input.first_name.as_deref()).is_some()
            || non_empty(input.last_name.as_deref()).is_some()
        {
            return Err(DirectoryError::Unsupported(
                "Mode invites take only an email address; members set their own name in Mode"
                    .into(),
            ));
        }
        let email = input.email.trim();
        if email.is_empty() {
            return Err(DirectoryError::Invalid {
                message: "an email address is required to invite a user to Mode".into(),
                remote: None,
            });
        }
        // Every group must exist before anyone is invited.
        let mut group_ids: Vec<&str> = Vec::new();
        for id in &input.group_ids {
            if !group_ids.contains(&id.as_str()) {
                self.live_group(id).await?;
                group_ids.push(id);
            }
        }
        let message = non_empty(input.message.as_deref()).unwrap_or(DEFAULT_INVITE_MESSAGE);
        let body = json!({"invite": {"invitee": {"email": email}, "message": message}});
        let invite: Item<Invite> = self
            .fetch(
                VendorRequest::json(Method::POST, self.ws_path("/invites"), &body),
                self.no_workspace(),
            )
            .await?;
        let Some(username) = invite.data.invitee_username().map(str::to_owned) else {
            return Err(bad_response(
                "Mode's invite answer has no `_links.invitee` to find the invited user by".into(),
            ));
        };
        let membership = self
            .find_membership(|m| m.member_username == username)
            .await?
            .ok_or_else(|| {
                bad_response(format!(
                    "Mode accepted the invite but lists no membership for `{username}`"
                ))
            })?;
        for group in group_ids {
            self.add_group_membership(group, &membership.data.member_token)
                .await?;
        }
        self.complete_user(&membership, false).await
    }

    /// Mode has no API to change a member's role, profile or state. A patch
    /// that changes nothing (every value equal to the current one) returns
    /// the user; any real change is `Unsupported`.
    async fn update_user(&self, id: &str, patch: &UserPatch) -> Result<User, DirectoryError> {
        if patch.status == Some(UserStatus::Invited) {
            return Err(DirectoryError::Invalid {
                message: "status `invited` cannot be set; create the user to invite them".into(),
                remote: None,
            });
        }
        let user = self.get_user(id, false).await?;
        if patch.is_admin.is_some_and(|admin| admin != user.is_admin) {
            return Err(DirectoryError::Unsupported(
                "Mode has no API to change a member's role (admin or member); change it in Mode's \
                 Workspace Settings > People"
                    .into(),
            ));
        }
        let differs = |wanted: &Option<String>, current: &Option<String>| {
            wanted.as_ref().is_some_and(|w| Some(w) != current.as_ref())
        };
        let email_differs = patch.email.as_ref().is_some_and(|w| {
            user.email
                .as_ref()
                .is_none_or(|c| !c.eq_ignore_ascii_case(w.trim()))
        });
        if differs(&patch.first_name, &user.first_name)
            || differs(&patch.last_name, &user.last_name)
            || email_differs
        {
            return Err(DirectoryError::Unsupported(
                "Mode has no API to change a member's profile (name or email); members edit their \
                 own profile in Mode"
                    .into(),
            ));
        }
        match patch.status {
            Some(UserStatus::Inactive) if user.status != UserStatus::Inactive => {
                Err(DirectoryError::Unsupported(
                    "Mode has no API to deactivate a member; delete the user to remove their \
                     workspace membership"
                        .into(),
                ))
            }
            Some(UserStatus::Active) if user.status != UserStatus::Active => {
                Err(DirectoryError::Unsupported(
                    "Mode has no API to activate or reactivate a member; create the user to \
                     invite them (again)"
                        .into(),
                ))
            }
            _ => Ok(user),
        }
    }

    /// `DELETE /api/{ws}/memberships/{membership token}`: the member becomes
    /// a former member (Mode also drops them from every group).
    async fn delete_user(&self, id: &str) -> Result<(), DirectoryError> {
        let membership = self.membership_of(id).await?;
        let Some(token) = membership.data.token().and_then(segment) else {
            return Err(bad_response(format!(
                "Mode's membership of `{}` has no usable `_links.self` to delete it by",
                membership.data.member_username
            )));
        };
        self.call(
            VendorRequest::without_body(
                Method::DELETE,
                self.ws_path(&format!("/memberships/{token}")),
            ),
            || self.no_user(id).to_string(),
        )
        .await?;
        Ok(())
    }

    async fn list_groups(&self, page: &PageRequest) -> Result<Page<Group>, DirectoryError> {
        let path = self.ws_path("/groups");
        let include = page.include_remote_data;
        let (items, next_position) = self
            .list_page::<payload::Group, Group>(&path, GROUPS, page, &self.no_workspace(), |g| {
                (!g.data.is_deleted()).then(|| group_from(g, include))
            })
            .await?;
        Ok(Page {
            items,
            next_position,
            is_partial_response: false,
        })
    }

    async fn get_group(
        &self,
        id: &str,
        include_remote_data: bool,
    ) -> Result<Group, DirectoryError> {
        let group = self.live_group(id).await?;
        Ok(group_from(&group, include_remote_data))
    }

    async fn create_group(&self, input: &NewGroup) -> Result<Group, DirectoryError> {
        if non_empty(input.description.as_deref()).is_some() {
            return Err(DirectoryError::Unsupported(
                "Mode groups have no description (Mode's API takes only a name)".into(),
            ));
        }
        let body = json!({"user_group": {"name": input.name}});
        let group: Item<payload::Group> = self
            .fetch(
                VendorRequest::json(Method::POST, self.ws_path("/groups"), &body),
                self.no_workspace(),
            )
            .await?;
        Ok(group_from(&group, false))
    }

    async fn update_group(&self, id: &str, patch: &GroupPatch) -> Result<Group, DirectoryError> {
        if non_empty(patch.description.as_deref()).is_some() {
            return Err(DirectoryError::Unsupported(
                "Mode groups have no description (Mode's API takes only a name)".into(),
            ));
        }
        let Some(name) = &patch.name else {
            return self.get_group(id, false).await;
        };
        let body = json!({"user_group": {"name": name}});
        let group: Item<payload::Group> = self
            .fetch(
                VendorRequest::json(Method::PATCH, self.group_path(id, "")?, &body),
                || self.no_group_text(id),
            )
            .await?;
        Ok(group_from(&group, false))
    }

    /// Mode soft-deletes; a group already deleted is NotFound.
    async fn delete_group(&self, id: &str) -> Result<(), DirectoryError> {
        self.live_group(id).await?;
        self.call(
            VendorRequest::without_body(Method::DELETE, self.group_path(id, "")?),
            || self.no_group_text(id),
        )
        .await?;
        Ok(())
    }

    async fn list_group_memberships(
        &self,
        query: &MembershipQuery,
        page: &PageRequest,
    ) -> Result<Page<GroupMembership>, DirectoryError> {
        let Some(group_id) = &query.group_id else {
            return self
                .list_all_memberships(query.user_id.as_deref(), page)
                .await;
        };
        if page.position.is_none() {
            self.live_group(group_id).await?;
        }
        let path = self.group_path(group_id, "/memberships")?;
        let missing = || self.no_group_text(group_id);
        let user = query.user_id.as_deref();
        let (items, next_position) = self
            .list_page::<GroupMember, GroupMembership>(
                &path,
                GROUP_MEMBERSHIPS,
                page,
                &missing,
                |gm| {
                    user.is_none_or(|u| u == gm.data.member_token)
                        .then(|| membership_from(group_id, &gm.data.member_token))
                },
            )
            .await?;
        Ok(Page {
            items,
            next_position,
            is_partial_response: false,
        })
    }

    async fn add_group_membership(
        &self,
        group_id: &str,
        user_id: &str,
    ) -> Result<(GroupMembership, Added), DirectoryError> {
        self.live_group(group_id).await?;
        if !plausible_token(user_id) {
            return Err(self.no_user(user_id));
        }
        if self.group_entry(group_id, user_id).await?.is_some() {
            return Ok((membership_from(group_id, user_id), Added::AlreadyPresent));
        }
        let body = json!({"membership": {"member_token": user_id}});
        let request = VendorRequest::json(
            Method::POST,
            self.group_path(group_id, "/memberships")?,
            &body,
        );
        let answer = self.send(request).await?;
        if answer.is_success() {
            let _: Item<GroupMember> = Item::parse(answer.json()?)
                .map_err(|e| bad_response(format!("Mode's group membership answer: {e}")))?;
            return Ok((membership_from(group_id, user_id), Added::Created));
        }
        match self.failure(&answer, || {
            format!(
                "no such user `{user_id}` in Mode workspace `{}` (only current and invited \
                 members can join groups)",
                self.ws()
            )
        }) {
            // Added by someone else since we looked.
            DirectoryError::Conflict { .. } => {
                Ok((membership_from(group_id, user_id), Added::AlreadyPresent))
            }
            other => Err(other),
        }
    }

    /// Finds the Mode group-membership token by listing the group, then
    /// `DELETE /api/{ws}/groups/{group}/memberships/{token}`.
    async fn remove_group_membership(&self, id: &str) -> Result<(), DirectoryError> {
        let Some((group_id, user_id)) = GroupMembership::parse_id(id) else {
            return Err(not_found(format!(
                "`{id}` is not a group membership id (`<group id>:<user id>`)"
            )));
        };
        let absent = || {
            not_found(format!(
                "user `{user_id}` is not in Mode group `{group_id}` of workspace `{}`",
                self.ws()
            ))
        };
        if !plausible_token(user_id) {
            return Err(absent());
        }
        let entry = self
            .group_entry(group_id, user_id)
            .await?
            .ok_or_else(absent)?;
        let Some(token) = segment(&entry.data.token) else {
            return Err(bad_response(
                "Mode lists a group membership without a token".into(),
            ));
        };
        self.call(
            VendorRequest::without_body(
                Method::DELETE,
                self.group_path(group_id, &format!("/memberships/{token}"))?,
            ),
            || absent().to_string(),
        )
        .await?;
        Ok(())
    }

    async fn list_roles(&self) -> Result<Vec<Role>, DirectoryError> {
        Ok(static_roles())
    }

    /// `GET /api/{ws}/memberships` once, `GET /api/{username}` for new and
    /// changed members only, the group list, and each group's member list.
    async fn snapshot(
        &self,
        known: &KnownUsers,
        progress: &dyn ProgressSink,
    ) -> Result<DirectorySnapshot, DirectoryError> {
        let mut users = self.snapshot_users(known, progress).await?;
        let (groups, memberships) = self.snapshot_groups(progress).await?;
        let activity_exposed = match self.discovery_activity().await {
            Ok(Some(activity)) => {
                for user in &mut users {
                    user.last_active_at = activity.get(&user.id).cloned().flatten();
                }
                true
            }
            Ok(None) => false,
            // Activity is extra: a Discovery API that fails (it is known to
            // answer 503 for spells) must not hold up the directory. Without
            // it nobody's activity is known, so nobody is called inactive.
            Err(e) => {
                tracing::warn!(workspace = %self.ws(), error = %e, "Mode Discovery API failed; activity unknown this sync");
                false
            }
        };
        Ok(DirectorySnapshot {
            users,
            groups,
            memberships,
            roles: static_roles(),
            activity_exposed,
        })
    }

    async fn get_role(&self, id: &str) -> Result<Role, DirectoryError> {
        static_roles()
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| {
                not_found(format!(
                    "Mode has no role `{id}` (its roles are `admin` and `member`)"
                ))
            })
    }

    /// `GET /api/verify`; for a personal token also `GET /api/{ws}` (the
    /// caller's `membership_type` there says whether they are an admin).
    async fn me(&self) -> Result<Me, DirectoryError> {
        let verify: Item<Value> = self
            .fetch(VendorRequest::get("/api/verify"), || {
                "Mode does not know the linked credential".to_owned()
            })
            .await?;
        let is_workspace_token =
            verify.raw.get("workspace_token").is_some() && verify.raw.get("username").is_none();
        if is_workspace_token {
            let token = WorkspaceVerify::deserialize_from(&verify.raw)?;
            return Ok(Me {
                id: token.workspace_token,
                kind: "workspace_token".into(),
                username: None,
                email: None,
                name: None,
                is_admin: true,
                remote_data: Some(verify.raw),
            });
        }
        let user = Account::deserialize_from(&verify.raw)?;
        let workspace: Item<WorkspaceAccount> = self
            .fetch(VendorRequest::get(self.ws_path("")), self.no_workspace())
            .await?;
        let is_admin = workspace
            .data
            .membership_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("admin"));
        Ok(Me {
            id: user.token.clone().unwrap_or_else(|| user.username.clone()),
            kind: "user".into(),
            username: Some(user.username),
            email: non_empty(user.email.as_deref()).map(str::to_owned),
            name: non_empty(user.name.as_deref()).map(str::to_owned),
            is_admin,
            remote_data: Some(verify.raw),
        })
    }
}

/// Reading a Mode object out of a JSON value already fetched.
trait FromRaw: Sized {
    fn deserialize_from(raw: &Value) -> Result<Self, DirectoryError>;
}

impl<T: DeserializeOwned> FromRaw for T {
    fn deserialize_from(raw: &Value) -> Result<Self, DirectoryError> {
        T::deserialize(raw).map_err(|e| {
            bad_response(format!(
                "Mode's /api/verify answer is not the expected JSON: {e}"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership(state: Option<&str>, invited: Option<bool>) -> Membership {
        Membership {
            admin: None,
            invited,
            state: state.map(str::to_owned),
            member_username: "x".into(),
            member_token: "t".into(),
            activated_at: None,
            links: Default::default(),
        }
    }

    #[test]
    fn states_map_to_statuses() {
        use UserStatus::*;
        for (state, invited, want) in [
            (Some("active"), None, Active),
            (Some("ACTIVE"), Some(false), Active),
            (Some("pending"), Some(true), Invited),
            (Some("something"), Some(true), Invited),
            (Some("deactivated"), None, Inactive),
            (Some("banned"), Some(false), Inactive),
            (None, None, Active),
            (None, Some(true), Invited),
        ] {
            assert_eq!(status_of(&membership(state, invited)), want, "{state:?}");
        }
    }

    #[test]
    fn names_split_on_the_first_space() {
        assert_eq!(
            split_name("Ada Lovelace King"),
            (Some("Ada".into()), Some("Lovelace King".into()))
        );
        assert_eq!(split_name("carol"), (Some("carol".into()), None));
        assert_eq!(split_name("  "), (None, None));
    }

    #[test]
    fn segments_are_encoded_and_dots_refused() {
        assert_eq!(segment("ada_abbott17").as_deref(), Some("ada_abbott17"));
        assert_eq!(segment("a b/c").as_deref(), Some("a%20b%2Fc"));
        assert_eq!(segment(".."), None);
        assert_eq!(segment(""), None);
        assert!(plausible_token("9f0000000001"));
        assert!(!plausible_token("../x"));
        assert!(!plausible_token(""));
    }
}
