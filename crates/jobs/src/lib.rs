//! Rollcall's background work: the scheduler that syncs each account on its
//! interval, the worker that runs jobs claimed from the store under a
//! lease, the sync engine itself, and webhook deliveries.
//!
//! Everything durable lives in the store: a job survives the process that
//! queued it, and a job whose worker died is claimed again once its lease
//! runs out. Webhook deliveries run in their own loop, so a slow receiver
//! never holds up a sync.

pub mod diff;
pub mod events;
pub mod grants;
mod runner;
pub mod sync;
#[cfg(test)]
mod testing;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rollcall_connectors::LinkedAccount;
use rollcall_core::SharedClock;
use rollcall_core::id::{AccountId, TenantId};
use rollcall_store::{AccountRow, Store};
use rollcall_vault::Vault;
use tokio::sync::Notify;

pub use runner::WorkersHandle;

/// How the background work behaves; every field has a production default.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// How often the scheduler looks for due work when nothing wakes it.
    pub tick: Duration,
    /// How long a claimed job stays with its worker without a renewal.
    pub lease: Duration,
    /// Default time between scheduled syncs of an account.
    pub sync_interval: Duration,
    /// Whether this process queues syncs on their interval (queued jobs
    /// run either way).
    pub schedule_syncs: bool,
    /// Claims of one sync job before it is given up (a worker that dies
    /// mid-sync costs one).
    pub sync_max_attempts: i64,
    /// Jobs one process runs at once.
    pub max_concurrent_jobs: usize,
    /// Delivery attempts before a webhook delivery is dead-lettered.
    pub webhook_max_attempts: i64,
    /// The first retry's delay; each later one doubles, up to the max.
    pub webhook_backoff_base: Duration,
    pub webhook_backoff_max: Duration,
    /// Longest a receiver may take to answer one delivery.
    pub webhook_timeout: Duration,
    /// Deliveries in flight at once.
    pub webhook_concurrency: usize,
    /// Whether webhooks may be delivered to loopback, private and
    /// link-local addresses (off: a subscription cannot reach the internal
    /// network Rollcall runs in).
    pub webhook_allow_private_networks: bool,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(1),
            lease: Duration::from_secs(30),
            sync_interval: Duration::from_secs(15 * 60),
            schedule_syncs: true,
            sync_max_attempts: 3,
            max_concurrent_jobs: 4,
            webhook_max_attempts: 10,
            webhook_backoff_base: Duration::from_secs(10),
            webhook_backoff_max: Duration::from_secs(3600),
            webhook_timeout: Duration::from_secs(10),
            webhook_concurrency: 8,
            webhook_allow_private_networks: false,
        }
    }
}

/// A duration in the store's unit, saturating rather than wrapping.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OpenError(pub String);

/// How jobs reach a linked account: the server owns credentials and the
/// vendor machinery, so it opens accounts for the jobs too.
#[async_trait]
pub trait AccountOpener: Send + Sync {
    /// The account, ready to call; an error says why it cannot be (gone,
    /// disabled, unreadable credentials).
    async fn open(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<(AccountRow, LinkedAccount), OpenError>;
    /// What the vendor said about the stored credentials (moves the account
    /// to `needs_reauth` and back, with its events).
    async fn vendor_verdict(&self, row: &AccountRow, accepted: bool, detail: Option<String>);
}

/// The shared handle: cheap to clone, used by the server to queue work and
/// wake the workers.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

struct Inner {
    store: Arc<dyn Store>,
    clock: SharedClock,
    opener: Arc<dyn AccountOpener>,
    vault: Arc<Vault>,
    settings: JobSettings,
    /// This process's name as a lease owner.
    node: String,
    wake_jobs: Notify,
    wake_deliveries: Notify,
    http: reqwest::Client,
}

impl Jobs {
    pub fn new(
        store: Arc<dyn Store>,
        clock: SharedClock,
        opener: Arc<dyn AccountOpener>,
        vault: Arc<Vault>,
        settings: JobSettings,
    ) -> Result<Self, reqwest::Error> {
        let mut http = reqwest::Client::builder()
            .timeout(settings.webhook_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Rollcall-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !settings.webhook_allow_private_networks {
            // Names resolve to public addresses only, checked at connection
            // time (so a name cannot be re-pointed after it was checked).
            http = http.dns_resolver(Arc::new(webhooks::PublicOnly));
        }
        let http = http.build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                opener,
                vault,
                settings,
                node: format!("node_{}", uuid::Uuid::new_v4().simple()),
                wake_jobs: Notify::new(),
                wake_deliveries: Notify::new(),
                http,
            }),
        })
    }

    pub fn settings(&self) -> &JobSettings {
        &self.inner.settings
    }

    pub fn vault(&self) -> &Arc<Vault> {
        &self.inner.vault
    }

    /// Lets idle workers look for new work now rather than at the next tick.
    pub fn wake(&self) {
        self.inner.wake_jobs.notify_one();
        self.inner.wake_deliveries.notify_one();
    }

    /// Starts the scheduler, job worker and delivery loops; they stop when
    /// the returned handle is dropped.
    pub fn start(&self) -> WorkersHandle {
        runner::start(self.inner.clone())
    }
}
