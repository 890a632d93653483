//! What the background jobs need from the server: opening a linked account
//! (credentials and vendor machinery live here) and recording what the
//! vendor said about its credentials; and the jobs' settings.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rollcall_connectors::LinkedAccount;
use rollcall_core::id::{AccountId, TenantId};
use rollcall_jobs::{AccountOpener, JobSettings, OpenError};
use rollcall_store::{AccountRow, AccountStatus, Store};
use rollcall_vault::Vault;

use crate::accounts::{
    Vendors, decrypt_credentials, linked_with, parse_stored_config, record_vendor_verdict,
};
use crate::config::Settings;
use crate::recent::Recent;

pub struct Opener {
    pub store: Arc<dyn Store>,
    pub vault: Arc<Vault>,
    pub vendors: Vendors,
    /// The server's cache of accounts, which must forget a status change.
    pub account_cache: Arc<Recent<AccountId, AccountRow>>,
}

#[async_trait]
impl AccountOpener for Opener {
    async fn open(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<(AccountRow, LinkedAccount), OpenError> {
        let row = self
            .store
            .account(tenant, account)
            .await
            .map_err(|e| OpenError(format!("the store failed: {e}")))?
            .ok_or_else(|| OpenError("the integrated account no longer exists".into()))?;
        if row.status == AccountStatus::Disabled {
            return Err(OpenError("the integrated account is disabled".into()));
        }
        let config = parse_stored_config(&row)
            .map_err(|e| OpenError(format!("the stored configuration is unreadable: {e}")))?;
        let credentials = decrypt_credentials(&self.vault, &row).map_err(|e| {
            tracing::error!(account = %row.id, error = %e, "stored credentials cannot be opened");
            OpenError("the stored credentials cannot be opened (is the master key right?)".into())
        })?;
        let linked = linked_with(&self.vendors, &row, config, credentials);
        Ok((row, linked))
    }

    async fn vendor_verdict(&self, row: &AccountRow, accepted: bool, detail: Option<String>) {
        let changed = record_vendor_verdict(
            self.store.as_ref(),
            self.vendors.clock.as_ref(),
            row,
            accepted,
            detail,
        )
        .await;
        if changed {
            self.account_cache.forget(&row.id);
        }
    }
}

pub fn job_settings(settings: &Settings) -> JobSettings {
    JobSettings {
        lease: Duration::from_secs(settings.job_lease_secs.max(1)),
        sync_interval: Duration::from_secs(settings.sync_interval_minutes.max(1) * 60),
        schedule_syncs: settings.sync_scheduler,
        webhook_max_attempts: settings.webhook_max_attempts.max(1),
        webhook_backoff_base: Duration::from_millis(settings.webhook_retry_base_ms.max(1)),
        webhook_timeout: Duration::from_secs(settings.webhook_timeout_secs.max(1)),
        webhook_allow_private_networks: settings.webhook_allow_private_networks,
        ..JobSettings::default()
    }
}
