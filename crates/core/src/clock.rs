//! Time is a parameter: logic asks a [`Clock`] for "now" so tests can move
//! time without sleeping. `SystemClock` is the only place that reads the
//! wall clock.

use std::fmt;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};

pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;

    /// Milliseconds since the Unix epoch, the form timestamps are stored in.
    fn now_millis(&self) -> i64 {
        self.now().as_millisecond()
    }
}

pub type SharedClock = Arc<dyn Clock>;

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned wall-clock read
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct MockClock {
    now: Arc<Mutex<Timestamp>>,
}

impl MockClock {
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    pub fn set(&self, to: Timestamp) {
        if let Ok(mut now) = self.now.lock() {
            *now = to;
        }
    }

    pub fn advance(&self, by: SignedDuration) {
        if let Ok(mut now) = self.now.lock() {
            *now = now.checked_add(by).unwrap_or(*now);
        }
    }
}

impl Clock for MockClock {
    fn now(&self) -> Timestamp {
        self.now.lock().map(|t| *t).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

/// RFC 3339 UTC with milliseconds (`2024-05-01T12:00:00.000Z`), the form both
/// our API and the vendors use.
pub fn rfc3339_millis(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The same from stored epoch milliseconds; out-of-range values clamp to the epoch.
pub fn rfc3339_from_millis(millis: i64) -> String {
    rfc3339_millis(Timestamp::from_millisecond(millis).unwrap_or(Timestamp::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mock_clock_moves_only_when_told() {
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = MockClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(SignedDuration::from_secs(90));
        assert_eq!(rfc3339_millis(clock.now()), "2026-01-01T00:01:30.000Z");
        assert_eq!(clock.now_millis(), start.as_millisecond() + 90_000);
    }

    #[test]
    fn formats_millis_with_three_digits() {
        assert_eq!(rfc3339_from_millis(1_500), "1970-01-01T00:00:01.500Z");
    }
}
