//! Mode's 12-hex-character tokens without a lookup table per entity.
//!
//! A token is a keyed permutation (a four-round Feistel network over 48
//! bits) of the entity's index, so `token -> index` is the inverse
//! permutation. That keeps a million seeded users cheap: no per-user token
//! string and no million-entry map, yet every token looks random and the
//! same seed always yields the same tokens. Tokens pinned by a data file sit
//! in a small side table and win over the permutation.

use std::collections::HashMap;

/// Token namespaces: each kind of object gets its own permutation, so a user
/// token and a membership token for the same index differ.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    User = 1,
    Membership = 2,
    Group = 3,
    GroupMembership = 4,
    Invite = 5,
    AccessKey = 6,
    Workspace = 7,
    Signature = 8,
    Activity = 9,
    Secret = 10,
}

const HALF_BITS: u32 = 24;
const HALF_MASK: u64 = (1 << HALF_BITS) - 1;
pub(crate) const TOKEN_MASK: u64 = (1 << 48) - 1;

/// SplitMix64's finaliser, used as the Feistel round function and to derive
/// per-object pseudo-random values (activity dates) without storing them.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug, Clone)]
pub(crate) struct Keys([u64; 4]);

impl Keys {
    pub(crate) fn new(seed: u64, kind: Kind) -> Self {
        let base = mix(seed ^ (kind as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        Self([mix(base), mix(base ^ 1), mix(base ^ 2), mix(base ^ 3)])
    }

    fn round(key: u64, half: u64) -> u64 {
        mix(key ^ half) & HALF_MASK
    }

    pub(crate) fn permute(&self, index: u64) -> u64 {
        let (mut l, mut r) = ((index >> HALF_BITS) & HALF_MASK, index & HALF_MASK);
        for &k in &self.0 {
            (l, r) = (r, l ^ Self::round(k, r));
        }
        (l << HALF_BITS) | r
    }

    pub(crate) fn unpermute(&self, token: u64) -> u64 {
        let (mut l, mut r) = ((token >> HALF_BITS) & HALF_MASK, token & HALF_MASK);
        for &k in self.0.iter().rev() {
            (l, r) = (r ^ Self::round(k, l), l);
        }
        (l << HALF_BITS) | r
    }
}

/// The tokens of one kind of object: permuted indices plus pinned tokens.
#[derive(Debug, Clone)]
pub(crate) struct TokenSpace {
    keys: Keys,
    pinned_by_token: HashMap<u64, u32>,
    pinned_by_index: HashMap<u32, u64>,
}

impl TokenSpace {
    pub(crate) fn new(seed: u64, kind: Kind) -> Self {
        Self {
            keys: Keys::new(seed, kind),
            pinned_by_token: HashMap::new(),
            pinned_by_index: HashMap::new(),
        }
    }

    pub(crate) fn token(&self, index: u32) -> u64 {
        self.pinned_by_index
            .get(&index)
            .copied()
            .unwrap_or_else(|| self.keys.permute(u64::from(index)))
    }

    /// The index owning `token`, among `len` objects.
    pub(crate) fn lookup(&self, token: u64, len: usize) -> Option<u32> {
        if let Some(&index) = self.pinned_by_token.get(&token) {
            return Some(index);
        }
        let index = u32::try_from(self.keys.unpermute(token)).ok()?;
        let in_range = usize::try_from(index).is_ok_and(|i| i < len);
        (in_range && !self.pinned_by_index.contains_key(&index)).then_some(index)
    }

    /// Pins `token` to `index`. Refused if another object already owns it
    /// among the first `len` objects. Pin everything before objects without
    /// pins are created, or call [`Self::settle`] for each new index.
    pub(crate) fn pin(&mut self, index: u32, token: u64, len: usize) -> bool {
        if self.lookup(token, len).is_some_and(|owner| owner != index) {
            return false;
        }
        if let Some(old) = self.pinned_by_index.insert(index, token) {
            self.pinned_by_token.remove(&old);
        }
        self.pinned_by_token.insert(token, index);
        true
    }

    /// Makes sure the new object at `index` does not share its permuted
    /// token with a pinned one; if it would, it gets a fresh pinned token.
    pub(crate) fn settle(&mut self, index: u32, len: usize) {
        if self.pinned_by_index.contains_key(&index) {
            return;
        }
        let natural = self.keys.permute(u64::from(index));
        if !self.pinned_by_token.contains_key(&natural) {
            return;
        }
        let mut candidate = natural;
        loop {
            candidate = mix(candidate) & TOKEN_MASK;
            let owned_by_other = self.pinned_by_token.contains_key(&candidate)
                || self.lookup(candidate, len).is_some();
            if !owned_by_other {
                self.pinned_by_index.insert(index, candidate);
                self.pinned_by_token.insert(candidate, index);
                return;
            }
        }
    }
}

/// `0x0a48a4a59f55` -> `"0a48a4a59f55"`.
pub(crate) fn hex12(token: u64) -> String {
    format!("{:012x}", token & TOKEN_MASK)
}

/// Exactly twelve lowercase hex digits, as Mode writes them.
pub(crate) fn parse_hex12(text: &str) -> Option<u64> {
    if text.len() != 12
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_round_trips_and_differs_by_kind() {
        let users = Keys::new(7, Kind::User);
        let groups = Keys::new(7, Kind::Group);
        for index in [0_u64, 1, 2, 999_999, 1 << 31] {
            let token = users.permute(index);
            assert!(token <= TOKEN_MASK);
            assert_eq!(users.unpermute(token), index);
            assert_ne!(token, groups.permute(index));
        }
        assert_ne!(
            Keys::new(8, Kind::User).permute(0),
            Keys::new(7, Kind::User).permute(0)
        );
    }

    #[test]
    fn pinned_tokens_win_and_collisions_are_settled() {
        let mut space = TokenSpace::new(1, Kind::User);
        let natural_of_5 = space.token(5);
        // Pin index 0 to what index 5 would naturally get.
        assert!(space.pin(0, natural_of_5, 1));
        assert_eq!(space.lookup(natural_of_5, 1), Some(0));
        // Index 5 arrives later and must move away from the pinned token.
        space.settle(5, 6);
        assert_ne!(space.token(5), natural_of_5);
        assert_eq!(space.lookup(space.token(5), 6), Some(5));
        // A taken token cannot be pinned to someone else.
        assert!(!space.pin(3, natural_of_5, 6));
    }

    #[test]
    fn hex_form() {
        assert_eq!(hex12(0x0a48a4a59f55), "0a48a4a59f55");
        assert_eq!(parse_hex12("0a48a4a59f55"), Some(0x0a48a4a59f55));
        assert_eq!(parse_hex12("0A48A4A59F55"), None);
        assert_eq!(parse_hex12("0a48a4a59f5"), None);
        assert_eq!(parse_hex12("0a48a4a59f5g"), None);
    }
}
