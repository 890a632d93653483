//! Shared state and authentication (spec §1.2, §1.4): a session token from
//! the `metabase.SESSION` cookie or the `X-Metabase-Session` header, else an
//! `X-API-KEY`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::http::{HeaderMap, header};
use rollcall_core::SharedClock;
use rollcall_sim_kit::ControlState;

use crate::db::Db;
use crate::http::ApiError;

pub struct Shared {
    db: Mutex<Db>,
    throttle: Mutex<Throttle>,
    pub control: ControlState,
    pub clock: SharedClock,
    pub max_age_ms: i64,
    pub throttle_on: bool,
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: u32,
    pub superuser: bool,
}

pub const SESSION_COOKIE: &str = "metabase.SESSION";

impl Shared {
    pub fn new(
        db: Db,
        control: ControlState,
        clock: SharedClock,
        max_age_ms: i64,
        throttle_on: bool,
    ) -> Self {
        Self {
            db: Mutex::new(db),
            throttle: Mutex::new(Throttle::default()),
            control,
            clock,
            max_age_ms,
            throttle_on,
        }
    }

    /// The database lock. A handler that panicked cannot leave it half
    /// written (mutations check before they change), so poisoning is ignored.
    pub fn db(&self) -> MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn throttle(&self) -> MutexGuard<'_, Throttle> {
        self.throttle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn now(&self) -> i64 {
        self.clock.now_millis()
    }

    /// `wrap-session-id` + `current-user-info-for-api-key`: the cookie wins
    /// over the header; the API key is tried only when no valid session was
    /// found. Counts the credential on success.
    pub fn authenticate(&self, db: &Db, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let now = self.now();
        if let Some(token) = session_token(headers)
            && let Some(id) = db.session_user(&token, now, self.max_age_ms)
            && let Some(user) = db.user(id)
        {
            self.control.counters.record_credential(&user.email);
            return Ok(Caller {
                id,
                superuser: user.is_superuser,
            });
        }
        if let Some(secret) = header_str(headers, "x-api-key")
            && let Some(key) = db.api_key_for_secret(secret)
            && let Some(user) = db.user(key.user_id).filter(|u| u.is_active)
        {
            self.control.counters.record_credential(&key.name);
            return Ok(Caller {
                id: user.id,
                superuser: user.is_superuser,
            });
        }
        Err(ApiError::unauthenticated())
    }
}

pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// The session key a request carries: cookie first, then header.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
        .filter(|v| !v.is_empty())
        .or_else(|| header_str(headers, "x-metabase-session").map(str::to_owned))
}

/// Failed-login throttling (`metabase/throttle`): attempts per key kept for
/// an hour; at the threshold further attempts are refused before the
/// password is checked.
#[derive(Debug, Default)]
pub struct Throttle {
    attempts: HashMap<String, VecDeque<i64>>,
}

pub const ATTEMPT_TTL_MS: i64 = 3_600_000;
pub const INITIAL_DELAY_MS: f64 = 15_000.0;
pub const USERNAME_THRESHOLD: usize = 10;
pub const IP_THRESHOLD: usize = 50;

impl Throttle {
    fn recent(&mut self, key: &str, now: i64) -> Option<&VecDeque<i64>> {
        let queue = self.attempts.get_mut(key)?;
        while queue.front().is_some_and(|&t| t <= now - ATTEMPT_TTL_MS) {
            queue.pop_front();
        }
        Some(queue)
    }

    /// The refusal message when `key` is throttled. The delay is
    /// 15 s × (failures − threshold + 1)^1.5 from the latest attempt; once it
    /// has passed the key stays refused until old failures age out
    /// (spec §1.1 [inference from `do-with-throttling`]).
    pub fn check(&mut self, key: &str, threshold: usize, now: i64) -> Option<String> {
        let queue = self.recent(key, now)?;
        let count = queue.len();
        let latest = *queue.back()?;
        let over = (count + 1).checked_sub(threshold).filter(|o| *o > 0)?;
        let delay = (over as f64).powf(1.5) * INITIAL_DELAY_MS;
        let remaining = latest as f64 + delay - now as f64;
        if remaining > 0.0 {
            let secs = (remaining / 1000.0 + 0.5).floor() as i64;
            Some(format!(
                "Too many attempts! You must wait {secs} seconds before trying again."
            ))
        } else {
            Some("Too many attempts! Please try again later.".into())
        }
    }

    pub fn record(&mut self, key: &str, now: i64) {
        self.attempts
            .entry(key.to_owned())
            .or_default()
            .push_back(now);
    }

    pub fn reset(&mut self) {
        self.attempts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_waits_grow_as_the_library_says() {
        let mut t = Throttle::default();
        for i in 0..10 {
            assert_eq!(t.check("u", 10, i), None);
            t.record("u", i);
        }
        let first = t.check("u", 10, 10).unwrap();
        assert_eq!(
            first,
            "Too many attempts! You must wait 15 seconds before trying again."
        );
        t.record("u", 10);
        let second = t.check("u", 10, 11).unwrap();
        assert_eq!(
            second,
            "Too many attempts! You must wait 42 seconds before trying again."
        );
        // After the delay: still refused, with the other message.
        assert_eq!(
            t.check("u", 10, 100_000).unwrap(),
            "Too many attempts! Please try again later."
        );
        // An hour later the failures have aged out.
        assert_eq!(t.check("u", 10, 3_700_000), None);
    }
}
