//! `rollcall keys rotate-master`: re-seal every stored credential (and
//! webhook signing secret) under a new master key while servers keep running.
//!
//! With a key file (the default), rotation writes a new active key into the
//! file first (running servers re-read it when they meet its id), re-seals
//! each credential with a compare-and-set (a concurrent credential change
//! wins), then drops from the file every old key that no longer seals
//! anything. With an inline key (`ROLLCALL_MASTER_KEY`), the operator puts
//! the new key first in the value (`rollcall keys generate-master` makes
//! one) and rolls the servers; rotation then re-seals and reports which old
//! keys can be removed from the value.

use rollcall_store::{Store, StoreError};
use rollcall_vault::{KeySource, MasterKeyId, Vault, VaultError};

use crate::accounts::credentials_aad;

const BATCH: u32 = 200;

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug)]
pub struct RotationReport {
    pub active: MasterKeyId,
    pub resealed: u64,
    /// Credentials changed by someone else during rotation (left as they are).
    pub changed_concurrently: u64,
    /// Old keys that no longer seal anything (removed from a key file).
    pub retired: Vec<MasterKeyId>,
    /// Old keys still in use; run rotation again to move them.
    pub still_in_use: Vec<String>,
}

pub async fn rotate_master(
    store: &dyn Store,
    vault: &Vault,
) -> Result<RotationReport, RotationError> {
    if matches!(vault.source(), KeySource::File(_)) {
        vault.install(vault.keyring().with_new_active_key()?)?;
    }
    let ring = vault.keyring();
    let active = ring.active_id().clone();
    let (mut resealed, mut changed_concurrently) = (0, 0);
    let mut after = None;
    loop {
        let batch = store.sealed_credentials(after.as_ref(), BATCH).await?;
        for credential in &batch {
            if credential.key_id == active.as_str() {
                continue;
            }
            let aad = credentials_aad(&credential.tenant_id, &credential.account_id);
            let plain = vault.open(&credential.key_id, &credential.sealed, &aad)?;
            let (key_id, sealed) = vault.seal(&plain, &aad)?;
            if store
                .reseal_credential(credential, key_id.as_str(), &sealed)
                .await?
            {
                resealed += 1;
            } else {
                changed_concurrently += 1;
            }
        }
        match batch.last() {
            Some(last) if batch.len() == BATCH as usize => after = Some(last.account_id.clone()),
            _ => break,
        }
    }
    // Webhook signing secrets are sealed under the same keys.
    for webhook in store.all_webhooks().await? {
        if webhook.secret_key_id == active.as_str() {
            continue;
        }
        let aad = rollcall_jobs::webhooks::secret_aad(&webhook.tenant_id, &webhook.id);
        let plain = vault.open(&webhook.secret_key_id, &webhook.secret_sealed, &aad)?;
        let (key_id, sealed) = vault.seal(&plain, &aad)?;
        if store
            .reseal_webhook_secret(&webhook, key_id.as_str(), &sealed)
            .await?
        {
            resealed += 1;
        } else {
            changed_concurrently += 1;
        }
    }
    let in_use = store.credential_key_ids().await?;
    let keep: Vec<MasterKeyId> = ring
        .ids()
        .into_iter()
        .filter(|id| in_use.iter().any(|used| used == id.as_str()))
        .collect();
    let retired: Vec<MasterKeyId> = ring
        .ids()
        .into_iter()
        .filter(|id| *id != active && !keep.contains(id))
        .collect();
    if matches!(vault.source(), KeySource::File(_)) {
        vault.install(ring.retaining(&keep))?;
    }
    let still_in_use = in_use
        .into_iter()
        .filter(|id| id != active.as_str())
        .collect();
    Ok(RotationReport {
        active,
        resealed,
        changed_concurrently,
        retired,
        still_in_use,
    })
}
