//! `/api/api-key` (spec §1.4): superuser-only management of API keys, each
//! backed by a hidden `api-key` user.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::app::Shared;
use crate::db::{ALL_USERS, mask_key};
use crate::http::RawPath;
use crate::http::{
    ApiError, ApiResult, Kind, Presence, Validator, no_content, ok_json, parse_body, route_id,
};
use crate::views::api_key;

type App = Arc<Shared>;

fn name_taken() -> ApiError {
    ApiError::field(
        StatusCode::BAD_REQUEST,
        "name",
        "An API key with this name already exists.",
    )
}

fn as_id(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub async fn create(State(app): State<App>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let mut db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    let body = parse_body(&headers, &body)?;
    let mut v = Validator::new();
    let group_id = v
        .field(&body, "group_id", Kind::PositiveInt, Presence::Required)
        .and_then(Value::as_u64);
    let name = v
        .field(&body, "name", Kind::NonBlank, Presence::Required)
        .and_then(Value::as_str)
        .map(str::to_owned);
    v.finish()?;
    let (Some(group_id), Some(name)) = (group_id, name) else {
        return Err(ApiError::internal());
    };
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    if db.api_key_by_name(&name).is_some() {
        return Err(name_taken());
    }
    let id = db.create_api_key(&name, as_id(group_id), None, caller.id, app.now())?;
    let key = db.api_keys.get(&id).ok_or_else(ApiError::internal)?;
    Ok(ok_json(&api_key(&db, key, true)))
}

pub async fn list(State(app): State<App>, headers: HeaderMap) -> ApiResult {
    let db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    let keys: Vec<Value> = db
        .api_keys
        .values()
        .map(|k| api_key(&db, k, false))
        .collect();
    Ok(ok_json(&keys))
}

pub async fn count(State(app): State<App>, headers: HeaderMap) -> ApiResult {
    let db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    Ok(ok_json(&db.api_keys.len()))
}

pub async fn update(
    State(app): State<App>,
    headers: HeaderMap,
    raw: RawPath,
    body: Bytes,
) -> ApiResult {
    let mut db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    let id = route_id(raw.get(0), "id")?;
    let body = parse_body(&headers, &body)?;
    let mut v = Validator::new();
    let group_id = v
        .field(&body, "group_id", Kind::PositiveInt, Presence::Nullable)
        .and_then(Value::as_u64)
        .map(as_id);
    let name = v
        .field(&body, "name", Kind::NonBlank, Presence::Nullable)
        .and_then(Value::as_str)
        .map(str::to_owned);
    v.finish()?;
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    let key = db.api_keys.get(&id).ok_or_else(ApiError::not_found)?;
    let user_id = key.user_id;
    // The name is unique like on create [inference: the endpoint itself does
    // not check; the column's constraint would refuse a duplicate].
    if let Some(name) = &name
        && db.api_key_by_name(name).is_some_and(|k| k.id != id)
    {
        return Err(name_taken());
    }
    let now = app.now();
    if let Some(group_id) = group_id {
        db.set_user_groups(user_id, &BTreeSet::from([ALL_USERS, group_id]), now)?;
    }
    if let Some(name) = name {
        db.set_names(user_id, Some(Some(&name)), Some(Some("")), now);
        if let Some(key) = db.api_keys.get_mut(&id) {
            key.name = name;
            key.updated_at = now;
            key.updated_by = caller.id;
        }
    }
    let key = db.api_keys.get(&id).ok_or_else(ApiError::internal)?;
    Ok(ok_json(&api_key(&db, key, false)))
}

/// The newest shape (spec §1.4 [version]): id, the new key, its mask and prefix.
pub async fn regenerate(State(app): State<App>, headers: HeaderMap, raw: RawPath) -> ApiResult {
    let mut db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    let id = route_id(raw.get(0), "id")?;
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    let key = db
        .regenerate_api_key(id, caller.id, app.now())
        .ok_or_else(ApiError::not_found)?;
    Ok(ok_json(&json!({
        "id": id,
        "unmasked_key": key,
        "masked_key": mask_key(&key),
        "prefix": key.chars().take(7).collect::<String>(),
    })))
}

pub async fn delete(State(app): State<App>, headers: HeaderMap, raw: RawPath) -> ApiResult {
    let mut db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    let id = route_id(raw.get(0), "id")?;
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    db.delete_api_key(id, app.now())?;
    Ok(no_content())
}
