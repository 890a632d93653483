use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// The outcome of asking a [`WindowLimiter`] for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed {
        limit: u32,
        remaining: u32,
        /// Seconds until the oldest counted request leaves the window.
        reset_secs: u64,
    },
    Limited {
        limit: u32,
        retry_after_secs: u64,
    },
}

/// A sliding-window limiter keyed by credential: at most `limit` admitted
/// requests in any `window`. Refused requests are not counted, so a client
/// that waits out `Retry-After` gets through.
#[derive(Debug)]
pub struct WindowLimiter {
    limit: u32,
    window_ms: i64,
    hits: Mutex<HashMap<String, VecDeque<i64>>>,
}

impl WindowLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            hits: Mutex::new(HashMap::new()),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn window(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.window_ms).unwrap_or(0))
    }

    /// Counts a request by `key` at `now_ms` if the window has room.
    pub fn admit(&self, key: &str, now_ms: i64) -> Admission {
        let Ok(mut hits) = self.hits.lock() else {
            // A poisoned lock means a panic elsewhere; fail open rather than
            // refuse every request forever.
            return Admission::Allowed {
                limit: self.limit,
                remaining: self.limit,
                reset_secs: 0,
            };
        };
        let queue = hits.entry(key.to_owned()).or_default();
        while queue.front().is_some_and(|&t| t <= now_ms - self.window_ms) {
            queue.pop_front();
        }
        let secs_until = |t: i64| -> u64 {
            let ms = (t + self.window_ms - now_ms).max(0);
            u64::try_from((ms + 999) / 1000).unwrap_or(0)
        };
        let used = u32::try_from(queue.len()).unwrap_or(u32::MAX);
        if used >= self.limit {
            let oldest = queue.front().copied().unwrap_or(now_ms);
            return Admission::Limited {
                limit: self.limit,
                retry_after_secs: secs_until(oldest).max(1),
            };
        }
        queue.push_back(now_ms);
        let oldest = queue.front().copied().unwrap_or(now_ms);
        Admission::Allowed {
            limit: self.limit,
            remaining: self.limit - used - 1,
            reset_secs: secs_until(oldest),
        }
    }

    /// Forgets every key's history.
    pub fn reset(&self) {
        if let Ok(mut hits) = self.hits.lock() {
            hits.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_then_refuses_until_the_window_slides() {
        let limiter = WindowLimiter::new(3, Duration::from_secs(10));
        for expected_remaining in [2, 1, 0] {
            match limiter.admit("tok", 1_000) {
                Admission::Allowed { remaining, .. } => assert_eq!(remaining, expected_remaining),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            limiter.admit("tok", 5_000),
            Admission::Limited {
                limit: 3,
                retry_after_secs: 6
            }
        );
        // Another credential has its own window.
        assert!(matches!(
            limiter.admit("other", 5_000),
            Admission::Allowed { .. }
        ));
        // After the window passes the first hits the key is admitted again.
        assert!(matches!(
            limiter.admit("tok", 11_000),
            Admission::Allowed { .. }
        ));
    }
}
