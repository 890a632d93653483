//! Enterprise SCIM 2.0 under `/api/ee/scim/v2` (spec §6), authenticated by
//! `Authorization: Bearer <scim key>`, plus the SCIM key endpoints.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use rollcall_core::clock::rfc3339_from_millis;
use serde_json::{Map, Value, json};

use crate::app::{Shared, header_str};
use crate::db::{ADMINS, ALL_USERS, Db, NewUser, Sso, User, UserKind, mask_key};
use crate::http::RawPath;
use crate::http::{
    ApiError, ApiResult, GROUP_NAME_TAKEN, Kind, Presence, QueryParams, Validator, edn,
    normalize_locale, ok_json, parse_body, scim_response,
};

type App = Arc<Shared>;

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const DEFAULT_COUNT: usize = 100;

/// The SCIM auth middleware's own answer: exactly these three keys.
fn unauthenticated() -> ApiError {
    ApiError::Scim(
        StatusCode::UNAUTHORIZED,
        json!({ "schemas": [ERROR_SCHEMA], "status": 401, "detail": "Unauthenticated" }),
    )
}

/// Only the bearer SCIM key works here (sessions and `X-API-KEY` do not),
/// and only while SCIM is enabled.
pub fn authenticate(app: &Shared, db: &Db, headers: &HeaderMap) -> Result<(), ApiError> {
    let bearer = header_str(headers, header::AUTHORIZATION.as_str())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match (db.scim.enabled, db.scim.key.as_deref(), bearer) {
        (true, Some(key), Some(given)) if key == given => {
            app.control.counters.record_credential("scim");
            Ok(())
        }
        _ => Err(unauthenticated()),
    }
}

/// `scim-base-url`: the site URL (here, from `Host`) + `/api/ee/scim/v2`.
fn base_url(headers: &HeaderMap) -> String {
    let host = header_str(headers, header::HOST.as_str()).unwrap_or("localhost:3000");
    format!("http://{host}/api/ee/scim/v2")
}

/// `mb-user->scim`. `with_groups` mirrors where Metabase hydrates
/// `:scim_user_group_memberships` (the GETs; not the writes).
fn user_resource(db: &Db, user: &User, base: &str, with_groups: bool) -> Value {
    let mut groups: Vec<(&str, &str)> = if with_groups {
        user.groups
            .iter()
            .filter(|(g, _)| *g != ALL_USERS && *g != ADMINS)
            .filter_map(|(g, _)| db.groups.get(g))
            .map(|g| (g.entity_id.as_str(), g.name.as_str()))
            .collect()
    } else {
        Vec::new()
    };
    groups.sort_unstable();
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(eid, name)| json!({ "value": eid, "$ref": format!("{base}/Groups/{eid}"), "display": name }))
        .collect();
    json!({
        "schemas": [USER_SCHEMA],
        "id": db.user_eid(user.id),
        "userName": &*user.email,
        "name": { "givenName": user.first_name.as_deref(), "familyName": user.last_name.as_deref() },
        "emails": [{ "value": &*user.email, "type": "work", "primary": true }],
        "groups": groups,
        "locale": user.locale.as_deref(),
        "active": user.is_active,
        "meta": { "resourceType": "User" },
    })
}

fn group_resource(db: &Db, group_id: u32, base: &str, with_members: bool) -> Value {
    let Some(group) = db.groups.get(&group_id) else {
        return Value::Null;
    };
    let mut members: Vec<(String, &str)> = if with_members {
        group
            .members
            .keys()
            .filter_map(|u| db.user(*u))
            .map(|u| (db.user_eid(u.id), &*u.email))
            .collect()
    } else {
        Vec::new()
    };
    members.sort_unstable();
    let members: Vec<Value> = members
        .into_iter()
        .map(|(eid, email)| json!({ "value": eid, "$ref": format!("{base}/Users/{eid}"), "display": email }))
        .collect();
    json!({
        "schemas": [GROUP_SCHEMA],
        "id": group.entity_id,
        "members": members,
        "displayName": group.name,
        "meta": { "resourceType": "Group" },
    })
}

fn list_response(total: usize, offset: usize, limit: usize, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": offset + 1,
        "itemsPerPage": resources.len().min(limit),
        "Resources": resources,
    })
}

/// `startIndex`, `count` (positive ints) and `filter` (non-blank), the
/// filter URL-decoded a second time as Metabase does.
fn paging(raw: Option<&str>) -> Result<(usize, usize, Option<String>), ApiError> {
    let q = QueryParams::parse(raw);
    let mut v = Validator::new();
    let start = v.query(q.get("startIndex"), "startIndex", Kind::PositiveInt);
    let count = v.query(q.get("count"), "count", Kind::PositiveInt);
    let filter = v.query(q.get("filter"), "filter", Kind::NonBlank);
    v.finish()?;
    let as_usize = |v: Option<Value>| {
        v.and_then(|v| v.as_u64())
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    };
    let offset = as_usize(start).map_or(0, |s| s - 1);
    let limit = as_usize(count).unwrap_or(DEFAULT_COUNT);
    let filter = filter
        .and_then(|f| f.as_str().map(str::to_owned))
        .map(|f| percent_decode_only(&f));
    Ok((offset, limit, filter))
}

/// Ring's `url-decode`: `%XX` only (no `+` to space).
fn percent_decode_only(s: &str) -> String {
    crate::http::percent_decode(&s.replace('+', "%2B"))
}

/// `^<attr> eq "(.*)"$`, exactly as the regex in the SCIM namespace.
fn eq_filter<'a>(filter: &'a str, attribute: &str) -> Option<&'a str> {
    filter
        .strip_prefix(attribute)?
        .strip_prefix(" eq \"")?
        .strip_suffix('"')
}

pub async fn list_users(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let db = app.db();
    authenticate(&app, &db, &headers)?;
    let (offset, limit, filter) = paging(raw.as_deref())?;
    let base = base_url(&headers);
    let personal = db.users.iter().filter(|u| u.kind == UserKind::Personal);
    let (total, page): (usize, Vec<&User>) = match filter {
        Some(f) => {
            let Some(email) = eq_filter(&f, "userName") else {
                return Err(ApiError::scim(
                    StatusCode::BAD_REQUEST,
                    &format!("Unsupported filter parameter: {f}"),
                ));
            };
            let wanted = email.to_lowercase();
            let matching: Vec<&User> = personal.filter(|u| *u.email == *wanted).collect();
            let total = matching.len();
            (
                total,
                matching.into_iter().skip(offset).take(limit).collect(),
            )
        }
        None => (
            db.personal_count(),
            personal.skip(offset).take(limit).collect(),
        ),
    };
    let resources = page
        .into_iter()
        .map(|u| user_resource(&db, u, &base, true))
        .collect();
    Ok(scim_response(
        StatusCode::OK,
        &list_response(total, offset, limit, resources),
    ))
}

fn user_not_found() -> ApiError {
    ApiError::scim(StatusCode::NOT_FOUND, "User not found")
}

fn find_user(db: &mut Db, eid: &str) -> Result<u32, ApiError> {
    db.user_by_entity_id(eid)
        .filter(|id| db.user(*id).is_some_and(|u| u.kind == UserKind::Personal))
        .ok_or_else(user_not_found)
}

pub async fn get_user(State(app): State<App>, headers: HeaderMap, raw: RawPath) -> ApiResult {
    let mut db = app.db();
    authenticate(&app, &db, &headers)?;
    let id = find_user(&mut db, raw.get(0).unwrap_or_default())?;
    let user = db.user(id).ok_or_else(user_not_found)?;
    Ok(scim_response(
        StatusCode::OK,
        &user_resource(&db, user, &base_url(&headers), true),
    ))
}

/// The parts of a SCIM user Metabase reads, after the `SCIMUser` schema.
struct ScimUser {
    user_name: String,
    given: String,
    family: String,
    first_email: String,
    locale: Option<String>,
    active: Option<bool>,
}

fn scim_user(body: &Map<String, Value>) -> Result<ScimUser, ApiError> {
    let mut v = Validator::new();
    let schemas_ok = body
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter()
                .all(|s| s.as_str().is_some_and(|s| !s.trim().is_empty()))
        });
    if !schemas_ok {
        v.fail(
            "schemas",
            "sequence of value must be a non-blank string.".into(),
            json!([format!(
                "invalid type, received: {}",
                body.get("schemas").map_or("nil".into(), edn)
            )]),
        );
    }
    let user_name = v
        .field(body, "userName", Kind::NonBlank, Presence::Required)
        .and_then(Value::as_str)
        .map(str::to_owned);
    let name = body.get("name").and_then(Value::as_object);
    let given = name
        .and_then(|n| n.get("givenName"))
        .and_then(Value::as_str);
    let family = name
        .and_then(|n| n.get("familyName"))
        .and_then(Value::as_str);
    if given.is_none() || family.is_none() {
        v.fail(
            "name",
            "map where {:givenName -> <string>, :familyName -> <string>}".into(),
            json!([format!(
                "invalid type, received: {}",
                body.get("name").map_or("nil".into(), edn)
            )]),
        );
    }
    let first_email = body
        .get("emails")
        .and_then(Value::as_array)
        .filter(|emails| {
            emails.iter().all(|e| {
                e.get("value")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.trim().is_empty())
            })
        })
        .map(|emails| {
            emails
                .first()
                .and_then(|e| e.get("value"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        });
    if first_email.is_none() {
        v.fail(
            "emails",
            "sequence of map where {:value -> <value must be a non-blank string.>}".into(),
            json!([format!(
                "invalid type, received: {}",
                body.get("emails").map_or("nil".into(), edn)
            )]),
        );
    }
    let locale = v
        .field(body, "locale", Kind::NonBlank, Presence::Nullable)
        .and_then(Value::as_str)
        .map(str::to_owned);
    let active = v
        .field(body, "active", Kind::Boolean, Presence::Optional)
        .and_then(Value::as_bool);
    v.finish()?;
    Ok(ScimUser {
        user_name: user_name.unwrap_or_default(),
        given: given.unwrap_or_default().to_owned(),
        family: family.unwrap_or_default().to_owned(),
        first_email: first_email.unwrap_or_default(),
        locale,
        active,
    })
}

pub async fn create_user(State(app): State<App>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let mut db = app.db();
    authenticate(&app, &db, &headers)?;
    let body = parse_body(&headers, &body)?;
    let new = scim_user(&body)?;
    if db.user_id_by_email(&new.user_name).is_some() {
        return Err(ApiError::scim(
            StatusCode::CONFLICT,
            "Email address is already in use",
        ));
    }
    let now = app.now();
    let id = db.create_user(
        NewUser {
            email: new.user_name,
            first_name: Some(new.given),
            last_name: Some(new.family),
            // SCIM users sign in through the identity provider.
            password: uuid::Uuid::new_v4().to_string(),
            kind: UserKind::Personal,
            // An absent `active` is taken as true [inference: the column
            // defaults to true].
            is_active: new.active.unwrap_or(true),
            sso_source: Some(Sso::Scim),
            locale: new.locale.as_deref().and_then(normalize_locale),
            login_attributes: None,
        },
        now,
    );
    let user = db.user(id).ok_or_else(ApiError::internal)?;
    Ok(scim_response(
        StatusCode::CREATED,
        &user_resource(&db, user, &base_url(&headers), false),
    ))
}

pub async fn put_user(
    State(app): State<App>,
    headers: HeaderMap,
    raw: RawPath,
    body: Bytes,
) -> ApiResult {
    let mut db = app.db();
    authenticate(&app, &db, &headers)?;
    let body = parse_body(&headers, &body)?;
    let new = scim_user(&body)?;
    let id = find_user(&mut db, raw.get(0).unwrap_or_default())?;
    let user = db.user(id).ok_or_else(user_not_found)?;
    if new.first_email != *user.email {
        return Err(ApiError::scim(
            StatusCode::BAD_REQUEST,
            "You may not update the email of an existing user.",
        ));
    }
    let now = app.now();
    if let Some(active) = new.active {
        db.set_active(id, active, now).map_err(|e| {
            ApiError::scim(
                StatusCode::BAD_REQUEST,
                &format!("Error updating user: {}", error_message(&e)),
            )
        })?;
    }
    db.set_names(id, Some(Some(&new.given)), Some(Some(&new.family)), now);
    if let Some(u) = db.user_mut(id) {
        u.sso_source = Some(Sso::Scim);
        if let Some(locale) = new.locale.as_deref().and_then(normalize_locale) {
            u.locale = Some(locale.into_boxed_str());
        }
    }
    let user = db.user(id).ok_or_else(ApiError::internal)?;
    Ok(scim_response(
        StatusCode::OK,
        &user_resource(&db, user, &base_url(&headers), false),
    ))
}

fn error_message(e: &ApiError) -> String {
    match e {
        ApiError::Text(_, m) => m.clone(),
        ApiError::Json(_, v) | ApiError::Scim(_, v) => v
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    }
}

#[derive(Default)]
struct Patch {
    active: Option<bool>,
    email: Option<String>,
    first: Option<String>,
    last: Option<String>,
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `patch->user-updates`: a path-less map applies each key as a path.
fn apply_patch(patch: &mut Patch, path: Option<&str>, value: &Value) -> Result<(), ApiError> {
    if let (None, Value::Object(map)) = (path, value) {
        for (k, v) in map {
            apply_patch(patch, Some(k), v)?;
        }
        return Ok(());
    }
    match path {
        Some("active") => patch.active = Some(value_text(value).eq_ignore_ascii_case("true")),
        Some("userName") => patch.email = Some(value_text(value)),
        Some("name.givenName") => patch.first = Some(value_text(value)),
        Some("name.familyName") => patch.last = Some(value_text(value)),
        other => {
            return Err(ApiError::scim(
                StatusCode::BAD_REQUEST,
                &format!("Unsupported path: {}", other.unwrap_or("null")),
            ));
        }
    }
    Ok(())
}

pub async fn patch_user(
    State(app): State<App>,
    headers: HeaderMap,
    raw: RawPath,
    body: Bytes,
) -> ApiResult {
    let mut db = app.db();
    authenticate(&app, &db, &headers)?;
    let body = parse_body(&headers, &body)?;
    // `UserPatch`: schemas and a sequence of {op, path?, value} maps.
    let ops = body.get("Operations").and_then(Value::as_array);
    let ops_ok = ops.is_some_and(|ops| {
        ops.iter().all(|op| {
            op.get("op")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.trim().is_empty())
                && op.get("value").is_some_and(|v| !v.is_null())
                && op
                    .get("path")
                    .is_none_or(|p| p.is_null() || p.as_str().is_some_and(|s| !s.trim().is_empty()))
        })
    });
    let schemas_ok = body.get("schemas").and_then(Value::as_array).is_some();
    if !ops_ok || !schemas_ok {
        let mut v = Validator::new();
        if !schemas_ok {
            v.fail(
                "schemas",
                "sequence of value must be a non-blank string.".into(),
                json!([format!(
                    "invalid type, received: {}",
                    body.get("schemas").map_or("nil".into(), edn)
                )]),
            );
        }
        if !ops_ok {
            v.fail(
                "Operations",
                "sequence of map where {:op -> <value must be a non-blank string.>, :path (optional) -> <nullable value must be a non-blank string.>, :value -> <map, non-blank string or boolean>}".into(),
                json!([format!("invalid type, received: {}", body.get("Operations").map_or("nil".into(), edn))]),
            );
        }
        v.finish()?;
    }
    let id = find_user(&mut db, raw.get(0).unwrap_or_default())?;
    let mut patch = Patch::default();
    for op in ops.into_iter().flatten() {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or_default();
        // Only `replace` is applied; other ops are ignored.
        if kind.eq_ignore_ascii_case("replace") {
            let path = op.get("path").and_then(Value::as_str);
            apply_patch(&mut patch, path, op.get("value").unwrap_or(&Value::Null))?;
        }
    }
    if let Some(email) = &patch.email
        && db.email_taken_by_other(email, id)
    {
        // [inference] the update would hit the unique email; answered as on create.
        return Err(ApiError::scim(
            StatusCode::CONFLICT,
            "Email address is already in use",
        ));
    }
    let now = app.now();
    if let Some(active) = patch.active {
        // Not wrapped like PUT: the model's last-admin error goes out as is.
        db.set_active(id, active, now)?;
    }
    if let Some(email) = &patch.email {
        db.set_email(id, email, now);
    }
    db.set_names(
        id,
        patch.first.as_deref().map(Some),
        patch.last.as_deref().map(Some),
        now,
    );
    let user = db.user(id).ok_or_else(ApiError::internal)?;
    Ok(scim_response(
        StatusCode::OK,
        &user_resource(&db, user, &base_url(&headers), false),
    ))
}

// ------------------------------------------------------------------ groups

fn managed(group_id: u32) -> bool {
    group_id != ALL_USERS && group_id != ADMINS
}

fn find_group(db: &Db, eid: &str) -> Result<u32, ApiError> {
    db.group_by_entity_id(eid)
        .filter(|g| managed(*g))
        .ok_or_else(|| ApiError::scim(StatusCode::NOT_FOUND, "Group not found"))
}

pub async fn list_groups(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let db = app.db();
    authenticate(&app, &db, &headers)?;
    let (offset, limit, filter) = paging(raw.as_deref())?;
    let name = match &filter {
        Some(f) => Some(eq_filter(f, "displayName").ok_or_else(|| {
            // A plain ex-info with a status: the body is the message text.
            ApiError::bad_request("Unsupported filter parameter")
        })?),
        None => None,
    };
    let matching: Vec<u32> = db
        .groups
        .values()
        .filter(|g| managed(g.id) && name.is_none_or(|n| g.name == n))
        .map(|g| g.id)
        .collect();
    let base = base_url(&headers);
    let resources = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|g| group_resource(&db, *g, &base, false))
        .collect();
    Ok(scim_response(
        StatusCode::OK,
        &list_response(matching.len(), offset, limit, resources),
    ))
}

pub async fn get_group(State(app): State<App>, headers: HeaderMap, raw: RawPath) -> ApiResult {
    let db = app.db();
    authenticate(&app, &db, &headers)?;
    let id = find_group(&db, raw.get(0).unwrap_or_default())?;
    Ok(scim_response(
        StatusCode::OK,
        &group_resource(&db, id, &base_url(&headers), true),
    ))
}

fn scim_group(body: &Map<String, Value>) -> Result<(String, Vec<String>), ApiError> {
    let mut v = Validator::new();
    if body.get("schemas").and_then(Value::as_array).is_none() {
        v.fail(
            "schemas",
            "sequence of value must be a non-blank string.".into(),
            json!([format!(
                "invalid type, received: {}",
                body.get("schemas").map_or("nil".into(), edn)
            )]),
        );
    }
    let name = v
        .field(body, "displayName", Kind::NonBlank, Presence::Required)
        .and_then(Value::as_str)
        .map(str::to_owned);
    let members: Option<Vec<String>> = match body.get("members") {
        None => Some(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|m| {
                m.get("value")
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty())
                    .map(str::to_owned)
            })
            .collect(),
        Some(_) => None,
    };
    if members.is_none() {
        v.fail(
            "members",
            "sequence of map where {:value -> <value must be a non-blank string.>}".into(),
            json!([format!(
                "invalid type, received: {}",
                body.get("members").map_or("nil".into(), edn)
            )]),
        );
    }
    v.finish()?;
    Ok((name.unwrap_or_default(), members.unwrap_or_default()))
}

/// `update-group-membership`: with any known user among the ids, the group
/// is emptied and filled with exactly those users.
fn replace_members(db: &mut Db, group_id: u32, eids: &[String], now: i64) -> Result<(), ApiError> {
    let users: BTreeSet<u32> = eids
        .iter()
        .filter_map(|e| db.user_by_entity_id(e))
        .collect();
    if users.is_empty() {
        return Ok(());
    }
    db.clear_group(group_id, now)?;
    for u in users {
        db.add_membership(u, group_id, now)?;
    }
    Ok(())
}

pub async fn create_group(State(app): State<App>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let mut db = app.db();
    authenticate(&app, &db, &headers)?;
    let body = parse_body(&headers, &body)?;
    let (name, members) = scim_group(&body)?;
    if db.group_name_taken(&name, None) {
        return Err(ApiError::scim(
            StatusCode::CONFLICT,
            "A group with that name already exists",
        ));
    }
    let now = app.now();
    let id = db.create_group(&name)?;
    replace_members(&mut db, id, &members, now)?;
    Ok(scim_response(
        StatusCode::CREATED,
        &group_resource(&db, id, &base_url(&headers), true),
    ))
}

pub async fn put_group(
    State(app): State<App>,
    headers: HeaderMap,
    raw: RawPath,
    body: Bytes,
) -> ApiResult {
    let mut db = app.db();
    authenticate(&app, &db, &headers)?;
    let body = parse_body(&headers, &body)?;
    let (name, members) = scim_group(&body)?;
    let id = find_group(&db, raw.get(0).unwrap_or_default())?;
    if db.group_name_taken(&name, Some(id)) {
        return Err(ApiError::bad_request(GROUP_NAME_TAKEN));
    }
    let now = app.now();
    db.rename_group(id, &name)?;
    replace_members(&mut db, id, &members, now)?;
    Ok(scim_response(
        StatusCode::OK,
        &group_resource(&db, id, &base_url(&headers), true),
    ))
}

pub async fn delete_group(State(app): State<App>, headers: HeaderMap, raw: RawPath) -> ApiResult {
    let mut db = app.db();
    authenticate(&app, &db, &headers)?;
    let id = find_group(&db, raw.get(0).unwrap_or_default())?;
    db.delete_group(id, app.now())?;
    let mut response = scim_response(StatusCode::NO_CONTENT, &Value::Null);
    *response.body_mut() = axum::body::Body::empty();
    Ok(response)
}

// --------------------------------------------------- SCIM key configuration

fn scim_key_view(db: &Db, unmasked: bool) -> Option<Value> {
    let key = db.scim.key.as_deref()?;
    let mut v = json!({
        "id": db.scim.key_id,
        "name": "Metabase SCIM API Key",
        "scope": "scim",
        "masked_key": mask_key(key),
        "key_prefix": key.chars().take(7).collect::<String>(),
        "created_at": rfc3339_from_millis(db.scim.created_at),
        "updated_at": rfc3339_from_millis(db.scim.updated_at),
    });
    if unmasked && let Value::Object(map) = &mut v {
        map.insert("unmasked_key".into(), json!(key));
    }
    Some(v)
}

/// `GET /api/ee/scim/api_key` (session or API key, superuser).
pub async fn get_key(State(app): State<App>, headers: HeaderMap) -> ApiResult {
    let db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    scim_key_view(&db, false)
        .map(|v| ok_json(&v))
        .ok_or_else(ApiError::not_found)
}

/// `POST /api/ee/scim/api_key`: creates or rotates the key.
pub async fn rotate_key(State(app): State<App>, headers: HeaderMap) -> ApiResult {
    let mut db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    let now = app.now();
    let key = db.new_unique_key();
    if db.scim.key.is_none() {
        db.scim.key_id = db.reserve_api_key_id();
        db.scim.created_at = now;
    }
    db.scim.key = Some(key);
    db.scim.updated_at = now;
    scim_key_view(&db, true)
        .map(|v| ok_json(&v))
        .ok_or_else(ApiError::internal)
}
