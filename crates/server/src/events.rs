//! `GET /events`: the tenant's change events in the order they happened.
//! The cursor always points after the last event returned, so a poller
//! keeps it and asks again later for what came since.

use axum::Json;
use axum::extract::State;
use rollcall_core::error::ErrorEnvelope;
use rollcall_core::id::AccountId;
use rollcall_jobs::events::Event;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::Caller;
use crate::cursor::{CursorCodec, page_limit};
use crate::error::ApiError;
use crate::extract::ApiQuery;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EventParams {
    /// A `next_cursor` from an earlier answer; without it, from the first event.
    after: Option<String>,
    /// 1 to 1000 (default 100).
    limit: Option<u32>,
    /// Only this account's events.
    integrated_account_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub result: Vec<Event>,
    /// Pass as `after` to read on; present even on the last page, so a
    /// poller can ask later for newer events.
    pub next_cursor: String,
    pub result_count: usize,
    /// Whether more events were already there past this page.
    pub has_more: bool,
}

fn cursor_key(caller: &Caller, account: Option<&str>) -> String {
    format!("events|{}|{}", caller.tenant_id, account.unwrap_or(""))
}

/// Change events, oldest first, after a cursor.
#[utoipa::path(get, path = "/events", tag = "events", params(EventParams),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<EventParams>,
) -> Result<Json<EventPage>, ApiError> {
    let limit = page_limit(p.limit)?;
    let account = match &p.integrated_account_id {
        Some(id) => Some(AccountId::parse(id).map_err(|_| {
            ApiError::invalid_request("integrated_account_id is not an account id")
        })?),
        None => None,
    };
    let key = cursor_key(&caller, p.integrated_account_id.as_deref());
    let codec = CursorCodec::new(&state.vault);
    let after = match &p.after {
        Some(cursor) => codec
            .decode(cursor, &key)?
            .parse::<i64>()
            .map_err(|_| ApiError::invalid_request("after is not a valid cursor"))?,
        None => 0,
    };
    // One more than asked tells whether there is more.
    let mut rows = state
        .store
        .list_events(&caller.tenant_id, account.as_ref(), after, limit + 1)
        .await?;
    let has_more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let last = rows.last().map_or(after, |e| e.seq);
    let result: Vec<Event> = rows.iter().map(Event::from_row).collect();
    Ok(Json(EventPage {
        result_count: result.len(),
        result,
        next_cursor: codec.encode(&last.to_string(), &key),
        has_more,
    }))
}
