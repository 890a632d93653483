//! Rows read recently from the store, kept a short while so that hot
//! request paths need not ask the store every time. An entry lives
//! `ttl_ms`: a change made on another node (or straight in the database)
//! is seen within that; a node forgets its own changes at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

#[derive(Debug)]
pub struct Recent<K, V> {
    entries: Mutex<HashMap<K, (V, i64)>>,
    ttl_ms: i64,
    /// Beyond this many entries the map starts over rather than grow.
    max: usize,
}

impl<K: Eq + Hash, V: Clone> Recent<K, V> {
    pub fn new(ttl_ms: i64, max: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl_ms,
            max,
        }
    }

    /// The value put less than `ttl_ms` before `now`.
    pub fn get(&self, key: &K, now: i64) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(_, at)| now.saturating_sub(*at) < self.ttl_ms)
            .map(|(value, _)| value.clone())
    }

    pub fn put(&self, key: K, value: V, now: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.max {
                entries.clear();
            }
            entries.insert(key, (value, now));
        }
    }

    pub fn forget(&self, key: &K) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_their_ttl_and_can_be_forgotten() {
        let recent = Recent::new(2_000, 2);
        recent.put("a", 1, 10_000);
        assert_eq!(recent.get(&"a", 11_999), Some(1));
        assert_eq!(recent.get(&"a", 12_000), None, "expired");
        recent.put("a", 2, 12_000);
        recent.forget(&"a");
        assert_eq!(recent.get(&"a", 12_001), None, "forgotten");
    }

    #[test]
    fn a_full_map_starts_over() {
        let recent = Recent::new(2_000, 2);
        recent.put("a", 1, 0);
        recent.put("b", 2, 0);
        recent.put("c", 3, 0);
        assert_eq!(recent.get(&"a", 1), None);
        assert_eq!(recent.get(&"c", 1), Some(3));
    }
}
