//! Request counters an outside test reads through `GET /_sim/counters`
//! (or directly in-process), to prove how many calls Rollcall made.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersSnapshot {
    /// Every request to a vendor path, faulted or not.
    pub total: u64,
    /// By `METHOD /route/{template}` (unknown paths count as `METHOD <unmatched>`).
    pub by_route: BTreeMap<String, u64>,
    /// By response status.
    pub by_status: BTreeMap<u16, u64>,
    /// By the credential the simulator recognised (token or user email).
    pub by_credential: BTreeMap<String, u64>,
    /// Requests answered by an injected fault.
    pub faults_injected: u64,
    /// Vendor-specific events, such as `login` or `rate_limited`.
    pub events: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
pub struct Counters {
    inner: Mutex<CountersSnapshot>,
}

impl Counters {
    fn with(&self, f: impl FnOnce(&mut CountersSnapshot)) {
        if let Ok(mut inner) = self.inner.lock() {
            f(&mut inner);
        }
    }

    pub fn record_request(&self, route: String, status: u16, faulted: bool) {
        self.with(|c| {
            c.total += 1;
            *c.by_route.entry(route).or_default() += 1;
            *c.by_status.entry(status).or_default() += 1;
            if faulted {
                c.faults_injected += 1;
            }
        });
    }

    pub fn record_credential(&self, credential: &str) {
        self.with(|c| *c.by_credential.entry(credential.to_owned()).or_default() += 1);
    }

    pub fn bump(&self, event: &str) {
        self.with(|c| *c.events.entry(event.to_owned()).or_default() += 1);
    }

    pub fn event(&self, event: &str) -> u64 {
        self.snapshot().events.get(event).copied().unwrap_or(0)
    }

    pub fn snapshot(&self) -> CountersSnapshot {
        self.inner.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn reset(&self) {
        self.with(|c| *c = CountersSnapshot::default());
    }
}
