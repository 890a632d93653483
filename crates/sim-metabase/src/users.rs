//! `/api/user` (spec §2). Each handler follows Metabase's order: request
//! schema, then permission checks, then existence, then model rules.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::app::Shared;
use crate::db::{ADMINS, ALL_USERS, Db, INTERNAL_USER_ID, NewUser, Sso, User, UserKind};
use crate::http::RawPath;
use crate::http::{
    ApiError, ApiResult, INTERNAL_USER, Kind, Paging, Presence, QueryParams, TENANT_MISMATCH,
    Validator, no_content, normalize_locale, ok_json, parse_body, route_id,
};
use crate::session::{session_cookies, with_cookies};
use crate::views::{UserView, current_user};

type App = Arc<Shared>;

/// SQL `LIKE` with `%` and `_` as wildcards; the user's query is not
/// escaped (spec §2.2 [inference]).
pub fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('%') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '_' || c == t[ti] => {
                ti += 1;
                pi += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

fn matches_query(user: &User, pattern: &str) -> bool {
    let field = |s: Option<&str>| s.is_some_and(|s| like(&s.to_lowercase(), pattern));
    field(user.first_name.as_deref())
        || field(user.last_name.as_deref())
        || field(Some(&user.email))
}

#[derive(Serialize)]
struct Envelope<'a> {
    data: Vec<UserView<'a>>,
    total: usize,
    limit: Option<u64>,
    offset: Option<u64>,
}

pub async fn list(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    let q = QueryParams::parse(raw.as_deref());
    let mut v = Validator::new();
    let status = v
        .query(q.get("status"), "status", Kind::Str)
        .and_then(|s| s.as_str().map(str::to_owned));
    let query = v
        .query(q.get("query"), "query", Kind::Str)
        .and_then(|s| s.as_str().map(str::to_owned));
    let group_id = v
        .query(q.get("group_id"), "group_id", Kind::PositiveInt)
        .and_then(|g| g.as_u64());
    let include_deactivated = v
        .query(
            q.get("include_deactivated"),
            "include_deactivated",
            Kind::BooleanValue,
        )
        .is_some_and(|b| b.as_str() == Some("true"));
    v.finish()?;
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    let paging = Paging::from_query(&q);
    // `status-clause`: include_deactivated=true wins over status (the code,
    // not the docstring); an unknown status means active.
    let index = if include_deactivated {
        &db.order_all
    } else {
        match status.as_deref() {
            Some("deactivated") => &db.order_inactive,
            Some("all") => &db.order_all,
            _ => &db.order_active,
        }
    };
    let pattern = query.map(|q| format!("%{}%", q.to_lowercase()));
    let group = group_id.map(|g| u32::try_from(g).unwrap_or(u32::MAX));
    let (total, ids): (usize, Vec<u32>) = if pattern.is_none() && group.is_none() {
        (
            index.len(),
            index.iter_from(paging.skip()).take(paging.take()).collect(),
        )
    } else {
        let mut total = 0;
        let mut ids = Vec::new();
        let (skip, take) = (paging.skip(), paging.take());
        for id in index.iter() {
            let Some(user) = db.user(id) else { continue };
            if group.is_some_and(|g| !user.in_group(g))
                || pattern.as_deref().is_some_and(|p| !matches_query(user, p))
            {
                continue;
            }
            if total >= skip && ids.len() < take {
                ids.push(id);
            }
            total += 1;
        }
        (total, ids)
    };
    let data = ids
        .iter()
        .filter_map(|id| db.user(*id))
        .map(UserView::list_item)
        .collect();
    Ok(ok_json(&Envelope {
        data,
        total,
        limit: paging.limit,
        offset: paging.offset,
    }))
}

pub async fn current(State(app): State<App>, headers: HeaderMap) -> ApiResult {
    let db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    let user = db.user(caller.id).ok_or_else(ApiError::not_found)?;
    Ok(ok_json(&current_user(&db, user, app.now())))
}

pub async fn get_one(State(app): State<App>, headers: HeaderMap, raw: RawPath) -> ApiResult {
    let db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    let id = route_id(raw.get(0), "id")?;
    if caller.id != id && !caller.superuser {
        return Err(ApiError::forbidden());
    }
    let user = db.user(id).ok_or_else(ApiError::not_found)?;
    Ok(ok_json(&UserView::with_memberships(user)))
}

/// Group ids from a validated `user_group_memberships` value.
fn membership_ids(value: Option<&Value>) -> Option<BTreeSet<u32>> {
    value.and_then(Value::as_array).map(|items| {
        items
            .iter()
            .filter_map(|m| m.get("id").and_then(Value::as_u64))
            .map(|id| u32::try_from(id).unwrap_or(u32::MAX))
            .collect()
    })
}

fn user_fields(v: &mut Validator, body: &Map<String, Value>, create: bool) {
    let email = if create {
        Presence::Required
    } else {
        Presence::Nullable
    };
    v.field(body, "email", Kind::Email, email);
    v.field(body, "first_name", Kind::NonBlank, Presence::Nullable);
    v.field(body, "last_name", Kind::NonBlank, Presence::Nullable);
    v.field(
        body,
        "user_group_memberships",
        Kind::GroupMemberships,
        Presence::Nullable,
    );
    v.field(
        body,
        "login_attributes",
        Kind::LoginAttributes,
        Presence::Nullable,
    );
    v.field(body, "tenant_id", Kind::PositiveInt, Presence::Nullable);
    if create {
        v.field(body, "source", Kind::NonBlank, Presence::Nullable);
    } else {
        v.field(body, "is_superuser", Kind::Boolean, Presence::Nullable);
        v.field(body, "is_group_manager", Kind::Boolean, Presence::Nullable);
        v.field(body, "locale", Kind::Locale, Presence::Nullable);
    }
}

fn str_of<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

pub async fn create(State(app): State<App>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let mut db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    let body = parse_body(&headers, &body)?;
    let mut v = Validator::new();
    user_fields(&mut v, &body, true);
    v.finish()?;
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    let email = str_of(&body, "email").unwrap_or_default().to_owned();
    if db.user_id_by_email(&email).is_some() {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "email",
            "Email address already in use.",
        ));
    }
    if body.get("tenant_id").is_some_and(|t| !t.is_null()) {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "tenant_id",
            "Cannot create a Tenant User as Tenants are not enabled for this instance.",
        ));
    }
    // The insert and the memberships share a transaction: check the groups
    // before creating anything. Leaving out All Users deletes that
    // membership, which its hook refuses (the text is spec §2.5 [inference]).
    let wanted = membership_ids(body.get("user_group_memberships"));
    if let Some(wanted) = &wanted {
        if !wanted.contains(&ALL_USERS) {
            return Err(ApiError::all_users_fixed());
        }
        if wanted.iter().any(|g| !db.groups.contains_key(g)) {
            return Err(ApiError::bad_request(TENANT_MISMATCH));
        }
    }
    let now = app.now();
    // `invite-user!` passes a `password` through when sent [inference];
    // otherwise the password is a random UUID nobody knows.
    let password = str_of(&body, "password")
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let id = db.create_user(
        NewUser {
            email,
            first_name: str_of(&body, "first_name").map(str::to_owned),
            last_name: str_of(&body, "last_name").map(str::to_owned),
            password,
            kind: UserKind::Personal,
            is_active: true,
            sso_source: None,
            locale: None,
            login_attributes: body
                .get("login_attributes")
                .and_then(Value::as_object)
                .cloned(),
        },
        now,
    );
    let mut wanted = wanted.unwrap_or_else(|| BTreeSet::from([ALL_USERS]));
    if str_of(&body, "source") == Some("setup") {
        wanted.insert(ADMINS);
    }
    db.set_user_groups(id, &wanted, now)?;
    let user = db.user(id).ok_or_else(ApiError::internal)?;
    Ok(ok_json(&UserView::with_memberships(user)))
}

fn check_not_internal(id: u32) -> Result<(), ApiError> {
    if id == INTERNAL_USER_ID {
        return Err(ApiError::bad_request(INTERNAL_USER));
    }
    Ok(())
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
    user_fields(&mut v, &body, false);
    v.finish()?;
    if caller.id != id && !caller.superuser {
        return Err(ApiError::forbidden());
    }
    check_not_internal(id)?;
    let user = db
        .user(id)
        .filter(|u| u.is_active)
        .ok_or_else(ApiError::not_found)?;

    let email = str_of(&body, "email");
    // Google/LDAP users may not change their own email (account hijacking).
    if body.contains_key("email")
        && !caller.superuser
        && email != Some(&*user.email)
        && matches!(user.sso_source, Some(Sso::Google | Sso::Ldap))
    {
        return Err(ApiError::forbidden());
    }
    // SSO users keep their names; sending the same value is fine.
    for (key, current, message) in [
        (
            "first_name",
            user.first_name.as_deref(),
            "Editing first name is not allowed for SSO users.",
        ),
        (
            "last_name",
            user.last_name.as_deref(),
            "Editing last name is not allowed for SSO users.",
        ),
    ] {
        if body.contains_key(key) && user.sso_source.is_some() && str_of(&body, key) != current {
            return Err(ApiError::field(StatusCode::BAD_REQUEST, key, message));
        }
    }
    if let Some(email) = email
        && db.email_taken_by_other(email, id)
    {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "email",
            "Email address already associated to another user.",
        ));
    }

    // Everything below is one transaction in Metabase: work out the end
    // state and check it before changing anything.
    let is_superuser_raw = body.get("is_superuser").and_then(Value::as_bool);
    let superuser_change = is_superuser_raw.filter(|_| caller.superuser);
    let mut groups_after: BTreeSet<u32> = user.groups.iter().map(|(g, _)| *g).collect();
    match superuser_change {
        Some(true) => {
            groups_after.insert(ADMINS);
        }
        Some(false) if user.is_superuser => {
            if !db.other_active_admin(id) {
                return Err(ApiError::last_admin());
            }
            groups_after.remove(&ADMINS);
        }
        _ => {}
    }
    let wanted = membership_ids(body.get("user_group_memberships"));
    if let Some(wanted) = &wanted {
        if let Some(flag) = is_superuser_raw
            && flag != wanted.contains(&ADMINS)
        {
            return Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                "is_superuser",
                "Value of is_superuser must correspond to presence of Admin group ID in group_ids.",
            ));
        }
        if *wanted != groups_after {
            if !caller.superuser {
                return Err(ApiError::forbidden());
            }
            for g in groups_after.difference(wanted) {
                if *g == ALL_USERS {
                    return Err(ApiError::all_users_fixed());
                }
                if *g == ADMINS && !db.other_active_admin(id) {
                    return Err(ApiError::last_admin());
                }
            }
            for g in wanted.difference(&groups_after) {
                if *g == ALL_USERS {
                    return Err(ApiError::all_users_fixed());
                }
                if !db.groups.contains_key(g) {
                    return Err(ApiError::bad_request(TENANT_MISMATCH));
                }
            }
        }
    }

    let now = app.now();
    let name = |key: &str| body.contains_key(key).then(|| str_of(&body, key));
    let (first, last) = (name("first_name"), name("last_name"));
    db.set_names(id, first, last, now);
    if let Some(email) = email {
        db.set_email(id, email, now);
    }
    if body.contains_key("locale") {
        let locale = str_of(&body, "locale").and_then(normalize_locale);
        if let Some(u) = db.user_mut(id) {
            u.locale = locale.map(String::into_boxed_str);
            u.updated_at = now;
        }
    }
    if caller.superuser && body.contains_key("login_attributes") {
        let attrs = body
            .get("login_attributes")
            .and_then(Value::as_object)
            .cloned();
        if let Some(u) = db.user_mut(id) {
            u.login_attributes = attrs.map(Box::new);
            u.updated_at = now;
        }
    }
    if let Some(flag) = superuser_change {
        db.set_superuser(id, flag, now)?;
    }
    if let Some(wanted) = &wanted {
        db.set_user_groups(id, wanted, now)?;
    }
    let user = db.user(id).ok_or_else(ApiError::internal)?;
    Ok(ok_json(&UserView::with_memberships(user)))
}

pub async fn deactivate(State(app): State<App>, headers: HeaderMap, raw: RawPath) -> ApiResult {
    let mut db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    let id = route_id(raw.get(0), "id")?;
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    check_not_internal(id)?;
    let user = db.user(id).ok_or_else(ApiError::not_found)?;
    // The update is scoped to `type = personal`: other users are untouched
    // but the answer is the same. An inactive user stays inactive (200).
    if user.kind == UserKind::Personal {
        db.set_active(id, false, app.now())?;
    }
    Ok(ok_json(&json!({ "success": true })))
}

pub async fn reactivate(State(app): State<App>, headers: HeaderMap, raw: RawPath) -> ApiResult {
    let mut db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    let id = route_id(raw.get(0), "id")?;
    if !caller.superuser {
        return Err(ApiError::forbidden());
    }
    check_not_internal(id)?;
    let user = db
        .user(id)
        .filter(|u| u.kind == UserKind::Personal)
        .ok_or_else(ApiError::not_found)?;
    if user.is_active {
        return Err(ApiError::exception(
            StatusCode::BAD_REQUEST,
            "Not able to reactivate an active user",
        ));
    }
    let now = app.now();
    // Reactivation clears is_superuser (and so the Admin membership), and a
    // Google/LDAP sso_source when that SSO is off (it always is here).
    db.set_superuser(id, false, now)?;
    db.set_active(id, true, now)?;
    if let Some(u) = db.user_mut(id)
        && matches!(u.sso_source, Some(Sso::Google | Sso::Ldap))
    {
        u.sso_source = None;
    }
    let user = db.user(id).ok_or_else(ApiError::internal)?;
    Ok(ok_json(&UserView::of(user)))
}

pub async fn password(
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
    let new_password = v
        .field(&body, "password", Kind::Password, Presence::Required)
        .and_then(Value::as_str)
        .map(str::to_owned);
    v.finish()?;
    if caller.id != id && !caller.superuser {
        return Err(ApiError::forbidden());
    }
    let user = db
        .user(id)
        .filter(|u| u.kind == UserKind::Personal && u.is_active)
        .ok_or_else(ApiError::not_found)?;
    // Admins may reset anyone's password; others must know the old one.
    if !caller.superuser {
        let old = str_of(&body, "old_password").unwrap_or("null");
        if crate::db::hash_password(old) != user.password {
            return Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                "old_password",
                "Invalid password",
            ));
        }
    }
    let now = app.now();
    let new_password = new_password.ok_or_else(ApiError::internal)?;
    db.set_password(id, &new_password, now);
    if id == caller.id {
        let token = db.create_session(id, now);
        return Ok(with_cookies(
            ok_json(&json!({ "success": true, "session_id": token })),
            session_cookies(&token, None),
        ));
    }
    Ok(no_content())
}

pub async fn modal(State(app): State<App>, headers: HeaderMap, raw: RawPath) -> ApiResult {
    let mut db = app.db();
    let caller = app.authenticate(&db, &headers)?;
    let id = route_id(raw.get(0), "id")?;
    let modal = raw.get(1).unwrap_or_default();
    if modal != "qbnewb" && modal != "datasetnewb" {
        let mut v = Validator::new();
        v.fail(
            "modal",
            "enum of qbnewb, datasetnewb".into(),
            json!([format!(
                "should be either qbnewb or datasetnewb, received: {}",
                crate::http::edn_str(modal)
            )]),
        );
        v.finish()?;
    }
    if caller.id != id && !caller.superuser {
        return Err(ApiError::forbidden());
    }
    check_not_internal(id)?;
    let now = app.now();
    if modal == "qbnewb"
        && let Some(u) = db.user_mut(id)
    {
        u.is_qbnewb = false;
        u.updated_at = now;
    }
    Ok(ok_json(&json!({ "success": true })))
}

/// For the `/_sim` endpoints and tests.
pub fn sessions_summary(db: &Db, id: u32, now: i64, max_age_ms: i64) -> Value {
    json!({
        "user_id": id,
        "live": db.live_sessions_of(id, now, max_age_ms),
        "total": db.sessions.values().filter(|s| s.user_id == id).count(),
    })
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_has_sql_wildcards() {
        assert!(like("ada admin", "%ada%"));
        assert!(like("ada", "%%"));
        assert!(like("bob", "%b_b%"));
        assert!(!like("bob", "%x%"));
        assert!(like("a.b@example.com", "%@example.com%"));
        assert!(!like("abc", "%abcd%"));
    }
}
