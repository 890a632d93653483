//! `/api/permissions/group` and `/api/permissions/membership` (spec §3), as
//! OSS answers them: superusers only, group managers are a 402.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::app::Shared;
use crate::db::{ADMINS, Db};
use crate::http::RawPath;
use crate::http::{
    ApiError, ApiResult, GROUP_MANAGER_402, INVALID_REQUEST, JSON, Kind, Paging, Presence,
    QueryParams, Validator, edn_str, exception_map, no_content, ok_json, parse_body, route_id,
};
use crate::views::{group_row, members};

type App = Arc<Shared>;

fn group_manager_402() -> ApiError {
    ApiError::text(StatusCode::PAYMENT_REQUIRED, GROUP_MANAGER_402)
}

pub async fn list(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    let q = QueryParams::parse(raw.as_deref());
    let tenancy = q.get("tenancy");
    if let Some(t) = tenancy
        && t != "internal"
        && t != "external"
    {
        let mut v = Validator::new();
        v.fail(
            "tenancy",
            "enum of external, internal".into(),
            json!([format!(
                "should be either external or internal, received: {}",
                edn_str(t)
            )]),
        );
        v.finish()?;
    }
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    // Tenants are off: `external` matches nothing.
    if tenancy == Some("external") {
        return Ok(ok_json(&json!([])));
    }
    let paging = Paging::from_query(&q);
    let mut groups: Vec<_> = db.groups.values().collect();
    groups.sort_by(|a, b| {
        a.name
            .to_lowercase()
            .cmp(&b.name.to_lowercase())
            .then(a.id.cmp(&b.id))
    });
    let out: Vec<Value> = groups
        .into_iter()
        .skip(paging.skip())
        .take(paging.take())
        .map(|g| {
            let mut row = group_row(g);
            row.insert("member_count".into(), json!(g.active_count));
            Value::Object(row)
        })
        .collect();
    Ok(ok_json(&out))
}

pub async fn get_one(State(app): State<App>, headers: HeaderMap, raw: RawPath) -> ApiResult {
    let db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    let id = route_id(raw.get(0), "id")?;
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    let group = db.groups.get(&id).ok_or_else(ApiError::not_found)?;
    let mut row = group_row(group);
    row.insert("members".into(), Value::Array(members(&db, id)));
    Ok(ok_json(&row))
}

fn name_field(body: &serde_json::Map<String, Value>, create: bool) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let name = v
        .field(body, "name", Kind::NonBlank, Presence::Required)
        .and_then(Value::as_str)
        .map(str::to_owned);
    if create {
        v.field(body, "is_tenant_group", Kind::Boolean, Presence::Nullable);
    }
    v.finish()?;
    name.ok_or_else(ApiError::internal)
}

pub async fn create(State(app): State<App>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let mut db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    let body = parse_body(&headers, &body)?;
    let name = name_field(&body, true)?;
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    if body.get("is_tenant_group").and_then(Value::as_bool) == Some(true) {
        // `ee-feature-error`: its ex-data carries a status, so the body is
        // the exception map.
        let message = "Tenants is a paid feature not currently available to your instance. Please upgrade to use it. Learn more at metabase.com/upgrade/";
        let mut body = exception_map(message, None);
        if let Value::Object(map) = &mut body {
            map.insert(
                "status".into(),
                json!("error-premium-feature-not-available"),
            );
        }
        return Err(ApiError::Json(StatusCode::PAYMENT_REQUIRED, body));
    }
    let id = db.create_group(&name)?;
    let group = db.groups.get(&id).ok_or_else(ApiError::internal)?;
    Ok(ok_json(&group_row(group)))
}

pub async fn update(
    State(app): State<App>,
    headers: HeaderMap,
    raw: RawPath,
    body: Bytes,
) -> ApiResult {
    let mut db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    let id = route_id(raw.get(0), "group-id")?;
    let body = parse_body(&headers, &body)?;
    let name = name_field(&body, false)?;
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    db.rename_group(id, &name)?;
    let group = db.groups.get(&id).ok_or_else(ApiError::internal)?;
    Ok(ok_json(&group_row(group)))
}

pub async fn delete(State(app): State<App>, headers: HeaderMap, raw: RawPath) -> ApiResult {
    let mut db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    let id = route_id(raw.get(0), "group-id")?;
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    db.delete_group(id, app.now())?;
    Ok(no_content())
}

/// `{"<user id>": [{membership_id, group_id, user_id, is_group_manager}…]}`,
/// written straight to text: with a million users a `Value` tree would
/// cost far more memory than the answer itself.
fn membership_map(db: &Db) -> String {
    let mut out = String::with_capacity(db.memberships.len() * 90 + 2);
    out.push('{');
    let mut first_user = true;
    for user in &db.users {
        if user.groups.is_empty() {
            continue;
        }
        if !first_user {
            out.push(',');
        }
        first_user = false;
        let _ = write!(out, "\"{}\":[", user.id);
        for (i, (group_id, mid)) in user.groups.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"membership_id\":{mid},\"group_id\":{group_id},\"user_id\":{},\"is_group_manager\":false}}",
                user.id
            );
        }
        out.push(']');
    }
    out.push('}');
    out
}

pub async fn memberships(State(app): State<App>, headers: HeaderMap) -> ApiResult {
    let db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))],
        membership_map(&db),
    )
        .into_response())
}

pub async fn add_member(State(app): State<App>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let mut db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    let body = parse_body(&headers, &body)?;
    let mut v = Validator::new();
    let group_id = v
        .field(&body, "group_id", Kind::PositiveInt, Presence::Required)
        .and_then(Value::as_u64);
    let user_id = v
        .field(&body, "user_id", Kind::PositiveInt, Presence::Required)
        .and_then(Value::as_u64);
    let manager = v
        .field(&body, "is_group_manager", Kind::Boolean, Presence::Nullable)
        .and_then(Value::as_bool)
        .unwrap_or(false);
    v.finish()?;
    let as_id = |n: Option<u64>| n.map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX));
    let (group_id, user_id) = (as_id(group_id), as_id(user_id));
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    if manager {
        return Err(group_manager_402());
    }
    db.add_membership(user_id, group_id, app.now())?;
    Ok(ok_json(&members(&db, group_id)))
}

/// OSS answers 402 before anything else: the code checks the
/// advanced-permissions feature first, so even a non-admin gets 402 here
/// (unlike the other endpoints, where the superuser check comes first).
pub async fn update_membership(
    State(app): State<App>,
    headers: HeaderMap,
    raw: RawPath,
    body: Bytes,
) -> ApiResult {
    let db = app.db();
    app.authenticate(&db, &headers)?;
    route_id(raw.get(0), "id")?;
    let body = parse_body(&headers, &body)?;
    let mut v = Validator::new();
    v.field(&body, "is_group_manager", Kind::Boolean, Presence::Required);
    v.finish()?;
    Err(group_manager_402())
}

pub async fn remove_member(State(app): State<App>, headers: HeaderMap, raw: RawPath) -> ApiResult {
    let mut db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    let id = route_id(raw.get(0), "id")?;
    // The membership is looked up before the manager check.
    db.membership(id).ok_or_else(ApiError::not_found)?;
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    db.remove_membership(id, app.now())?;
    Ok(no_content())
}

pub async fn clear(State(app): State<App>, headers: HeaderMap, raw: RawPath) -> ApiResult {
    let mut db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    let id = route_id(raw.get(0), "group-id")?;
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    if !db.groups.contains_key(&id) {
        return Err(ApiError::not_found());
    }
    if id == ADMINS {
        return Err(ApiError::bad_request(INVALID_REQUEST));
    }
    db.clear_group(id, app.now())?;
    Ok(no_content())
}
