//! Sequential specifications the search checks histories against, built on stateright's
//! [`SequentialSpec`].
//!
//! The search memoizes (linearized set, model state) pairs, so a model must be `Clone + Hash +
//! Eq`; stateright's trait has none of these bounds, hence [`SequentialModel`]. The models
//! here work on a compact encoding: every JSON value a key ever sees is interned to a
//! [`ValueId`] (a `u32`) per key, so a register's state is four bytes and hashing it is one
//! multiply. Only keys that use `append` need real strings as state ([`Text`]).
//!
//! The models are written from REFERENCE.md §1 and the history format, not from the cluster's
//! state machine, so the cluster is never checked against itself.

use serde_json::Value;
use stateright::semantics::SequentialSpec;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

/// An interned JSON value: an index into the key's value table.
pub type ValueId = u32;

/// A sequential specification the linearizability search can memoize.
///
/// `invoke` applies an operation and returns what a sequential object would answer;
/// `is_valid_step(op, ret)` says whether `ret` is a legal answer (and applies `op`).
/// Indeterminate operations (`info`) are applied with `invoke`, their answer ignored.
pub trait SequentialModel:
    SequentialSpec<Op: Clone + Debug + Eq + Hash + Send + Sync, Ret: Clone + Debug + Send + Sync>
    + Clone
    + Hash
    + Eq
    + Debug
    + Send
{
    /// True if `op`, whenever it is legal, leaves the state unchanged (a read). The search
    /// linearizes such an operation as soon as it is legal, without branching: see
    /// `search.rs` for why that is sound.
    fn is_read_only(op: &Self::Op) -> bool;

    /// True if `op`'s effect and answer do not depend on the state (a plain write): the
    /// search never places one right after an indeterminate op, which it would overwrite
    /// unseen (see `search.rs`). Default: false (no pruning).
    fn is_blind(_op: &Self::Op) -> bool {
        false
    }

    /// True if `op` can only extend the state (an append): see [`SequentialModel::may_grow_into`].
    fn grows_only(_op: &Self::Op) -> bool {
        false
    }

    /// Whether a read answering `ret` can become legal from this state through operations
    /// that only grow it ([`SequentialModel::grows_only`]). The search abandons a
    /// configuration where a pending read fails this while no other kind of write can
    /// still come before the read. Default: always (no pruning).
    fn may_grow_into(&self, _ret: &Self::Ret) -> bool {
        true
    }

    /// Heap bytes owned by this state beyond `size_of::<Self>()`, for the memory budget.
    fn heap_bytes(&self) -> usize {
        0
    }

    /// The state as JSON, for counterexamples; `values` is the key's value table.
    fn to_json(&self, values: &[Value]) -> Value;
}

/// A register or key holding one interned value (`register`, `cas-register`, and `kv` keys
/// without `append`). Absent is the interned `null`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cell(pub ValueId);

/// An operation on a [`Cell`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CellOp {
    /// Read the value.
    Read,
    /// Overwrite the value.
    Write(ValueId),
    /// Compare-and-set `(expected, new)`.
    Cas(ValueId, ValueId),
}

/// What a [`Cell`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CellRet {
    /// A read's value.
    Value(ValueId),
    /// A write happened.
    Written,
    /// A cas found the expected value and swapped.
    Swapped,
    /// A cas found another value and did nothing.
    CompareFailed,
}

impl SequentialSpec for Cell {
    type Op = CellOp;
    type Ret = CellRet;

    fn invoke(&mut self, op: &CellOp) -> CellRet {
        match *op {
            CellOp::Read => CellRet::Value(self.0),
            CellOp::Write(v) => {
                self.0 = v;
                CellRet::Written
            }
            CellOp::Cas(expected, new) => {
                if self.0 == expected {
                    self.0 = new;
                    CellRet::Swapped
                } else {
                    CellRet::CompareFailed
                }
            }
        }
    }
}

impl SequentialModel for Cell {
    fn is_read_only(op: &CellOp) -> bool {
        matches!(op, CellOp::Read)
    }

    fn is_blind(op: &CellOp) -> bool {
        matches!(op, CellOp::Write(_))
    }

    fn to_json(&self, values: &[Value]) -> Value {
        values[self.0 as usize].clone()
    }
}

/// A string with a polynomial hash kept alongside, so that hashing a state costs O(1) and an
/// append computes the new hash from the two parts (`h(a+b) = h(a)·B^|b| + h(b)`) instead
/// of rehashing a string that grows with the history (Porcupine's c50 keys reach 570
/// bytes). Equality compares hashes first, then pointers, then bytes.
#[derive(Clone, Debug)]
pub struct HStr {
    hash: u64,
    /// `B^len`, to append this string to another.
    pow: u64,
    s: Arc<str>,
}

const BASE: u64 = 0x0000_0100_0000_01b3;

impl HStr {
    /// Wraps a string.
    pub fn new(s: &str) -> Self {
        let (hash, pow) = s.bytes().fold((0u64, 1u64), |(h, p), b| {
            (
                h.wrapping_mul(BASE).wrapping_add(b as u64 + 1),
                p.wrapping_mul(BASE),
            )
        });
        HStr {
            hash,
            pow,
            s: Arc::from(s),
        }
    }

    /// `self` followed by `tail`.
    pub fn concat(&self, tail: &HStr) -> Self {
        let mut joined = String::with_capacity(self.s.len() + tail.s.len());
        joined.push_str(&self.s);
        joined.push_str(&tail.s);
        HStr {
            hash: self.hash.wrapping_mul(tail.pow).wrapping_add(tail.hash),
            pow: self.pow.wrapping_mul(tail.pow),
            s: Arc::from(joined),
        }
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.s
    }
}

impl PartialEq for HStr {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && (Arc::ptr_eq(&self.s, &other.s) || self.s == other.s)
    }
}

impl Eq for HStr {}

impl Hash for HStr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// A key whose value can be appended to: absent, a string, or another JSON value (interned).
///
/// Appending to absent gives the appended string; appending to a string concatenates;
/// appending to any other value is illegal (an `ok` append there cannot be linearized, an
/// indeterminate one does nothing).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Text {
    /// Never written (or written `null`).
    Absent,
    /// A string.
    Str(HStr),
    /// Any other JSON value, interned.
    Other(ValueId),
}

/// An operation on a [`Text`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TextOp {
    /// Read the value.
    Read,
    /// Overwrite the value.
    Write(Text),
    /// Compare-and-set `(expected, new)`.
    Cas(Text, Text),
    /// Append a string.
    Append(HStr),
}

/// What a [`Text`] answers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TextRet {
    /// A read's value.
    Value(Text),
    /// A write or append happened.
    Done,
    /// A cas found the expected value and swapped.
    Swapped,
    /// A cas found another value and did nothing.
    CompareFailed,
    /// An append found a value that is not a string and did nothing.
    NotAString,
}

impl SequentialSpec for Text {
    type Op = TextOp;
    type Ret = TextRet;

    fn invoke(&mut self, op: &TextOp) -> TextRet {
        match op {
            TextOp::Read => TextRet::Value(self.clone()),
            TextOp::Write(v) => {
                *self = v.clone();
                TextRet::Done
            }
            TextOp::Cas(expected, new) => {
                if self == expected {
                    *self = new.clone();
                    TextRet::Swapped
                } else {
                    TextRet::CompareFailed
                }
            }
            TextOp::Append(s) => match self {
                Text::Absent => {
                    *self = Text::Str(s.clone());
                    TextRet::Done
                }
                Text::Str(old) => {
                    *self = Text::Str(old.concat(s));
                    TextRet::Done
                }
                Text::Other(_) => TextRet::NotAString,
            },
        }
    }

    // Avoids cloning the state (a string) just to compare a read's answer.
    fn is_valid_step(&mut self, op: &TextOp, ret: &TextRet) -> bool {
        match (op, ret) {
            (TextOp::Read, TextRet::Value(v)) => self == v,
            _ => self.invoke(op) == *ret,
        }
    }
}

impl SequentialModel for Text {
    fn is_read_only(op: &TextOp) -> bool {
        matches!(op, TextOp::Read)
    }

    fn is_blind(op: &TextOp) -> bool {
        matches!(op, TextOp::Write(_))
    }

    fn grows_only(op: &TextOp) -> bool {
        matches!(op, TextOp::Append(_))
    }

    // Appends turn absent into a string and extend strings; they leave other values alone.
    fn may_grow_into(&self, ret: &TextRet) -> bool {
        match (self, ret) {
            (Text::Absent, TextRet::Value(_)) => true,
            (Text::Str(s), TextRet::Value(Text::Str(v))) => v.as_str().starts_with(s.as_str()),
            (state, TextRet::Value(v)) => state == v,
            _ => true,
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Text::Str(s) => s.as_str().len() + 16,
            _ => 0,
        }
    }

    fn to_json(&self, values: &[Value]) -> Value {
        match self {
            Text::Absent => Value::Null,
            Text::Str(s) => Value::String(s.as_str().to_string()),
            Text::Other(id) => values[*id as usize].clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_cas_swaps_only_on_the_expected_value() {
        let mut c = Cell(0);
        assert!(c.is_valid_step(&CellOp::Cas(0, 1), &CellRet::Swapped));
        assert_eq!(c, Cell(1));
        assert!(!c.is_valid_step(&CellOp::Cas(0, 2), &CellRet::Swapped));
        assert_eq!(c, Cell(1), "a failed compare leaves the state");
        assert!(c.is_valid_step(&CellOp::Read, &CellRet::Value(1)));
        assert!(!c.is_valid_step(&CellOp::Read, &CellRet::Value(0)));
    }

    #[test]
    fn text_appends_to_absent_and_strings_but_not_numbers() {
        let mut t = Text::Absent;
        assert!(t.is_valid_step(&TextOp::Append(HStr::new("x")), &TextRet::Done));
        assert!(t.is_valid_step(&TextOp::Append(HStr::new("y")), &TextRet::Done));
        assert_eq!(
            t,
            Text::Str(HStr::new("xy")),
            "hash of a concatenation = hash of the whole"
        );
        let mut n = Text::Other(3);
        assert!(!n.is_valid_step(&TextOp::Append(HStr::new("x")), &TextRet::Done));
        assert_eq!(n, Text::Other(3));
        assert_ne!(Text::Str(HStr::new("xy")), Text::Str(HStr::new("yx")));
        assert_eq!(
            Text::Str(HStr::new("ab")).to_json(&[]),
            Value::String("ab".into())
        );
    }
}
