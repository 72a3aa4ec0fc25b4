//! The slow reference: stateright's `LinearizabilityTester` over a plain JSON model of the
//! same semantics, written without interning or pruning. Tests compare [`crate::check`] with
//! it on small random histories; it has no partitioning and no memoization, so keep it to
//! the sizes REFERENCE.md §2 gives (N ≤ 20 at 10 processes, N ≤ 50 at 3).

use crate::{CheckError, ModelKind};
use histories::{History, Key, Status, F};
use serde_json::Value;
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use std::collections::BTreeMap;

/// Every key's value as JSON; a key not in the map holds the initial value.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonKv {
    initial: Value,
    map: BTreeMap<Option<Key>, Value>,
}

/// An operation on [`JsonKv`].
#[derive(Debug, Clone, PartialEq)]
pub struct JsonOp {
    /// The key.
    pub key: Option<Key>,
    /// The function.
    pub f: F,
    /// The invocation's value.
    pub input: Value,
}

/// What [`JsonKv`] answers.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonRet {
    /// A read's value.
    Value(Value),
    /// A write, a swapping cas or an append.
    Done,
    /// A cas whose compare failed.
    CompareFailed,
    /// An append to a value that is not a string.
    NotAString,
}

impl JsonKv {
    /// Every key starts at `initial` (`null`: absent).
    pub fn new(initial: Value) -> Self {
        JsonKv {
            initial,
            map: BTreeMap::new(),
        }
    }
}

impl SequentialSpec for JsonKv {
    type Op = JsonOp;
    type Ret = JsonRet;

    fn invoke(&mut self, op: &JsonOp) -> JsonRet {
        let current = self
            .map
            .get(&op.key)
            .cloned()
            .unwrap_or_else(|| self.initial.clone());
        let (ret, new) = match op.f {
            F::Read => (JsonRet::Value(current), None),
            F::Write => (JsonRet::Done, Some(op.input.clone())),
            F::Cas if current == op.input[0] => (JsonRet::Done, Some(op.input[1].clone())),
            F::Cas => (JsonRet::CompareFailed, None),
            F::Append => match (&current, op.input.as_str()) {
                (Value::Null, Some(s)) => (JsonRet::Done, Some(Value::String(s.to_string()))),
                (Value::String(old), Some(s)) => {
                    (JsonRet::Done, Some(Value::String(format!("{old}{s}"))))
                }
                _ => (JsonRet::NotAString, None),
            },
            F::Other(_) => (JsonRet::NotAString, None),
        };
        if let Some(v) = new {
            self.map.insert(op.key.clone(), v);
        }
        ret
    }
}

/// Whether stateright's tester finds `history` linearizable under `model` from `initial`.
/// Failed operations are left out; indeterminate ones stay in flight forever.
pub fn stateright_linearizable(
    history: &History,
    model: ModelKind,
    initial: &Value,
) -> Result<bool, CheckError> {
    crate::run::validate(history, model)?;
    // (event index, op index, is the invocation)
    let mut points: Vec<(usize, usize, bool)> = Vec::new();
    for op in &history.operations {
        match op.status {
            Status::Fail => {}
            Status::Info => points.push((op.invoke_index, op.id, true)),
            Status::Ok => {
                points.push((op.invoke_index, op.id, true));
                let end = op.complete_index.unwrap_or(usize::MAX);
                points.push((end, op.id, false));
            }
        }
    }
    points.sort_unstable();
    let mut tester = LinearizabilityTester::new(JsonKv::new(initial.clone()));
    for (_, id, invoke) in points {
        let op = &history.operations[id];
        let result = if invoke {
            tester.on_invoke(
                op.process,
                JsonOp {
                    key: op.key.clone(),
                    f: op.f.clone(),
                    input: op.input.clone(),
                },
            )
        } else {
            let ret = match op.f {
                F::Read => JsonRet::Value(op.output.clone().unwrap_or(Value::Null)),
                _ => JsonRet::Done,
            };
            tester.on_return(op.process, ret)
        };
        if result.is_err() {
            // A pairing the history reader already rejects; treat as not linearizable.
            return Ok(false);
        }
    }
    Ok(tester.is_consistent())
}
