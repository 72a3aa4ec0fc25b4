//! The register workload: reads, writes and compare-and-sets over a few keys, with values
//! from a small domain so that cas succeeds often enough to matter.

use super::{Generator, Keys};
use crate::client::Op;
use rand::rngs::StdRng;
use rand::Rng;

/// Values are `"0"` .. `"4"` (Jepsen's cas-register uses the same small domain).
const VALUES: u32 = 5;

/// Read 50 %, write 25 %, cas 25 % over keys chosen by [`Keys`].
pub struct Register {
    keys: Keys,
}

impl Register {
    /// A generator over `keys`.
    pub fn new(keys: Keys) -> Register {
        Register { keys }
    }
}

impl Generator for Register {
    fn next(&mut self, rng: &mut StdRng) -> (String, Op) {
        let key = self.keys.pick(rng).to_string();
        let v = |rng: &mut StdRng| rng.gen_range(0..VALUES).to_string();
        let op = match rng.gen_range(0..4) {
            0 | 1 => Op::Read,
            2 => Op::Write(v(rng)),
            _ => Op::Cas(v(rng), v(rng)),
        };
        (key, op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mixes_all_three_operations_over_all_keys() {
        let mut g = Register::new(Keys::uniform(3));
        let mut rng = StdRng::seed_from_u64(1);
        let ops: Vec<(String, Op)> = (0..400).map(|_| g.next(&mut rng)).collect();
        assert!(ops.iter().any(|(_, o)| *o == Op::Read));
        assert!(ops.iter().any(|(_, o)| matches!(o, Op::Write(_))));
        assert!(ops.iter().any(|(_, o)| matches!(o, Op::Cas(..))));
        for k in ["k0", "k1", "k2"] {
            assert!(ops.iter().any(|(key, _)| key == k));
        }
    }
}
