//! The difference between the last good snapshot and a new one: the rows
//! to write (only what changed, so a sync's writes follow the change, not
//! the size) and the events those changes are.

use std::collections::{BTreeMap, BTreeSet};

use rollcall_connectors::DirectorySnapshot;
use rollcall_core::id::{AccountId, TenantId};
use rollcall_core::unified::{Group, GroupMembership, User};
use rollcall_store::{CachedGroupRow, CachedRoleRow, CachedUserRow, EventRow, SyncCommit};
use serde_json::Value;

use crate::events::{new_event, object_change};

/// The last good snapshot, as stored.
#[derive(Debug, Default)]
pub struct Previous {
    pub users: BTreeMap<String, CachedUserRow>,
    pub groups: BTreeMap<String, CachedGroupRow>,
    pub memberships: BTreeSet<(String, String)>,
    /// Whether there was one at all: the first sync is a baseline and
    /// makes no object events.
    pub exists: bool,
}

/// The stored form of a user: groups come from memberships, remote data
/// is not kept.
pub fn user_row(user: &User) -> CachedUserRow {
    let mut stored = user.clone();
    stored.groups = None;
    stored.remote_data = None;
    CachedUserRow {
        user_id: user.id.clone(),
        email: user.email.as_deref().map(|e| e.trim().to_lowercase()),
        status: user.status.as_str().to_owned(),
        is_admin: user.is_admin,
        data_json: serde_json::to_string(&stored).unwrap_or_default(),
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
/// Takes the snapshot by value: each user is turned into its stored row and
/// dropped as the walk goes, so a large directory is not held twice.
pub fn diff<'a>(
    previous: &Previous,
    next: DirectorySnapshot,
    cx: &'a DiffContext<'a>,
) -> SyncCommit {
    let mut c = SyncCommit::default();
    let mut events = Events {
        emit: previous.exists,
        cx,
        out: Vec::new(),
        changed: false,
    };

    // Users.
    let mut seen_users: BTreeSet<String> = BTreeSet::new();
    for user in next.users {
        if !seen_users.insert(user.id.clone()) {
            continue;
        }
        let row = user_row(&user);
        drop(user);
        match previous.users.get(&row.user_id) {
            None => {
                events.push("user.created", "user", &row.user_id, || {
                    (None, Some(parsed(&row.data_json)))
                });
                c.upsert_users.push(row);
            }
            // Same serializer, so equal text is the common, cheap case; the
            // parse only settles differences in formatting.
            Some(old)
                if old.data_json != row.data_json
                    && parsed(&old.data_json) != parsed(&row.data_json) =>
            {
                // Activity moves with every login: stored, but no event
                // (and no staleness) for it alone.
                if without_activity(&old.data_json) == without_activity(&row.data_json) {
                    c.upsert_users.push(row);
                    continue;
                }
                let deactivated = old.status != "inactive" && row.status == "inactive";
                let kind = if deactivated {
                    "user.deactivated"
                } else {
                    "user.updated"
                };
                events.push(kind, "user", &row.user_id, || {
                    (Some(parsed(&old.data_json)), Some(parsed(&row.data_json)))
                });
                c.upsert_users.push(row);
            }
            Some(_) => {}
        }
    }
    for (id, old) in &previous.users {
        if !seen_users.contains(id.as_str()) {
            events.push("user.deleted", "user", id, || {
                (Some(parsed(&old.data_json)), None)
            });
            c.delete_users.push(id.clone());
        }
    }

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

    // Memberships: the removed ones first (few, cloned), then the new set
    // is consumed so the added ones move instead of being copied.
    let next_memberships: BTreeSet<(String, String)> = next.memberships.into_iter().collect();
    for (group, user) in previous.memberships.difference(&next_memberships) {
        let id = GroupMembership::id_for(group, user);
        events.push("group_membership.removed", "group_membership", &id, || {
            (Some(membership_json(group, user)), None)
        });
        c.remove_memberships.push((group.clone(), user.clone()));
    }
    for pair in next_memberships {
        if previous.memberships.contains(&pair) {
            continue;
        }
        let id = GroupMembership::id_for(&pair.0, &pair.1);
        events.push("group_membership.added", "group_membership", &id, || {
            (None, Some(membership_json(&pair.0, &pair.1)))
        });
        c.add_memberships.push(pair);
    }

    // In primary-key order, so the commit appends to the B-tree instead of
    // splitting pages all over it (vendors number users; keys are text).
    c.upsert_users
        .sort_unstable_by(|a, b| a.user_id.cmp(&b.user_id));

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

    fn user(id: &str, status: UserStatus, admin: bool) -> User {
        User {
            id: id.into(),
            username: Some(id.into()),
            email: Some(format!("{id}@example.com")),
            first_name: None,
            last_name: None,
            name: None,
            status,
            is_admin: admin,
            roles: vec![],
            groups: None,
            last_active_at: None,
            created_at: None,
            updated_at: None,
            remote_data: None,
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

    fn previous_of(snapshot: &DirectorySnapshot) -> Previous {
        Previous {
            users: snapshot
                .users
                .iter()
                .map(|u| (u.id.clone(), user_row(u)))
                .collect(),
            groups: snapshot
                .groups
                .iter()
                .map(|g| (g.id.clone(), group_row(g)))
                .collect(),
            memberships: snapshot.memberships.iter().cloned().collect(),
            exists: true,
        }
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
        let tenant = TenantId::generate();
        let account = AccountId::generate();
        let cx = DiffContext {
            tenant: &tenant,
            account: &account,
            sync_run_id: "sync_1",
            now: 5,
        };
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
        let changes = diff(&previous_of(&before), after.clone(), &cx);
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
        let unchanged = diff(&previous_of(&after), after, &cx);
        assert!(unchanged.events.is_empty());
        assert!(unchanged.upsert_users.is_empty() && unchanged.upsert_groups.is_empty());
    }

    #[test]
    fn activity_alone_is_stored_without_an_event() {
        let tenant = TenantId::generate();
        let account = AccountId::generate();
        let cx = DiffContext {
            tenant: &tenant,
            account: &account,
            sync_run_id: "sync_1",
            now: 5,
        };
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
        let previous = previous_of(&before);
        let changes = diff(&previous, after, &cx);
        assert!(changes.events.is_empty());
        assert!(!changes.snapshot_changed);
        assert_eq!(changes.upsert_users.len(), 1);
    }

    #[test]
    fn the_first_sync_is_a_silent_baseline() {
        let tenant = TenantId::generate();
        let account = AccountId::generate();
        let cx = DiffContext {
            tenant: &tenant,
            account: &account,
            sync_run_id: "s",
            now: 5,
        };
        let snapshot = DirectorySnapshot {
            users: vec![user("a", UserStatus::Active, true)],
            ..DirectorySnapshot::default()
        };
        let changes = diff(&Previous::default(), snapshot, &cx);
        assert!(changes.events.is_empty());
        assert_eq!(changes.upsert_users.len(), 1);
    }
}
