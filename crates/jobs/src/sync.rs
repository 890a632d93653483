//! The sync engine: read an account's whole directory through its
//! connector, diff it against the last good snapshot, and replace that
//! snapshot together with the change events in one transaction. A sync
//! that fails, or whose worker dies, writes nothing but its failure.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rollcall_connectors::{
    ConnectorError, Directory, DirectoryError, DirectorySnapshot, KnownFingerprints, KnownUsers,
    Listed, ProgressSink, SnapshotProgress,
};
use rollcall_core::id::{AccountId, TenantId};
use rollcall_core::unified::User;
use rollcall_store::{
    Enqueued, JobRow, JobStatus, Lease, StoreError, SyncCommit, SyncRunRow, SyncStatus,
};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::diff::{
    DiffContext, Next, NextUser, Previous, Rest, diff, fingerprint_hash, in_id_order, next_user,
};
use crate::events::new_event;
use crate::runner::with_lease;
use crate::{Inner, Jobs, millis};

pub const JOB_KIND: &str = "sync";
/// Accounts the scheduler queues per tick at most.
const SCHEDULE_BATCH: u32 = 100;
/// How long a connector may go on reusing unchanged users' details.
const FULL_READ_EVERY_MS: i64 = 24 * 60 * 60 * 1000;
/// How often a running sync writes its progress for `GET /sync-runs/{id}`.
const PROGRESS_EVERY: Duration = Duration::from_millis(300);

/// Why a sync was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Api,
    Schedule,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Schedule => "schedule",
        }
    }
}

/// The account's own interval (`config.sync_interval_minutes`), else the
/// default.
pub fn interval_of(config_json: &str, default: Duration) -> Duration {
    serde_json::from_str::<Value>(config_json)
        .ok()
        .and_then(|c| c.get("sync_interval_minutes").and_then(Value::as_u64))
        .filter(|m| *m > 0)
        .map_or(default, |m| Duration::from_secs(m.saturating_mul(60)))
}

impl Jobs {
    /// Queues a sync of the account, or finds the one already queued or
    /// running: `(sync_run_id, newly_queued)`.
    pub async fn request_sync(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        config_json: &str,
        trigger: Trigger,
    ) -> Result<(String, bool), StoreError> {
        let now = self.inner.clock.now_millis();
        let queued = enqueue(&self.inner, tenant, account, config_json, trigger, now).await?;
        if queued.1 {
            self.wake();
        }
        Ok(queued)
    }
}

async fn enqueue(
    inner: &Inner,
    tenant: &TenantId,
    account: &AccountId,
    config_json: &str,
    trigger: Trigger,
    now: i64,
) -> Result<(String, bool), StoreError> {
    let run = SyncRunRow {
        id: format!("sync_{}", uuid::Uuid::now_v7().simple()),
        tenant_id: tenant.clone(),
        account_id: account.clone(),
        trigger: trigger.as_str().to_owned(),
        status: SyncStatus::Queued,
        phase: None,
        progress_json: None,
        counts_json: None,
        error: None,
        attempts: 0,
        created_at: now,
        started_at: None,
        finished_at: None,
    };
    let job = JobRow {
        id: format!("job_{}", uuid::Uuid::now_v7().simple()),
        kind: JOB_KIND.to_owned(),
        tenant_id: Some(tenant.clone()),
        account_id: Some(account.clone()),
        payload_json: json!({ "sync_run_id": run.id }).to_string(),
        status: JobStatus::Queued,
        run_at: now,
        attempts: 0,
        max_attempts: inner.settings.sync_max_attempts,
        lease_owner: None,
        lease_until: None,
        last_error: None,
        created_at: now,
        updated_at: now,
    };
    let next = now.saturating_add(millis(interval_of(
        config_json,
        inner.settings.sync_interval,
    )));
    match inner.store.enqueue_sync(&run, &job, next).await {
        Ok(Enqueued::Created) => Ok((run.id, true)),
        Ok(Enqueued::AlreadyQueued(existing)) => Ok((existing, false)),
        // Two requests raced past the check: the other one queued it.
        Err(StoreError::Conflict { .. }) => {
            let again = inner.store.enqueue_sync(&run, &job, next).await?;
            match again {
                Enqueued::AlreadyQueued(existing) => Ok((existing, false)),
                Enqueued::Created => Ok((run.id, true)),
            }
        }
        Err(e) => Err(e),
    }
}

/// Queues a sync for every account whose interval has passed.
pub(crate) async fn schedule_due(inner: &Inner, now: i64) -> Result<(), StoreError> {
    for due in inner.store.due_accounts(now, SCHEDULE_BATCH).await? {
        let (run, _) = enqueue(
            inner,
            &due.tenant_id,
            &due.account_id,
            &due.config_json,
            Trigger::Schedule,
            now,
        )
        .await?;
        tracing::debug!(account = %due.account_id, sync_run = %run, "scheduled sync queued");
    }
    Ok(())
}

/// Keeps the latest progress report; a side task writes it out now and then.
/// Takes the users the read lists page by page and puts each page in stored
/// form on a task of its own, while the next page downloads.
struct Progress {
    latest: Mutex<Option<SnapshotProgress>>,
    details_total: Mutex<u64>,
    /// One task per listed page, in listing order.
    pages: Mutex<Vec<JoinHandle<Result<PageRows, String>>>>,
    /// The last snapshot's users, once loaded (`None` until then; the
    /// sender dropped without one: the load failed).
    stored: watch::Receiver<Option<Arc<StoredUsers>>>,
}

/// The last snapshot's users as a read looks them up: by the hash stored
/// beside each (a map: looking 100,000 up by bisection in the sorted list
/// misses the cache at every step).
#[derive(Default)]
struct StoredUsers {
    /// `Previous::user_hashes`' ids, in its order.
    ids: Vec<String>,
    /// Stored hash → place in `ids`.
    by_hash: HashMap<i64, usize>,
}

impl StoredUsers {
    fn of(previous: &Previous) -> Self {
        let mut by_hash = HashMap::with_capacity(previous.user_hashes.len());
        by_hash.extend(
            previous
                .user_hashes
                .iter()
                .enumerate()
                .filter_map(|(place, (_, hash))| Some(((*hash)?, place))),
        );
        let ids = previous
            .user_hashes
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        Self { ids, by_hash }
    }
}

/// A page of listed users: those built, in listing order, and the places
/// in `Previous::user_hashes` of those listed unchanged.
#[derive(Default)]
struct PageRows {
    built: Vec<NextUser>,
    known: Vec<usize>,
}

impl PageRows {
    /// Builds what the connector built; finds the rest by fingerprint.
    fn of(users: Vec<Listed>, stored: &StoredUsers) -> Result<Self, String> {
        let mut page = Self::default();
        let mut json = Vec::new();
        for listed in users {
            match listed {
                Listed::User { user, fingerprint } => {
                    page.built.push(next_user(user, fingerprint, &mut json));
                }
                Listed::Known { id, fingerprint } => {
                    let place = stored
                        .by_hash
                        .get(&fingerprint_hash(fingerprint))
                        .ok_or_else(|| {
                            format!("user {id} was read as unchanged, but the last snapshot does not hold it")
                        })?;
                    page.known.push(*place);
                }
            }
        }
        Ok(page)
    }
}

#[async_trait]
impl ProgressSink for Progress {
    fn report(&self, progress: SnapshotProgress) {
        if let Ok(mut latest) = self.latest.lock() {
            *latest = Some(progress);
        }
        if progress.phase == "user_details"
            && let (Some(total), Ok(mut t)) = (progress.total, self.details_total.lock())
        {
            *t = total;
        }
    }

    async fn known_fingerprints(&self) -> Option<KnownFingerprints> {
        // The previous snapshot is loaded beside the read's first requests;
        // no page is built before it is in (what it holds is not built).
        let stored = self
            .stored
            .clone()
            .wait_for(Option::is_some)
            .await
            .ok()?
            .clone()?;
        if stored.by_hash.is_empty() {
            return None;
        }
        Some(Arc::new(move |fingerprint: i64| {
            let place = stored.by_hash.get(&fingerprint_hash(fingerprint))?;
            stored.ids.get(*place).cloned()
        }))
    }

    fn listed(&self, users: Vec<Listed>) -> Vec<User> {
        let Ok(mut pages) = self.pages.lock() else {
            return users.into_iter().filter_map(Listed::into_user).collect();
        };
        let stored = self.stored.borrow().clone().unwrap_or_default();
        // An ordinary task, not a blocking thread: a page is a few
        // milliseconds of work (and, under glibc's malloc, blocking
        // threads' arenas kept tens of MB they had freed).
        pages.push(tokio::spawn(async move { PageRows::of(users, &stored) }));
        Vec::new()
    }
}

impl Progress {
    /// A sink, and where to tell it the last snapshot's users once loaded.
    fn new() -> (watch::Sender<Option<Arc<StoredUsers>>>, Self) {
        let (tell, stored) = watch::channel(None);
        let progress = Self {
            latest: Mutex::default(),
            details_total: Mutex::default(),
            pages: Mutex::default(),
            stored,
        };
        (tell, progress)
    }

    /// Every user of the read: the pages taken while it went on, then what
    /// the connector kept back (`rest`); the built ones in stored form and
    /// id order.
    async fn stored_users(&self, rest: Vec<User>) -> Result<(Vec<NextUser>, Vec<usize>), String> {
        let pages = self
            .pages
            .lock()
            .map(|mut pages| std::mem::take(&mut *pages))
            .map_err(|_| "a page of users was lost while stored".to_owned())?;
        let (mut built, mut known) = (Vec::new(), Vec::new());
        for page in pages {
            let page = page
                .await
                .map_err(|e| format!("storing a page of users failed: {e}"))??;
            built.extend(page.built);
            known.extend(page.known);
        }
        // A user listed twice, changed in between, is one user: the built
        // record counts (the diff would take it anyway; this keeps counts).
        if !known.is_empty() && !built.is_empty() {
            let stored = self.stored.borrow().clone().unwrap_or_default();
            let built_ids: HashSet<&str> = built.iter().map(|n| n.row.user_id.as_str()).collect();
            known.retain(|place| {
                stored
                    .ids
                    .get(*place)
                    .is_none_or(|id| !built_ids.contains(id.as_str()))
            });
        }
        // Built on a blocking thread: a connector that hands over nothing
        // early leaves the whole directory here.
        let built = tokio::task::spawn_blocking(move || {
            let mut json = Vec::new();
            built.extend(
                rest.into_iter()
                    .map(|user| next_user(user, None, &mut json)),
            );
            in_id_order(built)
        })
        .await
        .map_err(|e| format!("building the stored users failed: {e}"))?;
        Ok((built, known))
    }

    fn take(&self) -> Option<SnapshotProgress> {
        self.latest.lock().ok().and_then(|mut l| l.take())
    }

    fn details_fetched(&self) -> u64 {
        self.details_total.lock().map(|t| *t).unwrap_or(0)
    }
}

async fn write_progress(inner: &Inner, run_id: &str, progress: &Progress) -> Infallible {
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        if let Some(p) = progress.take() {
            let body = json!({ "phase": p.phase, "done": p.done, "total": p.total }).to_string();
            if let Err(e) = inner.store.sync_progress(run_id, p.phase, &body).await {
                tracing::debug!(sync_run = %run_id, error = %e, "progress not recorded");
            }
        }
    }
}

/// Runs one claimed sync job to its end.
pub(crate) async fn run(inner: &Arc<Inner>, job: &JobRow, lease: &Lease) {
    let now = inner.clock.now_millis();
    let run_id = serde_json::from_str::<Value>(&job.payload_json)
        .ok()
        .and_then(|p| {
            p.get("sync_run_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    let (Some(run_id), Some(tenant), Some(account)) =
        (run_id, job.tenant_id.clone(), job.account_id.clone())
    else {
        let _ = inner
            .store
            .finish_job(lease, JobStatus::Failed, Some("malformed sync job"), now)
            .await;
        return;
    };
    if job.attempts > job.max_attempts {
        let message = format!(
            "gave up after {} attempts: each was interrupted before it finished",
            job.max_attempts
        );
        fail(inner, Some(lease), &tenant, &account, &run_id, &message).await;
        return;
    }
    if let Err(e) = inner.store.start_sync_run(&run_id, job.attempts, now).await {
        tracing::warn!(sync_run = %run_id, error = %e, "could not mark the sync started");
    }
    let work = perform(inner, lease, &tenant, &account, &run_id);
    match with_lease(inner, lease, work).await {
        // What follows a commit runs outside the lease: the job is done.
        Ok(Ok(Some(committed))) => after_commit(inner, &run_id, committed).await,
        Ok(Ok(None)) => {}
        Ok(Err(message)) => fail(inner, Some(lease), &tenant, &account, &run_id, &message).await,
        Err(_) => {
            tracing::warn!(sync_run = %run_id, "lease lost mid-sync; another worker has it");
        }
    }
}

async fn fail(
    inner: &Inner,
    lease: Option<&Lease>,
    tenant: &TenantId,
    account: &AccountId,
    run_id: &str,
    message: &str,
) {
    let now = inner.clock.now_millis();
    tracing::warn!(sync_run = %run_id, account = %account, error = %message, "sync failed");
    let event = new_event(
        tenant,
        Some(account),
        "sync_run.failed",
        now,
        json!({ "sync_run_id": run_id, "error": message }),
    );
    match inner
        .store
        .fail_sync(lease, run_id, message, &event, now)
        .await
    {
        Ok(true) => inner.wake_deliveries.notify_one(),
        Ok(false) => {
            tracing::warn!(sync_run = %run_id, "lease lost before the failure was written")
        }
        Err(e) => {
            tracing::error!(sync_run = %run_id, error = %e, "could not record the failed sync")
        }
    }
}

/// Words a connector failure for the run's `error` (no secrets: connector
/// errors never carry them).
pub(crate) fn describe(error: &DirectoryError) -> String {
    match error {
        DirectoryError::Connector(c) => match c.remote() {
            Some(remote) => format!("{c} (vendor answered HTTP {})", remote.status),
            None => c.to_string(),
        },
        other => other.to_string(),
    }
}

/// Reads, diffs and commits; `Some` once the result is stored, `None` if
/// the lease was lost before the commit (nothing written).
async fn perform(
    inner: &Inner,
    lease: &Lease,
    tenant: &TenantId,
    account: &AccountId,
    run_id: &str,
) -> Result<Option<Committed>, String> {
    let started = inner.clock.now_millis();
    let (row, linked) = inner
        .opener
        .open(tenant, account)
        .await
        .map_err(|e| e.to_string())?;
    let store_error = |e: StoreError| format!("the store failed: {e}");
    let directory = linked.directory();
    // A connector that skips unchanged users (Mode: email and name cost a
    // call each) still re-reads them all once a day, since a member can
    // change their email without the member list showing it.
    let last_full = inner
        .store
        .last_full_read_at(account)
        .await
        .map_err(store_error)?;
    let full_read_due = last_full.is_none_or(|at| started.saturating_sub(at) >= FULL_READ_EVERY_MS);
    let reuse = directory.reuses_known_users() && !full_read_due;
    let (tell, progress) = Progress::new();
    let load = async {
        let previous = load_previous(inner, account, reuse).await;
        if let Ok(previous) = &previous {
            tell.send_replace(Some(Arc::new(StoredUsers::of(previous))));
        }
        (previous, inner.clock.now_millis())
    };
    let read_started = inner.clock.now_millis();
    let (read, (previous, loaded)) = if reuse {
        // A read that reuses known users needs the previous snapshot first.
        let (previous, loaded) = load.await;
        let previous = previous.map_err(store_error)?;
        // Rebuilt as unified objects only for a connector that reuses them;
        // for the others that copy would be pure weight.
        let known: KnownUsers = previous
            .users
            .values()
            .filter_map(|row| serde_json::from_str::<User>(&row.data_json).ok())
            .map(|u| (u.id.clone(), u))
            .collect();
        let read = read_snapshot(inner, run_id, directory.as_ref(), &known, &progress).await;
        (read, (Ok(previous), loaded))
    } else {
        // Any other loads it beside the read's first requests, and the read
        // builds no page before it is in (`known_fingerprints`).
        let known = KnownUsers::new();
        tokio::join!(
            read_snapshot(inner, run_id, directory.as_ref(), &known, &progress),
            load
        )
    };
    let mut previous = previous.map_err(store_error)?;
    let mut snapshot = match read {
        Ok(snapshot) => snapshot,
        Err(e) => {
            if let DirectoryError::Connector(
                ConnectorError::AuthRejected(_) | ConnectorError::LoginPaused { .. },
            ) = &e
            {
                inner
                    .opener
                    .vendor_verdict(&row, false, Some(e.to_string()))
                    .await;
            }
            return Err(describe(&e));
        }
    };
    drop(directory);

    let now = inner.clock.now_millis();
    let cx = DiffContext {
        tenant,
        account,
        sync_run_id: run_id,
        now,
    };
    // The users and the rest are made ready side by side.
    let users = std::mem::take(&mut snapshot.users);
    let rest = tokio::task::spawn_blocking(move || Rest::new(snapshot));
    let (users, known) = progress.stored_users(users).await?;
    let rest = rest
        .await
        .map_err(|e| format!("preparing the memberships failed: {e}"))?;
    let next = Next::of(users, known, rest);
    let sizes = next.sizes();
    read_back(inner, account, &mut previous, &next)
        .await
        .map_err(store_error)?;
    let changes = diff(&previous, next, &cx);
    drop(previous);
    let diffed = inner.clock.now_millis();
    let counts = json!({
        "users": sizes.0,
        "groups": sizes.1,
        "memberships": sizes.2,
        "roles": sizes.3,
        "events": changes.events.len(),
        "users_written": changes.upsert_users.len() + changes.delete_users.len(),
        "user_details_fetched": progress.details_fetched(),
        // Where the time went, for whoever tunes a large account.
        "load_ms": loaded.saturating_sub(started),
        "read_ms": now.saturating_sub(read_started),
        "diff_ms": diffed.saturating_sub(now),
    });
    let mut commit = SyncCommit {
        lease: Some(lease.clone()),
        run_id: run_id.to_owned(),
        account_id: Some(account.clone()),
        counts_json: counts.to_string(),
        finished_at: now,
        full_read: !reuse,
        ..changes
    };
    commit.events.push(new_event(
        tenant,
        Some(account),
        "sync_run.completed",
        now,
        json!({ "sync_run_id": run_id, "counts": counts }),
    ));
    match inner.store.commit_sync(&commit).await {
        Ok(true) => Ok(Some(Committed {
            row,
            counts,
            diffed,
        })),
        Ok(false) => {
            tracing::warn!(sync_run = %run_id, "lease lost before commit; nothing written");
            Ok(None)
        }
        Err(e) => Err(store_error(e)),
    }
}

/// A sync whose result is stored.
struct Committed {
    row: rollcall_store::AccountRow,
    counts: Value,
    /// When the diff ended (the commit's start).
    diffed: i64,
}

async fn after_commit(inner: &Inner, run_id: &str, c: Committed) {
    let finished = inner.clock.now_millis();
    if let Err(e) = inner.store.stamp_sync_finished(run_id, finished).await {
        tracing::warn!(sync_run = %run_id, error = %e, "could not record when the sync ended");
    }
    let commit_ms = finished.saturating_sub(c.diffed);
    tracing::info!(sync_run = %run_id, account = %c.row.id, counts = %c.counts, commit_ms, "sync completed");
    inner.wake_deliveries.notify_one();
    inner.opener.vendor_verdict(&c.row, true, None).await;
}

/// The connector's snapshot, its progress written out as it goes.
async fn read_snapshot(
    inner: &Inner,
    run_id: &str,
    directory: &dyn Directory,
    known: &KnownUsers,
    progress: &Progress,
) -> Result<DirectorySnapshot, DirectoryError> {
    tokio::select! {
        out = directory.snapshot(known, progress) => out,
        never = write_progress(inner, run_id, progress) => match never {},
    }
}

/// Reads from the stored snapshot what its hashes could not settle for the
/// diff against `next`: the users whose hash differs and those gone, in
/// full, and the memberships if the list hashes differently.
async fn read_back(
    inner: &Inner,
    account: &AccountId,
    previous: &mut Previous,
    next: &Next,
) -> Result<(), StoreError> {
    let wanted = previous.users_to_read(next);
    if !wanted.is_empty() {
        let rows = inner.store.snapshot_users_by_id(account, &wanted).await?;
        previous
            .users
            .extend(rows.into_iter().map(|u| (u.user_id.clone(), u)));
    }
    if previous.needs_memberships(next) {
        previous.memberships = inner
            .store
            .snapshot_memberships(account)
            .await?
            .into_iter()
            .collect();
    }
    Ok(())
}

/// The last good snapshot: users as content hashes only, unless `in_full`
/// (a connector that reuses known users needs them all).
async fn load_previous(
    inner: &Inner,
    account: &AccountId,
    in_full: bool,
) -> Result<Previous, StoreError> {
    let store = &inner.store;
    let exists = store.last_good_sync_at(account).await?.is_some();
    let (user_hashes, users) = if in_full {
        let users: BTreeMap<_, _> = store
            .snapshot_users(account)
            .await?
            .into_iter()
            .map(|u| (u.user_id.clone(), u))
            .collect();
        let hashes = users
            .iter()
            .map(|(id, u)| (id.clone(), Some(u.content_hash())))
            .collect();
        (hashes, users)
    } else {
        (store.snapshot_user_hashes(account).await?, BTreeMap::new())
    };
    let groups: BTreeMap<_, _> = store
        .snapshot_groups(account)
        .await?
        .into_iter()
        .map(|g| (g.group_id.clone(), g))
        .collect();
    let mut previous = Previous {
        user_hashes,
        users,
        groups,
        memberships_hash: store.memberships_hash(account).await?,
        // Read later, and only if the new list hashes differently.
        memberships: BTreeSet::new(),
        exists,
    };
    previous.sort_hashes();
    Ok(previous)
}

#[cfg(test)]
mod tests {
    use rollcall_core::unified::UserStatus;

    use super::*;
    use crate::testing::user;

    #[tokio::test]
    async fn a_page_finds_users_listed_unchanged_by_their_stored_hash() {
        let previous = Previous {
            user_hashes: vec![("a".into(), Some(fingerprint_hash(7))), ("b".into(), None)],
            ..Previous::default()
        };
        let (tell, progress) = Progress::new();
        tell.send_replace(Some(Arc::new(StoredUsers::of(&previous))));
        let known = progress.known_fingerprints().await.unwrap();
        assert_eq!(known(7).as_deref(), Some("a"));
        assert_eq!(known(8), None);

        let page = PageRows::of(
            vec![
                Listed::User {
                    user: user("c", UserStatus::Active, false),
                    fingerprint: Some(9),
                },
                Listed::Known {
                    id: "a".into(),
                    fingerprint: 7,
                },
            ],
            &StoredUsers::of(&previous),
        )
        .unwrap();
        assert_eq!(page.known, vec![0]);
        assert_eq!(page.built.len(), 1);
        assert_eq!(page.built[0].row.user_id, "c");
        assert_eq!(page.built[0].hash, fingerprint_hash(9));

        // A connector that claims a record known which is not: the sync
        // fails rather than lose the user.
        let unknown = vec![Listed::Known {
            id: "z".into(),
            fingerprint: 8,
        }];
        assert!(PageRows::of(unknown, &StoredUsers::of(&previous)).is_err());
    }

    #[tokio::test]
    async fn a_user_listed_unchanged_and_then_changed_counts_once_as_changed() {
        let built = |id: &str, fingerprint: i64| Listed::User {
            user: user(id, UserStatus::Active, false),
            fingerprint: Some(fingerprint),
        };
        let previous = Previous {
            user_hashes: vec![
                ("a".into(), Some(fingerprint_hash(1))),
                ("b".into(), Some(fingerprint_hash(2))),
            ],
            ..Previous::default()
        };
        let (tell, progress) = Progress::new();
        tell.send_replace(Some(Arc::new(StoredUsers::of(&previous))));
        let known = |id: &str, fingerprint| Listed::Known {
            id: id.into(),
            fingerprint,
        };
        // The sink takes every page.
        assert!(
            progress
                .listed(vec![known("a", 1), known("b", 2)])
                .is_empty()
        );
        assert!(
            progress
                .listed(vec![built("b", 3), built("c", 4)])
                .is_empty()
        );
        let (built, known) = progress.stored_users(Vec::new()).await.unwrap();
        let ids: Vec<_> = built.iter().map(|n| n.row.user_id.as_str()).collect();
        assert_eq!(ids, vec!["b", "c"]);
        assert_eq!(known, vec![0]);
    }

    #[tokio::test]
    async fn nothing_is_known_when_the_previous_snapshot_could_not_be_loaded() {
        let (tell, progress) = Progress::new();
        drop(tell);
        assert!(progress.known_fingerprints().await.is_none());
    }

    #[test]
    fn intervals_come_from_the_account_or_the_default() {
        let default = Duration::from_secs(900);
        assert_eq!(interval_of("{}", default), default);
        assert_eq!(
            interval_of(r#"{"sync_interval_minutes":60}"#, default),
            Duration::from_secs(3600)
        );
        assert_eq!(
            interval_of(r#"{"sync_interval_minutes":0}"#, default),
            default
        );
        assert_eq!(interval_of("not json", default), default);
    }
}
