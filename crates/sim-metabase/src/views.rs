//! The JSON objects Metabase answers with (spec §2.1, §3.2, §3.3, §1.4).

use rollcall_core::clock::rfc3339_from_millis;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::db::{ApiKey, Db, Group, User, mask_key};

#[derive(Debug, Serialize)]
pub struct GroupRef {
    pub id: u32,
}

/// `admin-or-self-visible-columns` + `common_name`, plus what an endpoint adds.
#[derive(Debug, Serialize)]
pub struct UserView<'a> {
    pub id: u32,
    pub email: &'a str,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub common_name: String,
    pub date_joined: String,
    pub last_login: Option<String>,
    pub updated_at: String,
    pub is_superuser: bool,
    pub is_qbnewb: bool,
    pub is_active: bool,
    pub sso_source: Option<&'static str>,
    pub login_attributes: Option<&'a Map<String, Value>>,
    pub locale: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub personal_collection_id: Option<Option<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_ids: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_group_memberships: Option<Vec<GroupRef>>,
}

impl<'a> UserView<'a> {
    pub fn of(user: &'a User) -> Self {
        Self {
            id: user.id,
            email: &user.email,
            first_name: user.first_name.as_deref(),
            last_name: user.last_name.as_deref(),
            common_name: user.common_name(),
            date_joined: rfc3339_from_millis(user.date_joined),
            last_login: user.last_login.map(rfc3339_from_millis),
            updated_at: rfc3339_from_millis(user.updated_at),
            is_superuser: user.is_superuser,
            is_qbnewb: user.is_qbnewb,
            is_active: user.is_active,
            sso_source: user.sso_source.map(|s| s.as_str()),
            login_attributes: user.login_attributes.as_deref(),
            locale: user.locale.as_deref(),
            personal_collection_id: None,
            group_ids: None,
            user_group_memberships: None,
        }
    }

    /// An element of the admin `GET /api/user` list.
    pub fn list_item(user: &'a User) -> Self {
        Self {
            personal_collection_id: Some(user.personal_collection_id),
            group_ids: Some(user.group_ids()),
            ..Self::of(user)
        }
    }

    /// `GET /api/user/:id`, `POST`, `PUT`: + `user_group_memberships`
    /// (the ids are group ids).
    pub fn with_memberships(user: &'a User) -> Self {
        Self {
            user_group_memberships: Some(
                user.group_ids()
                    .into_iter()
                    .map(|id| GroupRef { id })
                    .collect(),
            ),
            ..Self::of(user)
        }
    }
}

/// `GET /api/user/current`.
pub fn current_user(db: &Db, user: &User, now: i64) -> Value {
    let mut value = serde_json::to_value(UserView {
        personal_collection_id: Some(user.personal_collection_id),
        group_ids: Some(user.group_ids()),
        ..UserView::of(user)
    })
    .unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("is_installer".into(), json!(user.id == 1));
        map.insert(
            "has_invited_second_user".into(),
            json!(user.id == 1 && db.users.len() > 1),
        );
        map.insert("has_question_and_dashboard".into(), json!(false));
        map.insert("has_model".into(), json!(false));
        // The oldest login, or now when there is none (`add-first-login`).
        map.insert(
            "first_login".into(),
            json!(rfc3339_from_millis(user.first_login.unwrap_or(now))),
        );
        map.insert("custom_homepage".into(), Value::Null);
    }
    value
}

/// A `members` element (§3.3), also the body of `POST /membership`.
pub fn member(db: &Db, group_id: u32, user_id: u32, membership_id: u32) -> Value {
    let Some(u) = db.user(user_id) else {
        return Value::Null;
    };
    json!({
        "id": u.id,
        "user_id": u.id,
        "first_name": u.first_name.as_deref(),
        "last_name": u.last_name.as_deref(),
        "email": &*u.email,
        "is_superuser": u.is_superuser,
        "group_id": group_id,
        "membership_id": membership_id,
        "common_name": u.common_name(),
    })
}

pub fn members(db: &Db, group_id: u32) -> Vec<Value> {
    db.active_members(group_id)
        .into_iter()
        .map(|(u, m)| member(db, group_id, u, m))
        .collect()
}

/// The `permissions_group` row.
pub fn group_row(group: &Group) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("id".into(), json!(group.id));
    map.insert("name".into(), json!(group.name));
    map.insert("entity_id".into(), json!(group.entity_id));
    map.insert("magic_group_type".into(), json!(group.magic));
    map.insert("is_tenant_group".into(), json!(false));
    map
}

pub fn api_key(db: &Db, key: &ApiKey, unmasked: bool) -> Value {
    let group_id = db.api_key_group(key);
    let group_name = db.groups.get(&group_id).map(|g| g.name.as_str());
    let updated_by = db.user(key.updated_by);
    let mut value = json!({
        "id": key.id,
        "name": key.name,
        "group": { "id": group_id, "name": group_name },
        "masked_key": mask_key(&key.key),
        "created_at": rfc3339_from_millis(key.created_at),
        "updated_at": rfc3339_from_millis(key.updated_at),
        "updated_by": {
            "id": key.updated_by,
            "common_name": updated_by.map(User::common_name),
        },
    });
    if unmasked && let Value::Object(map) = &mut value {
        map.insert("unmasked_key".into(), json!(key.key));
    }
    value
}
