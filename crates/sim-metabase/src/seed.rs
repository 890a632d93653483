//! Deterministic seeded data: the same seed gives the same users, groups,
//! keys and passwords (timestamps are relative to the clock at start).
//!
//! Layout for `users = N`:
//! * id 1: Ada Admin, `admin@example.com`, superuser (the admin fixture);
//! * id 2: Maya Member, `member@example.com`, in the first custom group
//!   (the member fixture);
//! * id 3: a second active superuser; id 4: a deactivated user; id 5: a
//!   Google SSO user; id 6: a user without names; id 7: never logged in;
//! * ids 8..=N: random names from the kit's lists, ~0.5% superusers, ~8%
//!   deactivated, ~20% never logged in, ~10% SSO, some locales and login
//!   attributes, memberships in custom groups of falling sizes (the last
//!   custom group stays empty);
//! * then the API-key users of the two fixture keys.
//!
//! Every seeded user but the two fixtures has the password
//! `MetabaseFixtures::seeded_password`.

use rollcall_sim_kit::SeededRng;
use rollcall_sim_kit::rng::{FIRST_NAMES, GROUP_NAMES, LAST_NAMES};
use serde_json::{Map, Value};

use crate::MetabaseFixtures;
use std::sync::Arc;

use crate::db::{ADMINS, ALL_USERS, Db, Row, Sso, UserKind, generate_key, hash_password};

const DAY: i64 = 86_400_000;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const MEMBER_EMAIL: &str = "member@example.com";
pub const ADMIN_KEY_NAME: &str = "Rollcall admin";
pub const MEMBER_KEY_NAME: &str = "Rollcall member";

const LOCALES: &[&str] = &["en", "en_GB", "de", "fr", "es", "pt_BR", "ja", "zh_CN"];

/// Fixture credentials come from their own stream, so they depend on the
/// seed only (not on the number of users).
pub struct Credentials {
    pub admin_password: String,
    pub member_password: String,
    pub seeded_password: String,
    pub admin_api_key: String,
    pub member_api_key: String,
    pub scim_key: String,
}

impl Credentials {
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = SeededRng::new(seed ^ 0xC4ED_E471_A150_0001);
        let password = |prefix: &str, rng: &mut SeededRng| format!("{prefix}-{}-9", rng.hex(10));
        let admin_password = password("admin", &mut rng);
        let member_password = password("member", &mut rng);
        let seeded_password = password("user", &mut rng);
        Self {
            admin_password,
            member_password,
            seeded_password,
            admin_api_key: generate_key(&mut rng),
            member_api_key: generate_key(&mut rng),
            scim_key: generate_key(&mut rng),
        }
    }
}

/// Position of a lower-cased name in the sorted list of all seeded names:
/// sorting by (first rank, last rank, id) is then the list order.
fn ranks(names: &[&str]) -> (Vec<String>, Vec<u8>) {
    let mut sorted: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
    sorted.sort();
    sorted.dedup();
    let rank = names
        .iter()
        .map(|n| {
            let lower = n.to_lowercase();
            u8::try_from(sorted.partition_point(|s| *s < lower)).unwrap_or(u8::MAX - 1)
        })
        .collect();
    (sorted, rank)
}

pub fn seed(users: usize, seed: u64, now: i64) -> (Db, MetabaseFixtures) {
    let creds = Credentials::from_seed(seed);
    let mut db = Db::new(seed, now);
    let mut rng = SeededRng::new(seed);

    let custom = (users / 10).clamp(3, GROUP_NAMES.len());
    let custom_ids: Vec<u32> = GROUP_NAMES[..custom]
        .iter()
        .filter_map(|name| db.create_group(name).ok())
        .collect();
    let first_group = custom_ids.first().copied().unwrap_or(ALL_USERS);

    // Fixed names first so their ranks are in the same tables.
    let mut first_names: Vec<&str> = vec!["Ada", "Maya"];
    first_names.extend_from_slice(FIRST_NAMES);
    let mut last_names: Vec<&str> = vec!["Admin", "Member"];
    last_names.extend_from_slice(LAST_NAMES);
    let (_, first_rank) = ranks(&first_names);
    let (_, last_rank) = ranks(&last_names);
    let first_lower: Vec<String> = first_names.iter().map(|n| n.to_lowercase()).collect();
    let last_lower: Vec<String> = last_names.iter().map(|n| n.to_lowercase()).collect();
    // One allocation per distinct name and one hash per distinct password.
    let first_arcs: Vec<Arc<str>> = first_names.iter().map(|n| db.intern(n)).collect();
    let last_arcs: Vec<Arc<str>> = last_names.iter().map(|n| db.intern(n)).collect();
    let admin_hash = hash_password(&creds.admin_password);
    let member_hash = hash_password(&creds.member_password);
    let seeded_hash = hash_password(&creds.seeded_password);
    db.reserve_users(users + 2);

    let mut sort_keys: Vec<u64> = Vec::with_capacity(users);
    let span = 3 * 365 * DAY;
    for n in 1..=users {
        let id = u32::try_from(n).unwrap_or(u32::MAX);
        // (first index, last index) into the name tables; None = no names.
        let names: Option<(usize, usize)> = match n {
            1 => Some((0, 0)),
            2 => Some((1, 1)),
            6 => None,
            _ if rng.below(1000) == 0 => None,
            _ => Some((
                2 + rng.below(FIRST_NAMES.len() as u64) as usize,
                2 + rng.below(LAST_NAMES.len() as u64) as usize,
            )),
        };
        let email = match (n, names) {
            (1, _) => ADMIN_EMAIL.to_owned(),
            (2, _) => MEMBER_EMAIL.to_owned(),
            (_, Some((f, l))) => format!("{}.{}.{n}@example.com", first_lower[f], last_lower[l]),
            (_, None) => format!("user.{n}@example.com"),
        };
        let superuser = matches!(n, 1 | 3) || (n > 7 && rng.below(200) == 0);
        let active = match n {
            1..=3 => true,
            4 => false,
            _ => rng.below(100) >= 8,
        };
        let sso_source = match n {
            5 => Some(Sso::Google),
            1..=4 => None,
            _ if rng.below(10) == 0 => rng.pick(&Sso::ALL).copied(),
            _ => None,
        };
        let locale = (n > 7 && rng.below(20) == 0)
            .then(|| rng.pick(LOCALES).map(|l| (*l).to_owned()))
            .flatten();
        let login_attributes = (n > 7 && rng.below(50) == 0).then(|| {
            let mut m = Map::new();
            m.insert(
                "region".into(),
                Value::String(["emea", "amer", "apac"][rng.below(3) as usize].into()),
            );
            m
        });
        let password = match n {
            1 => admin_hash,
            2 => member_hash,
            _ => seeded_hash,
        };
        let date_joined = match n {
            1 => now - 400 * DAY,
            2 => now - 300 * DAY,
            _ => now - DAY - rng.below(span as u64) as i64,
        };
        let last_login = match n {
            1 => Some(now - DAY),
            2 => Some(now - 2 * DAY),
            7 => None,
            _ if rng.below(100) < 20 => None,
            _ => Some(date_joined + rng.below((now - date_joined) as u64) as i64),
        };
        let first_login = last_login.map(|l| date_joined + (l - date_joined).min(DAY));
        let is_qbnewb = last_login.is_none() || (n > 2 && rng.below(100) < 30);
        let id_pushed = db.push_row(Row {
            email: Arc::from(email),
            first_name: names.map(|(f, _)| first_arcs[f].clone()),
            last_name: names.map(|(_, l)| last_arcs[l].clone()),
            password,
            kind: UserKind::Personal,
            is_active: active,
            is_qbnewb,
            sso_source,
            locale: locale.map(String::into_boxed_str),
            login_attributes: login_attributes.map(Box::new),
            date_joined,
            last_login,
            first_login,
            updated_at: last_login.unwrap_or(date_joined),
        });
        debug_assert_eq!(id_pushed, id);
        db.seed_membership(id, ALL_USERS);
        if superuser {
            db.seed_membership(id, ADMINS);
        }
        if n == 2 {
            db.seed_membership(id, first_group);
        } else if n > 2 {
            // Falling sizes: ~40%, 20%, 13%, … of users; the last group stays empty.
            for (gi, &g) in custom_ids.iter().enumerate().take(custom.saturating_sub(1)) {
                if rng.below(100) < (40 / (gi as u64 + 1)).max(1) {
                    db.seed_membership(id, g);
                }
            }
        }
        let (fr, lr) = names.map_or((u64::from(u8::MAX), u64::from(u8::MAX)), |(f, l)| {
            (u64::from(first_rank[f]), u64::from(last_rank[l]))
        });
        sort_keys.push((fr << 56) | (lr << 48) | u64::from(id));
    }
    sort_keys.sort_unstable();
    db.finish_seeding(
        sort_keys
            .into_iter()
            .map(|k| (k & 0xFFFF_FFFF) as u32)
            .collect(),
    );

    let admin_key = db
        .create_api_key(
            ADMIN_KEY_NAME,
            ADMINS,
            Some(creds.admin_api_key.clone()),
            1,
            now,
        )
        .ok();
    let member_key = db
        .create_api_key(
            MEMBER_KEY_NAME,
            first_group,
            Some(creds.member_api_key.clone()),
            1,
            now,
        )
        .ok();
    debug_assert!(admin_key.is_some() && member_key.is_some());
    db.scim.key = Some(creds.scim_key.clone());
    db.scim.key_id = db.reserve_api_key_id();

    let fixtures = MetabaseFixtures {
        admin_email: ADMIN_EMAIL.into(),
        admin_password: creds.admin_password,
        member_email: MEMBER_EMAIL.into(),
        member_password: creds.member_password,
        admin_api_key: creds.admin_api_key,
        member_api_key: creds.member_api_key,
        scim_key: creds.scim_key,
        seeded_password: creds.seeded_password,
    };
    (db, fixtures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_data_keeps_the_rules_and_has_variety() {
        let (db, fixtures) = seed(200, 7, 1_700_000_000_000);
        assert!(db.violations().is_empty(), "{:?}", db.violations());
        assert_eq!(db.personal_count(), 200);
        let users = &db.users[..200];
        assert!(users.iter().filter(|u| u.is_superuser).count() >= 2);
        assert!(users.iter().any(|u| !u.is_active));
        assert!(users.iter().any(|u| u.last_login.is_none()));
        assert!(users.iter().any(|u| u.sso_source.is_some()));
        assert!(users.iter().any(|u| u.first_name.is_none()));
        let sizes: Vec<usize> = db.groups.values().map(|g| g.members.len()).collect();
        assert!(sizes.contains(&0), "an empty custom group: {sizes:?}");
        assert_eq!(fixtures.admin_email, "admin@example.com");
        assert_eq!(db.api_keys.len(), 2);
    }

    #[test]
    #[ignore = "profiling aid"]
    fn seed_a_million() {
        let (db, _) = seed(1_000_000, 7, 1_700_000_000_000);
        assert_eq!(db.personal_count(), 1_000_000);
    }

    #[test]
    fn credentials_depend_on_the_seed_only() {
        let (_, a) = seed(10, 9, 1);
        let (_, b) = seed(500, 9, 99_999);
        let (_, c) = seed(10, 10, 1);
        assert_eq!(a.admin_password, b.admin_password);
        assert_eq!(a.admin_api_key, b.admin_api_key);
        assert_ne!(a.admin_api_key, c.admin_api_key);
        assert_eq!(a.admin_api_key.len(), 47);
    }
}
