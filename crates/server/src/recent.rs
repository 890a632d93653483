//! Rows read recently from the store, kept a short while so that hot
//! request paths need not ask the store every time. An entry lives
//! `ttl_ms`: a change made on another node (or straight in the database)
//! is seen within that; a node forgets its own changes at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};

#[derive(Debug)]
pub struct Recent<K, V> {
    entries: Mutex<Entries<K, V>>,
    ttl_ms: i64,
    /// Beyond this many entries the map starts over rather than grow.
    max: usize,
}

#[derive(Debug)]
struct Entries<K, V> {
    map: HashMap<K, (V, i64)>,
    /// Moves at every `forget`: a value read from the store before a
    /// change that was then forgotten must not be put back.
    epoch: u64,
}

/// When a miss was seen: what `put` compares against.
#[derive(Debug, Clone, Copy)]
pub struct Miss(u64);

impl<K: Eq + Hash, V: Clone> Recent<K, V> {
    pub fn new(ttl_ms: i64, max: usize) -> Self {
        Self {
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                epoch: 0,
            }),
            ttl_ms,
            max,
        }
    }

    /// Every change under the lock leaves the map whole, so a panic while
    /// it was held (a poisoned lock) leaves nothing to distrust.
    fn entries(&self) -> MutexGuard<'_, Entries<K, V>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value put less than `ttl_ms` before `now`, or the miss to hand
    /// to `put` with the value then read from the store.
    pub fn get(&self, key: &K, now: i64) -> Result<V, Miss> {
        let entries = self.entries();
        entries
            .map
            .get(key)
            .filter(|(_, at)| now.saturating_sub(*at) < self.ttl_ms)
            .map(|(value, _)| value.clone())
            .ok_or(Miss(entries.epoch))
    }

    /// Keeps `value`, unless something was forgotten since `miss` (the
    /// value may predate that change).
    pub fn put(&self, miss: Miss, key: K, value: V, now: i64) {
        let mut entries = self.entries();
        if entries.epoch != miss.0 {
            return;
        }
        if entries.map.len() >= self.max {
            entries.map.clear();
        }
        entries.map.insert(key, (value, now));
    }

    pub fn forget(&self, key: &K) {
        let mut entries = self.entries();
        entries.map.remove(key);
        entries.epoch = entries.epoch.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A miss, as a read long after any put sees it.
    fn miss(recent: &Recent<&'static str, i32>, key: &'static str) -> Miss {
        recent.get(&key, i64::MAX).expect_err("a miss")
    }

    #[test]
    fn entries_live_their_ttl_and_can_be_forgotten() {
        let recent = Recent::new(2_000, 2);
        recent.put(miss(&recent, "a"), "a", 1, 10_000);
        assert_eq!(recent.get(&"a", 11_999).ok(), Some(1));
        assert_eq!(recent.get(&"a", 12_000).ok(), None, "expired");
        recent.put(miss(&recent, "a"), "a", 2, 12_000);
        recent.forget(&"a");
        assert_eq!(recent.get(&"a", 12_001).ok(), None, "forgotten");
    }

    #[test]
    fn a_value_read_before_a_forget_is_not_put_back() {
        let recent = Recent::new(2_000, 10);
        let before = miss(&recent, "a");
        // The change lands and is forgotten while the old value is read.
        recent.forget(&"a");
        recent.put(before, "a", 1, 0);
        assert_eq!(recent.get(&"a", 1).ok(), None);
        recent.put(miss(&recent, "a"), "a", 2, 0);
        assert_eq!(recent.get(&"a", 1).ok(), Some(2));
    }

    #[test]
    fn a_full_map_starts_over() {
        let recent = Recent::new(2_000, 2);
        for (key, value) in [("a", 1), ("b", 2), ("c", 3)] {
            recent.put(miss(&recent, key), key, value, 0);
        }
        assert_eq!(recent.get(&"a", 1).ok(), None);
        assert_eq!(recent.get(&"c", 1).ok(), Some(3));
    }
}
