//! The simulator's database: users, groups, memberships, sessions, API keys
//! and the SCIM key, with the model hooks Metabase runs on them (spec §9
//! state rules). Every mutation that can fail checks first and changes
//! nothing on failure, which stands in for Metabase's transactions.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use axum::http::StatusCode;
use base64::Engine as _;
use rollcall_sim_kit::SeededRng;
use serde_json::{Map, Value};

use crate::http::{ApiError, GROUP_NAME_TAKEN, TENANT_MISMATCH};
use crate::index::OrderIndex;

pub const ALL_USERS: u32 = 1;
pub const ADMINS: u32 = 2;
/// Metabase's internal user (v50+): exists, never listed, never modifiable.
pub const INTERNAL_USER_ID: u32 = 13_371_338;

/// An Fx-style hash taking eight bytes at a time: fast even unoptimized,
/// for the big in-memory maps (and the cheap password "hash"; this is a
/// simulator). No DoS resistance needed here.
#[derive(Debug, Clone, Copy, Default)]
pub struct FastHash(u64);

impl FastHash {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FastHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }
}

pub type FnvBuild = BuildHasherDefault<FastHash>;

pub fn hash_password(password: &str) -> u64 {
    let mut h = FastHash::default();
    h.write(b"rollcall-sim-metabase:");
    h.write(password.as_bytes());
    h.finish()
}

const NANOID_ALPHABET: &[u8; 64] =
    b"_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A 21-character NanoID-like `entity_id`, derived from `(seed, tag, n)` so
/// the same data always gets the same ids.
pub fn entity_id(seed: u64, tag: u64, n: u64) -> [u8; 21] {
    let mut rng = SeededRng::new(
        seed ^ tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n.wrapping_mul(0xD1B5_4A32_D192_ED03),
    );
    let mut out = [0u8; 21];
    let mut bits = 0u64;
    let mut left = 0;
    for slot in &mut out {
        if left == 0 {
            bits = rng.next_u64();
            left = 10;
        }
        *slot = NANOID_ALPHABET[(bits & 63) as usize];
        bits >>= 6;
        left -= 1;
    }
    out
}

pub fn eid_str(eid: &[u8; 21]) -> &str {
    std::str::from_utf8(eid).unwrap_or("")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKind {
    Personal,
    ApiKey,
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sso {
    Google,
    Ldap,
    Saml,
    Jwt,
    Scim,
}

impl Sso {
    pub const ALL: [Sso; 5] = [Sso::Google, Sso::Ldap, Sso::Saml, Sso::Jwt, Sso::Scim];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Google => "google",
            Self::Ldap => "ldap",
            Self::Saml => "saml",
            Self::Jwt => "jwt",
            Self::Scim => "scim",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: u32,
    /// Lower-cased, as Metabase stores it.
    pub email: Arc<str>,
    pub first_name: Option<Arc<str>>,
    pub last_name: Option<Arc<str>>,
    pub password: u64,
    pub date_joined: i64,
    pub last_login: Option<i64>,
    /// Oldest login-history entry (`first_login` on `/api/user/current`).
    pub first_login: Option<i64>,
    pub updated_at: i64,
    pub is_superuser: bool,
    pub is_qbnewb: bool,
    pub is_active: bool,
    pub kind: UserKind,
    pub sso_source: Option<Sso>,
    pub locale: Option<Box<str>>,
    pub login_attributes: Option<Box<Map<String, Value>>>,
    pub personal_collection_id: Option<u32>,
    /// `(group_id, membership_id)` in the order the memberships were made.
    pub groups: Vec<(u32, u32)>,
}

impl User {
    /// `add-common-name`: trimmed "first last", or the email without names.
    pub fn common_name(&self) -> String {
        match (&self.first_name, &self.last_name) {
            (None, None) => self.email.to_string(),
            (first, last) => format!(
                "{} {}",
                first.as_deref().unwrap_or(""),
                last.as_deref().unwrap_or("")
            )
            .trim()
            .to_owned(),
        }
    }

    pub fn group_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.groups.iter().map(|(g, _)| *g).collect();
        ids.sort_unstable();
        ids
    }

    pub fn in_group(&self, group: u32) -> bool {
        self.groups.iter().any(|(g, _)| *g == group)
    }
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: u32,
    pub name: String,
    pub entity_id: String,
    pub magic: Option<&'static str>,
    /// user id → membership id.
    pub members: BTreeMap<u32, u32>,
    /// Memberships of active users (`member_count`). API-key users count:
    /// the query has no user-type filter (spec §1.4 [inference]).
    pub active_count: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    pub group_id: u32,
    pub user_id: u32,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: u32,
    pub created_ms: i64,
    /// Set by `/_sim/metabase/sessions/expire`: the row stays (so logout
    /// still finds it) but no longer authenticates.
    pub expired: bool,
}

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: u32,
    pub name: String,
    pub user_id: u32,
    pub key: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub updated_by: u32,
}

#[derive(Debug, Clone)]
pub struct ScimState {
    pub key: Option<String>,
    pub key_id: u32,
    pub created_at: i64,
    pub updated_at: i64,
    pub enabled: bool,
}

/// A user row as stored: names interned, email lower-cased, password hashed.
#[derive(Debug, Clone)]
pub struct Row {
    pub email: Arc<str>,
    pub first_name: Option<Arc<str>>,
    pub last_name: Option<Arc<str>>,
    pub password: u64,
    pub kind: UserKind,
    pub is_active: bool,
    pub is_qbnewb: bool,
    pub sso_source: Option<Sso>,
    pub locale: Option<Box<str>>,
    pub login_attributes: Option<Box<Map<String, Value>>>,
    pub date_joined: i64,
    pub last_login: Option<i64>,
    pub first_login: Option<i64>,
    pub updated_at: i64,
}

/// What creating a user needs; the rest gets Metabase's defaults.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub password: String,
    pub kind: UserKind,
    pub is_active: bool,
    pub sso_source: Option<Sso>,
    pub locale: Option<String>,
    pub login_attributes: Option<Map<String, Value>>,
}

#[derive(Debug)]
pub struct Db {
    pub seed: u64,
    pub users: Vec<User>,
    pub internal: User,
    pub groups: BTreeMap<u32, Group>,
    /// Indexed by membership id − 1; deleted memberships leave `None`.
    pub memberships: Vec<Option<Membership>>,
    emails: HashMap<Arc<str>, u32, FnvBuild>,
    names: HashSet<Arc<str>, FnvBuild>,
    /// Personal users in list order: all, active only, inactive only.
    pub order_all: OrderIndex,
    pub order_active: OrderIndex,
    pub order_inactive: OrderIndex,
    pub sessions: HashMap<String, Session>,
    pub api_keys: BTreeMap<u32, ApiKey>,
    key_lookup: HashMap<String, u32>,
    pub scim: ScimState,
    next_group_id: u32,
    next_api_key_id: u32,
    next_collection_id: u32,
    /// Runtime randomness (new keys), seeded so a scripted run repeats.
    pub rng: SeededRng,
    /// SCIM ids → user ids, built on first SCIM use.
    entity_index: Option<HashMap<[u8; 21], u32, FnvBuild>>,
}

fn idx(id: u32) -> usize {
    (id as usize).wrapping_sub(1)
}

/// Case-insensitive, nulls last (PostgreSQL's `ORDER BY … ASC`; H2 would put
/// them first — spec §10 q10, we follow the usual production database).
fn name_cmp(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => {
            if x.is_ascii() && y.is_ascii() {
                x.bytes()
                    .map(|c| c.to_ascii_lowercase())
                    .cmp(y.bytes().map(|c| c.to_ascii_lowercase()))
            } else {
                x.chars()
                    .flat_map(char::to_lowercase)
                    .cmp(y.chars().flat_map(char::to_lowercase))
            }
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// `ORDER BY lower(first_name), lower(last_name), id`.
pub fn cmp_users(users: &[User], a: u32, b: u32) -> Ordering {
    match (users.get(idx(a)), users.get(idx(b))) {
        (Some(x), Some(y)) => name_cmp(x.first_name.as_deref(), y.first_name.as_deref())
            .then_with(|| name_cmp(x.last_name.as_deref(), y.last_name.as_deref()))
            .then(a.cmp(&b)),
        _ => a.cmp(&b),
    }
}

pub fn generate_key(rng: &mut SeededRng) -> String {
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes()[..chunk.len()]);
    }
    format!(
        "mb_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The key's 7-character prefix followed by `*` to the full length.
pub fn mask_key(key: &str) -> String {
    let prefix: String = key.chars().take(7).collect();
    let rest = key.chars().count().saturating_sub(7);
    format!("{prefix}{}", "*".repeat(rest))
}

fn magic_name_error(group: &Group) -> ApiError {
    ApiError::bad_request(format!(
        "You cannot edit or delete the '{}' permissions group!",
        group.name
    ))
}

impl Db {
    /// An empty database with the two magic groups and the internal user.
    pub fn new(seed: u64, now: i64) -> Self {
        let mut groups = BTreeMap::new();
        for (id, name, magic) in [
            (ALL_USERS, "All Users", "all-internal-users"),
            (ADMINS, "Administrators", "admin"),
        ] {
            groups.insert(
                id,
                Group {
                    id,
                    name: name.into(),
                    entity_id: eid_str(&entity_id(seed, 2, u64::from(id))).to_owned(),
                    magic: Some(magic),
                    members: BTreeMap::new(),
                    active_count: 0,
                },
            );
        }
        let internal = User {
            id: INTERNAL_USER_ID,
            email: Arc::from("internal@metabase.com"),
            first_name: Some(Arc::from("Metabase")),
            last_name: Some(Arc::from("Internal")),
            password: hash_password(&format!("internal-{seed}-unusable")),
            date_joined: now,
            last_login: None,
            first_login: None,
            updated_at: now,
            is_superuser: false,
            is_qbnewb: true,
            is_active: false,
            kind: UserKind::Internal,
            sso_source: None,
            locale: None,
            login_attributes: None,
            personal_collection_id: None,
            groups: Vec::new(),
        };
        Self {
            seed,
            users: Vec::new(),
            internal,
            groups,
            memberships: Vec::new(),
            emails: HashMap::default(),
            names: HashSet::default(),
            order_all: OrderIndex::default(),
            order_active: OrderIndex::default(),
            order_inactive: OrderIndex::default(),
            sessions: HashMap::new(),
            api_keys: BTreeMap::new(),
            key_lookup: HashMap::new(),
            scim: ScimState {
                key: None,
                key_id: 0,
                created_at: now,
                updated_at: now,
                enabled: true,
            },
            next_group_id: 3,
            next_api_key_id: 1,
            next_collection_id: 1,
            rng: SeededRng::new(seed ^ 0x005E_ED0F_5E55_1055),
            entity_index: None,
        }
    }

    // ----------------------------------------------------------------- users

    pub fn user(&self, id: u32) -> Option<&User> {
        if id == INTERNAL_USER_ID {
            return Some(&self.internal);
        }
        self.users.get(idx(id))
    }

    pub fn user_mut(&mut self, id: u32) -> Option<&mut User> {
        if id == INTERNAL_USER_ID {
            return Some(&mut self.internal);
        }
        self.users.get_mut(idx(id))
    }

    pub fn user_id_by_email(&self, email: &str) -> Option<u32> {
        let lower = email.to_lowercase();
        if lower == *self.internal.email {
            return Some(INTERNAL_USER_ID);
        }
        self.emails.get(lower.as_str()).copied()
    }

    pub fn personal_count(&self) -> usize {
        self.order_all.len()
    }

    /// Shares one allocation per distinct name (seeded data repeats names).
    pub fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(existing) = self.names.get(name) {
            return existing.clone();
        }
        let arc: Arc<str> = Arc::from(name);
        self.names.insert(arc.clone());
        arc
    }

    pub fn cmp(&self, a: u32, b: u32) -> Ordering {
        cmp_users(&self.users, a, b)
    }

    fn index_remove(&mut self, id: u32) {
        let Some(user) = self.users.get(idx(id)) else {
            return;
        };
        if user.kind != UserKind::Personal {
            return;
        }
        let active = user.is_active;
        let users = &self.users;
        let cmp = |a, b| cmp_users(users, a, b);
        self.order_all.remove(id, cmp);
        if active {
            self.order_active.remove(id, cmp);
        } else {
            self.order_inactive.remove(id, cmp);
        }
    }

    fn index_insert(&mut self, id: u32) {
        let Some(user) = self.users.get(idx(id)) else {
            return;
        };
        if user.kind != UserKind::Personal {
            return;
        }
        let active = user.is_active;
        let users = &self.users;
        let cmp = |a, b| cmp_users(users, a, b);
        self.order_all.insert(id, cmp);
        if active {
            self.order_active.insert(id, cmp);
        } else {
            self.order_inactive.insert(id, cmp);
        }
    }

    /// Appends a user row without memberships or indexes; seeding and
    /// [`Db::create_user`] finish the job.
    pub fn push_row(&mut self, row: Row) -> u32 {
        let id = u32::try_from(self.users.len() + 1).unwrap_or(u32::MAX);
        let personal_collection_id = (row.kind == UserKind::Personal).then(|| {
            let c = self.next_collection_id;
            self.next_collection_id += 1;
            c
        });
        self.emails.insert(row.email.clone(), id);
        self.users.push(User {
            id,
            email: row.email,
            first_name: row.first_name,
            last_name: row.last_name,
            password: row.password,
            date_joined: row.date_joined,
            last_login: row.last_login,
            first_login: row.first_login,
            updated_at: row.updated_at,
            is_superuser: false,
            is_qbnewb: row.is_qbnewb,
            is_active: row.is_active,
            kind: row.kind,
            sso_source: row.sso_source,
            locale: row.locale,
            login_attributes: row.login_attributes,
            personal_collection_id,
            groups: Vec::with_capacity(2),
        });
        if let Some(index) = self.entity_index.as_mut() {
            index.insert(entity_id(self.seed, 1, u64::from(id)), id);
        }
        id
    }

    pub fn push_user_row(&mut self, new: NewUser, now: i64) -> u32 {
        let row = Row {
            email: Arc::from(new.email.to_lowercase()),
            first_name: new.first_name.map(|n| self.intern(&n)),
            last_name: new.last_name.map(|n| self.intern(&n)),
            password: hash_password(&new.password),
            kind: new.kind,
            is_active: new.is_active,
            is_qbnewb: true,
            sso_source: new.sso_source,
            locale: new.locale.map(String::into_boxed_str),
            login_attributes: new.login_attributes.map(Box::new),
            date_joined: now,
            last_login: None,
            first_login: None,
            updated_at: now,
        };
        self.push_row(row)
    }

    /// The SCIM id (`entity_id`) of a user: derived, so not stored.
    pub fn user_eid(&self, id: u32) -> String {
        eid_str(&entity_id(self.seed, 1, u64::from(id))).to_owned()
    }

    pub fn reserve_users(&mut self, n: usize) {
        self.users.reserve(n);
        self.emails.reserve(n);
        self.memberships.reserve(n * 2);
    }

    /// Inserts a user the way the User model does: lower-cased email, a
    /// membership in All Users, a place in the list order.
    pub fn create_user(&mut self, new: NewUser, now: i64) -> u32 {
        let id = self.push_user_row(new, now);
        self.index_insert(id);
        self.insert_membership(id, ALL_USERS, now);
        id
    }

    /// Seeding: memberships are appended without touching the groups'
    /// member maps; [`Db::finish_seeding`] builds those (and the order) once.
    pub fn seed_membership(&mut self, user_id: u32, group_id: u32) {
        let mid = u32::try_from(self.memberships.len() + 1).unwrap_or(u32::MAX);
        self.memberships
            .push(Some(Membership { group_id, user_id }));
        let mut active = false;
        if let Some(user) = self.users.get_mut(idx(user_id)) {
            user.groups.push((group_id, mid));
            active = user.is_active;
            if group_id == ADMINS {
                user.is_superuser = true;
            }
        }
        if active && let Some(group) = self.groups.get_mut(&group_id) {
            group.active_count += 1;
        }
    }

    /// Ends seeding: the list order from ids already sorted, and every
    /// group's member map in one pass over the users.
    pub fn finish_seeding(&mut self, sorted_personal: Vec<u32>) {
        let mut per_group: BTreeMap<u32, Vec<(u32, u32)>> = BTreeMap::new();
        for user in &self.users {
            for &(g, mid) in &user.groups {
                per_group.entry(g).or_default().push((user.id, mid));
            }
        }
        for (g, members) in per_group {
            if let Some(group) = self.groups.get_mut(&g) {
                group.members = members.into_iter().collect();
            }
        }
        self.rebuild_indexes(sorted_personal);
    }

    fn rebuild_indexes(&mut self, sorted_personal: Vec<u32>) {
        let (active, inactive): (Vec<u32>, Vec<u32>) = sorted_personal
            .iter()
            .partition(|&&id| self.users.get(idx(id)).is_some_and(|u| u.is_active));
        self.order_all = OrderIndex::from_sorted(sorted_personal);
        self.order_active = OrderIndex::from_sorted(active);
        self.order_inactive = OrderIndex::from_sorted(inactive);
    }

    /// Name changes: `Some(x)` sets the field to `x` (which may be null).
    pub fn set_names(
        &mut self,
        id: u32,
        first: Option<Option<&str>>,
        last: Option<Option<&str>>,
        now: i64,
    ) {
        if first.is_none() && last.is_none() {
            return;
        }
        let first = first.map(|f| f.map(|n| self.intern(n)));
        let last = last.map(|l| l.map(|n| self.intern(n)));
        self.index_remove(id);
        if let Some(user) = self.user_mut(id) {
            if let Some(f) = first {
                user.first_name = f;
            }
            if let Some(l) = last {
                user.last_name = l;
            }
            user.updated_at = now;
        }
        self.index_insert(id);
    }

    /// Another account (any case, active or not) has this email.
    pub fn email_taken_by_other(&self, email: &str, id: u32) -> bool {
        self.user_id_by_email(email)
            .is_some_and(|other| other != id)
    }

    pub fn set_email(&mut self, id: u32, email: &str, now: i64) {
        let lower: Arc<str> = Arc::from(email.to_lowercase());
        let Some(user) = self.user_mut(id) else {
            return;
        };
        let old = std::mem::replace(&mut user.email, lower.clone());
        user.updated_at = now;
        if old != lower {
            self.emails.remove(&old);
            self.emails.insert(lower, id);
        }
    }

    /// Any active member of Administrators other than `user_id`
    /// (`throw-if-last-admin!`, which has no user-type filter).
    pub fn other_active_admin(&self, user_id: u32) -> bool {
        self.groups.get(&ADMINS).is_some_and(|g| {
            g.members
                .keys()
                .any(|&u| u != user_id && self.user(u).is_some_and(|x| x.is_active))
        })
    }

    /// `is_active` changes, with the model's last-admin check on the way
    /// down; deactivation revokes the user's sessions.
    pub fn set_active(&mut self, id: u32, active: bool, now: i64) -> Result<(), ApiError> {
        let Some(user) = self.user(id) else {
            return Err(ApiError::not_found());
        };
        if user.is_active == active {
            return Ok(());
        }
        if !active && user.is_superuser && !self.other_active_admin(id) {
            return Err(ApiError::last_admin());
        }
        self.index_remove(id);
        let groups: Vec<u32> = match self.user_mut(id) {
            Some(user) => {
                user.is_active = active;
                user.updated_at = now;
                user.groups.iter().map(|(g, _)| *g).collect()
            }
            None => Vec::new(),
        };
        self.index_insert(id);
        for g in groups {
            if let Some(group) = self.groups.get_mut(&g) {
                if active {
                    group.active_count += 1;
                } else {
                    group.active_count = group.active_count.saturating_sub(1);
                }
            }
        }
        if !active {
            self.delete_sessions_of(id);
        }
        Ok(())
    }

    pub fn set_password(&mut self, id: u32, password: &str, now: i64) {
        if let Some(user) = self.user_mut(id) {
            user.password = hash_password(password);
            user.updated_at = now;
        }
        self.delete_sessions_of(id);
    }

    pub fn record_login(&mut self, id: u32, now: i64) {
        if let Some(user) = self.user_mut(id) {
            user.last_login = Some(now);
            user.first_login.get_or_insert(now);
            user.updated_at = now;
        }
    }

    // ------------------------------------------------------------ membership

    fn insert_membership(&mut self, user_id: u32, group_id: u32, now: i64) -> u32 {
        let mid = u32::try_from(self.memberships.len() + 1).unwrap_or(u32::MAX);
        self.memberships
            .push(Some(Membership { group_id, user_id }));
        let mut active = false;
        if let Some(user) = self.user_mut(user_id) {
            user.groups.push((group_id, mid));
            active = user.is_active;
            if group_id == ADMINS {
                user.is_superuser = true;
                user.updated_at = now;
            }
        }
        if let Some(group) = self.groups.get_mut(&group_id) {
            group.members.insert(user_id, mid);
            if active {
                group.active_count += 1;
            }
        }
        mid
    }

    fn delete_membership(&mut self, mid: u32, now: i64) {
        let Some(Some(m)) = self.memberships.get(idx(mid)).cloned() else {
            return;
        };
        if let Some(slot) = self.memberships.get_mut(idx(mid)) {
            *slot = None;
        }
        let mut active = false;
        if let Some(user) = self.user_mut(m.user_id) {
            user.groups.retain(|(_, x)| *x != mid);
            active = user.is_active;
            if m.group_id == ADMINS {
                user.is_superuser = false;
                user.updated_at = now;
            }
        }
        if let Some(group) = self.groups.get_mut(&m.group_id) {
            group.members.remove(&m.user_id);
            if active {
                group.active_count = group.active_count.saturating_sub(1);
            }
        }
    }

    pub fn membership(&self, mid: u32) -> Option<Membership> {
        self.memberships.get(idx(mid)).copied().flatten()
    }

    /// `add-users-to-groups!` for one pair: its All Users check, the tenant
    /// check that catches a missing user or group, and the unique
    /// constraint on (user, group) [inference: spec §3.5 expects a 500].
    pub fn add_membership(
        &mut self,
        user_id: u32,
        group_id: u32,
        now: i64,
    ) -> Result<u32, ApiError> {
        if group_id == ALL_USERS {
            return Err(ApiError::all_users_fixed());
        }
        let user = self.user(user_id).filter(|u| u.kind != UserKind::Internal);
        let group = self.groups.get(&group_id);
        match (user, group) {
            (Some(user), Some(_)) => {
                if user.in_group(group_id) {
                    return Err(duplicate_membership());
                }
            }
            // Both missing: the tenant check passes (nil = nil), the insert
            // adds no row, and Metabase throws without a status.
            (None, None) => {
                return Err(ApiError::exception(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Error inserting Permissions Group Membership",
                ));
            }
            _ => return Err(ApiError::bad_request(TENANT_MISMATCH)),
        }
        Ok(self.insert_membership(user_id, group_id, now))
    }

    /// The membership `before-delete` hook: All Users is fixed, and the last
    /// active admin keeps their Admin membership.
    pub fn check_remove(&self, m: Membership) -> Result<(), ApiError> {
        if m.group_id == ALL_USERS {
            return Err(ApiError::all_users_fixed());
        }
        if m.group_id == ADMINS && !self.other_active_admin(m.user_id) {
            return Err(ApiError::last_admin());
        }
        Ok(())
    }

    pub fn remove_membership(&mut self, mid: u32, now: i64) -> Result<(), ApiError> {
        let m = self.membership(mid).ok_or_else(ApiError::not_found)?;
        self.check_remove(m)?;
        self.delete_membership(mid, now);
        Ok(())
    }

    /// `set-permissions-groups!`: delete the memberships not wanted, add the
    /// new ones, all or nothing.
    pub fn set_user_groups(
        &mut self,
        user_id: u32,
        wanted: &BTreeSet<u32>,
        now: i64,
    ) -> Result<(), ApiError> {
        let Some(user) = self.user(user_id) else {
            return Err(ApiError::not_found());
        };
        let current: BTreeMap<u32, u32> = user.groups.iter().copied().collect();
        let to_remove: Vec<(u32, u32)> = current
            .iter()
            .filter(|(g, _)| !wanted.contains(g))
            .map(|(g, m)| (*g, *m))
            .collect();
        let to_add: Vec<u32> = wanted
            .iter()
            .copied()
            .filter(|g| !current.contains_key(g))
            .collect();
        for &(group_id, _) in &to_remove {
            self.check_remove(Membership { group_id, user_id })?;
        }
        for &g in &to_add {
            if g == ALL_USERS {
                return Err(ApiError::all_users_fixed());
            }
            if !self.groups.contains_key(&g) {
                return Err(ApiError::bad_request(TENANT_MISMATCH));
            }
        }
        for (_, mid) in to_remove {
            self.delete_membership(mid, now);
        }
        for g in to_add {
            self.insert_membership(user_id, g, now);
        }
        Ok(())
    }

    /// The User model's `is_superuser` hook: add to or remove from Administrators.
    pub fn set_superuser(&mut self, user_id: u32, on: bool, now: i64) -> Result<(), ApiError> {
        let Some(user) = self.user(user_id) else {
            return Err(ApiError::not_found());
        };
        match (on, user.groups.iter().find(|(g, _)| *g == ADMINS)) {
            (true, None) => {
                self.insert_membership(user_id, ADMINS, now);
            }
            (false, Some(&(_, mid))) => {
                self.check_remove(Membership {
                    group_id: ADMINS,
                    user_id,
                })?;
                self.delete_membership(mid, now);
            }
            _ => {}
        }
        Ok(())
    }

    /// Active members of a group ordered as `:members` hydration orders them.
    pub fn active_members(&self, group_id: u32) -> Vec<(u32, u32)> {
        let Some(group) = self.groups.get(&group_id) else {
            return Vec::new();
        };
        let mut members: Vec<(u32, u32)> = group
            .members
            .iter()
            .filter(|(u, _)| self.user(**u).is_some_and(|x| x.is_active))
            .map(|(u, m)| (*u, *m))
            .collect();
        members.sort_by(|a, b| self.cmp(a.0, b.0));
        members
    }

    // ---------------------------------------------------------------- groups

    pub fn group_name_taken(&self, name: &str, except: Option<u32>) -> bool {
        let lower = name.to_lowercase();
        self.groups
            .values()
            .any(|g| Some(g.id) != except && g.name.to_lowercase() == lower)
    }

    pub fn create_group(&mut self, name: &str) -> Result<u32, ApiError> {
        if self.group_name_taken(name, None) {
            return Err(ApiError::bad_request(GROUP_NAME_TAKEN));
        }
        let id = self.next_group_id;
        self.next_group_id += 1;
        let entity_id = eid_str(&entity_id(self.seed, 2, u64::from(id))).to_owned();
        self.groups.insert(
            id,
            Group {
                id,
                name: name.to_owned(),
                entity_id,
                magic: None,
                members: BTreeMap::new(),
                active_count: 0,
            },
        );
        Ok(id)
    }

    /// The group `pre-update` hooks: magic groups are fixed, names unique.
    pub fn rename_group(&mut self, id: u32, name: &str) -> Result<(), ApiError> {
        let group = self.groups.get(&id).ok_or_else(ApiError::not_found)?;
        if group.magic.is_some() {
            return Err(magic_name_error(group));
        }
        if group.name == name {
            return Ok(());
        }
        if self.group_name_taken(name, Some(id)) {
            return Err(ApiError::bad_request(GROUP_NAME_TAKEN));
        }
        if let Some(group) = self.groups.get_mut(&id) {
            group.name = name.to_owned();
        }
        Ok(())
    }

    /// Deleting a group cascades its memberships; keys in it fall back to
    /// All Users. A missing id is a silent no-op (spec §10 q2 [inference]).
    pub fn delete_group(&mut self, id: u32, now: i64) -> Result<(), ApiError> {
        let Some(group) = self.groups.get(&id) else {
            return Ok(());
        };
        if group.magic.is_some() {
            return Err(magic_name_error(group));
        }
        let mids: Vec<u32> = group.members.values().copied().collect();
        for mid in mids {
            self.delete_membership(mid, now);
        }
        self.groups.remove(&id);
        Ok(())
    }

    /// `remove-all-users-from-group!` (the Admin group is refused by the caller).
    pub fn clear_group(&mut self, id: u32, now: i64) -> Result<(), ApiError> {
        let group = self.groups.get(&id).ok_or_else(ApiError::not_found)?;
        // The membership hook's text for All Users (spec §3.5 [inference]).
        if id == ALL_USERS {
            return Err(ApiError::all_users_fixed());
        }
        let members: Vec<(u32, u32)> = group.members.iter().map(|(u, m)| (*u, *m)).collect();
        for &(user_id, _) in &members {
            self.check_remove(Membership {
                group_id: id,
                user_id,
            })?;
        }
        for (_, mid) in members {
            self.delete_membership(mid, now);
        }
        Ok(())
    }

    // -------------------------------------------------------------- sessions

    pub fn create_session(&mut self, user_id: u32, now: i64) -> String {
        let token = uuid::Uuid::new_v4().to_string();
        self.sessions.insert(
            token.clone(),
            Session {
                user_id,
                created_ms: now,
                expired: false,
            },
        );
        token
    }

    /// The user behind a live session: it exists, is younger than the max
    /// age (absolute, from login) and its user is active.
    pub fn session_user(&self, token: &str, now: i64, max_age_ms: i64) -> Option<u32> {
        let session = self.sessions.get(token)?;
        if session.expired || now - session.created_ms >= max_age_ms {
            return None;
        }
        self.user(session.user_id)
            .filter(|u| u.is_active)
            .map(|u| u.id)
    }

    pub fn delete_session(&mut self, token: &str) -> bool {
        self.sessions.remove(token).is_some()
    }

    pub fn delete_sessions_of(&mut self, user_id: u32) {
        self.sessions.retain(|_, s| s.user_id != user_id);
    }

    /// Marks every session expired; returns how many were still live.
    pub fn expire_all_sessions(&mut self, now: i64, max_age_ms: i64) -> usize {
        let live = self
            .sessions
            .keys()
            .filter(|t| self.session_user(t, now, max_age_ms).is_some())
            .count();
        for s in self.sessions.values_mut() {
            s.expired = true;
        }
        live
    }

    pub fn live_sessions_of(&self, user_id: u32, now: i64, max_age_ms: i64) -> usize {
        self.sessions
            .iter()
            .filter(|(t, s)| {
                s.user_id == user_id && self.session_user(t, now, max_age_ms).is_some()
            })
            .count()
    }

    // -------------------------------------------------------------- API keys

    pub fn new_unique_key(&mut self) -> String {
        loop {
            let key = generate_key(&mut self.rng);
            let prefix: String = key.chars().take(7).collect();
            let clash = self
                .key_lookup
                .keys()
                .chain(self.scim.key.iter())
                .any(|k| k.starts_with(&prefix));
            if !clash {
                return key;
            }
        }
    }

    /// API keys and the SCIM key share one id sequence.
    pub fn reserve_api_key_id(&mut self) -> u32 {
        let id = self.next_api_key_id;
        self.next_api_key_id += 1;
        id
    }

    pub fn api_key_by_name(&self, name: &str) -> Option<&ApiKey> {
        self.api_keys.values().find(|k| k.name == name)
    }

    /// `create-api-key-with-new-user!`: a hidden `api-key` user in All Users
    /// plus the chosen group. The group is checked before anything is made.
    pub fn create_api_key(
        &mut self,
        name: &str,
        group_id: u32,
        key: Option<String>,
        creator: u32,
        now: i64,
    ) -> Result<u32, ApiError> {
        if !self.groups.contains_key(&group_id) {
            return Err(ApiError::bad_request(TENANT_MISMATCH));
        }
        let mut random = [0u8; 16];
        random[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        random[8..].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        let email = format!(
            "api-key-user-{}@api-key.invalid",
            uuid::Builder::from_random_bytes(random).into_uuid()
        );
        let password = self.rng.hex(32);
        let user_id = self.create_user(
            NewUser {
                email,
                first_name: Some(name.to_owned()),
                last_name: Some(String::new()),
                password,
                kind: UserKind::ApiKey,
                is_active: true,
                sso_source: None,
                locale: None,
                login_attributes: None,
            },
            now,
        );
        if group_id != ALL_USERS {
            self.insert_membership(user_id, group_id, now);
        }
        let key = key.unwrap_or_else(|| self.new_unique_key());
        let id = self.reserve_api_key_id();
        self.key_lookup.insert(key.clone(), id);
        self.api_keys.insert(
            id,
            ApiKey {
                id,
                name: name.to_owned(),
                user_id,
                key,
                created_at: now,
                updated_at: now,
                updated_by: creator,
            },
        );
        Ok(id)
    }

    /// The group an API key's user is in besides All Users (All Users when none).
    pub fn api_key_group(&self, key: &ApiKey) -> u32 {
        self.user(key.user_id)
            .and_then(|u| u.groups.iter().map(|(g, _)| *g).find(|g| *g != ALL_USERS))
            .unwrap_or(ALL_USERS)
    }

    pub fn api_key_for_secret(&self, secret: &str) -> Option<&ApiKey> {
        self.key_lookup
            .get(secret)
            .and_then(|id| self.api_keys.get(id))
    }

    pub fn regenerate_api_key(&mut self, id: u32, by: u32, now: i64) -> Option<String> {
        let key = self.new_unique_key();
        let api_key = self.api_keys.get_mut(&id)?;
        let old = std::mem::replace(&mut api_key.key, key.clone());
        api_key.updated_at = now;
        api_key.updated_by = by;
        self.key_lookup.remove(&old);
        self.key_lookup.insert(key.clone(), id);
        Some(key)
    }

    pub fn delete_api_key(&mut self, id: u32, now: i64) -> Result<(), ApiError> {
        let key = self.api_keys.get(&id).ok_or_else(ApiError::not_found)?;
        let user_id = key.user_id;
        // The key row and its user's deactivation share a transaction.
        self.set_active(user_id, false, now)?;
        if let Some(key) = self.api_keys.remove(&id) {
            self.key_lookup.remove(&key.key);
        }
        Ok(())
    }

    // ------------------------------------------------------------------ SCIM

    pub fn user_by_entity_id(&mut self, eid: &str) -> Option<u32> {
        let bytes: [u8; 21] = eid.as_bytes().try_into().ok()?;
        if self.entity_index.is_none() {
            let mut index =
                HashMap::with_capacity_and_hasher(self.users.len(), FnvBuild::default());
            for u in &self.users {
                index.insert(entity_id(self.seed, 1, u64::from(u.id)), u.id);
            }
            self.entity_index = Some(index);
        }
        self.entity_index.as_ref()?.get(&bytes).copied()
    }

    pub fn group_by_entity_id(&self, eid: &str) -> Option<u32> {
        self.groups
            .values()
            .find(|g| g.entity_id == eid)
            .map(|g| g.id)
    }

    // ------------------------------------------------------------ invariants

    /// The spec's state rules, checked over the whole database: an empty
    /// list means they all hold.
    pub fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut active_admins = 0;
        let mut seen_emails: HashSet<&str> = HashSet::new();
        for u in &self.users {
            if u.kind == UserKind::Personal && !u.in_group(ALL_USERS) {
                out.push(format!("user {} is not in All Users", u.id));
            }
            if u.is_superuser != u.in_group(ADMINS) {
                out.push(format!(
                    "user {} is_superuser disagrees with Administrators",
                    u.id
                ));
            }
            if u.is_superuser && u.is_active {
                active_admins += 1;
            }
            if *u.email != u.email.to_lowercase() {
                out.push(format!("user {} email is not lower-case", u.id));
            }
            if !seen_emails.insert(&u.email) {
                out.push(format!("email {} is used twice", u.email));
            }
            if self.emails.get(&u.email) != Some(&u.id) {
                out.push(format!("email index is stale for user {}", u.id));
            }
            for &(g, m) in &u.groups {
                if self.membership(m)
                    != Some(Membership {
                        group_id: g,
                        user_id: u.id,
                    })
                {
                    out.push(format!("membership {m} of user {} is inconsistent", u.id));
                }
            }
        }
        if active_admins == 0 {
            out.push("no active admin".into());
        }
        let mut names = HashSet::new();
        for g in self.groups.values() {
            if !names.insert(g.name.to_lowercase()) {
                out.push(format!("group name {} is used twice", g.name));
            }
            let active = g
                .members
                .keys()
                .filter(|u| self.user(**u).is_some_and(|x| x.is_active))
                .count();
            if active != g.active_count {
                out.push(format!(
                    "group {} counts {} active members, has {active}",
                    g.id, g.active_count
                ));
            }
        }
        let personal: Vec<u32> = self
            .users
            .iter()
            .filter(|u| u.kind == UserKind::Personal)
            .map(|u| u.id)
            .collect();
        for (index, want_active) in [
            (&self.order_all, None),
            (&self.order_active, Some(true)),
            (&self.order_inactive, Some(false)),
        ] {
            let ids: Vec<u32> = index.iter().collect();
            let expected = personal
                .iter()
                .filter(|id| {
                    want_active.is_none_or(|a| self.user(**id).is_some_and(|u| u.is_active == a))
                })
                .count();
            if ids.len() != expected || index.len() != expected {
                out.push(format!(
                    "an order index holds {} ids, expected {expected}",
                    ids.len()
                ));
            }
            if ids
                .windows(2)
                .any(|w| self.cmp(w[0], w[1]) != Ordering::Less)
            {
                out.push("an order index is out of order".into());
            }
        }
        out
    }
}

fn duplicate_membership() -> ApiError {
    let message = "ERROR: duplicate key value violates unique constraint \"unique_permissions_group_membership_user_id_group_id\"";
    ApiError::Json(
        StatusCode::INTERNAL_SERVER_ERROR,
        serde_json::json!({
            "via": [{ "type": "org.postgresql.util.PSQLException", "message": message }],
            "trace": [],
            "cause": message,
            "message": message,
            "state": "23505",
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(email: &str, first: &str) -> NewUser {
        NewUser {
            email: email.into(),
            first_name: Some(first.into()),
            last_name: Some("X".into()),
            password: "pw12345".into(),
            kind: UserKind::Personal,
            is_active: true,
            sso_source: None,
            locale: None,
            login_attributes: None,
        }
    }

    #[test]
    fn hooks_keep_the_state_rules() {
        let mut db = Db::new(1, 1_000);
        let admin = db.create_user(person("A@x.com", "Ann"), 1_000);
        db.set_superuser(admin, true, 1_000).unwrap();
        let bob = db.create_user(person("bob@x.com", "bob"), 1_000);
        assert!(db.violations().is_empty(), "{:?}", db.violations());
        assert_eq!(db.user(admin).unwrap().email.as_ref(), "a@x.com");

        // The last admin cannot go, by any road.
        assert!(db.set_active(admin, false, 2_000).is_err());
        assert!(db.set_superuser(admin, false, 2_000).is_err());
        let wanted: BTreeSet<u32> = [ALL_USERS].into();
        assert!(db.set_user_groups(admin, &wanted, 2_000).is_err());
        // All Users is fixed.
        assert!(db.set_user_groups(bob, &BTreeSet::new(), 2_000).is_err());
        assert!(db.add_membership(bob, ALL_USERS, 2_000).is_err());

        // Two admins: one may leave.
        db.add_membership(bob, ADMINS, 2_000).unwrap();
        assert!(db.user(bob).unwrap().is_superuser);
        db.set_active(admin, false, 3_000).unwrap();
        assert_eq!(db.groups[&ADMINS].active_count, 1);
        assert!(db.violations().is_empty(), "{:?}", db.violations());
        assert_eq!(db.order_active.iter().collect::<Vec<_>>(), vec![bob]);

        // Re-adding a membership is the unique-constraint 500.
        assert!(matches!(
            db.add_membership(bob, ADMINS, 3_000),
            Err(ApiError::Json(StatusCode::INTERNAL_SERVER_ERROR, _))
        ));
    }

    #[test]
    fn entity_ids_are_nanoid_shaped_and_stable() {
        let a = entity_id(7, 1, 42);
        assert_eq!(a, entity_id(7, 1, 42));
        assert_ne!(a, entity_id(7, 1, 43));
        assert!(eid_str(&a).bytes().all(|b| NANOID_ALPHABET.contains(&b)));
    }

    #[test]
    fn keys_look_like_metabase_keys() {
        let key = generate_key(&mut SeededRng::new(3));
        assert_eq!(key.len(), 47);
        assert!(key.starts_with("mb_"));
        let masked = mask_key(&key);
        assert_eq!(masked.len(), 47);
        assert!(masked.ends_with("****"));
        assert_eq!(&masked[..7], &key[..7]);
    }
}
