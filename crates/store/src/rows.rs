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
