//! Stored rows. Timestamps are epoch milliseconds (UTC).

use rollcall_core::Provider;
use rollcall_core::id::{AccountId, ApiKeyId, TenantId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRow {
    pub id: TenantId,
    pub name: String,
    pub created_at: i64,
}

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub label: String,
    /// SHA-256 of the key's secret part; the secret itself is never stored.
    pub secret_sha256: [u8; 32],
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl std::fmt::Debug for ApiKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRow")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("label", &self.label)
            .field("secret_sha256", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("revoked_at", &self.revoked_at)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    Active,
    NeedsReauth,
    Disabled,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::NeedsReauth => "needs_reauth",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "needs_reauth" => Some(Self::NeedsReauth),
            "disabled" => Some(Self::Disabled),
            _ => None,
        }
    }
}

/// A linked vendor account. `credentials_sealed` is ciphertext; decrypting
/// it is the vault's job, not the store's.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub id: AccountId,
    pub tenant_id: TenantId,
    pub provider: Provider,
    pub label: String,
    pub tenant_ref: Option<String>,
    pub config_json: String,
    pub credentials_key_id: String,
    pub credentials_sealed: Vec<u8>,
    pub status: AccountStatus,
    pub status_detail: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for AccountRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRow")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("provider", &self.provider)
            .field("label", &self.label)
            .field("credentials_key_id", &self.credentials_key_id)
            .field("credentials_sealed", &"<sealed>")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Narrows an account listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountFilter {
    pub provider: Option<Provider>,
    pub tenant_ref: Option<String>,
}

/// A sealed credential, as key rotation sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedCredential {
    pub account_id: AccountId,
    pub tenant_id: TenantId,
    pub key_id: String,
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for SealedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedCredential")
            .field("account_id", &self.account_id)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    Success,
    Failure,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: String,
    pub tenant_id: TenantId,
    pub at: i64,
    /// `key:<api key id>`, `link:<token hint>` or `system`.
    pub actor: String,
    /// e.g. `integrated_account.created`.
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub request_id: Option<String>,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
    pub outcome: AuditOutcome,
    pub detail: Option<String>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct LinkTokenRow {
    pub token_sha256: [u8; 32],
    pub tenant_id: TenantId,
    pub tenant_ref: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub account_id: Option<AccountId>,
}

impl std::fmt::Debug for LinkTokenRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkTokenRow")
            .field("tenant_id", &self.tenant_id)
            .field("tenant_ref", &self.tenant_ref)
            .field("expires_at", &self.expires_at)
            .field("used_at", &self.used_at)
            .finish_non_exhaustive()
    }
}

/// What a new request with an `Idempotency-Key` finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// First use: run the request, then `finish` (or `abandon`) the key.
    Claimed,
    /// Already answered: replay this.
    Replay { status: u16, body: Vec<u8> },
    /// The first request with this key is still running.
    InProgress,
    /// The key was used with a different request.
    Mismatch,
}

/// Narrows an audit-log listing. Times are epoch milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub target_type: Option<String>,
    /// Rows whose target id starts with this (an account id finds its objects).
    pub target_prefix: Option<String>,
    pub outcome: Option<AuditOutcome>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}
