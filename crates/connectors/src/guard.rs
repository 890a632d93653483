//! What keeps Rollcall a good citizen at every vendor, shared by every call
//! in the process (unified API, proxy, credential checks):
//!
//! - a **rate limiter per credential**: a sliding window of the vendor's
//!   documented limit (Mode: 40 requests in any 10 seconds). A classic
//!   token bucket cannot promise "never more than 40 in any 10 s" without
//!   giving up half the throughput, so the limiter keeps the send times of
//!   the last window instead. It adapts when the vendor's headers say
//!   otherwise (`X-RateLimit-Limit`, `X-RateLimit-Remaining: 0`,
//!   `Retry-After`), and callers wait for room within their deadline.
//! - a **circuit breaker per account**: after repeated failures calls fail
//!   fast for a cool-down, then one probe decides whether it closes again.
//! - the **retry policy**: exponential backoff with full jitter, bounded by
//!   a per-call deadline.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::account::SessionRegistry;

/// Added to every window: our clock starts before the vendor sees the
/// request, so without a margin a call could land inside its window early.
const WINDOW_MARGIN_MS: i64 = 250;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// How long one caller request may spend on a vendor call, waits and
    /// retries included.
    pub deadline: Duration,
    /// First backoff; doubles per attempt, with full jitter.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Retries after the first attempt, at most (the deadline may stop
    /// them sooner).
    pub max_retries: u32,
    /// Consecutive failures that open an account's circuit.
    pub failure_threshold: u32,
    /// How long an open circuit fails fast before one probe is let through.
    pub cooldown: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(30),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_retries: 8,
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Full jitter: a random delay in `[0, min(max, base * 2^attempt))`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        let mut bytes = [0u8; 8];
        let fraction = match getrandom::fill(&mut bytes) {
            Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
            Err(_) => 0.5,
        };
        cap.mul_f64(fraction)
    }
}

/// A rate-limit window shared by every process that calls a vendor with the
/// same credential (several Rollcall nodes on one database): each send is
/// recorded there too, so together they stay within the vendor's limit.
#[async_trait::async_trait]
pub trait SharedWindow: Send + Sync + std::fmt::Debug {
    /// Records a send for `key` if fewer than `limit` sends fall in the
    /// `window_ms` before it; otherwise the time room opens up. The send's
    /// time is read from `clock` once the window is held (other nodes may
    /// hold it first), so it is the time the request really leaves.
    async fn try_send(
        &self,
        key: &str,
        limit: u32,
        window_ms: i64,
        clock: &dyn rollcall_core::Clock,
    ) -> Result<Option<i64>, String>;
}

/// Everything vendor-facing that is shared across calls in the process.
#[derive(Debug, Default)]
pub struct VendorGuards {
    pub sessions: SessionRegistry,
    pub policy: RetryPolicy,
    limiters: Mutex<HashMap<String, Arc<Limiter>>>,
    breakers: Mutex<HashMap<String, Arc<Breaker>>>,
    shared: Option<Arc<dyn SharedWindow>>,
}

impl VendorGuards {
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// Every limiter also records its sends in `shared`, so other
    /// processes using the same credentials see them.
    pub fn with_shared_window(mut self, shared: Arc<dyn SharedWindow>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// The limiter of one credential, created with `limit` per `window` on
    /// first use (`None`: no limit known).
    pub(crate) fn limiter(&self, key: &str, limit: Option<(u32, Duration)>) -> Arc<Limiter> {
        let shared = self.shared.clone().map(|s| (s, key.to_owned()));
        let make = || {
            let mut limiter = Limiter::new(limit);
            limiter.shared = shared.clone();
            Arc::new(limiter)
        };
        match self.limiters.lock() {
            Ok(mut map) => {
                let limiter = map.entry(key.to_owned()).or_insert_with(make).clone();
                // The account's configured limit changed (a PATCH): it applies
                // from now on, keeping what was already sent in the window.
                limiter.reconfigure(limit);
                limiter
            }
            Err(_) => make(),
        }
    }

    pub(crate) fn breaker(&self, account: &str) -> Arc<Breaker> {
        match self.breakers.lock() {
            Ok(mut map) => map.entry(account.to_owned()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    /// `closed`, `open` or `half_open`, for showing on the account.
    pub fn circuit_state(&self, account: &str, now_ms: i64) -> &'static str {
        let breaker = self
            .breakers
            .lock()
            .ok()
            .and_then(|m| m.get(account).cloned());
        breaker.map_or("closed", |b| b.state(now_ms))
    }
}

/// What a response told us about the limit, normalised for our own
/// `ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSnapshot {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until a request can be sent again at full allowance.
    pub reset_secs: u64,
}

#[derive(Debug)]
pub(crate) struct Limiter {
    state: Mutex<LimiterState>,
    /// The window other processes share, and this credential's key there.
    shared: Option<(Arc<dyn SharedWindow>, String)>,
}

#[derive(Debug)]
struct LimiterState {
    /// What the account's configuration asked for, to notice a change.
    configured: Option<(u32, Duration)>,
    limit: Option<u32>,
    window_ms: i64,
    sent: VecDeque<i64>,
    /// No request before this (a 429's `Retry-After`, an exhausted window).
    blocked_until: i64,
}

/// After the local window: ask the shared one, or wait until a time.
enum SharedCheck {
    Ask { limit: u32, window: i64 },
    Wait(i64),
}

/// Why a limiter could not let a call through before its deadline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoRoom {
    pub retry_after_secs: u64,
}

impl Limiter {
    fn new(limit: Option<(u32, Duration)>) -> Self {
        let limit_in = limit;
        let (limit, window_ms) = Self::parts(limit);
        Self {
            state: Mutex::new(LimiterState {
                configured: limit_in,
                limit,
                window_ms,
                sent: VecDeque::new(),
                blocked_until: 0,
            }),
            shared: None,
        }
    }

    fn parts(limit: Option<(u32, Duration)>) -> (Option<u32>, i64) {
        match limit {
            Some((n, window)) => (
                Some(n.max(1)),
                i64::try_from(window.as_millis()).unwrap_or(i64::MAX / 4),
            ),
            None => (None, 10_000),
        }
    }

    /// Applies a changed configured limit (a lowered one from the vendor's
    /// headers stays until the configuration itself changes).
    fn reconfigure(&self, limit: Option<(u32, Duration)>) {
        if let Ok(mut s) = self.state.lock()
            && s.configured != limit
        {
            let (new_limit, window_ms) = Self::parts(limit);
            s.configured = limit;
            s.limit = new_limit;
            s.window_ms = window_ms;
        }
    }

    /// Waits for room (never past `deadline_ms`) and records the send.
    pub(crate) async fn acquire(
        &self,
        clock: &dyn rollcall_core::Clock,
        deadline_ms: i64,
    ) -> Result<(), NoRoom> {
        loop {
            let now = clock.now_millis();
            let ready_at = {
                let Ok(mut s) = self.state.lock() else {
                    return Ok(());
                };
                let window = s.window_ms + WINDOW_MARGIN_MS;
                while s.sent.front().is_some_and(|&t| t <= now - window) {
                    s.sent.pop_front();
                }
                let full_until = match s.limit {
                    Some(limit) if s.sent.len() >= limit as usize => {
                        s.sent.front().map_or(now, |&t| t + window)
                    }
                    _ => now,
                };
                let ready_at = full_until.max(s.blocked_until);
                if ready_at <= now {
                    s.sent.push_back(now);
                    match (&self.shared, s.limit) {
                        (Some(_), Some(limit)) => SharedCheck::Ask { limit, window },
                        _ => return Ok(()),
                    }
                } else {
                    SharedCheck::Wait(ready_at)
                }
            };
            // Room here; the shared window has the last word.
            let ready_at = match ready_at {
                SharedCheck::Ask { limit, window } => {
                    let Some((shared, key)) = &self.shared else {
                        return Ok(());
                    };
                    match shared.try_send(key, limit, window, clock).await {
                        Ok(None) => return Ok(()),
                        Ok(Some(at)) => {
                            self.unrecord(now);
                            at.max(now + 1)
                        }
                        // The shared window is out of reach: this process's
                        // own limit still holds; the vendor's 429 does the rest.
                        Err(e) => {
                            tracing::warn!(error = %e, "shared rate-limit window unavailable");
                            return Ok(());
                        }
                    }
                }
                SharedCheck::Wait(at) => at,
            };
            if ready_at > deadline_ms {
                return Err(NoRoom {
                    retry_after_secs: u64::try_from((ready_at - now + 999) / 1000)
                        .unwrap_or(1)
                        .max(1),
                });
            }
            tokio::time::sleep(Duration::from_millis(
                u64::try_from(ready_at - now).unwrap_or(0),
            ))
            .await;
        }
    }

    /// Takes back a send recorded at `at` that did not go out.
    fn unrecord(&self, at: i64) {
        if let Ok(mut s) = self.state.lock()
            && let Some(pos) = s.sent.iter().rposition(|&t| t == at)
        {
            s.sent.remove(pos);
        }
    }

    /// Learns from a vendor answer's headers.
    pub(crate) fn observe(&self, headers: &http::HeaderMap, status: u16, now: i64) {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let Ok(mut s) = self.state.lock() else { return };
        if let Some(vendor_limit) = number("x-ratelimit-limit").and_then(|n| u32::try_from(n).ok())
            && s.limit.is_none_or(|ours| vendor_limit < ours)
        {
            s.limit = Some(vendor_limit.max(1));
        }
        // Vendor-supplied waits are capped at an hour: a wild header must not
        // overflow or stall a credential for days.
        let capped = |secs: u64| i64::try_from(secs.min(3_600) * 1000).unwrap_or(3_600_000);
        let retry_after = number("retry-after");
        if number("x-ratelimit-remaining") == Some(0) {
            let reset = number("x-ratelimit-reset").or(retry_after).unwrap_or(1);
            s.blocked_until = s.blocked_until.max(now.saturating_add(capped(reset)));
        }
        // A 429 that says how long to wait holds every caller of this
        // credential back; without a hint, the retry's own backoff spaces it.
        if let (429, Some(wait)) = (status, retry_after) {
            s.blocked_until = s.blocked_until.max(now.saturating_add(capped(wait)));
        }
    }

    /// Our view of the allowance, for `ratelimit-*` headers.
    pub(crate) fn snapshot(&self, now: i64) -> Option<RateSnapshot> {
        let s = self.state.lock().ok()?;
        let limit = s.limit?;
        let window = s.window_ms + WINDOW_MARGIN_MS;
        let in_window: Vec<i64> = s
            .sent
            .iter()
            .copied()
            .filter(|&t| t > now - window)
            .collect();
        let remaining = limit.saturating_sub(u32::try_from(in_window.len()).unwrap_or(u32::MAX));
        let reset_ms = in_window
            .first()
            .map_or(0, |&t| t + window - now)
            .max(s.blocked_until - now)
            .max(0);
        Some(RateSnapshot {
            limit,
            remaining: if s.blocked_until > now { 0 } else { remaining },
            reset_secs: u64::try_from((reset_ms + 999) / 1000).unwrap_or(0),
        })
    }
}

#[derive(Debug, Default)]
pub(crate) struct Breaker {
    state: Mutex<BreakerState>,
}

#[derive(Debug, Default)]
struct BreakerState {
    consecutive_failures: u32,
    open_until: Option<i64>,
    /// When the probe in flight started. A probe whose caller went away
    /// never reports back, so after a cool-down another one may go.
    probing_since: Option<i64>,
}

/// A call refused because the account's circuit is open.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Open {
    pub retry_in_secs: u64,
}

impl Breaker {
    /// May a call go to the vendor now? After the cool-down one probe may.
    pub(crate) fn admit(&self, now: i64, policy: &RetryPolicy) -> Result<(), Open> {
        let Ok(mut s) = self.state.lock() else {
            return Ok(());
        };
        let cooldown = i64::try_from(policy.cooldown.as_millis()).unwrap_or(i64::MAX / 4);
        let probe_in_flight = s.probing_since.is_some_and(|t| now - t < cooldown);
        match s.open_until {
            None => Ok(()),
            Some(until) if now < until || probe_in_flight => Err(Open {
                retry_in_secs: u64::try_from((until.max(now) - now + 999) / 1000)
                    .unwrap_or(1)
                    .max(1),
            }),
            Some(_) => {
                s.probing_since = Some(now);
                Ok(())
            }
        }
    }

    pub(crate) fn succeeded(&self) {
        if let Ok(mut s) = self.state.lock() {
            *s = BreakerState::default();
        }
    }

    pub(crate) fn failed(&self, now: i64, policy: &RetryPolicy) {
        let Ok(mut s) = self.state.lock() else { return };
        s.consecutive_failures += 1;
        if s.probing_since.is_some() || s.consecutive_failures >= policy.failure_threshold {
            s.open_until =
                Some(now + i64::try_from(policy.cooldown.as_millis()).unwrap_or(i64::MAX / 4));
            s.probing_since = None;
        }
    }

    fn state(&self, now: i64) -> &'static str {
        match self.state.lock() {
            Ok(s) => match s.open_until {
                None => "closed",
                Some(_) if s.probing_since.is_some() => "half_open",
                Some(until) if now < until => "open",
                Some(_) => "half_open",
            },
            Err(_) => "closed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_core::{Clock as _, MockClock};

    #[tokio::test]
    async fn the_window_never_holds_more_than_the_limit() {
        let clock = MockClock::new("2026-01-01T00:00:00Z".parse().unwrap());
        let limiter = Limiter::new(Some((3, Duration::from_secs(10))));
        for _ in 0..3 {
            limiter.acquire(&clock, clock.now_millis()).await.unwrap();
        }
        // Full: a caller whose deadline is now gets a retry hint instead.
        let refused = limiter
            .acquire(&clock, clock.now_millis() + 1_000)
            .await
            .unwrap_err();
        assert_eq!(refused.retry_after_secs, 11);
        let snapshot = limiter.snapshot(clock.now_millis()).unwrap();
        assert_eq!((snapshot.limit, snapshot.remaining), (3, 0));
        clock.advance(jiff::SignedDuration::from_millis(10_251));
        limiter.acquire(&clock, clock.now_millis()).await.unwrap();
    }

    #[tokio::test]
    async fn a_changed_configured_limit_applies_to_the_next_call() {
        let clock = MockClock::new("2026-01-01T00:00:00Z".parse().unwrap());
        let guards = VendorGuards::default();
        let tight = Some((2, Duration::from_secs(10)));
        let limiter = guards.limiter("acct", tight);
        for _ in 0..2 {
            limiter.acquire(&clock, clock.now_millis()).await.unwrap();
        }
        assert!(limiter.acquire(&clock, clock.now_millis()).await.is_err());
        // Raised in the account's config: the same credential gets room now,
        // and what was sent still counts.
        let raised = guards.limiter("acct", Some((3, Duration::from_secs(10))));
        raised.acquire(&clock, clock.now_millis()).await.unwrap();
        assert!(raised.acquire(&clock, clock.now_millis()).await.is_err());
        let snapshot = raised.snapshot(clock.now_millis()).unwrap();
        assert_eq!((snapshot.limit, snapshot.remaining), (3, 0));
        // Asking again with the same limit changes nothing.
        let same = guards.limiter("acct", Some((3, Duration::from_secs(10))));
        assert_eq!(same.snapshot(clock.now_millis()).unwrap().remaining, 0);
    }

    #[test]
    fn absurd_vendor_waits_are_capped_not_overflowed() {
        let limiter = Limiter::new(Some((40, Duration::from_secs(10))));
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "retry-after",
            http::HeaderValue::from_static("9223372036854775807"),
        );
        let now = 1_795_000_000_000;
        limiter.observe(&headers, 429, now);
        assert_eq!(limiter.snapshot(now).unwrap().reset_secs, 3_600);
    }

    #[test]
    fn vendor_headers_lower_the_limit_and_block_after_a_429() {
        let limiter = Limiter::new(Some((40, Duration::from_secs(10))));
        let mut headers = http::HeaderMap::new();
        headers.insert("x-ratelimit-limit", http::HeaderValue::from_static("30"));
        headers.insert("retry-after", http::HeaderValue::from_static("4"));
        limiter.observe(&headers, 429, 1_000);
        let snapshot = limiter.snapshot(1_000).unwrap();
        assert_eq!(
            (snapshot.limit, snapshot.remaining, snapshot.reset_secs),
            (30, 0, 4)
        );
    }

    #[test]
    fn the_circuit_opens_after_repeated_failures_and_one_probe_decides() {
        let policy = RetryPolicy {
            failure_threshold: 2,
            cooldown: Duration::from_secs(5),
            ..RetryPolicy::default()
        };
        let breaker = Breaker::default();
        breaker.failed(0, &policy);
        assert!(breaker.admit(1, &policy).is_ok());
        breaker.failed(1, &policy);
        assert_eq!(breaker.state(2), "open");
        assert!(breaker.admit(2, &policy).is_err());
        assert!(breaker.admit(6_000, &policy).is_ok(), "the probe");
        assert!(
            breaker.admit(6_001, &policy).is_err(),
            "only one probe at a time"
        );
        breaker.failed(6_002, &policy);
        assert_eq!(breaker.state(6_003), "open", "a failed probe reopens");
        assert!(breaker.admit(11_100, &policy).is_ok());
        // That probe's caller went away: after a cool-down another may go.
        assert!(breaker.admit(12_000, &policy).is_err());
        assert!(breaker.admit(16_200, &policy).is_ok());
        breaker.succeeded();
        assert_eq!(breaker.state(16_300), "closed");
    }

    #[test]
    fn backoff_is_jittered_below_its_cap() {
        let policy = RetryPolicy::default();
        for attempt in 0..10 {
            let d = policy.backoff(attempt);
            assert!(d <= policy.max_delay && d <= policy.base_delay * (1 << attempt));
        }
    }
}
