//! The difference between the last good snapshot and a new one: the rows
//! to write (only what changed, so a sync's writes follow the change, not
//! the size) and the events those changes are.

use std::collections::{BTreeMap, BTreeSet};

use rollcall_connectors::DirectorySnapshot;
use rollcall_core::id::{AccountId, TenantId};
use rollcall_core::unified::{Group, GroupMembership, User};
use rollcall_store::{
    CachedGroupRow, CachedRoleRow, CachedUserRow, EventRow, SyncCommit, memberships_hash,
};
use serde_json::Value;

use crate::events::{new_event, object_change};

/// The last good snapshot, as far as a diff needs to read it.
#[derive(Debug, Default)]
pub struct Previous {
    /// Every stored user's id and content hash (`None`: stored before
    /// hashes were kept), in id order (`sort_hashes`). The hashes settle
    /// the unchanged users without their JSON.
    pub user_hashes: Vec<(String, Option<i64>)>,
    /// Stored users in full: those the hashes cannot settle (changed or
    /// gone), or all of them where they were read anyway.
    pub users: BTreeMap<String, CachedUserRow>,
    pub groups: BTreeMap<String, CachedGroupRow>,
    /// The stored membership list's hash (`None`: none stored yet).
    pub memberships_hash: Option<i64>,
    /// The stored memberships, read only when the hash differs from the
    /// new list's (`needs_memberships`).
    pub memberships: BTreeSet<(String, String)>,
    /// Whether there was one at all: the first sync is a baseline and
    /// makes no object events.
    pub exists: bool,
}

impl Previous {
    /// Puts `user_hashes` in the order the diff walks (byte order of the
    /// ids, whatever order a database's collation gave them in).
    pub fn sort_hashes(&mut self) {
        self.user_hashes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }

    /// The stored users whose full rows the diff of `next` needs and that
    /// are not read yet: those whose hash differs, and those gone.
    pub fn users_to_read(&self, next: &Next) -> Vec<String> {
        let mut wanted = Vec::new();
        walk(
            &self.user_hashes,
            &next.known,
            &next.users,
            |n| &n.row.user_id,
            |step| match step {
                Step::Kept(n, stored) if stored != Some(n.hash) => {
                    wanted.push(n.row.user_id.clone())
                }
                Step::Gone(id) => wanted.push(id.to_owned()),
                _ => {}
            },
        );
        wanted.retain(|id| !self.users.contains_key(id));
        wanted
    }

    /// Whether the stored memberships must be read for the diff of `next`:
    /// only when its membership list differs from the stored one.
    pub fn needs_memberships(&self, next: &Next) -> bool {
        self.memberships_hash != Some(next.memberships_hash)
    }
}

/// Where a user stands between the stored snapshot and the new one.
enum Step<'a, N> {
    New(N),
    /// In both; the stored content hash.
    Kept(N, Option<i64>),
    Gone(&'a str),
}

/// Walks the stored ids and the new users together, both in id order: one
/// pass in memory order (looking each up in a map or by bisection misses
/// the cache on every step, which at 100,000 users costs more than the
/// rest of the diff). `known` (sorted) are the stored users listed again
/// unchanged and not built: passed over, unless built after all (a user
/// listed twice, changed in between), where the built one counts.
fn walk<'a, N>(
    stored: &'a [(String, Option<i64>)],
    known: &[usize],
    next: impl IntoIterator<Item = N>,
    id_of: impl Fn(&N) -> &String,
    mut visit: impl FnMut(Step<'a, N>),
) {
    let mut known = known.iter().copied().peekable();
    let mut is_known = |i: usize| {
        while known.next_if(|&k| k < i).is_some() {}
        known.peek() == Some(&i)
    };
    let mut stored = stored.iter().enumerate().peekable();
    for n in next {
        while let Some((i, (id, _))) = stored.next_if(|(_, (id, _))| id < id_of(&n)) {
            if !is_known(i) {
                visit(Step::Gone(id));
            }
        }
        match stored.next_if(|(_, (id, _))| id == id_of(&n)) {
            Some((_, (_, hash))) => visit(Step::Kept(n, *hash)),
            None => visit(Step::New(n)),
        }
    }
    for (i, (id, _)) in stored {
        if !is_known(i) {
            visit(Step::Gone(id));
        }
    }
}

/// A user of the new snapshot in its stored form, with the hash to store
/// beside it.
#[derive(Debug, Clone)]
pub struct NextUser {
    /// Boxed: sorting 100,000 users moves each several times.
    pub row: Box<CachedUserRow>,
    pub hash: i64,
}

/// Bumped whenever `user_row` stores a user differently: hashes made from
/// connectors' fingerprints then all miss once, and every user is stored
/// afresh. (Content hashes follow the stored text by themselves.)
const STORED_FORM_VERSION: i64 = 1;

/// What is stored beside a user a connector fingerprinted.
pub fn fingerprint_hash(fingerprint: i64) -> i64 {
    fingerprint ^ STORED_FORM_VERSION
}

/// The new snapshot's users as stored rows, in id order, each id once
/// (the first listed wins). Pure CPU work, for a blocking thread. In
/// primary-key order, too, the commit appends to the B-tree instead of
/// splitting pages all over it.
pub fn next_users(users: Vec<User>) -> Vec<NextUser> {
    let mut json = Vec::new();
    in_id_order(
        users
            .into_iter()
            .map(|user| next_user(user, None, &mut json))
            .collect(),
    )
}

/// A user in stored form with its hash: the fingerprint's (`fingerprint_hash`)
/// if the connector gave one, else the content hash. `json` is a buffer
/// the caller may reuse (serializing into a fresh string grows it three
/// times for a typical user).
pub fn next_user(user: User, fingerprint: Option<i64>, json: &mut Vec<u8>) -> NextUser {
    json.clear();
    let row = user_row(user, json);
    let hash = fingerprint.map_or_else(|| row.content_hash(), fingerprint_hash);
    NextUser {
        row: Box::new(row),
        hash,
    }
}

/// Rows in listing order put in id order, each id once (the first listed).
pub fn in_id_order(mut rows: Vec<NextUser>) -> Vec<NextUser> {
    // Stable: of two rows with one id, the first listed is kept.
    rows.sort_by(|a, b| a.row.user_id.cmp(&b.row.user_id));
    rows.dedup_by(|later, first| later.row.user_id == first.row.user_id);
    rows
}

/// The new snapshot, its users already in stored form (`next_users`).
#[derive(Debug)]
pub struct Next {
    /// The users built, in id order, each once.
    users: Vec<NextUser>,
    /// The stored users listed again unchanged and not built (`Listed::Known`):
    /// their places in `Previous::user_hashes`, sorted, each once.
    known: Vec<usize>,
    /// Everything else; its memberships sorted, each once.
    rest: DirectorySnapshot,
    memberships_hash: i64,
}

/// A snapshot's all but users, ready for the diff: its memberships sorted,
/// each once, and hashed. Pure CPU work, for a blocking thread (beside the
/// users' own).
#[derive(Debug)]
pub struct Rest {
    snapshot: DirectorySnapshot,
    memberships_hash: i64,
}

impl Rest {
    pub fn new(mut snapshot: DirectorySnapshot) -> Self {
        snapshot.users = Vec::new();
        // Connectors that can hand them over sorted do (one pass to check).
        if !snapshot.memberships.is_sorted() {
            snapshot.memberships.sort_unstable();
        }
        snapshot.memberships.dedup();
        let memberships_hash = memberships_hash(&snapshot.memberships);
        Self {
            snapshot,
            memberships_hash,
        }
    }
}

impl Next {
    pub fn new(users: Vec<NextUser>, rest: DirectorySnapshot) -> Self {
        Self::of(users, Vec::new(), Rest::new(rest))
    }

    /// `known` in any order, repeats allowed.
    pub fn of(users: Vec<NextUser>, mut known: Vec<usize>, rest: Rest) -> Self {
        known.sort_unstable();
        known.dedup();
        Self {
            users,
            known,
            rest: rest.snapshot,
            memberships_hash: rest.memberships_hash,
        }
    }

    /// How many users, groups, memberships and roles it holds (a user both
    /// in `known` and built counts twice: `Progress` keeps them apart).
    pub fn sizes(&self) -> (usize, usize, usize, usize) {
        (
            self.users.len() + self.known.len(),
            self.rest.groups.len(),
            self.rest.memberships.len(),
            self.rest.roles.len(),
        )
    }
}

/// The stored form of a user: groups come from memberships, remote data
/// is not kept. Serialized through `buffer` (empty on entry).
fn user_row(mut user: User, buffer: &mut Vec<u8>) -> CachedUserRow {
    user.groups = None;
    user.remote_data = None;
    let data_json = match serde_json::to_writer(&mut *buffer, &user) {
        Ok(()) => String::from_utf8_lossy(buffer).into_owned(),
        Err(_) => String::new(),
    };
    CachedUserRow {
        email: user.email.as_deref().map(|e| e.trim().to_lowercase()),
        status: user.status.as_str().to_owned(),
        is_admin: user.is_admin,
        data_json,
        user_id: user.id,
    }
}

pub fn group_row(group: &Group) -> CachedGroupRow {
    let mut stored = group.clone();
    stored.remote_data = None;
    CachedGroupRow {
        group_id: group.id.clone(),
        name: group.name.clone(),
        data_json: serde_json::to_string(&stored).unwrap_or_default(),
    }
}

fn parsed(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or(Value::Null)
}

/// A group without its member count, which moves with every membership
/// change (those have their own events).
fn group_identity(json: &str) -> Value {
    let mut value = parsed(json);
    if let Some(map) = value.as_object_mut() {
        map.remove("member_count");
    }
    value
}

/// A user without its last activity.
fn without_activity(json: &str) -> Value {
    let mut value = parsed(json);
    if let Some(map) = value.as_object_mut() {
        map.remove("last_active_at");
    }
    value
}

fn membership_json(group_id: &str, user_id: &str) -> Value {
    serde_json::to_value(GroupMembership {
        id: GroupMembership::id_for(group_id, user_id),
        group_id: group_id.to_owned(),
        user_id: user_id.to_owned(),
        created_at: None,
    })
    .unwrap_or(Value::Null)
}

pub struct DiffContext<'a> {
    pub tenant: &'a TenantId,
    pub account: &'a AccountId,
    pub sync_run_id: &'a str,
    pub now: i64,
}

/// The events a diff finds; their JSON is built only when they will be
/// kept (a first sync makes none, and may cover a large directory).
struct Events<'a> {
    emit: bool,
    cx: &'a DiffContext<'a>,
    out: Vec<EventRow>,
    /// Something event-worthy changed (emitted or not).
    changed: bool,
}

impl Events<'_> {
    fn push(
        &mut self,
        kind: &str,
        object: &str,
        id: &str,
        change: impl FnOnce() -> (Option<Value>, Option<Value>),
    ) {
        self.changed = true;
        if self.emit {
            let (before, after) = change();
            self.out.push(new_event(
                self.cx.tenant,
                Some(self.cx.account),
                kind,
                self.cx.now,
                object_change(object, id, before, after, self.cx.sync_run_id),
            ));
        }
    }
}

/// The rows and events of the change from `previous` to `next`, as a commit
/// whose run bookkeeping (lease, run, counts, times) the caller fills in.
/// `previous` must hold in full the users `users_to_read` names. Takes the
/// snapshot by value: rows move into the commit instead of being copied.
pub fn diff<'a>(previous: &Previous, next: Next, cx: &'a DiffContext<'a>) -> SyncCommit {
    let mut c = SyncCommit::default();
    let mut events = Events {
        emit: previous.exists,
        cx,
        out: Vec::new(),
        changed: false,
    };

    let compare_memberships = previous.needs_memberships(&next);
    c.memberships_hash = Some(next.memberships_hash);

    // Users.
    let mut gone = Vec::new();
    walk(
        &previous.user_hashes,
        &next.known,
        next.users,
        |n| &n.row.user_id,
        |step| {
            let (row, hash, old) = match step {
                Step::Gone(id) => return gone.push(id),
                Step::New(NextUser { row, hash }) => {
                    events.push("user.created", "user", &row.user_id, || {
                        (None, Some(parsed(&row.data_json)))
                    });
                    return c.upsert_users.push((*row, hash));
                }
                Step::Kept(NextUser { hash, .. }, Some(stored)) if stored == hash => return,
                Step::Kept(NextUser { row, hash }, _) => {
                    let old = previous.users.get(&row.user_id);
                    (row, hash, old)
                }
            };
            // The hash differs (or was never stored): the JSON decides. Same
            // serializer, so equal text is the cheap common case; the parse
            // settles differences in formatting. Either way the row is written
            // again, so its hash is right from now on.
            let changed = old.is_none_or(|old| {
                old.data_json != row.data_json && parsed(&old.data_json) != parsed(&row.data_json)
            });
            // Activity moves with every login: stored, but no event (and no
            // staleness) for it alone.
            let old = old.filter(|old| {
                changed && without_activity(&old.data_json) != without_activity(&row.data_json)
            });
            if let Some(old) = old {
                let deactivated = old.status != "inactive" && row.status == "inactive";
                let kind = if deactivated {
                    "user.deactivated"
                } else {
                    "user.updated"
                };
                events.push(kind, "user", &row.user_id, || {
                    (Some(parsed(&old.data_json)), Some(parsed(&row.data_json)))
                });
            }
            c.upsert_users.push((*row, hash));
        },
    );
    for id in gone {
        let old = previous.users.get(id);
        events.push("user.deleted", "user", id, || {
            (old.map(|o| parsed(&o.data_json)), None)
        });
        c.delete_users.push(id.to_owned());
    }
    let next = next.rest;

    // Groups.
    let mut seen_groups = BTreeSet::new();
    for group in &next.groups {
        if !seen_groups.insert(group.id.as_str()) {
            continue;
        }
        let row = group_row(group);
        match previous.groups.get(&group.id) {
            None => {
                events.push("group.created", "group", &group.id, || {
                    (None, Some(parsed(&row.data_json)))
                });
                c.upsert_groups.push(row);
            }
            Some(old) if old.data_json != row.data_json => {
                if group_identity(&old.data_json) != group_identity(&row.data_json) {
                    events.push("group.updated", "group", &group.id, || {
                        (Some(parsed(&old.data_json)), Some(parsed(&row.data_json)))
                    });
                }
                c.upsert_groups.push(row);
            }
            Some(_) => {}
        }
    }
    for (id, old) in &previous.groups {
        if !seen_groups.contains(id.as_str()) {
            events.push("group.deleted", "group", id, || {
                (Some(parsed(&old.data_json)), None)
            });
            c.delete_groups.push(id.clone());
        }
    }

    // Memberships, unless the list hashes as stored: the removed ones first
    // (few, cloned), then the new set is consumed so the added ones move
    // instead of being copied.
    let unchanged = BTreeSet::new();
    let (previous_memberships, next_memberships) = if compare_memberships {
        (
            &previous.memberships,
            next.memberships.into_iter().collect(),
        )
    } else {
        (&unchanged, BTreeSet::new())
    };
    for (group, user) in previous_memberships.difference(&next_memberships) {
        let id = GroupMembership::id_for(group, user);
        events.push("group_membership.removed", "group_membership", &id, || {
            (Some(membership_json(group, user)), None)
        });
        c.remove_memberships.push((group.clone(), user.clone()));
    }
    for pair in next_memberships {
        if previous_memberships.contains(&pair) {
            continue;
        }
        let id = GroupMembership::id_for(&pair.0, &pair.1);
        events.push("group_membership.added", "group_membership", &id, || {
            (None, Some(membership_json(&pair.0, &pair.1)))
        });
        c.add_memberships.push(pair);
    }

    c.roles = next
        .roles
        .iter()
        .map(|role| CachedRoleRow {
            role_id: role.id.clone(),
            data_json: serde_json::to_string(role).unwrap_or_default(),
        })
        .collect();
    c.activity_exposed = next.activity_exposed;
    c.snapshot_changed = events.changed;
    c.events = events.out;
    c
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rollcall_core::unified::UserStatus;

    use super::*;
    use crate::testing::user;

    /// The tenant and account a diff's events belong to.
    struct Ids {
        tenant: TenantId,
        account: AccountId,
    }

    impl Ids {
        fn new() -> Self {
            Self {
                tenant: TenantId::generate(),
                account: AccountId::generate(),
            }
        }

        fn cx(&self) -> DiffContext<'_> {
            DiffContext {
                tenant: &self.tenant,
                account: &self.account,
                sync_run_id: "sync_1",
                now: 5,
            }
        }
    }

    fn group(id: &str, name: &str, count: u64) -> Group {
        Group {
            id: id.into(),
            name: name.into(),
            description: None,
            member_count: Some(count),
            is_builtin: false,
            created_at: None,
            updated_at: None,
            remote_data: None,
        }
    }

    /// The stored form of `snapshot`, read as a sync reads it: hashes of
    /// every user, full rows of none.
    fn previous_of(snapshot: &DirectorySnapshot) -> Previous {
        Previous {
            user_hashes: next_users(snapshot.users.clone())
                .into_iter()
                .map(|n| (n.row.user_id, Some(n.hash)))
                .collect(),
            users: BTreeMap::new(),
            groups: snapshot
                .groups
                .iter()
                .map(|g| (g.id.clone(), group_row(g)))
                .collect(),
            memberships_hash: Some(memberships_hash(&sorted(&snapshot.memberships))),
            memberships: BTreeSet::new(),
            exists: true,
        }
    }

    fn sorted(pairs: &[(String, String)]) -> Vec<(String, String)> {
        let set: BTreeSet<_> = pairs.iter().cloned().collect();
        set.into_iter().collect()
    }

    /// Diffs `next` against `stored` as a sync does: the full rows
    /// `users_to_read` names are read first (and only those).
    fn diff_against(
        stored: &DirectorySnapshot,
        mut previous: Previous,
        next: DirectorySnapshot,
        cx: &DiffContext<'_>,
    ) -> (SyncCommit, Vec<String>) {
        let next = Next::new(next_users(next.users.clone()), next);
        let wanted = previous.users_to_read(&next);
        previous.users = next_users(stored.users.clone())
            .into_iter()
            .filter(|n| wanted.contains(&n.row.user_id))
            .map(|n| (n.row.user_id.clone(), *n.row))
            .collect();
        if previous.needs_memberships(&next) {
            previous.memberships = stored.memberships.iter().cloned().collect();
        }
        (diff(&previous, next, cx), wanted)
    }

    fn kinds(changes: &SyncCommit) -> Vec<(String, String)> {
        changes
            .events
            .iter()
            .map(|e| {
                let data: Value = serde_json::from_str(&e.data_json).unwrap();
                (
                    e.event_type.clone(),
                    data["object_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn changes_become_exactly_their_events() {
        let ids = Ids::new();
        let cx = ids.cx();
        let before = DirectorySnapshot {
            users: vec![
                user("a", UserStatus::Active, true),
                user("b", UserStatus::Active, false),
                user("c", UserStatus::Active, false),
            ],
            groups: vec![group("g1", "Eng", 2), group("g2", "Ops", 0)],
            memberships: vec![("g1".into(), "a".into()), ("g1".into(), "b".into())],
            roles: vec![],
            activity_exposed: true,
        };
        let after = DirectorySnapshot {
            users: vec![
                user("a", UserStatus::Active, false),
                user("b", UserStatus::Inactive, false),
                user("d", UserStatus::Invited, false),
            ],
            groups: vec![group("g1", "Eng", 1), group("g3", "New", 1)],
            memberships: vec![("g1".into(), "a".into()), ("g3".into(), "d".into())],
            roles: vec![],
            activity_exposed: true,
        };
        let (changes, read) = diff_against(&before, previous_of(&before), after.clone(), &cx);
        // Only the changed and the gone were read in full.
        assert_eq!(read, vec!["a", "b", "c"]);
        assert_eq!(
            kinds(&changes),
            vec![
                ("user.updated".into(), "a".into()),
                ("user.deactivated".into(), "b".into()),
                ("user.created".into(), "d".into()),
                ("user.deleted".into(), "c".into()),
                ("group.created".into(), "g3".into()),
                ("group.deleted".into(), "g2".into()),
                ("group_membership.removed".into(), "g1:b".into()),
                ("group_membership.added".into(), "g3:d".into()),
            ]
        );
        // g1's count changed: stored again, but no event of its own.
        assert_eq!(changes.upsert_groups.len(), 2);
        assert_eq!(changes.delete_users, vec!["c".to_owned()]);
        let stored = previous_of(&after);
        let mut shuffled = after.clone();
        shuffled.memberships.reverse();
        shuffled.memberships.push(shuffled.memberships[0].clone());
        // The same list in another order, one pair twice: same hash.
        assert!(!stored.needs_memberships(&Next::new(vec![], shuffled.clone())));
        let (unchanged, read) = diff_against(&after, stored, shuffled, &cx);
        assert!(read.is_empty());
        assert_eq!(
            unchanged.memberships_hash,
            previous_of(&after).memberships_hash
        );
        assert!(unchanged.events.is_empty());
        assert!(unchanged.upsert_users.is_empty() && unchanged.upsert_groups.is_empty());
    }

    #[test]
    fn activity_alone_is_stored_without_an_event() {
        let ids = Ids::new();
        let cx = ids.cx();
        let mut seen = user("a", UserStatus::Active, false);
        let before = DirectorySnapshot {
            users: vec![seen.clone()],
            ..DirectorySnapshot::default()
        };
        seen.last_active_at = Some("2026-12-01T10:00:00Z".into());
        let after = DirectorySnapshot {
            users: vec![seen],
            ..DirectorySnapshot::default()
        };
        let (changes, _) = diff_against(&before, previous_of(&before), after, &cx);
        assert!(changes.events.is_empty());
        assert!(!changes.snapshot_changed);
        assert_eq!(changes.upsert_users.len(), 1);
    }

    #[test]
    fn the_first_sync_is_a_silent_baseline() {
        let ids = Ids::new();
        let cx = ids.cx();
        let snapshot = DirectorySnapshot {
            users: vec![user("a", UserStatus::Active, true)],
            ..DirectorySnapshot::default()
        };
        let (changes, _) = diff_against(
            &DirectorySnapshot::default(),
            Previous::default(),
            snapshot,
            &cx,
        );
        assert!(changes.events.is_empty());
        assert_eq!(changes.upsert_users.len(), 1);
    }

    /// Users a connector fingerprints are not stored again while their
    /// record holds: a change to the stored form must bump
    /// `STORED_FORM_VERSION`, or users synced before keep the old form.
    #[test]
    fn the_stored_form_is_pinned() {
        let mut ada = user("7", UserStatus::Inactive, true);
        ada.email = Some(" Ada@Example.com ".into());
        ada.groups = Some(vec![]);
        ada.remote_data = Some(serde_json::json!({"id": 7}));
        let n = next_user(ada, Some(41), &mut Vec::new());
        assert_eq!(n.hash, fingerprint_hash(41));
        assert_eq!(
            (
                n.row.user_id.as_str(),
                n.row.email.as_deref(),
                n.row.status.as_str(),
                n.row.is_admin,
                n.row.data_json.as_str(),
            ),
            (
                "7",
                Some("ada@example.com"),
                "inactive",
                true,
                r#"{"id":"7","username":"7","email":" Ada@Example.com ","first_name":null,"last_name":null,"name":null,"status":"inactive","is_admin":true,"roles":[],"groups":null,"last_active_at":null,"created_at":null,"updated_at":null}"#,
            ),
            "the stored form changed: bump STORED_FORM_VERSION"
        );
    }

    #[test]
    fn users_listed_unchanged_are_passed_over_and_the_rest_diffed() {
        let ids = Ids::new();
        let cx = ids.cx();
        let before = DirectorySnapshot {
            users: ["a", "b", "c", "d", "e"]
                .into_iter()
                .map(|id| user(id, UserStatus::Active, false))
                .collect(),
            ..DirectorySnapshot::default()
        };
        let mut previous = previous_of(&before);
        // Listed unchanged, by place: "a", "d" (twice) and "e"; "b" is built
        // changed (and listed unchanged too: the built one counts); "c" is
        // not listed at all.
        let built = next_users(vec![user("b", UserStatus::Inactive, false)]);
        let next = Next::of(
            built,
            vec![4, 3, 0, 3, 1],
            Rest::new(DirectorySnapshot::default()),
        );
        assert_eq!(next.sizes().0, 5);
        let wanted = previous.users_to_read(&next);
        assert_eq!(wanted, vec!["b", "c"]);
        previous.users = next_users(before.users.clone())
            .into_iter()
            .filter(|n| wanted.contains(&n.row.user_id))
            .map(|n| (n.row.user_id.clone(), *n.row))
            .collect();
        let changes = diff(&previous, next, &cx);
        assert_eq!(
            kinds(&changes),
            vec![
                ("user.deactivated".into(), "b".into()),
                ("user.deleted".into(), "c".into())
            ]
        );
        let written: Vec<_> = changes
            .upsert_users
            .iter()
            .map(|(u, _)| u.user_id.as_str())
            .collect();
        assert_eq!(written, vec!["b"]);
        assert_eq!(changes.delete_users, vec!["c"]);
    }

    #[test]
    fn users_stored_without_a_hash_are_compared_in_full_and_rewritten_quietly() {
        let ids = Ids::new();
        let cx = ids.cx();
        let snapshot = DirectorySnapshot {
            users: vec![
                user("a", UserStatus::Active, false),
                user("b", UserStatus::Active, false),
            ],
            ..DirectorySnapshot::default()
        };
        let mut previous = previous_of(&snapshot);
        for (_, hash) in &mut previous.user_hashes {
            *hash = None;
        }
        let mut next = snapshot.clone();
        next.users[1].status = UserStatus::Inactive;
        let (changes, read) = diff_against(&snapshot, previous, next, &cx);
        assert_eq!(read, vec!["a", "b"]);
        assert_eq!(
            kinds(&changes),
            vec![("user.deactivated".into(), "b".into())]
        );
        // Both rewritten: "a" only to store its hash.
        assert_eq!(changes.upsert_users.len(), 2);
        assert!(changes.snapshot_changed);
    }

    #[test]
    fn a_user_listed_twice_counts_once_and_the_first_wins() {
        let mut second = user("a", UserStatus::Inactive, false);
        second.email = Some("other@example.com".into());
        let rows = next_users(vec![
            user("b", UserStatus::Active, false),
            user("a", UserStatus::Active, false),
            second,
        ]);
        let ids: Vec<_> = rows.iter().map(|n| n.row.user_id.as_str()).collect();
        assert_eq!(ids, vec!["a", "b"]);
        assert_eq!(rows[0].row.status, "active");
    }
}
