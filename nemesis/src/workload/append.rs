//! The append workload: clients append unique elements to keys and read whole values.
//!
//! An element is a decimal number followed by a comma (`"17,"`), unique across the run, so a
//! value is a comma-terminated list and every element names the one append that wrote it.

use super::{Generator, Keys};
use crate::client::Op;
use rand::rngs::StdRng;
use rand::Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Read 50 %, append 50 % over keys chosen by [`Keys`].
pub struct Append {
    keys: Keys,
    next: Arc<AtomicU64>,
}

impl Append {
    /// A generator over `keys`; `next` is shared by every worker so elements are unique.
    pub fn new(keys: Keys, next: Arc<AtomicU64>) -> Append {
        Append { keys, next }
    }
}

impl Generator for Append {
    fn next(&mut self, rng: &mut StdRng) -> (String, Op) {
        let key = self.keys.pick(rng).to_string();
        if rng.gen_bool(0.5) {
            (key, Op::Read)
        } else {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            (key, Op::Append(element(n)))
        }
    }
}

/// The element for number `n`.
pub fn element(n: u64) -> String {
    format!("{n},")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn elements_are_unique_across_generators() {
        let next = Arc::new(AtomicU64::new(0));
        let mut a = Append::new(Keys::uniform(1), next.clone());
        let mut b = Append::new(Keys::uniform(1), next);
        let mut rng = StdRng::seed_from_u64(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            for g in [&mut a, &mut b] {
                if let (_, Op::Append(e)) = g.next(&mut rng) {
                    assert!(seen.insert(e.clone()), "{e} twice");
                }
            }
        }
        assert!(!seen.is_empty());
    }
}
