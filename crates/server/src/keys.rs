//! Tenant API keys: `rk_<id>_<secret>`. The secret is 32 random bytes; only
//! its SHA-256 is stored. A key is high-entropy, so one hash plus a
//! constant-time compare per request is enough (no password hashing).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rollcall_core::Clock;
use rollcall_core::id::{ApiKeyId, TenantId, TenantName};
use rollcall_store::{ApiKeyRow, Store, StoreError, TenantRow};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::recent::Recent;

pub const KEY_PREFIX: &str = "rk_";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the system random source failed: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A freshly issued key. The full key exists only here, once.
#[derive(Debug)]
pub struct IssuedKey {
    pub id: ApiKeyId,
    pub tenant: TenantRow,
    pub key: SecretString,
}

/// Who a verified key acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKey {
    pub key_id: ApiKeyId,
    pub tenant_id: TenantId,
}

/// Issues a key for `tenant`, creating the tenant on first use.
pub async fn issue(
    store: &dyn Store,
    clock: &dyn Clock,
    tenant: &TenantName,
    label: &str,
) -> Result<IssuedKey, KeyError> {
    let tenant = match store.tenant_by_name(tenant.as_str()).await? {
        Some(existing) => existing,
        None => {
            let row = TenantRow {
                id: TenantId::generate(),
                name: tenant.as_str().to_owned(),
                created_at: clock.now_millis(),
            };
            match store.insert_tenant(&row).await {
                Ok(()) => row,
                // Another process created it between our read and write.
                Err(StoreError::Conflict { .. }) => store
                    .tenant_by_name(tenant.as_str())
                    .await?
                    .ok_or(StoreError::Corrupt("tenant vanished after conflict".into()))?,
                Err(e) => return Err(e.into()),
            }
        }
    };
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| KeyError::Random(e.to_string()))?;
    let secret = URL_SAFE_NO_PAD.encode(secret);
    let id = ApiKeyId::generate();
    store
        .insert_api_key(&ApiKeyRow {
            id: id.clone(),
            tenant_id: tenant.id.clone(),
            label: label.to_owned(),
            secret_sha256: digest(&secret),
            created_at: clock.now_millis(),
            revoked_at: None,
        })
        .await?;
    Ok(IssuedKey {
        key: SecretString::from(format!("{KEY_PREFIX}{id}_{secret}")),
        id,
        tenant,
    })
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Stored keys read recently, so a request need not ask the store for its
/// key every time (the hash is still compared on every request). An entry
/// lives `KEY_CACHE_TTL_MS`: a key revoked in the store stops working on
/// every node within that.
#[derive(Debug)]
pub struct KeyCache(Recent<ApiKeyId, ApiKeyRow>);

const KEY_CACHE_TTL_MS: i64 = 2_000;
const KEY_CACHE_MAX: usize = 10_000;

impl Default for KeyCache {
    fn default() -> Self {
        Self(Recent::new(KEY_CACHE_TTL_MS, KEY_CACHE_MAX))
    }
}

impl KeyCache {
    async fn row(
        &self,
        store: &dyn Store,
        id: &ApiKeyId,
        now: i64,
    ) -> Result<Option<ApiKeyRow>, StoreError> {
        let miss = match self.0.get(id, now) {
            Ok(row) => return Ok(Some(row)),
            Err(miss) => miss,
        };
        let row = store.api_key(id).await?;
        if let Some(row) = &row {
            self.0.put(miss, id.clone(), row.clone(), now);
        }
        Ok(row)
    }
}

/// Checks a presented key. `None` for anything that is not a live key of a
/// tenant: malformed, unknown, wrong secret or revoked all look the same.
pub async fn verify(
    store: &dyn Store,
    presented: &SecretString,
) -> Result<Option<VerifiedKey>, StoreError> {
    verify_cached(store, None, presented).await
}

/// [`verify`], reading the stored key through `cache` (with the time `now`).
pub async fn verify_cached(
    store: &dyn Store,
    cache: Option<(&KeyCache, i64)>,
    presented: &SecretString,
) -> Result<Option<VerifiedKey>, StoreError> {
    let Some((id, secret)) = presented
        .expose_secret()
        .strip_prefix(KEY_PREFIX)
        .and_then(|rest| rest.split_once('_'))
    else {
        return Ok(None);
    };
    let Ok(id) = ApiKeyId::parse(id) else {
        return Ok(None);
    };
    let row = match cache {
        Some((cache, now)) => cache.row(store, &id, now).await?,
        None => store.api_key(&id).await?,
    };
    let Some(row) = row else {
        return Ok(None);
    };
    let matches: bool = digest(secret).ct_eq(&row.secret_sha256).into();
    Ok(
        (matches && row.revoked_at.is_none()).then_some(VerifiedKey {
            key_id: row.id,
            tenant_id: row.tenant_id,
        }),
    )
}
