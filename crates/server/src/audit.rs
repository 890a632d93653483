//! Audit rows for every account and credential change (who, when, which
//! request, before and after; never a secret).

use rollcall_core::id::TenantId;
use rollcall_store::{AuditOutcome, AuditRow};

use crate::app::AppState;

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
