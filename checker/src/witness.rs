//! A fast path for keys that only see reads and appends: build the one linearization the
//! observed strings dictate, check it, and run the search only if the check fails.
//!
//! Why: on an append key every read returns the whole history of appends so far, so the
//! reads fix the order of every append they saw. The search does not know that; it explores
//! interleavings of concurrent operations and, on a key with thousands of operations and
//! many of them indeterminate, can spend its memory budget and answer `unknown` (seen on a
//! clean 60 s nemesis run of the append workload on 3 keys). Here the longest read is cut
//! into the appended strings (each append's string must match exactly one place), every
//! append is placed at its place, every read just after the append that ends its value,
//! appends nobody saw at the end, and that order is checked in linear time.
//!
//! Soundness does not rest on the construction: [`validates`] replays the candidate against
//! the model and the real-time order, exactly what a linearization must satisfy. A key whose
//! candidate fails (a real violation, an ambiguous cut, another operation kind) goes to the
//! search, which then finds the counterexample or the linearization this construction missed.

use crate::model::{SequentialModel, Text, TextOp, TextRet};
use crate::prepare::KeyHistory;
use rustc_hash::FxHashMap;
use std::collections::BTreeSet;

/// A candidate linearization (indices into `kh.ops`) for a key of reads and appends, or
/// `None` when the key is not of that shape or its strings do not cut unambiguously.
pub(crate) fn append_candidate(kh: &KeyHistory<Text>) -> Option<Vec<usize>> {
    let (init, init_absent) = match &kh.init {
        Text::Absent => ("", true),
        Text::Str(s) => (s.as_str(), false),
        Text::Other(_) => return None,
    };
    let mut longest = init;
    let mut by_str: FxHashMap<&str, usize> = FxHashMap::default();
    let mut lengths = BTreeSet::new();
    for (i, o) in kh.ops.iter().enumerate() {
        match (&o.op, &o.ret) {
            (TextOp::Read, Some(TextRet::Value(Text::Str(s)))) => {
                if s.as_str().len() > longest.len() {
                    longest = s.as_str();
                }
            }
            (TextOp::Read, Some(TextRet::Value(Text::Absent))) => {}
            (TextOp::Append(s), _) if !s.as_str().is_empty() => {
                if by_str.insert(s.as_str(), i).is_some() {
                    return None; // two appends of one string: which one a read saw is open
                }
                lengths.insert(s.as_str().len());
            }
            _ => return None,
        }
    }
    if !longest.starts_with(init) {
        return None;
    }
    // Cut the longest string into appended strings, left to right.
    let mut tiles = Vec::new();
    let mut boundary: FxHashMap<usize, usize> = FxHashMap::default();
    if !init_absent {
        boundary.insert(init.len(), 0);
    }
    let mut at = init.len();
    while at < longest.len() {
        let mut found = None;
        for &len in &lengths {
            let end = at + len;
            if end > longest.len() || !longest.is_char_boundary(end) {
                continue;
            }
            if let Some(&i) = by_str.get(&longest[at..end]) {
                if found.is_some() {
                    return None; // ambiguous cut
                }
                found = Some((i, end));
            }
        }
        let (i, end) = found?;
        tiles.push(i);
        at = end;
        boundary.insert(at, tiles.len());
    }
    // Slots: the k-th append at 2k, a read that saw k appends at 2k + 1, unseen appends last.
    let mut slot = vec![None; kh.ops.len()];
    for (k, &i) in tiles.iter().enumerate() {
        slot[i] = Some(2 * (k + 1));
    }
    for (i, o) in kh.ops.iter().enumerate() {
        match (&o.op, &o.ret) {
            (TextOp::Read, Some(TextRet::Value(v))) => {
                let k = match v {
                    Text::Absent if init_absent => 0,
                    Text::Str(s) if longest.starts_with(s.as_str()) => {
                        *boundary.get(&s.as_str().len())?
                    }
                    _ => return None,
                };
                slot[i] = Some(2 * k + 1);
            }
            (TextOp::Append(_), Some(_)) if slot[i].is_none() => slot[i] = Some(usize::MAX),
            _ => {} // an unseen indeterminate append: it never happened
        }
    }
    let mut order: Vec<usize> = (0..kh.ops.len()).filter(|&i| slot[i].is_some()).collect();
    // Within one slot (reads of one value, or the unseen appends), invocation order: it
    // never puts an operation after one that was invoked after it completed.
    order.sort_by_key(|&i| (slot[i], kh.ops[i].call));
    Some(order)
}

/// Whether `order` is a linearization of `kh`: every determinate operation exactly once,
/// no operation before one that completed before it was invoked, and every answer the one
/// the model gives in that order (indeterminate operations take effect, answer unchecked).
pub(crate) fn validates<M: SequentialModel>(kh: &KeyHistory<M>, order: &[usize]) -> bool {
    let mut placed = vec![false; kh.ops.len()];
    for &i in order {
        if i >= placed.len() || std::mem::replace(&mut placed[i], true) {
            return false;
        }
    }
    if kh
        .ops
        .iter()
        .zip(&placed)
        .any(|(o, &p)| o.ret.is_some() && !p)
    {
        return false;
    }
    // Real time: no i < j with ops[order[j]] completed before ops[order[i]] was invoked.
    let mut earliest_end = usize::MAX;
    for &i in order.iter().rev() {
        if kh.ops[i].call > earliest_end {
            return false;
        }
        earliest_end = earliest_end.min(kh.ops[i].ret_at);
    }
    let mut state = kh.init.clone();
    for &i in order {
        let o = &kh.ops[i];
        match &o.ret {
            Some(ret) => {
                if !state.is_valid_step(&o.op, ret) {
                    return false;
                }
            }
            None => {
                state.invoke(&o.op);
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HStr;
    use crate::prepare::KeyOp;

    fn append(id: usize, s: &str, call: usize, ret_at: Option<usize>) -> KeyOp<Text> {
        KeyOp {
            id,
            op: TextOp::Append(HStr::new(s)),
            ret: ret_at.map(|_| TextRet::Done),
            call,
            ret_at: ret_at.unwrap_or(usize::MAX),
        }
    }

    fn read(id: usize, v: Option<&str>, call: usize, ret_at: usize) -> KeyOp<Text> {
        KeyOp {
            id,
            op: TextOp::Read,
            ret: Some(TextRet::Value(match v {
                None => Text::Absent,
                Some(s) => Text::Str(HStr::new(s)),
            })),
            call,
            ret_at,
        }
    }

    fn kh(ops: Vec<KeyOp<Text>>) -> KeyHistory<Text> {
        KeyHistory {
            init: Text::Absent,
            ops,
            values: Vec::new(),
        }
    }

    #[test]
    fn concurrent_appends_are_ordered_by_what_reads_saw() {
        // a and b overlap; a read after both saw "b,a,"; an indeterminate c was seen too.
        let h = kh(vec![
            append(0, "a,", 0, Some(3)),
            append(1, "b,", 1, Some(2)),
            read(2, None, 4, 5),
            append(3, "c,", 6, None),
            read(4, Some("b,a,c,"), 7, 8),
        ]);
        // The first read (absent) came after both appends completed: not linearizable.
        let order = append_candidate(&h).unwrap();
        assert!(!validates(&h, &order));
        let h = kh(vec![
            read(2, None, 0, 1),
            append(0, "a,", 2, Some(5)),
            append(1, "b,", 3, Some(4)),
            append(3, "c,", 6, None),
            read(4, Some("b,a,c,"), 7, 8),
        ]);
        let order = append_candidate(&h).unwrap();
        assert_eq!(order, vec![0, 2, 1, 3, 4]);
        assert!(validates(&h, &order));
    }

    #[test]
    fn an_unseen_acknowledged_append_goes_last_and_an_unseen_indeterminate_one_nowhere() {
        let h = kh(vec![
            append(0, "a,", 0, Some(1)),
            read(1, Some("a,"), 2, 3),
            append(2, "b,", 4, Some(5)),
            append(3, "z,", 4, None),
        ]);
        let order = append_candidate(&h).unwrap();
        assert_eq!(order, vec![0, 1, 2]);
        assert!(validates(&h, &order));
        // The same, but a later read misses b: b cannot go last.
        let mut ops = h.ops.clone();
        ops.push(read(4, Some("a,"), 6, 7));
        let h = kh(ops);
        let order = append_candidate(&h).unwrap();
        assert!(!validates(&h, &order));
    }

    #[test]
    fn shapes_it_does_not_decide_go_to_the_search() {
        // Two appends of one string.
        let h = kh(vec![append(0, "a", 0, Some(1)), append(1, "a", 2, Some(3))]);
        assert_eq!(append_candidate(&h), None);
        // A read that is not a cut point.
        let h = kh(vec![append(0, "ab", 0, Some(1)), read(1, Some("a"), 2, 3)]);
        assert_eq!(append_candidate(&h), None);
        // An ambiguous cut: "ab" + "c" or "a" + "bc".
        let h = kh(vec![
            append(0, "ab", 0, Some(1)),
            append(1, "c", 0, Some(1)),
            append(2, "a", 0, Some(1)),
            append(3, "bc", 0, Some(1)),
            read(4, Some("abc"), 2, 3),
        ]);
        assert_eq!(append_candidate(&h), None);
        // A write.
        let mut h = kh(vec![append(0, "a", 0, Some(1))]);
        h.ops.push(KeyOp {
            id: 1,
            op: TextOp::Write(Text::Absent),
            ret: Some(TextRet::Done),
            call: 2,
            ret_at: 3,
        });
        assert_eq!(append_candidate(&h), None);
    }

    #[test]
    fn validation_refuses_missing_repeated_and_reordered_operations() {
        let h = kh(vec![append(0, "a,", 0, Some(1)), read(1, Some("a,"), 2, 3)]);
        assert!(validates(&h, &[0, 1]));
        assert!(!validates(&h, &[0]), "a determinate op left out");
        assert!(!validates(&h, &[0, 0, 1]), "an op twice");
        assert!(!validates(&h, &[1, 0]), "against real time and the model");
        assert!(!validates(&h, &[0, 7]), "an index out of range");
    }
}
