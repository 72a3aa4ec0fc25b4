//! Lowe's memoization: the set of (linearized operations, model state) configurations the
//! search has already entered, stored compactly with their memory counted.
//!
//! The linearized set is a fixed-size bitset with a Zobrist hash maintained incrementally:
//! each operation has a random 64-bit code and the set's hash is the XOR of its members'
//! codes, so setting or clearing a bit updates the hash in O(1) instead of rehashing the
//! whole bitset at every step. The hash table holds only `(hash, entry index)`, looked up
//! with hashbrown's `HashTable` by the precomputed hash: a probe allocates nothing.
//!
//! **Entries store a window of the set, not the set.** Completed operations get the low bit
//! positions (in invocation order) and indeterminate ones the positions after them. A
//! completed operation cannot stay unlinearized while operations invoked after its return
//! are linearized, so the completed part of every configuration is a run of ones, a window
//! about as wide as the history's concurrency, then zeros. An entry keeps the window's
//! offset and words: on an 11,000-op key with 50 processes that is about 5 words instead of
//! 172. Indeterminate operations are left out of the window because one invoked early and
//! never linearized would otherwise hold it open for the rest of the history.
//!
//! **Indeterminate operations are stored as counts, not bits.** The search groups them by
//! encoded operation and only ever linearizes a group's earliest unlinearized member
//! (`search.rs`, `InfoGroups`), so the linearized ones are a prefix of each group and the
//! vector of prefix lengths says exactly which they are. An entry stores that vector, 16
//! bits a group when no group has 65,536 members: on the 565,000-op hot key of the skewed
//! benchmark (2,800 indeterminate writes and cas over 30 groups) 8 words instead of 44, and
//! the memo's size no longer grows with the number of indeterminate ops. A key with fewer
//! indeterminate ops than that takes one bit per op instead (each group's members in a run,
//! its first `used` set), whichever is smaller.
//!
//! **Memory is counted as allocated**, capacities rather than lengths, with room for the
//! table's and the index's next doubling (old and new buffers coexist while they grow), and
//! words go into fixed-size chunks that never move, so the count bounds what the process
//! holds for the memo rather than estimating it.

use crate::model::SequentialModel;
use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use std::hash::{Hash, Hasher};

/// The set of linearized operations, with its Zobrist hash.
#[derive(Debug, Clone)]
pub(crate) struct Bitset {
    words: Vec<u64>,
    /// Words holding completed operations; indeterminate ones follow.
    ok_words: usize,
    /// The first word of completed ops that is not all ones (kept as bits change, so
    /// encoding a set of a 500,000-op key does not scan its 8,000 words).
    full: usize,
    /// One past the last nonzero word of completed ops.
    top: usize,
    /// Operation index → bit position.
    pos: Vec<u32>,
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
    /// An empty set over operations `0..is_info.len()`; `is_info[i]` says whether operation
    /// `i` is indeterminate.
    pub fn new(is_info: &[bool]) -> Self {
        let n_ok = is_info.iter().filter(|i| !**i).count();
        let ok_words = n_ok.div_ceil(64);
        let (mut next_ok, mut next_info) = (0u32, (ok_words * 64) as u32);
        let pos: Vec<u32> = is_info
            .iter()
            .map(|&info| {
                let counter = if info { &mut next_info } else { &mut next_ok };
                *counter += 1;
                *counter - 1
            })
            .collect();
        Bitset {
            words: vec![0; (next_info as usize).div_ceil(64).max(1)],
            ok_words,
            full: 0,
            top: 0,
            pos,
            codes: (0..is_info.len() as u64).map(splitmix).collect(),
            hash: 0,
        }
    }

    /// Adds operation `i` (must be absent).
    pub fn set(&mut self, i: usize) {
        let p = self.pos[i] as usize;
        let k = p / 64;
        self.words[k] |= 1 << (p % 64);
        self.hash ^= self.codes[i];
        if k < self.ok_words {
            self.top = self.top.max(k + 1);
            while self.full < self.ok_words && self.words[self.full] == !0 {
                self.full += 1;
            }
        }
    }

    /// Removes operation `i` (must be present).
    pub fn clear(&mut self, i: usize) {
        let p = self.pos[i] as usize;
        let k = p / 64;
        self.words[k] &= !(1 << (p % 64));
        self.hash ^= self.codes[i];
        if k < self.ok_words {
            self.full = self.full.min(k);
            while self.top > 0 && self.words[self.top - 1] == 0 {
                self.top -= 1;
            }
        }
    }

    /// Whether operation `i` is in the set.
    #[cfg(test)]
    pub fn contains(&self, i: usize) -> bool {
        let p = self.pos[i] as usize;
        self.words[p / 64] & (1 << (p % 64)) != 0
    }

    /// The canonical compact form of the completed ops (see the module docs), `flag`
    /// included, into `out`: a header (offset of the first word of completed ops that is not
    /// all ones, window length, flag), then the window.
    fn encode(&self, flag: bool, out: &mut Vec<u64>) {
        let ok = &self.words[..self.ok_words];
        let (w0, w1) = (self.full, self.top.max(self.full));
        debug_assert_eq!(w0, ok.iter().position(|w| *w != !0).unwrap_or(ok.len()));
        out.clear();
        out.push(((w0 as u64) << 32) | (((w1 - w0) as u64) << 1) | flag as u64);
        out.extend_from_slice(&ok[w0..w1]);
    }
}

/// Words per chunk of the entry arena (8 MiB): chunks never move, so the arena grows
/// without a moment where an old and a new copy coexist.
const CHUNK_WORDS: usize = 1 << 20;

/// The configurations already entered.
pub(crate) struct Memo<M> {
    chunks: Vec<Vec<u64>>,
    /// Entry → (chunk << 32 | offset) of its words; the length is in the header word.
    at: Vec<u64>,
    states: Vec<M>,
    table: HashTable<(u64, u32)>,
    heap_bytes: usize,
    /// Words of indeterminate-group counts at the end of every entry.
    info_words: usize,
    /// Bits per group count: 16 or 32.
    count_bits: usize,
    /// When packed counts would take more room than one bit per indeterminate op (a key
    /// with a few of them but many kinds): the group sizes, and the counts are stored as
    /// those bits instead, each group's members in a run with its first `used` set.
    unary: Option<Vec<usize>>,
    scratch: Vec<u64>,
}

fn state_hash<M: Hash>(m: &M) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    m.hash(&mut h);
    // Fx leaves the low bits weak for small integers; mix once so the table's bucket index
    // (low bits) and control byte (high bits) both see the whole state.
    splitmix(h.finish())
}

/// Entry `i`'s words: `at[i]` says where it starts, its header how long its window is, and
/// `info_words` follow.
fn entry_of<'a>(chunks: &'a [Vec<u64>], at: &[u64], info_words: usize, i: usize) -> &'a [u64] {
    let at = at[i];
    let chunk = &chunks[(at >> 32) as usize];
    let off = (at & 0xFFFF_FFFF) as usize;
    let len = 1 + ((chunk[off] & 0xFFFF_FFFF) >> 1) as usize + info_words;
    &chunk[off..off + len]
}

/// Mixed into the hash of a flagged configuration.
const FLAG_CODE: u64 = 0x5851_F42D_4C95_7F2D;

impl<M: SequentialModel> Memo<M> {
    /// An empty memo for sets shaped like `bits`, with indeterminate ops in groups of the
    /// given sizes (see the module docs).
    pub fn new(group_sizes: &[usize]) -> Self {
        let count_bits = if group_sizes.iter().all(|&n| n < 1 << 16) {
            16
        } else {
            32
        };
        let packed = (group_sizes.len() * count_bits).div_ceil(64);
        let bits = group_sizes.iter().sum::<usize>().div_ceil(64);
        Memo {
            info_words: packed.min(bits),
            count_bits,
            unary: (bits < packed).then(|| group_sizes.to_vec()),
            chunks: Vec::new(),
            at: Vec::new(),
            states: Vec::new(),
            table: HashTable::new(),
            heap_bytes: 0,
            scratch: Vec::new(),
        }
    }

    /// Records `(bits, used, state, flag)`; false if it was already there. `bits` holds
    /// the completed ops (and, in its hash, the indeterminate ones), `used` how many of each
    /// group of indeterminate ops are linearized. The flag tells apart configurations with
    /// the same set and state from which the search may do different things (see
    /// `search.rs`: after an indeterminate op, only an op that observes it).
    pub fn insert(&mut self, bits: &Bitset, used: &[u32], state: &M, flag: bool) -> bool {
        let hash = bits.hash ^ state_hash(state) ^ if flag { FLAG_CODE } else { 0 };
        let mut scratch = std::mem::take(&mut self.scratch);
        bits.encode(flag, &mut scratch);
        if let Some(sizes) = &self.unary {
            let start = scratch.len();
            scratch.resize(start + self.info_words, 0);
            let mut run = start * 64;
            for (&n, &size) in used.iter().zip(sizes) {
                for b in run..run + n as usize {
                    scratch[b / 64] |= 1 << (b % 64);
                }
                run += size;
            }
        } else {
            let per_word = 64 / self.count_bits;
            for chunk in used.chunks(per_word) {
                let word = chunk
                    .iter()
                    .enumerate()
                    .fold(0u64, |w, (k, &n)| w | (n as u64) << (k * self.count_bits));
                scratch.push(word);
            }
        }
        debug_assert_eq!(
            scratch.len(),
            1 + ((scratch[0] & 0xFFFF_FFFF) >> 1) as usize + self.info_words
        );
        // One probe for a lookup and an insertion both (`entry`), not `find` then
        // `insert_unique`: the table is far larger than the cache on a long key.
        let index = self.states.len() as u32;
        let (chunks, at, states, words) = (&self.chunks, &self.at, &self.states, self.info_words);
        let key = &scratch[..];
        let eq = |&(h, i): &(u64, u32)| {
            h == hash
                && entry_of(chunks, at, words, i as usize) == key
                && states[i as usize] == *state
        };
        match self.table.entry(hash, eq, |&(h, _)| h) {
            Entry::Occupied(_) => {
                self.scratch = scratch;
                return false;
            }
            Entry::Vacant(slot) => {
                slot.insert((hash, index));
            }
        }
        let len = scratch.len();
        if self
            .chunks
            .last()
            .is_none_or(|c| c.len() + len > c.capacity())
        {
            self.chunks.push(Vec::with_capacity(CHUNK_WORDS.max(len)));
        }
        let chunk_no = self.chunks.len() - 1;
        let chunk = &mut self.chunks[chunk_no];
        self.at.push(((chunk_no as u64) << 32) | chunk.len() as u64);
        chunk.extend_from_slice(&scratch);
        self.scratch = scratch;
        self.states.push(state.clone());
        self.heap_bytes += state.heap_bytes();
        true
    }

    /// Entries recorded.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Bytes allocated for the memo, plus the table's, index's and states' next doubling
    /// (both buffers are live while one grows).
    pub fn bytes(&self) -> usize {
        let chunks: usize = self.chunks.iter().map(|c| c.capacity() * 8).sum();
        // hashbrown: 16-byte slots and one control byte per bucket, at most 7/8 full.
        let table = self.table.capacity() * 17 * 8 / 7;
        let index = self.at.capacity() * 8 + self.states.capacity() * std::mem::size_of::<M>();
        chunks + 2 * (table + index) + self.heap_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Cell;

    #[test]
    fn same_set_reached_in_another_order_is_a_hit() {
        let mut a = Bitset::new(&[false; 130]);
        let mut memo: Memo<Cell> = Memo::new(&[]);
        a.set(3);
        a.set(129);
        assert!(memo.insert(&a, &[], &Cell(1), false));
        let mut b = Bitset::new(&[false; 130]);
        b.set(129);
        b.set(7);
        b.clear(7);
        b.set(3);
        assert!(
            !memo.insert(&b, &[], &Cell(1), false),
            "same set, same state"
        );
        assert!(
            memo.insert(&b, &[], &Cell(2), false),
            "same set, other state"
        );
        b.clear(3);
        assert!(memo.insert(&b, &[], &Cell(1), false), "other set");
        assert_eq!(memo.len(), 3);
        assert!(b.contains(129) && !b.contains(3));
    }

    #[test]
    fn windows_of_long_prefixes_group_counts_and_flags_tell_configurations_apart() {
        // 300 completed ops, then 5 indeterminate ones at op indices 300..305, in two
        // groups: {300, 301, 302} and {303, 304}.
        let mut kinds = vec![false; 300];
        kinds.extend([true; 5]);
        let mut a = Bitset::new(&kinds);
        let mut memo: Memo<Cell> = Memo::new(&[3, 2]);
        for i in 0..200 {
            a.set(i);
        }
        a.set(250);
        a.set(300);
        assert!(memo.insert(&a, &[1, 0], &Cell(0), false));
        assert!(
            memo.insert(&a, &[1, 0], &Cell(0), true),
            "the flag is part of the key"
        );
        assert!(!memo.insert(&a, &[1, 0], &Cell(0), true));
        let mut b = a.clone();
        b.clear(300);
        b.set(303);
        assert!(
            memo.insert(&b, &[0, 1], &Cell(0), false),
            "another indeterminate op"
        );
        b.clear(250);
        b.set(249);
        assert!(
            memo.insert(&b, &[0, 1], &Cell(0), false),
            "another op in the window"
        );
        b.clear(249);
        b.set(250);
        assert!(
            !memo.insert(&b, &[0, 1], &Cell(0), false),
            "back to a recorded set"
        );
        let mut full = Bitset::new(&kinds);
        for i in 0..300 {
            full.set(i);
        }
        assert!(
            memo.insert(&full, &[0, 0], &Cell(0), false),
            "every completed op"
        );
        assert!(!memo.insert(&full, &[0, 0], &Cell(0), false));
        assert_eq!(memo.len(), 5);
        assert!(memo.bytes() >= 5 * 8, "counted as allocated");
    }

    #[test]
    fn group_counts_take_16_bits_each_unless_a_group_is_huge() {
        let bits = Bitset::new(&[false; 10]);
        let mut small: Memo<Cell> = Memo::new(&[100; 30]);
        assert_eq!(small.info_words, 8, "30 counts of 16 bits");
        assert!(small.insert(&bits, &[1; 30], &Cell(0), false));
        let mut counts = [1; 30];
        counts[29] = 2;
        assert!(
            small.insert(&bits, &counts, &Cell(0), false),
            "the last count"
        );
        let mut few: Memo<Cell> = Memo::new(&[1; 30]);
        assert_eq!(few.info_words, 1, "30 ops in 30 groups: one bit each");
        assert!(few.insert(&bits, &counts.map(|n| n.min(1)), &Cell(0), false));
        let mut other = [1; 30];
        other[29] = 0;
        assert!(few.insert(&bits, &other, &Cell(0), false));
        assert!(!few.insert(&bits, &other, &Cell(0), false));
        let mut big: Memo<Cell> = Memo::new(&[70_000, 1, 1]);
        assert_eq!(big.info_words, 2, "3 counts of 32 bits");
        assert!(big.insert(&bits, &[65_536, 0, 0], &Cell(0), false));
        assert!(big.insert(&bits, &[0, 0, 1], &Cell(0), false));
        assert!(!big.insert(&bits, &[65_536, 0, 0], &Cell(0), false));
    }
}
