//! Audit rows for every account and credential change (who, when, which
//! request, before and after; never a secret).

use rollcall_core::id::TenantId;
use rollcall_store::{AuditOutcome, AuditRow};

use crate::app::AppState;
use crate::auth::Caller;
use crate::csv::{self, Format, csv_line};
use crate::cursor::{CursorCodec, ListEnvelope, page_limit};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use rollcall_core::clock::rfc3339_from_millis;
use rollcall_store::AuditFilter;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub struct AuditEntry<'a> {
    pub tenant: &'a TenantId,
    pub actor: &'a str,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: &'a str,
    pub request_id: Option<&'a str>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub outcome: AuditOutcome,
    pub detail: Option<String>,
}

/// Appends an audit row. A failure to write it is logged loudly but does
/// not undo the change it describes, which has already happened.
pub async fn record(state: &AppState, entry: AuditEntry<'_>) {
    let row = AuditRow {
        id: format!("au_{}", uuid::Uuid::now_v7().simple()),
        tenant_id: entry.tenant.clone(),
        at: state.clock.now_millis(),
        actor: entry.actor.to_owned(),
        action: entry.action.to_owned(),
        target_type: entry.target_type.to_owned(),
        target_id: entry.target_id.to_owned(),
        request_id: entry.request_id.map(str::to_owned),
        before_json: entry.before.map(|v| v.to_string()),
        after_json: entry.after.map(|v| v.to_string()),
        outcome: entry.outcome,
        detail: entry.detail,
    };
    if let Err(e) = state.store.append_audit(&row).await {
        tracing::error!(error = %e, action = %row.action, target = %row.target_id, "could not write the audit row");
    }
}

// ---- reading the log: GET /audit-log ----
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// One audit row as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    pub id: String,
    pub at: String,
    /// `key:<api key id>`, `link:<token hint>` or `system`.
    pub actor: String,
    pub action: String,
    pub target_type: String,
    /// `<account id>` or `<account id>/<object id>`.
    pub target_id: String,
    pub request_id: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    pub detail: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

impl From<AuditRow> for AuditView {
    fn from(row: AuditRow) -> Self {
        let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
        Self {
            at: rfc3339_from_millis(row.at),
            outcome: row.outcome.as_str().to_owned(),
            before: json(row.before_json),
            after: json(row.after_json),
            id: row.id,
            actor: row.actor,
            action: row.action,
            target_type: row.target_type,
            target_id: row.target_id,
            request_id: row.request_id,
            detail: row.detail,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    /// 1 to 1000 (default 100); ignored for CSV, which streams every row.
    limit: Option<u32>,
    next_cursor: Option<String>,
    /// e.g. `integrated_account.updated`, `user.created`.
    action: Option<String>,
    /// e.g. `key:<api key id>`.
    actor: Option<String>,
    target_type: Option<String>,
    /// Rows about this account or its objects.
    integrated_account_id: Option<String>,
    /// `success` or `failure`.
    outcome: Option<String>,
    /// RFC 3339; rows at or after.
    since: Option<String>,
    /// RFC 3339; rows before.
    until: Option<String>,
    /// `json` (default) or `csv`.
    #[serde(default)]
    #[param(inline)]
    format: Format,
}

fn millis(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            v.parse::<jiff::Timestamp>()
                .map(|t| t.as_millisecond())
                .map_err(|_| ApiError::invalid_request(format!("{name} must be an RFC 3339 time")))
        })
        .transpose()
}

/// The audit log: every change Rollcall made at a vendor and every account
/// or credential change, newest first; `format=csv` streams all matching rows.
#[utoipa::path(get, path = "/audit-log", tag = "audit", params(AuditParams),
    responses((status = 200, body = ListEnvelope<AuditView>), (status = 200, content_type = "text/csv", description = "with format=csv"),
        (status = 400, body = rollcall_core::error::ErrorEnvelope), (status = 401, body = rollcall_core::error::ErrorEnvelope)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Result<Response, ApiError> {
    let outcome = match p.outcome.as_deref() {
        None => None,
        Some("success") => Some(AuditOutcome::Success),
        Some("failure") => Some(AuditOutcome::Failure),
        Some(_) => {
            return Err(ApiError::invalid_request(
                "outcome must be `success` or `failure`",
            ));
        }
    };
    let filter = AuditFilter {
        action: p.action,
        actor: p.actor,
        target_type: p.target_type,
        target_prefix: p.integrated_account_id,
        outcome,
        since: millis("since", p.since.as_deref())?,
        until: millis("until", p.until.as_deref())?,
    };
    if p.format == Format::Csv {
        return Ok(csv_response(state, caller.tenant_id, filter));
    }
    let key = format!("audit-log|{}|{filter:?}", caller.tenant_id);
    let codec = CursorCodec::new(&state.vault);
    let before = p
        .next_cursor
        .as_deref()
        .map(|c| codec.decode(c, &key))
        .transpose()?;
    let limit = page_limit(p.limit)?;
    let rows = state
        .store
        .list_audit(&caller.tenant_id, &filter, before.as_deref(), limit + 1)
        .await?;
    let (rows, next_cursor) = codec.page(rows, limit, &key, |r| r.id.clone());
    let result = rows.into_iter().map(AuditView::from).collect();
    Ok(Json(ListEnvelope::new(result, next_cursor, false)).into_response())
}

const CSV_COLUMNS: &[&str] = &[
    "id",
    "at",
    "actor",
    "action",
    "target_type",
    "target_id",
    "request_id",
    "outcome",
    "detail",
    "before",
    "after",
];
const CSV_BATCH: u32 = 500;

/// Streams every matching row as CSV, newest first.
fn csv_response(state: AppState, tenant: TenantId, filter: AuditFilter) -> Response {
    csv::stream("rollcall-audit-log.csv", CSV_COLUMNS, move |before| {
        let (state, tenant, filter) = (state.clone(), tenant.clone(), filter.clone());
        async move {
            let rows = state
                .store
                .list_audit(&tenant, &filter, before.as_deref(), CSV_BATCH)
                .await?;
            let full = rows.len() == CSV_BATCH as usize;
            let last = rows.last().map(|r| r.id.clone()).filter(|_| full);
            Ok((rows.into_iter().map(csv_row).collect(), last))
        }
    })
}

fn csv_row(row: AuditRow) -> String {
    let view = AuditView::from(row);
    let json = |v: Option<serde_json::Value>| v.map(|v| v.to_string()).unwrap_or_default();
    csv_line([
        view.id,
        view.at,
        view.actor,
        view.action,
        view.target_type,
        view.target_id,
        view.request_id.unwrap_or_default(),
        view.outcome,
        view.detail.unwrap_or_default(),
        json(view.before),
        json(view.after),
    ])
}
