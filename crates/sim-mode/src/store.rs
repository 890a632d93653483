//! The simulator's data: one workspace, its users, memberships, groups and
//! group memberships, held compactly so a million seeded users stay cheap.
//!
//! Seeded users store only two name indices; their username, name and email
//! are derived from those and from their position (`ada_abbott17`,
//! `Ada Abbott`, `ada.abbott17@acme.example`). Users from a data file or an
//! invite store their strings. All tokens come from [`crate::tokens`].

use std::borrow::Cow;
use std::collections::HashMap;

use rollcall_sim_kit::SeededRng;
use rollcall_sim_kit::rng::{FIRST_NAMES, GROUP_NAMES, LAST_NAMES};

use crate::tokens::{Keys, Kind, TokenSpace, parse_hex12};

/// Seeded dates are laid out before this fixed instant (2025-10-01T00:00Z)
/// instead of "now", so the same seed gives byte-identical data whenever it
/// runs.
pub(crate) const DATA_ANCHOR_MS: i64 = 1_759_276_800_000;
/// 2019-01-01T00:00Z, the workspace's creation date.
const WORKSPACE_CREATED_MS: i64 = 1_546_300_800_000;
pub(crate) const DAY_MS: i64 = 86_400_000;
/// "No user" in compact `u32` user references (creators).
pub(crate) const NO_USER: u32 = u32::MAX;
/// Numeric user ids look like the spec's `745240`.
const USER_ID_BASE: u64 = 700_000;
/// Numeric Discovery membership ids, a separate range.
const MEMBERSHIP_ID_BASE: u64 = 2_000_000;
/// Paths that can never be usernames because a route of their own wins.
const RESERVED_NAMES: &[&str] = &["account", "verify", "organizations", "batch", "_sim"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberState {
    /// A full member or admin.
    Active,
    /// Invited, not yet accepted: the help article's "Pending Members".
    /// [GUESS] the value `pending`; the spec only knows the tab name.
    Pending,
    /// Removed by an admin: "Former Members". [GUESS] the value
    /// `deactivated`; the spec offers `banned` or `deactivated`.
    Deactivated,
}

impl MemberState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Pending => "pending",
            Self::Deactivated => "deactivated",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub admin: bool,
    pub invited: bool,
    pub state: MemberState,
    /// For pending members, the invite time: the field is required and a
    /// string in the spec, so it is never null. [GUESS]
    pub activated_ms: i64,
    pub banned_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub(crate) enum Person {
    Seeded { first: u8, last: u8 },
    Named(Box<Named>),
}

#[derive(Debug, Clone)]
pub(crate) struct Named {
    pub username: String,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub person: Person,
    pub created_ms: i64,
    pub email_verified: bool,
    /// The membership in the one workspace; `None` for users in no workspace.
    pub membership: Option<Membership>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    Active,
    SoftDeleted,
}

impl GroupState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::SoftDeleted => "soft_deleted",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub name: String,
    pub state: GroupState,
    pub creator: u32,
    /// Live group-membership indices, in the order they were added.
    pub members: Vec<u32>,
}

#[derive(Debug, Clone)]
pub(crate) struct GroupMember {
    pub group: u32,
    pub user: u32,
    pub creator: u32,
    pub removed: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    pub username: String,
    pub name: String,
    pub id: u64,
    pub token: u64,
    pub created_ms: i64,
    pub domain: String,
}

/// Where the three fixture users ended up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FixtureUsers {
    pub alice: u32,
    pub bob: u32,
    pub outsider: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub seed: u64,
    pub workspace: Workspace,
    pub users: Vec<User>,
    pub user_tokens: TokenSpace,
    named_usernames: HashMap<String, u32>,
    named_emails: HashMap<String, u32>,
    membership_keys: Keys,
    pub groups: Vec<Group>,
    pub group_tokens: TokenSpace,
    pub group_members: Vec<GroupMember>,
    gm_keys: Keys,
    invite_keys: Keys,
    invites_sent: u64,
    pub fixtures: FixtureUsers,
}

pub(crate) fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn ix(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl Store {
    /// A workspace with no users yet.
    pub(crate) fn empty(workspace: &str, display_name: Option<&str>, seed: u64) -> Self {
        let name = display_name.map_or_else(
            || {
                let mut chars = workspace.chars();
                let capital: String = chars
                    .next()
                    .map(|c| c.to_uppercase().collect())
                    .unwrap_or_default();
                format!("{capital}{} Corp", chars.as_str())
            },
            str::to_owned,
        );
        Self {
            seed,
            workspace: Workspace {
                username: workspace.to_owned(),
                name,
                id: 10_000 + crate::tokens::mix(seed) % 90_000,
                token: Keys::new(seed, Kind::Workspace).permute(0),
                created_ms: WORKSPACE_CREATED_MS,
                domain: format!("{}.example", workspace.to_ascii_lowercase()),
            },
            users: Vec::new(),
            user_tokens: TokenSpace::new(seed, Kind::User),
            named_usernames: HashMap::new(),
            named_emails: HashMap::new(),
            membership_keys: Keys::new(seed, Kind::Membership),
            groups: Vec::new(),
            group_tokens: TokenSpace::new(seed, Kind::Group),
            group_members: Vec::new(),
            gm_keys: Keys::new(seed, Kind::GroupMembership),
            invite_keys: Keys::new(seed, Kind::Invite),
            invites_sent: 0,
            fixtures: FixtureUsers {
                alice: 0,
                bob: 1,
                outsider: 2,
            },
        }
    }

    /// Deterministic data for `members` workspace members (alice and bob
    /// included) plus the outsider, who belongs to no workspace.
    pub(crate) fn seeded(workspace: &str, members: usize, seed: u64) -> Self {
        let mut store = Self::empty(workspace, None, seed);
        let mut rng = SeededRng::new(seed);
        let domain = store.workspace.domain.clone();
        let span = 3 * 365 * DAY_MS;
        let oldest = DATA_ANCHOR_MS - span;
        let active = |admin: bool, at: i64| Membership {
            admin,
            invited: false,
            state: MemberState::Active,
            activated_ms: at,
            banned_ms: None,
        };
        store.users.reserve(members.saturating_add(1));
        store.add_named_user(
            named("alice", "Alice Admin", &format!("alice@{domain}")),
            oldest,
            true,
            Some(active(true, oldest)),
        );
        store.add_named_user(
            named("bob", "Bob Member", &format!("bob@{domain}")),
            oldest + 30 * DAY_MS,
            true,
            Some(active(false, oldest + 30 * DAY_MS)),
        );
        store.add_named_user(
            named("outsider", "Oscar Outsider", "oscar@outside.example"),
            oldest,
            true,
            None,
        );

        for _ in 3..=members {
            let first = u8::try_from(rng.below(FIRST_NAMES.len() as u64)).unwrap_or(0);
            let last = u8::try_from(rng.below(LAST_NAMES.len() as u64)).unwrap_or(0);
            let roll = rng.below(100);
            // About 3% pending invitees, 5% former members, 5% of the rest admins.
            let state = match roll {
                0..3 => MemberState::Pending,
                3..8 => MemberState::Deactivated,
                _ => MemberState::Active,
            };
            let span_u = span.unsigned_abs();
            let (created_ms, activated_ms) = if state == MemberState::Pending {
                let at = DATA_ANCHOR_MS
                    - i64::try_from(rng.below(30 * DAY_MS.unsigned_abs())).unwrap_or(0);
                (at, at)
            } else {
                let at = oldest + i64::try_from(rng.below(span_u)).unwrap_or(0);
                (
                    at,
                    at + i64::try_from(rng.below(7 * DAY_MS.unsigned_abs())).unwrap_or(0),
                )
            };
            let admin = state == MemberState::Active && rng.chance(5);
            let banned_ms = (state == MemberState::Deactivated).then(|| {
                let room = (DATA_ANCHOR_MS - activated_ms).max(1).unsigned_abs();
                activated_ms + i64::try_from(rng.below(room)).unwrap_or(0)
            });
            store.users.push(User {
                person: Person::Seeded { first, last },
                created_ms,
                email_verified: state != MemberState::Pending,
                membership: Some(Membership {
                    admin,
                    invited: state == MemberState::Pending,
                    state,
                    activated_ms,
                    banned_ms,
                }),
            });
        }

        store.seed_groups(&mut rng, members);
        store
    }

    fn seed_groups(&mut self, rng: &mut SeededRng, members: usize) {
        let mut active_members = Vec::new();
        let mut admins = Vec::new();
        for (i, user) in self.users.iter().enumerate() {
            if let Some(m) = &user.membership
                && m.state == MemberState::Active
            {
                active_members.push(to_u32(i));
                if m.admin {
                    admins.push(to_u32(i));
                }
            }
        }
        let a = active_members.len() as u64;
        let n_groups = (members / 5).clamp(3, 16) + (members / 5000).min(200);
        for g in 0..n_groups {
            let base = GROUP_NAMES
                .get(g % GROUP_NAMES.len())
                .copied()
                .unwrap_or("Group");
            let name = if g < GROUP_NAMES.len() {
                base.to_owned()
            } else {
                format!("{base} {}", g / GROUP_NAMES.len() + 1)
            };
            let creator = rng.pick(&admins).copied().unwrap_or(self.fixtures.alice);
            // The last group is always soft-deleted, so every dataset has one.
            let state = if g + 1 == n_groups || (g > 0 && rng.chance(8)) {
                GroupState::SoftDeleted
            } else {
                GroupState::Active
            };
            // Mostly small groups, a few holding a large share of the workspace.
            let size = match rng.below(100) {
                0..40 => rng.below(6),
                40..75 => rng.below(a.min(50) + 1),
                75..95 => rng.below(a / 50 + 1),
                _ => rng.below(a / 10 + 1),
            }
            .min(a);
            let group = self.add_group(name, state, creator);
            if size == 0 {
                continue;
            }
            // Distinct members without a set: walk the active members with a
            // stride coprime to their count.
            let start = rng.below(a);
            let stride = loop {
                let s = 1 + rng.below(a.max(2) - 1);
                if gcd(s, a) == 1 {
                    break s;
                }
            };
            for j in 0..size {
                let pos = usize::try_from((start + j * stride) % a).unwrap_or(0);
                if let Some(&user) = active_members.get(pos) {
                    self.add_group_member(group, user, creator);
                }
            }
        }
    }

    // ---- users ---------------------------------------------------------

    pub(crate) fn user(&self, i: u32) -> Option<&User> {
        self.users.get(ix(i))
    }

    pub(crate) fn user_mut(&mut self, i: u32) -> Option<&mut User> {
        self.users.get_mut(ix(i))
    }

    pub(crate) fn username(&self, i: u32) -> Cow<'_, str> {
        match self.user(i).map(|u| &u.person) {
            Some(Person::Named(n)) => Cow::Borrowed(&n.username),
            Some(Person::Seeded { first, last }) => Cow::Owned(format!(
                "{}_{}{i}",
                first_name(*first).to_ascii_lowercase(),
                last_name(*last).to_ascii_lowercase()
            )),
            None => Cow::Borrowed(""),
        }
    }

    pub(crate) fn display_name(&self, i: u32) -> Cow<'_, str> {
        match self.user(i).map(|u| &u.person) {
            Some(Person::Named(n)) => Cow::Borrowed(&n.name),
            Some(Person::Seeded { first, last }) => {
                Cow::Owned(format!("{} {}", first_name(*first), last_name(*last)))
            }
            None => Cow::Borrowed(""),
        }
    }

    pub(crate) fn email(&self, i: u32) -> Cow<'_, str> {
        match self.user(i).map(|u| &u.person) {
            Some(Person::Named(n)) => Cow::Borrowed(&n.email),
            Some(Person::Seeded { first, last }) => Cow::Owned(format!(
                "{}.{}{i}@{}",
                first_name(*first).to_ascii_lowercase(),
                last_name(*last).to_ascii_lowercase(),
                self.workspace.domain
            )),
            None => Cow::Borrowed(""),
        }
    }

    pub(crate) fn user_id(&self, i: u32) -> u64 {
        USER_ID_BASE + u64::from(i)
    }

    pub(crate) fn user_token(&self, i: u32) -> u64 {
        self.user_tokens.token(i)
    }

    pub(crate) fn find_user_token(&self, text: &str) -> Option<u32> {
        self.user_tokens
            .lookup(parse_hex12(text)?, self.users.len())
    }

    pub(crate) fn find_username(&self, name: &str) -> Option<u32> {
        if let Some(&i) = self.named_usernames.get(name) {
            return Some(i);
        }
        let i = trailing_number(name)?;
        let seeded = matches!(self.user(i)?.person, Person::Seeded { .. });
        (seeded && self.username(i) == name).then_some(i)
    }

    pub(crate) fn find_email(&self, email: &str) -> Option<u32> {
        let email = email.to_ascii_lowercase();
        if let Some(&i) = self.named_emails.get(&email) {
            return Some(i);
        }
        let (local, domain) = email.split_once('@')?;
        if domain != self.workspace.domain {
            return None;
        }
        let i = trailing_number(local)?;
        let seeded = matches!(self.user(i)?.person, Person::Seeded { .. });
        (seeded && self.email(i) == email.as_str()).then_some(i)
    }

    /// Taken by a user, the workspace, or a fixed route.
    pub(crate) fn username_taken(&self, name: &str) -> bool {
        name == self.workspace.username
            || RESERVED_NAMES.contains(&name)
            || self.find_username(name).is_some()
    }

    /// Adds a user with stored strings; the caller has checked uniqueness.
    pub(crate) fn add_named_user(
        &mut self,
        person: Named,
        created_ms: i64,
        email_verified: bool,
        membership: Option<Membership>,
    ) -> u32 {
        let i = to_u32(self.users.len());
        self.named_usernames.insert(person.username.clone(), i);
        self.named_emails
            .insert(person.email.to_ascii_lowercase(), i);
        self.users.push(User {
            person: Person::Named(Box::new(person)),
            created_ms,
            email_verified,
            membership,
        });
        self.user_tokens.settle(i, self.users.len());
        i
    }

    /// A free username for an invitee, from the local part of the email.
    pub(crate) fn username_for_email(&self, email: &str) -> String {
        let local = email.split('@').next().unwrap_or_default();
        let mut slug: String = local
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        if slug.is_empty() {
            slug.push_str("user");
        }
        if !self.username_taken(&slug) {
            return slug;
        }
        (2_u64..)
            .map(|n| format!("{slug}{n}"))
            .find(|candidate| !self.username_taken(candidate))
            .unwrap_or(slug)
    }

    // ---- memberships ---------------------------------------------------

    pub(crate) fn membership(&self, i: u32) -> Option<&Membership> {
        self.user(i)?.membership.as_ref()
    }

    pub(crate) fn membership_token(&self, i: u32) -> u64 {
        self.membership_keys.permute(u64::from(i))
    }

    pub(crate) fn membership_id(&self, i: u32) -> u64 {
        MEMBERSHIP_ID_BASE + u64::from(i)
    }

    /// The user whose workspace membership has this token.
    pub(crate) fn find_membership(&self, text: &str) -> Option<u32> {
        let index = self.membership_keys.unpermute(parse_hex12(text)?);
        let i = u32::try_from(index).ok()?;
        self.membership(i).map(|_| i)
    }

    pub(crate) fn is_active_member(&self, i: u32) -> bool {
        self.membership(i)
            .is_some_and(|m| m.state == MemberState::Active)
    }

    /// Users with a membership, in user order, optionally hiding former members.
    pub(crate) fn member_indices(&self, include_former: bool) -> Vec<u32> {
        self.users
            .iter()
            .enumerate()
            .filter(|(_, u)| {
                u.membership
                    .as_ref()
                    .is_some_and(|m| include_former || m.state != MemberState::Deactivated)
            })
            .map(|(i, _)| to_u32(i))
            .collect()
    }

    /// Removes the user from every group of the workspace (what a membership
    /// DELETE does, per the spec's guess).
    pub(crate) fn remove_from_all_groups(&mut self, user: u32) {
        let mut touched = Vec::new();
        for gm in &mut self.group_members {
            if gm.user == user && !gm.removed {
                gm.removed = true;
                touched.push(gm.group);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for g in touched {
            if let Some(group) = self.groups.get_mut(ix(g)) {
                let gms = &self.group_members;
                group
                    .members
                    .retain(|&k| gms.get(ix(k)).is_some_and(|gm| !gm.removed));
            }
        }
    }

    pub(crate) fn next_invite_token(&mut self) -> u64 {
        let token = self.invite_keys.permute(self.invites_sent);
        self.invites_sent += 1;
        token
    }

    // ---- groups --------------------------------------------------------

    pub(crate) fn group(&self, g: u32) -> Option<&Group> {
        self.groups.get(ix(g))
    }

    pub(crate) fn group_mut(&mut self, g: u32) -> Option<&mut Group> {
        self.groups.get_mut(ix(g))
    }

    pub(crate) fn group_token(&self, g: u32) -> u64 {
        self.group_tokens.token(g)
    }

    pub(crate) fn find_group(&self, text: &str) -> Option<u32> {
        self.group_tokens
            .lookup(parse_hex12(text)?, self.groups.len())
    }

    /// Names are unique per workspace, soft-deleted groups included
    /// ([INFERRED] from terraform's "API limitation" note).
    pub(crate) fn group_name_taken(&self, name: &str, except: Option<u32>) -> bool {
        self.groups
            .iter()
            .enumerate()
            .any(|(g, group)| group.name == name && Some(to_u32(g)) != except)
    }

    pub(crate) fn add_group(&mut self, name: String, state: GroupState, creator: u32) -> u32 {
        let g = to_u32(self.groups.len());
        self.groups.push(Group {
            name,
            state,
            creator,
            members: Vec::new(),
        });
        self.group_tokens.settle(g, self.groups.len());
        g
    }

    pub(crate) fn gm(&self, k: u32) -> Option<&GroupMember> {
        self.group_members.get(ix(k))
    }

    pub(crate) fn gm_token(&self, k: u32) -> u64 {
        self.gm_keys.permute(u64::from(k))
    }

    /// A live group membership of group `g` with this token.
    pub(crate) fn find_gm(&self, g: u32, text: &str) -> Option<u32> {
        let k = u32::try_from(self.gm_keys.unpermute(parse_hex12(text)?)).ok()?;
        self.gm(k)
            .is_some_and(|gm| gm.group == g && !gm.removed)
            .then_some(k)
    }

    pub(crate) fn group_has_user(&self, g: u32, user: u32) -> bool {
        self.group(g).is_some_and(|group| {
            group
                .members
                .iter()
                .any(|&k| self.gm(k).is_some_and(|gm| gm.user == user))
        })
    }

    pub(crate) fn add_group_member(&mut self, g: u32, user: u32, creator: u32) -> u32 {
        let k = to_u32(self.group_members.len());
        self.group_members.push(GroupMember {
            group: g,
            user,
            creator,
            removed: false,
        });
        if let Some(group) = self.groups.get_mut(ix(g)) {
            group.members.push(k);
        }
        k
    }

    pub(crate) fn remove_group_member(&mut self, k: u32) {
        let Some(gm) = self.group_members.get_mut(ix(k)) else {
            return;
        };
        gm.removed = true;
        let g = gm.group;
        if let Some(group) = self.groups.get_mut(ix(g)) {
            group.members.retain(|&other| other != k);
        }
    }
}

fn named(username: &str, name: &str, email: &str) -> Named {
    Named {
        username: username.to_owned(),
        name: name.to_owned(),
        email: email.to_owned(),
    }
}

pub(crate) fn new_named(username: String, name: String, email: String) -> Named {
    Named {
        username,
        name,
        email,
    }
}

fn first_name(i: u8) -> &'static str {
    FIRST_NAMES.get(usize::from(i)).copied().unwrap_or("Ada")
}

fn last_name(i: u8) -> &'static str {
    LAST_NAMES.get(usize::from(i)).copied().unwrap_or("Abbott")
}

/// `ada_abbott17` -> 17. Leading zeros never match a rendered name, so
/// the caller's round-trip check rejects them.
fn trailing_number(text: &str) -> Option<u32> {
    let stem = text.trim_end_matches(|c: char| c.is_ascii_digit());
    text.get(stem.len()..)?.parse().ok()
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_users_round_trip_through_their_derived_names() {
        let store = Store::seeded("acme", 200, 7);
        assert_eq!(store.users.len(), 201);
        for i in [0_u32, 1, 2, 3, 57, 200] {
            let name = store.username(i).into_owned();
            assert_eq!(store.find_username(&name), Some(i), "{name}");
            let email = store.email(i).into_owned();
            assert_eq!(store.find_email(&email.to_uppercase()), Some(i), "{email}");
            let token = crate::tokens::hex12(store.user_token(i));
            assert_eq!(store.find_user_token(&token), Some(i));
        }
        assert!(store.membership(store.fixtures.outsider).is_none());
        assert_eq!(store.find_username("ada_abbott0017"), None);
    }

    #[test]
    fn invitee_usernames_avoid_seeded_ones() {
        let store = Store::seeded("acme", 50, 7);
        let taken = store.username(10).into_owned();
        let fresh = store.username_for_email(&format!("{taken}@else.example"));
        assert_ne!(fresh, taken);
        assert!(!store.username_taken(&fresh));
        assert_eq!(store.username_for_email("alice@x.example"), "alice2");
        assert_eq!(store.username_for_email("acme@x.example"), "acme2");
    }

    #[test]
    fn seeded_groups_have_distinct_members_and_one_soft_deleted() {
        let store = Store::seeded("acme", 5_000, 3);
        assert!(
            store
                .groups
                .iter()
                .any(|g| g.state == GroupState::SoftDeleted)
        );
        for (g, group) in store.groups.iter().enumerate() {
            let mut users: Vec<u32> = group
                .members
                .iter()
                .map(|&k| store.gm(k).map(|gm| gm.user).unwrap_or(NO_USER))
                .collect();
            let before = users.len();
            users.sort_unstable();
            users.dedup();
            assert_eq!(users.len(), before, "group {g} has duplicates");
            assert!(users.iter().all(|&u| store.is_active_member(u)));
        }
    }
}
