//! The loops: schedule due syncs, claim and run jobs under leases, deliver
//! webhooks. Each loop sleeps for a tick or until woken.

use std::future::Future;
use std::sync::Arc;

use rollcall_store::{JobRow, JobStatus, Lease};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::{Inner, grants, millis, sync, webhooks};

/// Stops the loops when dropped (jobs in flight are abandoned; their
/// leases run out and another worker, or the next start, takes them over).
#[derive(Debug)]
pub struct WorkersHandle {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for WorkersHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

pub(crate) fn start(inner: Arc<Inner>) -> WorkersHandle {
    let jobs = tokio::spawn(job_loop(inner.clone()));
    let deliveries = tokio::spawn(webhooks::delivery_loop(inner));
    WorkersHandle {
        tasks: vec![jobs, deliveries],
    }
}

/// How often finished jobs and deliveries are pruned, and how long each is kept.
const PRUNE_EVERY_MS: i64 = 60 * 60 * 1000;
const KEEP_JOBS_MS: i64 = 7 * 24 * 60 * 60 * 1000;
const KEEP_DELIVERIES_MS: i64 = 30 * 24 * 60 * 60 * 1000;

async fn job_loop(inner: Arc<Inner>) {
    let permits = Arc::new(Semaphore::new(inner.settings.max_concurrent_jobs.max(1)));
    let mut running: Vec<JoinHandle<()>> = Vec::new();
    let mut pruned_at = i64::MIN;
    loop {
        running.retain(|task| !task.is_finished());
        let now = inner.clock.now_millis();
        if now.saturating_sub(pruned_at) >= PRUNE_EVERY_MS {
            pruned_at = now;
            match inner
                .store
                .prune_finished(now - KEEP_JOBS_MS, now - KEEP_DELIVERIES_MS)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "pruned finished jobs and deliveries"),
                Err(e) => tracing::warn!(error = %e, "could not prune finished jobs"),
            }
        }
        if inner.settings.schedule_syncs
            && let Err(e) = sync::schedule_due(&inner, now).await
        {
            tracing::warn!(error = %e, "could not schedule due syncs");
        }
        while let Ok(permit) = permits.clone().try_acquire_owned() {
            let lease_until = now.saturating_add(millis(inner.settings.lease));
            // Each claim its own owner: a job this very process took up
            // before (and whose lease ran out while it stalled) is then a
            // different lease, and the stale run cannot commit.
            let owner = format!("{}:{}", inner.node, uuid::Uuid::new_v4().simple());
            match inner.store.claim_job(&owner, now, lease_until).await {
                Ok(Some(job)) => {
                    let inner = inner.clone();
                    running.push(tokio::spawn(async move {
                        run_job(&inner, job, owner).await;
                        drop(permit);
                    }));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim a job");
                    break;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(inner.settings.tick) => {}
            () = inner.wake_jobs.notified() => {}
        }
    }
}

async fn run_job(inner: &Arc<Inner>, job: JobRow, owner: String) {
    let lease = Lease {
        job_id: job.id.clone(),
        owner,
    };
    tracing::debug!(job = %job.id, kind = %job.kind, attempt = job.attempts, "job claimed");
    match job.kind.as_str() {
        sync::JOB_KIND => sync::run(inner, &job, &lease).await,
        grants::JOB_KIND => grants::run(inner, &job, &lease).await,
        other => {
            let now = inner.clock.now_millis();
            let message = format!("no worker knows jobs of kind `{other}`");
            tracing::error!(job = %job.id, "{message}");
            if let Err(e) = inner
                .store
                .finish_job(&lease, JobStatus::Failed, Some(&message), now)
                .await
            {
                tracing::warn!(job = %job.id, error = %e, "could not end the job");
            }
        }
    }
}

/// The lease was taken over by another worker: whatever this one was doing
/// must not be written.
#[derive(Debug)]
pub(crate) struct LeaseLost;

/// Runs `work` while renewing `lease` every third of its length; stops the
/// work as soon as a renewal finds the lease gone.
pub(crate) async fn with_lease<T>(
    inner: &Inner,
    lease: &Lease,
    work: impl Future<Output = T>,
) -> Result<T, LeaseLost> {
    let period = (inner.settings.lease / 3).max(std::time::Duration::from_millis(50));
    let renew = async {
        loop {
            tokio::time::sleep(period).await;
            let until = inner
                .clock
                .now_millis()
                .saturating_add(millis(inner.settings.lease));
            match inner.store.renew_lease(lease, until).await {
                Ok(true) => {}
                Ok(false) => return,
                // A store hiccup is not a lost lease; try again next period.
                Err(e) => tracing::warn!(job = %lease.job_id, error = %e, "lease renewal failed"),
            }
        }
    };
    tokio::select! {
        // Finished work wins over a renewal that would find the job ended
        // (by that very work's commit).
        biased;
        out = work => Ok(out),
        () = renew => Err(LeaseLost),
    }
}
