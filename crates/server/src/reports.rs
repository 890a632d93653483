//! Reports (contract section 6) over the tenant's last good snapshots:
//! `people` (one row per person by email across every account), `admins`
//! and `inactive`. JSON pages with cursors, or `format=csv` streamed. An
//! account that has never been synced has no snapshot and is left out.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use rollcall_core::Provider;
use rollcall_core::error::ErrorEnvelope;
use rollcall_core::id::{AccountId, TenantId};
use rollcall_core::unified::User;
use rollcall_store::{AccountFilter, CachedUserFilter, SnapshotState};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::Caller;
use crate::csv::{self, Format, csv_line};
use crate::cursor::{CursorCodec, ListEnvelope, page_limit};
use crate::error::ApiError;
use crate::extract::ApiQuery;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(people))
        .routes(routes!(admins))
        .routes(routes!(inactive))
}

pub(crate) const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const CSV_BATCH: u32 = 500;

/// A synced account of the tenant, as reports need it.
#[derive(Debug, Clone)]
pub(crate) struct ReportAccount {
    pub id: AccountId,
    pub provider: Provider,
    pub label: String,
    pub snapshot: SnapshotState,
}

/// The tenant's accounts that have a snapshot, in id order.
pub(crate) async fn synced_accounts(
    state: &AppState,
    tenant: &TenantId,
) -> Result<Vec<ReportAccount>, ApiError> {
    let mut out = Vec::new();
    let mut after: Option<AccountId> = None;
    loop {
        let page = state
            .store
            .list_accounts(tenant, &AccountFilter::default(), after.as_ref(), 1000)
            .await?;
        let full = page.len() == 1000;
        after = page.last().map(|a| a.id.clone());
        for row in page {
            if let Some(snapshot) = state.store.snapshot_state(&row.id).await? {
                out.push(ReportAccount {
                    id: row.id,
                    provider: row.provider,
                    label: row.label,
                    snapshot,
                });
            }
        }
        if !full {
            return Ok(out);
        }
    }
}

fn parse_user(data_json: &str) -> Result<User, ApiError> {
    serde_json::from_str(data_json)
        .map_err(|e| ApiError::internal(format!("a cached user is unreadable: {e}")))
}

fn millis_of(rfc3339: &str) -> Option<i64> {
    rfc3339
        .parse::<jiff::Timestamp>()
        .ok()
        .map(jiff::Timestamp::as_millisecond)
}

/// Whether a user has been active since `cutoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activity {
    Active,
    /// No activity since the cutoff; `since` is the last activity (or the
    /// account's creation, for a user never active).
    Inactive {
        since: i64,
    },
    /// The vendor does not say.
    Unknown,
}

pub(crate) fn activity(user: &User, activity_exposed: bool, cutoff: i64) -> Activity {
    if !activity_exposed {
        return Activity::Unknown;
    }
    let judge = |at: i64| {
        if at < cutoff {
            Activity::Inactive { since: at }
        } else {
            Activity::Active
        }
    };
    match (&user.last_active_at, &user.created_at) {
        (Some(last), _) => millis_of(last).map_or(Activity::Unknown, judge),
        // Never active: as inactive as the account is old.
        (None, Some(created)) => millis_of(created).map_or(Activity::Unknown, judge),
        (None, None) => Activity::Unknown,
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ReportParams {
    /// 1 to 1000 (default 100); ignored for CSV, which streams every row.
    limit: Option<u32>,
    next_cursor: Option<String>,
    /// `json` (default) or `csv`.
    #[serde(default)]
    #[param(inline)]
    format: Format,
}

/// How a report was asked for: the output format, and for JSON its page.
struct Ask {
    format: Format,
    limit: Option<u32>,
    next_cursor: Option<String>,
    /// What the cursor is bound to: the report, the tenant, the filters.
    query: String,
}

/// A report's answer: every row as streamed CSV (`filename`, `header`,
/// each row's `lines`), or one JSON page with a cursor bound to the query.
/// `page(position, limit)` reads the rows after a position.
async fn answer<T, F, Fut>(
    state: &AppState,
    ask: Ask,
    csv_file: (&'static str, &'static [&'static str]),
    lines: fn(&T) -> Vec<String>,
    page: F,
) -> Result<Response, ApiError>
where
    T: Serialize + Send + 'static,
    F: Fn(Option<String>, u32) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>), ApiError>> + Send + 'static,
{
    if ask.format == Format::Csv {
        let (filename, header) = csv_file;
        return Ok(csv::stream(filename, header, move |after| {
            let batch = page(after, CSV_BATCH);
            async move {
                let (rows, next) = batch.await?;
                Ok((rows.iter().flat_map(lines).collect(), next))
            }
        }));
    }
    let limit = page_limit(ask.limit)?;
    let codec = CursorCodec::new(&state.vault);
    let after = ask
        .next_cursor
        .as_deref()
        .map(|c| codec.decode(c, &ask.query))
        .transpose()?;
    let (rows, next) = page(after, limit).await?;
    let next = next.map(|n| codec.encode(&n, &ask.query));
    Ok(Json(ListEnvelope::new(rows, next, false)).into_response())
}

// ---- people ----

/// One account's view of a person.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PersonAccount {
    pub integrated_account_id: String,
    pub provider: Provider,
    pub account_label: String,
    pub user_id: String,
    /// `active`, `inactive` or `invited`.
    pub status: String,
    /// Holds a role of the unified `admin` type.
    pub is_admin: bool,
    /// Group names.
    pub groups: Vec<String>,
    pub last_active_at: Option<String>,
}

/// One person (by lower-cased email) across the tenant's accounts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Person {
    pub email: String,
    pub name: Option<String>,
    pub accounts: Vec<PersonAccount>,
    /// An admin in at least one account.
    pub is_admin_anywhere: bool,
    /// The latest activity in any account.
    pub last_active_at: Option<String>,
}

async fn people_page(
    state: &AppState,
    tenant: &TenantId,
    accounts: &[ReportAccount],
    after: Option<String>,
    limit: u32,
) -> Result<(Vec<Person>, Option<String>), ApiError> {
    let mut emails = state
        .store
        .report_emails(tenant, after.as_deref(), limit + 1)
        .await?;
    let more = emails.len() > limit as usize;
    emails.truncate(limit as usize);
    let rows = state.store.users_with_emails(tenant, &emails).await?;
    // Group names, one query per account for the users on this page.
    let mut groups: std::collections::HashMap<(AccountId, String), Vec<String>> =
        std::collections::HashMap::new();
    for account in accounts {
        let ids: Vec<String> = rows
            .iter()
            .filter(|(a, _)| *a == account.id)
            .map(|(_, u)| u.user_id.clone())
            .collect();
        if ids.is_empty() {
            continue;
        }
        for (user, _, name) in state.store.cached_user_groups(&account.id, &ids).await? {
            groups
                .entry((account.id.clone(), user))
                .or_default()
                .push(name);
        }
    }
    let mut people: Vec<Person> = Vec::with_capacity(emails.len());
    for (account_id, row) in rows {
        let Some(account) = accounts.iter().find(|a| a.id == account_id) else {
            continue;
        };
        let Some(email) = row.email.clone() else {
            continue;
        };
        let user = parse_user(&row.data_json)?;
        let is_admin = state.settings.roles.is_admin(account.provider, &user.roles);
        let mut group_names = groups
            .remove(&(account_id.clone(), row.user_id.clone()))
            .unwrap_or_default();
        group_names.sort();
        let entry = PersonAccount {
            integrated_account_id: account_id.to_string(),
            provider: account.provider,
            account_label: account.label.clone(),
            user_id: row.user_id,
            status: row.status,
            is_admin,
            groups: group_names,
            last_active_at: user.last_active_at.clone(),
        };
        // Rows come in email order, so a person's accounts are adjacent.
        let person = match people.last_mut() {
            Some(p) if p.email == email => p,
            _ => {
                people.push(Person {
                    email: email.clone(),
                    name: None,
                    accounts: Vec::new(),
                    is_admin_anywhere: false,
                    last_active_at: None,
                });
                people
                    .last_mut()
                    .ok_or_else(|| ApiError::internal("person lost"))?
            }
        };
        if person.name.is_none() {
            person.name = user.name.clone();
        }
        person.is_admin_anywhere |= is_admin;
        let later = match (&person.last_active_at, &entry.last_active_at) {
            (Some(a), Some(b)) => millis_of(b) > millis_of(a),
            (None, Some(_)) => true,
            _ => false,
        };
        if later {
            person.last_active_at = entry.last_active_at.clone();
        }
        person.accounts.push(entry);
    }
    let next = if more { emails.last().cloned() } else { None };
    Ok((people, next))
}

const PEOPLE_CSV: &[&str] = &[
    "email",
    "name",
    "integrated_account_id",
    "provider",
    "account_label",
    "user_id",
    "status",
    "is_admin",
    "groups",
    "last_active_at",
];

fn person_lines(person: &Person) -> Vec<String> {
    person
        .accounts
        .iter()
        .map(|a| {
            csv_line([
                person.email.clone(),
                person.name.clone().unwrap_or_default(),
                a.integrated_account_id.clone(),
                a.provider.to_string(),
                a.account_label.clone(),
                a.user_id.clone(),
                a.status.clone(),
                a.is_admin.to_string(),
                a.groups.join("; "),
                a.last_active_at.clone().unwrap_or_default(),
            ])
        })
        .collect()
}

/// One row per person (by email) across all the tenant's synced accounts,
/// with each account's status, admin flag, groups and last activity.
#[utoipa::path(get, path = "/reports/people", tag = "reports", params(ReportParams),
    responses((status = 200, body = ListEnvelope<Person>), (status = 200, content_type = "text/csv", description = "with format=csv: one line per person and account"), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
async fn people(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<ReportParams>,
) -> Result<Response, ApiError> {
    let accounts = synced_accounts(&state, &caller.tenant_id).await?;
    let ask = Ask {
        format: p.format,
        limit: p.limit,
        next_cursor: p.next_cursor,
        query: format!("report|people|{}", caller.tenant_id),
    };
    let tenant = caller.tenant_id;
    let reader = state.clone();
    answer(
        &state,
        ask,
        ("rollcall-people.csv", PEOPLE_CSV),
        person_lines,
        move |after, limit| {
            let (state, tenant, accounts) = (reader.clone(), tenant.clone(), accounts.clone());
            async move { people_page(&state, &tenant, &accounts, after, limit).await }
        },
    )
    .await
}

// ---- admins and inactive users: a walk over accounts, then users ----

/// A user row of the admins and inactive reports.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AccountUser {
    pub integrated_account_id: String,
    pub provider: Provider,
    pub account_label: String,
    pub user_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub status: String,
    /// Role names.
    pub roles: Vec<String>,
    pub last_active_at: Option<String>,
    pub created_at: Option<String>,
    /// Inactive report: `inactive`, or `unknown` where the vendor shows no
    /// activity for the account (never reported as inactive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity: Option<String>,
    /// Inactive report: whole days since the last activity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub days_inactive: Option<i64>,
}

fn account_user(account: &ReportAccount, user: User) -> AccountUser {
    AccountUser {
        integrated_account_id: account.id.to_string(),
        provider: account.provider,
        account_label: account.label.clone(),
        user_id: user.id,
        email: user.email,
        name: user.name,
        status: user.status.as_str().to_owned(),
        roles: user.roles.into_iter().map(|r| r.name).collect(),
        last_active_at: user.last_active_at,
        created_at: user.created_at,
        activity: None,
        days_inactive: None,
    }
}

/// Walks the accounts' snapshot users after `after` (`<account>\n<user>`),
/// keeping what `pick` returns, until `limit` rows are found. The next
/// position is set when there may be more.
pub(crate) async fn walk_users<R>(
    state: &AppState,
    accounts: &[ReportAccount],
    filter: impl Fn(&ReportAccount) -> Option<CachedUserFilter>,
    pick: impl Fn(&ReportAccount, User) -> Option<R>,
    after: Option<String>,
    limit: u32,
) -> Result<(Vec<R>, Option<String>), ApiError> {
    let (after_account, after_user) = match &after {
        Some(pos) => {
            let (a, u) = pos
                .split_once('\n')
                .ok_or_else(|| ApiError::invalid_request("next_cursor is not valid"))?;
            (Some(a.to_owned()), Some(u.to_owned()))
        }
        None => (None, None),
    };
    let mut out = Vec::new();
    for account in accounts {
        if after_account
            .as_deref()
            .is_some_and(|a| account.id.as_str() < a)
        {
            continue;
        }
        let Some(filter) = filter(account) else {
            continue;
        };
        let mut cursor = match &after_account {
            Some(a) if a == account.id.as_str() => after_user.clone(),
            _ => None,
        };
        loop {
            let rows = state
                .store
                .cached_users(&account.id, &filter, cursor.as_deref(), CSV_BATCH)
                .await?;
            let full = rows.len() == CSV_BATCH as usize;
            for row in rows {
                cursor = Some(row.user_id.clone());
                if let Some(r) = pick(account, parse_user(&row.data_json)?) {
                    out.push(r);
                    if out.len() == limit as usize {
                        return Ok((out, Some(format!("{}\n{}", account.id, row.user_id))));
                    }
                }
            }
            if !full {
                break;
            }
        }
    }
    Ok((out, None))
}

/// The cheapest filter that finds every admin of an account.
fn admin_filter(state: &AppState, account: &ReportAccount) -> Option<CachedUserFilter> {
    let ids = state.settings.roles.admin_role_ids(account.provider);
    match ids.as_slice() {
        [] => None,
        // Users carry the vendor's admin role exactly when `is_admin`.
        [only] if only == "admin" => Some(CachedUserFilter {
            is_admin: Some(true),
            ..CachedUserFilter::default()
        }),
        _ => Some(CachedUserFilter::default()),
    }
}

const USERS_CSV: &[&str] = &[
    "integrated_account_id",
    "provider",
    "account_label",
    "user_id",
    "email",
    "name",
    "status",
    "roles",
    "last_active_at",
    "created_at",
    "activity",
    "days_inactive",
];

fn user_lines(u: &AccountUser) -> Vec<String> {
    vec![csv_line([
        u.integrated_account_id.clone(),
        u.provider.to_string(),
        u.account_label.clone(),
        u.user_id.clone(),
        u.email.clone().unwrap_or_default(),
        u.name.clone().unwrap_or_default(),
        u.status.clone(),
        u.roles.join("; "),
        u.last_active_at.clone().unwrap_or_default(),
        u.created_at.clone().unwrap_or_default(),
        u.activity.clone().unwrap_or_default(),
        u.days_inactive.map(|d| d.to_string()).unwrap_or_default(),
    ])]
}

async fn admins_page(
    state: &AppState,
    accounts: &[ReportAccount],
    after: Option<String>,
    limit: u32,
) -> Result<(Vec<AccountUser>, Option<String>), ApiError> {
    let roles = &state.settings.roles;
    walk_users(
        state,
        accounts,
        |a| admin_filter(state, a),
        |a, user| {
            roles
                .is_admin(a.provider, &user.roles)
                .then(|| account_user(a, user))
        },
        after,
        limit,
    )
    .await
}

/// Every admin (a role of the unified `admin` type) of every synced account.
#[utoipa::path(get, path = "/reports/admins", tag = "reports", params(ReportParams),
    responses((status = 200, body = ListEnvelope<AccountUser>), (status = 200, content_type = "text/csv", description = "with format=csv"), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
async fn admins(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<ReportParams>,
) -> Result<Response, ApiError> {
    let accounts = synced_accounts(&state, &caller.tenant_id).await?;
    let ask = Ask {
        format: p.format,
        limit: p.limit,
        next_cursor: p.next_cursor,
        query: format!("report|admins|{}", caller.tenant_id),
    };
    let reader = state.clone();
    answer(
        &state,
        ask,
        ("rollcall-admins.csv", USERS_CSV),
        user_lines,
        move |after, limit| {
            let (state, accounts) = (reader.clone(), accounts.clone());
            async move { admins_page(&state, &accounts, after, limit).await }
        },
    )
    .await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct InactiveParams {
    /// No activity in this many days (1 to 3650).
    days: u32,
    /// Also list active users whose activity is unknown (default true).
    include_unknown: Option<bool>,
    limit: Option<u32>,
    next_cursor: Option<String>,
    #[serde(default)]
    #[param(inline)]
    format: Format,
}

pub(crate) fn check_days(days: u32) -> Result<u32, ApiError> {
    if (1..=3650).contains(&days) {
        Ok(days)
    } else {
        Err(ApiError::invalid_request("days must be between 1 and 3650"))
    }
}

async fn inactive_page(
    state: &AppState,
    accounts: &[ReportAccount],
    days: u32,
    include_unknown: bool,
    after: Option<String>,
    limit: u32,
) -> Result<(Vec<AccountUser>, Option<String>), ApiError> {
    let now = state.clock.now_millis();
    let cutoff = now - i64::from(days) * DAY_MS;
    let active_only = CachedUserFilter {
        status: Some("active".into()),
        ..CachedUserFilter::default()
    };
    walk_users(
        state,
        accounts,
        |_| Some(active_only.clone()),
        |a, user| {
            let (label, days) = match activity(&user, a.snapshot.activity_exposed, cutoff) {
                Activity::Active => return None,
                Activity::Unknown if !include_unknown => return None,
                Activity::Unknown => ("unknown", None),
                Activity::Inactive { since } => ("inactive", Some((now - since) / DAY_MS)),
            };
            let mut row = account_user(a, user);
            row.activity = Some(label.to_owned());
            row.days_inactive = days;
            Some(row)
        },
        after,
        limit,
    )
    .await
}

/// Active users with no activity in `days` days, per synced account. Where
/// the vendor shows no activity (Mode without a Discovery API token) users
/// are `unknown`, never inactive.
#[utoipa::path(get, path = "/reports/inactive", tag = "reports", params(InactiveParams),
    responses((status = 200, body = ListEnvelope<AccountUser>), (status = 200, content_type = "text/csv", description = "with format=csv"), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
async fn inactive(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<InactiveParams>,
) -> Result<Response, ApiError> {
    let days = check_days(p.days)?;
    let include_unknown = p.include_unknown.unwrap_or(true);
    let accounts = synced_accounts(&state, &caller.tenant_id).await?;
    let ask = Ask {
        format: p.format,
        limit: p.limit,
        next_cursor: p.next_cursor,
        query: format!(
            "report|inactive|{}|{days}|{include_unknown}",
            caller.tenant_id
        ),
    };
    let reader = state.clone();
    answer(&state, ask, ("rollcall-inactive.csv", USERS_CSV), user_lines, move |after, limit| {
        let (state, accounts) = (reader.clone(), accounts.clone());
        async move { inactive_page(&state, &accounts, days, include_unknown, after, limit).await }
    })
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rollcall_core::unified::UserStatus;

    use super::*;

    fn user(last: Option<&str>, created: Option<&str>) -> User {
        User {
            id: "u".into(),
            username: None,
            email: None,
            first_name: None,
            last_name: None,
            name: None,
            status: UserStatus::Active,
            is_admin: false,
            roles: vec![],
            groups: None,
            last_active_at: last.map(str::to_owned),
            created_at: created.map(str::to_owned),
            updated_at: None,
            remote_data: None,
        }
    }

    #[test]
    fn activity_is_unknown_unless_the_vendor_shows_it() {
        let cutoff = millis_of("2026-11-01T00:00:00Z").unwrap();
        let old = user(Some("2026-09-01T00:00:00Z"), None);
        let recent = user(Some("2026-11-20T00:00:00Z"), None);
        assert_eq!(activity(&old, false, cutoff), Activity::Unknown);
        assert_eq!(
            activity(&old, true, cutoff),
            Activity::Inactive {
                since: millis_of("2026-09-01T00:00:00Z").unwrap()
            }
        );
        assert_eq!(activity(&recent, true, cutoff), Activity::Active);
        // Never active: judged by when the user was created.
        assert!(matches!(
            activity(&user(None, Some("2025-01-01T00:00:00Z")), true, cutoff),
            Activity::Inactive { .. }
        ));
        assert_eq!(
            activity(&user(None, Some("2026-11-30T00:00:00Z")), true, cutoff),
            Activity::Active
        );
        assert_eq!(activity(&user(None, None), true, cutoff), Activity::Unknown);
        assert_eq!(
            activity(&user(Some("garbage"), None), true, cutoff),
            Activity::Unknown
        );
    }
}
