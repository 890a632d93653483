//! Change events: the wire shape (`GET /events`, webhook bodies) and the
//! constructors every producer uses, so an event looks the same wherever
//! it comes from.

use rollcall_core::clock::rfc3339_from_millis;
use rollcall_core::id::{AccountId, TenantId};
use rollcall_store::EventRow;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One change, as `GET /events` and webhook deliveries carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// Stable: an event keeps its id wherever it is read or delivered, so
    /// receivers de-duplicate on it.
    pub id: String,
    /// e.g. `user.created`, `group_membership.removed`, `sync_run.completed`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub integrated_account_id: Option<String>,
    pub occurred_at: String,
    /// `object_type`, `object_id`, `before` and `after` for object changes;
    /// the run for `sync_run.*`; the status for account events.
    #[schema(value_type = Object)]
    pub data: Value,
}

impl Event {
    pub fn from_row(row: &EventRow) -> Self {
        Self {
            id: row.id.clone(),
            event_type: row.event_type.clone(),
            integrated_account_id: row.account_id.as_ref().map(|a| a.as_str().to_owned()),
            occurred_at: rfc3339_from_millis(row.occurred_at),
            data: serde_json::from_str(&row.data_json).unwrap_or(Value::Null),
        }
    }
}

/// A new event row (its `seq` is assigned when it is stored).
pub fn new_event(
    tenant: &TenantId,
    account: Option<&AccountId>,
    event_type: &str,
    at: i64,
    data: Value,
) -> EventRow {
    EventRow {
        seq: 0,
        id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
        tenant_id: tenant.clone(),
        account_id: account.cloned(),
        event_type: event_type.to_owned(),
        occurred_at: at,
        data_json: data.to_string(),
    }
}

/// `{"object_type","object_id","before","after"}` plus the run that saw it.
pub fn object_change(
    object_type: &str,
    object_id: &str,
    before: Option<Value>,
    after: Option<Value>,
    sync_run_id: &str,
) -> Value {
    json!({
        "object_type": object_type,
        "object_id": object_id,
        "before": before,
        "after": after,
        "sync_run_id": sync_run_id,
    })
}
