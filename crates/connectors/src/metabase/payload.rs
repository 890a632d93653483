//! Metabase's own JSON shapes (spec `metabase-api.md` §2, §3), as far as
//! the directory connector reads them. Unknown fields are ignored; fields
//! older releases lack are optional.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer, Serialize};

/// A user as `GET /api/user` (list item), `GET /api/user/:id`,
/// `GET /api/user/current`, `POST /api/user` and `PUT /api/user/:id`
/// answer it. Lists carry `group_ids`; single users `user_group_memberships`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub email: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    /// `trim(first_name + " " + last_name)`, or the email without names.
    #[serde(default)]
    pub common_name: Option<String>,
    #[serde(default)]
    pub date_joined: Option<String>,
    #[serde(default)]
    pub last_login: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub is_superuser: bool,
    /// Admin and self views only; absent means we cannot tell (read as active).
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub group_ids: Option<Vec<u64>>,
    #[serde(default)]
    pub user_group_memberships: Option<Vec<GroupRef>>,
}

impl User {
    /// The groups the user is in, from whichever field the endpoint sent.
    pub fn group_ids(&self) -> Vec<u64> {
        match (&self.user_group_memberships, &self.group_ids) {
            (Some(memberships), _) => memberships.iter().map(|m| m.id).collect(),
            (None, Some(ids)) => ids.clone(),
            (None, None) => Vec::new(),
        }
    }
}

/// An element of `user_group_memberships`: `id` is the **group** id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRef {
    pub id: u64,
}

/// `GET /api/user`: `{"data":[…],"total":N,"limit":L|null,"offset":O|null}`
/// (Metabase 0.40+), each user's record kept as sent: a sync fingerprints
/// it before reading it, and a list reads it into a JSON tree only when
/// `remote_data` is asked for.
#[derive(Debug, Deserialize)]
pub struct RawUserPage<'a> {
    #[serde(borrow)]
    pub data: Vec<&'a serde_json::value::RawValue>,
    pub total: u64,
}

/// A `permissions_group` row: an element of `GET /api/permissions/group`
/// (with `member_count`), `GET /api/permissions/group/:id` (with
/// `members`), or the answer to a create or rename (neither).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub id: u64,
    pub name: String,
    /// Outer `None`: the release predates the field; inner `None`: an
    /// ordinary group; `"admin"`, `"all-internal-users"`, …: a magic one.
    #[serde(default, deserialize_with = "present")]
    pub magic_group_type: Option<Option<String>>,
    #[serde(default)]
    pub member_count: Option<u64>,
    #[serde(default)]
    pub members: Option<Vec<Member>>,
}

pub const MAGIC_ADMIN: &str = "admin";
pub const MAGIC_ALL_USERS: &str = "all-internal-users";
/// Names of the magic groups on releases without `magic_group_type`.
pub const ADMIN_GROUP_NAME: &str = "Administrators";
pub const ALL_USERS_GROUP_NAME: &str = "All Users";

impl Group {
    /// A magic group (All Users, Administrators, …): Metabase refuses to
    /// rename or delete it.
    pub fn is_magic(&self) -> bool {
        match &self.magic_group_type {
            Some(kind) => kind.is_some(),
            None => self.name == ADMIN_GROUP_NAME || self.name == ALL_USERS_GROUP_NAME,
        }
    }

    pub fn is_magic_type(&self, kind: &str, legacy_name: &str) -> bool {
        match &self.magic_group_type {
            Some(found) => found.as_deref() == Some(kind),
            None => self.name == legacy_name,
        }
    }

    /// `member_count` when listed, the number of `members` when fetched alone.
    pub fn member_count(&self) -> Option<u64> {
        self.member_count.or_else(|| {
            self.members
                .as_ref()
                .map(|m| u64::try_from(m.len()).unwrap_or(u64::MAX))
        })
    }
}

/// An element of a group's `members` (and of the answer to
/// `POST /api/permissions/membership`): active users only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: u64,
    #[serde(default)]
    pub membership_id: Option<u64>,
}

/// An element of `GET /api/permissions/membership`, which is a map from
/// user id (a string key) to that user's memberships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub membership_id: u64,
    pub group_id: u64,
    pub user_id: u64,
    #[serde(default)]
    pub is_group_manager: Option<bool>,
}

pub type MembershipMap = HashMap<String, Vec<Membership>>;

/// Distinguishes an absent field (outer `None`) from `null` (`Some(None)`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn magic_groups_by_type_or_legacy_name() {
        let group = |v: serde_json::Value| serde_json::from_value::<Group>(v).unwrap();
        let admins = group(json!({"id": 2, "name": "Administrators", "magic_group_type": "admin"}));
        assert!(admins.is_magic());
        assert!(admins.is_magic_type(MAGIC_ADMIN, ADMIN_GROUP_NAME));
        let plain = group(json!({"id": 3, "name": "Administrators", "magic_group_type": null}));
        assert!(!plain.is_magic());
        let legacy = group(json!({"id": 1, "name": "All Users", "member_count": 3}));
        assert!(legacy.is_magic());
        assert!(legacy.is_magic_type(MAGIC_ALL_USERS, ALL_USERS_GROUP_NAME));
        assert_eq!(legacy.member_count(), Some(3));
        let fetched = group(json!({"id": 4, "name": "X", "magic_group_type": null,
            "members": [{"user_id": 5, "membership_id": 9}]}));
        assert_eq!(fetched.member_count(), Some(1));
    }

    #[test]
    fn users_carry_groups_in_either_field() {
        let listed: User =
            serde_json::from_value(json!({"id": 5, "email": "a@b.c", "group_ids": [1, 3]}))
                .unwrap();
        assert_eq!(listed.group_ids(), vec![1, 3]);
        let single: User = serde_json::from_value(
            json!({"id": 5, "email": "a@b.c", "user_group_memberships": [{"id": 1}]}),
        )
        .unwrap();
        assert_eq!(single.group_ids(), vec![1]);
        assert_eq!(single.is_active, None);
    }
}
