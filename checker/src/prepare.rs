//! From a history's operations on one key to the compact input of the search: values
//! interned, failed ops and indeterminate reads dropped, unobservable indeterminate writes
//! pruned.
//!
//! # What is dropped, and why each drop keeps the verdict
//!
//! - `fail`: the operation definitely did not happen (REFERENCE.md §1); it constrains nothing.
//! - An indeterminate (`info` or never completed) **read**: a read changes no state and its
//!   answer is unknown, so it can be linearized anywhere or nowhere without affecting any other
//!   operation.
//! - An indeterminate **write of v** (or **cas to v**) when no completed read returns v, no cas
//!   expects v, and (for append keys) no observed string contains v. Take any linearization
//!   that includes it. Between it and the next write, the state is v (or v with appends after
//!   it): an `ok` read there would return something observing v, an `ok` cas there would
//!   expect it; so the only operations in that window are indeterminate cas ops that fail
//!   their compare (kept cas ops' expected values count as observed, so none of them expects
//!   v) and appends. Remove the write and move those indeterminate cas ops to the very end
//!   (an indeterminate op may take effect at any time after its invocation, the end
//!   included); every `ok` operation still sees the state it saw before, so the result is a
//!   linearization without the write. Dropping it loses nothing, and the search no longer
//!   tries it at every position after its invocation. Dropping one op can make a value
//!   unobserved, so this runs to a fixpoint. On append keys the argument needs every append
//!   to be legal wherever it lands, so it is applied only when the key holds nothing but
//!   strings and `null`.
//! - An indeterminate **append** of a string no observed string contains: same argument.

use crate::model::{Cell, CellOp, CellRet, HStr, SequentialModel, Text, TextOp, TextRet, ValueId};
use histories::{Operation, Status, F};
use rustc_hash::FxHashMap;
use serde_json::Value;

/// One operation as the search sees it.
#[derive(Debug, Clone)]
pub(crate) struct KeyOp<M: SequentialModel> {
    /// Index in `History::operations`.
    pub id: usize,
    /// The encoded operation.
    pub op: M::Op,
    /// The answer it must give; `None` for an indeterminate op (any answer, or never).
    pub ret: Option<M::Ret>,
    /// Event index of the invocation.
    pub call: usize,
    /// Event index of the completion (`usize::MAX` for indeterminate ops).
    pub ret_at: usize,
}

/// The search's input for one key.
#[derive(Debug, Clone)]
pub(crate) struct KeyHistory<M: SequentialModel> {
    /// The initial state.
    pub init: M,
    /// Kept operations, in invocation order.
    pub ops: Vec<KeyOp<M>>,
    /// The value table: `ValueId` → JSON.
    pub values: Vec<Value>,
}

/// A JSON value as a hash key (serde_json's `Value` is not `Hash`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum VKey<'a> {
    Null,
    Bool(bool),
    Str(&'a str),
    /// Numbers, arrays and objects by their canonical JSON text (objects are sorted maps).
    Json(String),
}

fn vkey(v: &Value) -> VKey<'_> {
    match v {
        Value::Null => VKey::Null,
        Value::Bool(b) => VKey::Bool(*b),
        Value::String(s) => VKey::Str(s),
        other => VKey::Json(other.to_string()),
    }
}

/// Interns JSON values to small ids, per key.
#[derive(Default)]
struct Interner<'a> {
    ids: FxHashMap<VKey<'a>, ValueId>,
    values: Vec<Value>,
}

impl<'a> Interner<'a> {
    fn id(&mut self, v: &'a Value) -> ValueId {
        let next = self.values.len() as ValueId;
        let id = *self.ids.entry(vkey(v)).or_insert(next);
        if id == next {
            self.values.push(v.clone());
        }
        id
    }
}

fn ok_output(op: &Operation) -> &Value {
    static NULL: Value = Value::Null;
    op.output.as_ref().unwrap_or(&NULL)
}

/// The cas pair `[expected, new]`; validated before, so a malformed one cannot occur here.
fn cas_pair(op: &Operation) -> (&Value, &Value) {
    static NULL: Value = Value::Null;
    match op.input.as_array().map(Vec::as_slice) {
        Some([e, n]) => (e, n),
        _ => (&NULL, &NULL),
    }
}

fn ret_at(op: &Operation) -> usize {
    match op.status {
        Status::Ok => op.complete_index.unwrap_or(usize::MAX),
        _ => usize::MAX,
    }
}

impl<M: SequentialModel> KeyOp<M> {
    /// The search's op for the recorded operation `o`, encoded as `op` with answer `ret`.
    fn of(o: &Operation, op: M::Op, ret: Option<M::Ret>) -> Self {
        KeyOp {
            id: o.id,
            op,
            ret,
            call: o.invoke_index,
            ret_at: ret_at(o),
        }
    }
}

/// Operations the search needs at all: not failed, and not indeterminate reads.
fn kept<'h>(ops: &'h [&'h Operation]) -> impl Iterator<Item = &'h Operation> + 'h {
    ops.iter()
        .copied()
        .filter(|o| o.status != Status::Fail && !(o.status == Status::Info && o.f == F::Read))
}

/// Encodes a key's operations for the [`Cell`] model (no `append`).
pub(crate) fn cell_history(ops: &[&Operation], initial: &Value) -> KeyHistory<Cell> {
    let mut interner = Interner::default();
    let init = Cell(interner.id(initial));
    let mut out: Vec<KeyOp<Cell>> = Vec::new();
    for o in kept(ops) {
        let ok = o.status == Status::Ok;
        let (op, ret) = match o.f {
            F::Read => (CellOp::Read, CellRet::Value(interner.id(ok_output(o)))),
            F::Write => (CellOp::Write(interner.id(&o.input)), CellRet::Written),
            _ => {
                let (e, n) = cas_pair(o);
                (
                    CellOp::Cas(interner.id(e), interner.id(n)),
                    CellRet::Swapped,
                )
            }
        };
        out.push(KeyOp::of(o, op, ok.then_some(ret)));
    }
    prune_cells(&mut out, interner.values.len());
    KeyHistory {
        init,
        ops: out,
        values: interner.values,
    }
}

/// Drops indeterminate writes / cas whose new value nothing observes, to a fixpoint.
///
/// Linear, with a worklist: each value counts the kept ops observing it (`ok` reads of it,
/// cas ops expecting it); a value whose count is zero has its indeterminate producers
/// dropped, and a dropped cas no longer observes its expected value, which may bring that
/// count to zero in turn. Passes over the whole key until nothing changes would be
/// quadratic on a chain of indeterminate cas ops (`0→1`, `1→2`, …, each observed only by
/// the next), one link per pass, and no time limit would interrupt them.
fn prune_cells(ops: &mut Vec<KeyOp<Cell>>, n_values: usize) {
    let mut observers = vec![0usize; n_values];
    let mut producers: Vec<Vec<usize>> = vec![Vec::new(); n_values];
    for (i, o) in ops.iter().enumerate() {
        match (&o.op, &o.ret) {
            (CellOp::Read, Some(CellRet::Value(v))) => observers[*v as usize] += 1,
            (CellOp::Cas(e, _), _) => observers[*e as usize] += 1,
            _ => {}
        }
        if let (None, CellOp::Write(v) | CellOp::Cas(_, v)) = (&o.ret, &o.op) {
            producers[*v as usize].push(i);
        }
    }
    let mut dropped = vec![false; ops.len()];
    let mut unobserved: Vec<usize> = (0..n_values).filter(|&v| observers[v] == 0).collect();
    while let Some(v) = unobserved.pop() {
        for &i in &std::mem::take(&mut producers[v]) {
            dropped[i] = true;
            if let CellOp::Cas(e, _) = ops[i].op {
                observers[e as usize] -= 1;
                if observers[e as usize] == 0 {
                    unobserved.push(e as usize);
                }
            }
        }
    }
    let mut k = 0;
    ops.retain(|_| {
        k += 1;
        !dropped[k - 1]
    });
}

fn to_text<'a>(v: &'a Value, interner: &mut Interner<'a>) -> Text {
    match v {
        Value::Null => Text::Absent,
        Value::String(s) => Text::Str(HStr::new(s)),
        other => Text::Other(interner.id(other)),
    }
}

/// Encodes a key's operations for the [`Text`] model (a key with `append`).
pub(crate) fn text_history(ops: &[&Operation], initial: &Value) -> KeyHistory<Text> {
    let mut interner = Interner::default();
    let init = to_text(initial, &mut interner);
    let mut out: Vec<KeyOp<Text>> = Vec::new();
    for o in kept(ops) {
        let ok = o.status == Status::Ok;
        let (op, ret) = match o.f {
            F::Read => (
                TextOp::Read,
                TextRet::Value(to_text(ok_output(o), &mut interner)),
            ),
            F::Write => (
                TextOp::Write(to_text(&o.input, &mut interner)),
                TextRet::Done,
            ),
            F::Append => {
                let s = o.input.as_str().unwrap_or_default();
                (TextOp::Append(HStr::new(s)), TextRet::Done)
            }
            _ => {
                let (e, n) = cas_pair(o);
                let op = TextOp::Cas(to_text(e, &mut interner), to_text(n, &mut interner));
                (op, TextRet::Swapped)
            }
        };
        out.push(KeyOp::of(o, op, ok.then_some(ret)));
    }
    let only_strings = interner.values.is_empty() && !matches!(init, Text::Other(_));
    if only_strings {
        prune_texts(&mut out);
    }
    KeyHistory {
        init,
        ops: out,
        values: interner.values,
    }
}

/// Drops indeterminate writes / cas / appends whose string no observed string contains.
///
/// Near-linear on valid histories: the reads of an append key are prefixes of each other,
/// so the observed strings are indexed as the longest one plus those that are not a prefix
/// of it (none, unless the history is already broken); each dropped candidate is searched
/// in that handful of strings, not in every read.
fn prune_texts(ops: &mut Vec<KeyOp<Text>>) {
    loop {
        let mut observed: Vec<&HStr> = Vec::new();
        for o in ops.iter() {
            match (&o.op, &o.ret) {
                (TextOp::Read, Some(TextRet::Value(Text::Str(s))))
                | (TextOp::Cas(Text::Str(s), _), _) => observed.push(s),
                _ => {}
            }
        }
        let longest = observed.iter().map(|s| s.as_str()).max_by_key(|s| s.len());
        let longest = longest.unwrap_or_default();
        let mut index: Vec<String> = vec![longest.to_string()];
        let mut others: Vec<&str> = observed
            .iter()
            .map(|s| s.as_str())
            .filter(|s| !longest.starts_with(s))
            .collect();
        others.sort_unstable();
        others.dedup();
        index.extend(others.into_iter().map(str::to_string));
        let unseen =
            |s: &HStr| !s.as_str().is_empty() && !index.iter().any(|o| o.contains(s.as_str()));
        let unobserved = |t: &Text| matches!(t, Text::Str(s) if unseen(s));
        let before = ops.len();
        ops.retain(|o| match (o.ret.is_none(), &o.op) {
            (true, TextOp::Write(v)) | (true, TextOp::Cas(_, v)) => !unobserved(v),
            (true, TextOp::Append(s)) => !(s.as_str().is_empty() || unseen(s)),
            _ => true,
        });
        if ops.len() == before {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use histories::{Event, EventType, History};
    use serde_json::json;

    fn history(events: Vec<(u64, EventType, F, Value)>) -> History {
        let evs = events
            .into_iter()
            .map(|(p, t, f, v)| Event::client(p, t, f, None, v))
            .collect();
        History::from_events(evs).unwrap()
    }

    #[test]
    fn drops_fails_info_reads_and_unobserved_info_writes() {
        use EventType::*;
        let h = history(vec![
            (0, Invoke, F::Write, json!(1)),
            (0, Info, F::Write, json!(1)), // unobserved: nobody reads 1
            (1, Invoke, F::Write, json!(2)),
            (1, Info, F::Write, json!(2)), // observed by the read below
            (2, Invoke, F::Read, Value::Null),
            (2, Info, F::Read, Value::Null), // info read: dropped
            (3, Invoke, F::Cas, json!([2, 3])),
            (3, Fail, F::Cas, json!([2, 3])), // fail: dropped
            (4, Invoke, F::Read, Value::Null),
            (4, Ok, F::Read, json!(2)),
        ]);
        let ops: Vec<&Operation> = h.operations.iter().collect();
        let k = cell_history(&ops, &Value::Null);
        let ids: Vec<usize> = k.ops.iter().map(|o| o.id).collect();
        assert_eq!(ids, [1, 4]);
    }

    #[test]
    fn a_chain_of_info_cas_nobody_ends_in_is_dropped_link_by_link() {
        use EventType::*;
        // info cas 0→1, 1→2, 2→3 (each observed only by the next), an ok read of 1 that
        // keeps 0→1 alive... and nobody expecting 3: 2→3 goes, then 1→2, but not 0→1.
        let mut evs = Vec::new();
        for (p, (e, n)) in [(0, 1), (1, 2), (2, 3)].into_iter().enumerate() {
            evs.push((p as u64, Invoke, F::Cas, json!([e, n])));
            evs.push((p as u64, Info, F::Cas, json!([e, n])));
        }
        evs.push((7, Invoke, F::Read, Value::Null));
        evs.push((7, Ok, F::Read, json!(1)));
        let h = history(evs);
        let ops: Vec<&Operation> = h.operations.iter().collect();
        let k = cell_history(&ops, &json!(0));
        let ids: Vec<usize> = k.ops.iter().map(|o| o.id).collect();
        assert_eq!(ids, [0, 3]);
        // A long chain is dropped whole, in one pass (the old passes were quadratic).
        let mut evs = Vec::new();
        for i in 0..20_000u64 {
            evs.push((i, Invoke, F::Cas, json!([i, i + 1])));
            evs.push((i, Info, F::Cas, json!([i, i + 1])));
        }
        let h = history(evs);
        let ops: Vec<&Operation> = h.operations.iter().collect();
        assert!(cell_history(&ops, &json!(0)).ops.is_empty());
    }

    #[test]
    fn keeps_an_info_write_that_a_later_append_read_observes() {
        use EventType::*;
        let h = history(vec![
            (0, Invoke, F::Write, json!("ab")),
            (0, Info, F::Write, json!("ab")),
            (1, Invoke, F::Append, json!("zz")),
            (1, Info, F::Append, json!("zz")), // never observed: pruned
            (2, Invoke, F::Append, json!("c")),
            (2, Ok, F::Append, json!("c")),
            (3, Invoke, F::Read, Value::Null),
            (3, Ok, F::Read, json!("abc")),
        ]);
        let ops: Vec<&Operation> = h.operations.iter().collect();
        let k = text_history(&ops, &Value::Null);
        let ids: Vec<usize> = k.ops.iter().map(|o| o.id).collect();
        assert_eq!(ids, [0, 2, 3]);
    }
}
