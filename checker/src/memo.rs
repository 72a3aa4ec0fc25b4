//! Lowe's memoization: the set of (linearized operations, model state) configurations the
//! search has already entered, stored compactly with their memory counted.
//!
//! The linearized set is a fixed-size bitset (one bit per kept operation of the key) with a
//! Zobrist hash maintained incrementally: each operation has a random 64-bit code and the
//! set's hash is the XOR of its members' codes, so setting or clearing a bit updates the hash
//! in O(1) instead of rehashing the whole bitset at every step. Entries live in two arenas
//! (bit words, states) and the hash table holds only `(hash, entry index)`, looked up with
//! hashbrown's `HashTable` by the precomputed hash: a probe allocates nothing and a hit
//! compares the words in place.

use crate::model::SequentialModel;
use hashbrown::HashTable;
use std::hash::{Hash, Hasher};

/// The set of linearized operations, with its Zobrist hash.
#[derive(Debug, Clone)]
pub(crate) struct Bitset {
    words: Vec<u64>,
    codes: Vec<u64>,
    hash: u64,
}

/// SplitMix64: a fixed, well-mixed sequence, so runs are reproducible.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Bitset {
    /// An empty set over `n` operations.
    pub fn new(n: usize) -> Self {
        Bitset {
            words: vec![0; n.div_ceil(64).max(1)],
            codes: (0..n as u64).map(splitmix).collect(),
            hash: 0,
        }
    }

    /// Adds operation `i` (must be absent).
    pub fn set(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
        self.hash ^= self.codes[i];
    }

    /// Removes operation `i` (must be present).
    pub fn clear(&mut self, i: usize) {
        self.words[i / 64] &= !(1 << (i % 64));
        self.hash ^= self.codes[i];
    }

    /// Whether operation `i` is in the set.
    pub fn contains(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }
}

/// The configurations already entered.
pub(crate) struct Memo<M> {
    words_per_entry: usize,
    words: Vec<u64>,
    states: Vec<M>,
    table: HashTable<(u64, u32)>,
    bytes: usize,
}

fn state_hash<M: Hash>(m: &M) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    m.hash(&mut h);
    // Fx leaves the low bits weak for small integers; mix once so the table's bucket index
    // (low bits) and control byte (high bits) both see the whole state.
    splitmix(h.finish())
}

impl<M: SequentialModel> Memo<M> {
    /// An empty memo for bitsets of `bits`' size.
    pub fn new(bits: &Bitset) -> Self {
        Memo {
            words_per_entry: bits.words.len(),
            words: Vec::new(),
            states: Vec::new(),
            table: HashTable::new(),
            bytes: 0,
        }
    }

    /// Records `(bits, state)`; false if it was already there.
    pub fn insert(&mut self, bits: &Bitset, state: &M) -> bool {
        let hash = bits.hash ^ state_hash(state);
        let w = self.words_per_entry;
        let (words, states) = (&self.words, &self.states);
        let found = self.table.find(hash, |&(h, i)| {
            let i = i as usize;
            h == hash && words[i * w..(i + 1) * w] == bits.words[..] && states[i] == *state
        });
        if found.is_some() {
            return false;
        }
        let index = self.states.len() as u32;
        self.words.extend_from_slice(&bits.words);
        self.states.push(state.clone());
        self.table.insert_unique(hash, (hash, index), |&(h, _)| h);
        // words + state + a table slot (16 bytes, at hashbrown's 7/8 load) + control byte
        self.bytes += w * 8 + std::mem::size_of::<M>() + state.heap_bytes() + 20;
        true
    }

    /// Entries recorded.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Bytes used, as counted for the memory budget (arena growth slack not included).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Cell;

    #[test]
    fn same_set_reached_in_another_order_is_a_hit() {
        let mut a = Bitset::new(130);
        let mut memo: Memo<Cell> = Memo::new(&a);
        a.set(3);
        a.set(129);
        assert!(memo.insert(&a, &Cell(1)));
        let mut b = Bitset::new(130);
        b.set(129);
        b.set(7);
        b.clear(7);
        b.set(3);
        assert!(!memo.insert(&b, &Cell(1)), "same set, same state");
        assert!(memo.insert(&b, &Cell(2)), "same set, other state");
        b.clear(3);
        assert!(memo.insert(&b, &Cell(1)), "other set");
        assert_eq!(memo.len(), 3);
        assert!(b.contains(129) && !b.contains(3));
    }
}
