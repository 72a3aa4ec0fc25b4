//! The clients' object: a register with read, write and compare-and-set, as a stateright
//! `SequentialSpec` for its `LinearizabilityTester`, and the client histories it records.
//!
//! Written apart from the node's state machine on purpose (house style: the implementation
//! is never checked against itself); both are a few lines, and `apply` is the one rule.

use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use std::sync::Arc;

/// A register value; 0 is the initial value.
pub type Value = u8;

/// A client operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// Set the value.
    Write(Value),
    /// Read the value.
    Read,
    /// Set to `to` if the value is `from`.
    Cas {
        /// The expected value.
        from: Value,
        /// The new value.
        to: Value,
    },
}

/// An operation's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ret {
    /// The write happened.
    WriteOk,
    /// The value read.
    ReadOk(Value),
    /// The cas matched and set the value.
    CasOk,
    /// The cas did not match; nothing changed.
    CasFail,
}

/// The sequential rule: what `op` does to `value` and returns.
pub fn apply(value: &mut Value, op: Op) -> Ret {
    match op {
        Op::Write(v) => {
            *value = v;
            Ret::WriteOk
        }
        Op::Read => Ret::ReadOk(*value),
        Op::Cas { from, to } if *value == from => {
            *value = to;
            Ret::CasOk
        }
        Op::Cas { .. } => Ret::CasFail,
    }
}

/// The register as a stateright sequential specification.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CasRegister(pub Value);

impl SequentialSpec for CasRegister {
    type Op = Op;
    type Ret = Ret;
    fn invoke(&mut self, op: &Op) -> Ret {
        apply(&mut self.0, *op)
    }
}

/// The clients' operations: stateright's tester plus, per client, how many operations have
/// returned (to tell a fresh reply from a duplicate, exactly as the client does).
///
/// Shared (`Arc`): every state of the model carries a history and it changes only when a
/// client sends or hears back, so the states of a search share a handful of them instead of
/// each holding its own copy of the tester's maps.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegisterHistory(Arc<Tape>);

/// The contents of a [`RegisterHistory`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tape {
    /// Invocations and returns, per client.
    pub tester: LinearizabilityTester<u8, CasRegister>,
    /// Operations returned, per client.
    pub returned: Vec<u8>,
    /// Per client, its operations and their results so far (for explanations; the same
    /// facts as the tester's, so it adds no state).
    pub ops: Vec<Vec<(Op, Option<Ret>)>>,
}

impl RegisterHistory {
    /// An empty history for `clients` clients.
    pub fn new(clients: usize) -> RegisterHistory {
        RegisterHistory(Arc::new(Tape {
            tester: LinearizabilityTester::new(CasRegister::default()),
            returned: vec![0; clients],
            ops: vec![Vec::new(); clients],
        }))
    }

    /// The operations, one client per line part: `c1: Write(1) -> WriteOk, Read -> ReadOk(0)`.
    pub fn describe(&self) -> String {
        let clients: Vec<String> = self
            .0
            .ops
            .iter()
            .enumerate()
            .map(|(k, ops)| {
                let each: Vec<String> = ops
                    .iter()
                    .map(|(op, ret)| match ret {
                        Some(r) => format!("{op:?} -> {r:?}"),
                        None => format!("{op:?} -> (pending)"),
                    })
                    .collect();
                format!("c{}: {}", k + 1, each.join(", "))
            })
            .collect();
        clients.join("; ")
    }

    /// Whether some order of the operations explains every result.
    pub fn is_linearizable(&self) -> bool {
        self.0.tester.serialized_history().is_some()
    }

    /// Client `client` invokes `op`.
    pub fn invoke(&self, client: usize, op: Op) -> RegisterHistory {
        let mut h = (*self.0).clone();
        // An invocation while one is in flight would be a bug of the model's client.
        h.tester
            .on_invoke(client as u8, op)
            .expect("a client has one operation in flight at a time");
        h.ops[client].push((op, None));
        RegisterHistory(Arc::new(h))
    }

    /// Client `client` got `ret` for its operation `seq`: the return, if it is the one the
    /// client waits for (not a duplicate or a late reply).
    pub fn ret(&self, client: usize, seq: u8, ret: Ret) -> Option<RegisterHistory> {
        if self.0.returned.get(client) != Some(&seq) {
            return None;
        }
        let mut h = (*self.0).clone();
        h.returned[client] += 1;
        h.tester
            .on_return(client as u8, ret)
            .expect("a reply matches the operation in flight");
        if let Some(last) = h.ops[client].last_mut() {
            last.1 = Some(ret);
        }
        Some(RegisterHistory(Arc::new(h)))
    }
}

/// The script of client `k` of `clients`, `ops` operations: a write of its own value, a
/// read, a cas from its value to another, a read, and so on. Distinct values per client
/// make stale reads visible.
pub fn script(k: usize, ops: usize) -> Vec<Op> {
    let mine = (k as Value) + 1;
    (0..ops)
        .map(|j| match j % 4 {
            0 => Op::Write(mine),
            1 | 3 => Op::Read,
            _ => Op::Cas {
                from: mine,
                to: mine + 10,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_after_a_write_must_see_it() {
        let mut t = LinearizabilityTester::new(CasRegister::default());
        t.on_invret(0u8, Op::Write(1), Ret::WriteOk).unwrap();
        t.on_invret(1u8, Op::Read, Ret::ReadOk(0)).unwrap();
        assert!(t.serialized_history().is_none());
        let mut ok = LinearizabilityTester::new(CasRegister::default());
        ok.on_invoke(0u8, Op::Write(1)).unwrap();
        ok.on_invret(1u8, Op::Read, Ret::ReadOk(0)).unwrap();
        ok.on_invret(1u8, Op::Cas { from: 1, to: 2 }, Ret::CasOk)
            .unwrap();
        assert!(ok.serialized_history().is_some());
    }

    #[test]
    fn scripts_mix_writes_reads_and_cas() {
        assert_eq!(
            script(1, 3),
            vec![Op::Write(2), Op::Read, Op::Cas { from: 2, to: 12 }]
        );
    }
}
