//! A sorted list of user ids with positional access: the maintained order of
//! `GET /api/user` (`lower(first_name), lower(last_name), id`), so a page
//! deep into a million users costs a walk over chunk lengths, not a sort.
//!
//! Ids are kept in chunks of bounded size. The order itself lives outside:
//! every operation takes the comparator, which looks the ids up in the user
//! table. Callers remove an id *before* changing its sort key and insert it
//! again after.

use std::cmp::Ordering;

const MAX_CHUNK: usize = 2048;
const BULK_CHUNK: usize = 1024;

#[derive(Debug, Default, Clone)]
pub struct OrderIndex {
    chunks: Vec<Vec<u32>>,
    len: usize,
}

impl OrderIndex {
    /// From ids already in order.
    pub fn from_sorted(ids: impl IntoIterator<Item = u32>) -> Self {
        let mut chunks = Vec::new();
        let mut current = Vec::with_capacity(BULK_CHUNK);
        let mut len = 0;
        for id in ids {
            current.push(id);
            len += 1;
            if current.len() == BULK_CHUNK {
                chunks.push(std::mem::replace(
                    &mut current,
                    Vec::with_capacity(BULK_CHUNK),
                ));
            }
        }
        if !current.is_empty() {
            chunks.push(current);
        }
        Self { chunks, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunk that holds (or should hold) `id`: the first whose last
    /// element is not before it.
    fn chunk_for(&self, id: u32, cmp: &impl Fn(u32, u32) -> Ordering) -> usize {
        self.chunks
            .partition_point(|chunk| {
                chunk
                    .last()
                    .is_some_and(|&last| cmp(last, id) == Ordering::Less)
            })
            .min(self.chunks.len().saturating_sub(1))
    }

    pub fn insert(&mut self, id: u32, cmp: impl Fn(u32, u32) -> Ordering) {
        if self.chunks.is_empty() {
            self.chunks.push(vec![id]);
            self.len = 1;
            return;
        }
        let c = self.chunk_for(id, &cmp);
        let chunk = &mut self.chunks[c];
        let pos = chunk.partition_point(|&x| cmp(x, id) == Ordering::Less);
        if chunk.get(pos) == Some(&id) {
            return;
        }
        chunk.insert(pos, id);
        self.len += 1;
        if chunk.len() > MAX_CHUNK {
            let tail = chunk.split_off(chunk.len() / 2);
            self.chunks.insert(c + 1, tail);
        }
    }

    /// Removes `id`, which must still have the sort key it was inserted with.
    pub fn remove(&mut self, id: u32, cmp: impl Fn(u32, u32) -> Ordering) -> bool {
        if self.chunks.is_empty() {
            return false;
        }
        let c = self.chunk_for(id, &cmp);
        let chunk = &mut self.chunks[c];
        let pos = chunk.partition_point(|&x| cmp(x, id) == Ordering::Less);
        if chunk.get(pos) != Some(&id) {
            return false;
        }
        chunk.remove(pos);
        self.len -= 1;
        if chunk.is_empty() {
            self.chunks.remove(c);
        }
        true
    }

    /// Ids from position `start` on, in order.
    pub fn iter_from(&self, start: usize) -> impl Iterator<Item = u32> + '_ {
        let mut skipped = 0;
        let mut first_chunk = self.chunks.len();
        let mut within = 0;
        for (i, chunk) in self.chunks.iter().enumerate() {
            if skipped + chunk.len() > start {
                first_chunk = i;
                within = start - skipped;
                break;
            }
            skipped += chunk.len();
        }
        self.chunks
            .get(first_chunk..)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .flat_map(move |(i, chunk)| {
                let from = if i == 0 { within } else { 0 };
                chunk.get(from..).unwrap_or_default().iter().copied()
            })
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.chunks.iter().flat_map(|c| c.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_key(keys: &[u32]) -> impl Fn(u32, u32) -> Ordering + '_ {
        move |a, b| (keys[a as usize], a).cmp(&(keys[b as usize], b))
    }

    #[test]
    fn keeps_order_through_inserts_removes_and_key_changes() {
        // Key of id i is keys[i]; many duplicates so ties fall back to the id.
        let mut keys: Vec<u32> = (0..10_000u32).map(|i| (i * 7919) % 97).collect();
        let mut index = OrderIndex::default();
        for id in 0..10_000 {
            index.insert(id, by_key(&keys));
        }
        let mut expected: Vec<u32> = (0..10_000).collect();
        expected.sort_by(|&a, &b| by_key(&keys)(a, b));
        assert_eq!(index.iter().collect::<Vec<_>>(), expected);
        assert_eq!(index.len(), 10_000);
        assert_eq!(
            index.iter_from(9_990).collect::<Vec<_>>(),
            expected[9_990..].to_vec()
        );
        assert_eq!(index.iter_from(20_000).count(), 0);

        // Re-key a few ids the way the database does: remove, change, insert.
        for id in [5u32, 500, 5_000, 9_999] {
            assert!(index.remove(id, by_key(&keys)));
            keys[id as usize] = 1_000;
            index.insert(id, by_key(&keys));
        }
        let mut expected: Vec<u32> = (0..10_000).collect();
        expected.sort_by(|&a, &b| by_key(&keys)(a, b));
        assert_eq!(index.iter().collect::<Vec<_>>(), expected);
        assert_eq!(index.len(), 10_000);
    }

    #[test]
    fn bulk_build_matches_inserts() {
        let index = OrderIndex::from_sorted(0..5_000u32);
        assert_eq!(index.len(), 5_000);
        assert_eq!(index.iter_from(4_999).collect::<Vec<_>>(), vec![4_999]);
        assert_eq!(
            index.iter_from(1_023).take(3).collect::<Vec<_>>(),
            vec![1_023, 1_024, 1_025]
        );
    }
}
