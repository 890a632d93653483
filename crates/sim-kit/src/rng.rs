/// SplitMix64: tiny, fast, and the same sequence on every platform and
/// release, which is what seeded simulator data needs (a `rand` upgrade must
/// never change which users a seed produces).
#[derive(Debug, Clone)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; 0 yields 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        let index = usize::try_from(self.below(items.len() as u64)).ok()?;
        items.get(index)
    }

    /// `len` lowercase hex characters (Mode's 12-character tokens, say).
    pub fn hex(&mut self, len: usize) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        (0..len)
            .map(|_| char::from(HEX[(self.next_u64() & 15) as usize]))
            .collect()
    }
}

pub const FIRST_NAMES: &[&str] = &[
    "Ada", "Alan", "Amara", "Ana", "Arjun", "Beatriz", "Bob", "Carmen", "Chen", "Chloe", "Dara",
    "David", "Elena", "Emeka", "Fatima", "Felix", "Grace", "Hana", "Hugo", "Ines", "Ivan", "Jamal",
    "Jin", "Julia", "Kai", "Kenji", "Lara", "Leila", "Liam", "Lucia", "Maya", "Mateo", "Mei",
    "Nadia", "Noah", "Olga", "Omar", "Priya", "Rafael", "Rosa", "Sam", "Sara", "Tariq", "Tomas",
    "Uma", "Victor", "Wei", "Yara", "Yusuf", "Zoe",
];

pub const LAST_NAMES: &[&str] = &[
    "Abbott", "Adeyemi", "Alvarez", "Baker", "Bianchi", "Brown", "Chen", "Costa", "Dubois",
    "Eriksen", "Fischer", "Garcia", "Gupta", "Haddad", "Hansen", "Ito", "Jensen", "Kim",
    "Kowalski", "Lee", "Lopez", "Mbeki", "Meyer", "Moreau", "Nakamura", "Novak", "Okafor", "Olsen",
    "Patel", "Petrov", "Quinn", "Rossi", "Santos", "Schmidt", "Silva", "Singh", "Tanaka", "Torres",
    "Ueda", "Vargas", "Wagner", "Walsh", "Wong", "Yilmaz", "Zhang",
];

pub const GROUP_NAMES: &[&str] = &[
    "Analysts",
    "Data Engineering",
    "Finance",
    "Marketing",
    "Sales",
    "Product",
    "Support",
    "Executives",
    "Growth",
    "Operations",
    "Legal",
    "People Ops",
    "Security",
    "Design",
    "Research",
    "Partnerships",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = SeededRng::new(42);
        let mut b = SeededRng::new(42);
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(SeededRng::new(43).next_u64(), xs[0]);
    }

    #[test]
    fn hex_tokens_have_the_asked_length() {
        let token = SeededRng::new(1).hex(12);
        assert_eq!(token.len(), 12);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
