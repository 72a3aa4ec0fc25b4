//! Knossos' multi-register: a transaction (`f` = `txn`) reads and writes several named
//! registers atomically, `value` = `[["read", "x", v], ["write", "y", 2], ...]` (a read's `v`
//! is `null` in the invocation and the value read in the `ok` completion; `null` there means
//! unknown, as in Knossos). A transaction spans registers, so the history is not split by key.

use crate::model::{SequentialModel, ValueId};
use crate::prepare::{KeyHistory, KeyOp};
use histories::{Operation, Status};
use serde_json::Value;
use stateright::semantics::SequentialSpec;
use std::sync::Arc;

/// Every register's interned value, indexed by register number.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Registers(pub Box<[ValueId]>);

/// One step of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Micro {
    /// Read register `.0`, which must hold `.1` (`None`: any value).
    Read(u16, Option<ValueId>),
    /// Write `.1` to register `.0`.
    Write(u16, ValueId),
}

/// A transaction: its steps, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Txn(pub Arc<[Micro]>);

/// What a transaction answers: whether every read saw its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnRet {
    /// Every read matched; writes applied.
    Ok,
    /// Some read saw another value.
    Mismatch,
}

impl SequentialSpec for Registers {
    type Op = Txn;
    type Ret = TxnRet;

    fn invoke(&mut self, op: &Txn) -> TxnRet {
        let mut next = self.0.clone();
        for m in op.0.iter() {
            match *m {
                Micro::Read(r, Some(v)) if next[r as usize] != v => return TxnRet::Mismatch,
                Micro::Read(..) => {}
                Micro::Write(r, v) => next[r as usize] = v,
            }
        }
        self.0 = next;
        TxnRet::Ok
    }
}

impl SequentialModel for Registers {
    fn is_read_only(op: &Txn) -> bool {
        op.0.iter().all(|m| matches!(m, Micro::Read(..)))
    }

    fn heap_bytes(&self) -> usize {
        self.0.len() * 4
    }

    fn to_json(&self, values: &[Value]) -> Value {
        // Register names are kept after the values, see `txn_history`.
        let names = &values[values.len() - self.0.len()..];
        let map = names
            .iter()
            .zip(self.0.iter())
            .map(|(n, &v)| {
                (
                    n.as_str().unwrap_or_default().to_string(),
                    values[v as usize].clone(),
                )
            })
            .collect();
        Value::Object(map)
    }
}

/// The steps of a txn value, or `None` if it is not `[[f, register, value], ...]`.
pub(crate) fn micro_ops(v: &Value) -> Option<Vec<(&str, &str, &Value)>> {
    v.as_array()?
        .iter()
        .map(|m| match m.as_array().map(Vec::as_slice) {
            Some([f, r, v]) => match f.as_str()? {
                f @ ("read" | "write") => Some((f, r.as_str()?, v)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Encodes a history of transactions (validated: every op is a well-formed txn).
pub(crate) fn txn_history(ops: &[&Operation], initial: &Value) -> KeyHistory<Registers> {
    let mut names: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let id = |values: &mut Vec<Value>, v: &Value| -> ValueId {
        match values.iter().position(|x| x == v) {
            Some(i) => i as ValueId,
            None => {
                values.push(v.clone());
                (values.len() - 1) as ValueId
            }
        }
    };
    let mut reg = |r: &str| -> u16 {
        match names.iter().position(|n| n == r) {
            Some(i) => i as u16,
            None => {
                names.push(r.to_string());
                (names.len() - 1) as u16
            }
        }
    };
    let mut out = Vec::new();
    for o in ops.iter().filter(|o| o.status != Status::Fail) {
        let ok = o.status == Status::Ok;
        // An ok txn's completion carries the values read; otherwise the invocation's.
        let source = if ok {
            o.output.as_ref().unwrap_or(&o.input)
        } else {
            &o.input
        };
        let steps = micro_ops(source)
            .or_else(|| micro_ops(&o.input))
            .unwrap_or_default();
        let micros: Vec<Micro> = steps
            .into_iter()
            .map(|(f, r, v)| match f {
                "read" if v.is_null() || !ok => Micro::Read(reg(r), None),
                "read" => Micro::Read(reg(r), Some(id(&mut values, v))),
                _ => Micro::Write(reg(r), id(&mut values, v)),
            })
            .collect();
        out.push(KeyOp {
            id: o.id,
            op: Txn(micros.into()),
            ret: ok.then_some(TxnRet::Ok),
            call: o.invoke_index,
            ret_at: if ok {
                o.complete_index.unwrap_or(usize::MAX)
            } else {
                usize::MAX
            },
        });
    }
    let init: Box<[ValueId]> = names
        .iter()
        .map(|n| {
            let v = match initial {
                Value::Object(m) => m.get(n).cloned().unwrap_or(Value::Null),
                other => other.clone(),
            };
            id(&mut values, &v)
        })
        .collect();
    values.extend(names.iter().map(|n| Value::String(n.clone())));
    KeyHistory {
        init: Registers(init),
        ops: out,
        values,
    }
}
