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
//!
//! **Nothing long is copied or hashed.** The witness reads the history's own strings
//! ([`slim_ops`] borrows them), before the key is encoded for the search (which copies and
//! hashes every read's value: on a 20,000-op append key with 5% `info` that is 10,000
//! strings of up to 60 KB, 600 MB of text, and most of the time the key took). The replay
//! in [`validates`] keeps the state as a length: every state it meets before an append the
//! longest read did not see is a prefix of that read, so the state is `longest[..n]`, an
//! append is checked against the next bytes of `longest`, and a read against it once (one
//! comparison of its length). An append past `longest` leaves the state unknown to the
//! replay; a read after it refuses the candidate (the search then decides).

use histories::{Operation, Status, F};
use rustc_hash::FxHashMap;
use std::collections::BTreeSet;

/// One kept operation of a key of reads and appends, with its strings borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlimOp<'a> {
    /// What it does.
    pub kind: Slim<'a>,
    /// Whether it completed `ok` (else indeterminate: any time after `call`, or never).
    pub ok: bool,
    /// Event index of the invocation.
    pub call: usize,
    /// Event index of the completion (`usize::MAX` for indeterminate ops).
    pub ret_at: usize,
}

/// A read and what it returned (`None`: absent), or an append of a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slim<'a> {
    Read(Option<&'a str>),
    Append(&'a str),
}

/// The key's ops as the witness sees them, without failed ops and indeterminate reads (as
/// `prepare` drops them), or `None` when the key has another kind of op or value (a write,
/// a cas, a read of a number, an empty append).
pub(crate) fn slim_ops<'a>(ops: &[&'a Operation]) -> Option<Vec<SlimOp<'a>>> {
    let mut out = Vec::with_capacity(ops.len());
    for o in ops {
        let ok = o.status == Status::Ok;
        let kind = match o.f {
            _ if o.status == Status::Fail => continue,
            F::Read if !ok => continue,
            F::Read => match &o.output {
                None | Some(serde_json::Value::Null) => Slim::Read(None),
                Some(serde_json::Value::String(s)) => Slim::Read(Some(s)),
                Some(_) => return None,
            },
            F::Append => match o.input.as_str() {
                Some(s) if !s.is_empty() => Slim::Append(s),
                _ => return None,
            },
            _ => return None,
        };
        let ret_at = if ok {
            o.complete_index.unwrap_or(usize::MAX)
        } else {
            usize::MAX
        };
        out.push(SlimOp {
            kind,
            ok,
            call: o.invoke_index,
            ret_at,
        });
    }
    Some(out)
}

/// The longest string a read returned, or `init` if longer (`""` if absent).
fn longest<'a>(init: Option<&'a str>, ops: &[SlimOp<'a>]) -> &'a str {
    let reads = ops.iter().filter_map(|o| match o.kind {
        Slim::Read(Some(s)) => Some(s),
        _ => None,
    });
    reads.fold(
        init.unwrap_or(""),
        |a, b| if b.len() > a.len() { b } else { a },
    )
}

/// A candidate linearization (indices into `ops`) for a key of reads and appends starting
/// from `init` (`None`: absent), or `None` when its strings do not cut unambiguously. Reads
/// are placed by their length alone: [`validates`] checks their contents.
pub(crate) fn append_candidate(init: Option<&str>, ops: &[SlimOp]) -> Option<Vec<usize>> {
    let longest = longest(init, ops);
    let init_len = init.map_or(0, str::len);
    let mut by_str: FxHashMap<&str, usize> = FxHashMap::default();
    let mut lengths = BTreeSet::new();
    for (i, o) in ops.iter().enumerate() {
        if let Slim::Append(s) = o.kind {
            if by_str.insert(s, i).is_some() {
                return None; // two appends of one string: which one a read saw is open
            }
            lengths.insert(s.len());
        }
    }
    if !longest.starts_with(init.unwrap_or("")) {
        return None;
    }
    // Cut the longest string into appended strings, left to right.
    let mut tiles = Vec::new();
    let mut boundary: FxHashMap<usize, usize> = FxHashMap::default();
    if init.is_some() {
        boundary.insert(init_len, 0);
    }
    let mut at = init_len;
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
    let mut slot = vec![None; ops.len()];
    for (k, &i) in tiles.iter().enumerate() {
        slot[i] = Some(2 * (k + 1));
    }
    for (i, o) in ops.iter().enumerate() {
        match o.kind {
            Slim::Read(None) if init.is_none() => slot[i] = Some(1),
            Slim::Read(None) => return None,
            Slim::Read(Some(s)) => slot[i] = Some(2 * *boundary.get(&s.len())? + 1),
            Slim::Append(_) if o.ok && slot[i].is_none() => slot[i] = Some(usize::MAX),
            Slim::Append(_) => {} // seen (placed above), or an unseen indeterminate append
        }
    }
    let mut order: Vec<usize> = (0..ops.len()).filter(|&i| slot[i].is_some()).collect();
    // Within one slot (reads of one value, or the unseen appends), invocation order: it
    // never puts an operation after one that was invoked after it completed.
    order.sort_by_key(|&i| (slot[i], ops[i].call));
    Some(order)
}

/// Whether `order` is a linearization of the key: every `ok` operation exactly once, no
/// operation before one that completed before it was invoked, and every read returning
/// the string the appends before it make (indeterminate appends placed take effect).
pub(crate) fn validates(init: Option<&str>, ops: &[SlimOp], order: &[usize]) -> bool {
    let mut placed = vec![false; ops.len()];
    for &i in order {
        if i >= placed.len() || std::mem::replace(&mut placed[i], true) {
            return false;
        }
    }
    if ops.iter().zip(&placed).any(|(o, &p)| o.ok && !p) {
        return false;
    }
    // Real time: no i < j with ops[order[j]] completed before ops[order[i]] was invoked.
    let mut earliest_end = usize::MAX;
    for &i in order.iter().rev() {
        if ops[i].call > earliest_end {
            return false;
        }
        earliest_end = earliest_end.min(ops[i].ret_at);
    }
    replays(init, ops, order)
}

/// The model's part of [`validates`], the state kept as a length into the longest read
/// (module docs): `None` absent, `Some(n)` the string `longest[..n]`, and past `longest`
/// unknown (a read there refuses).
fn replays(init: Option<&str>, ops: &[SlimOp], order: &[usize]) -> bool {
    let longest = longest(init, ops);
    let mut state = match init {
        Some(s) if longest.starts_with(s) => Some(s.len()),
        Some(_) => return false,
        None => None,
    };
    let mut past_longest = false;
    for &i in order {
        match ops[i].kind {
            Slim::Append(s) => {
                let n = state.unwrap_or(0);
                if !longest.get(n..).is_some_and(|rest| rest.starts_with(s)) {
                    past_longest = true;
                }
                state = Some(n + s.len());
            }
            Slim::Read(v) => {
                let legal = !past_longest
                    && match (v, state) {
                        (None, None) => true,
                        (Some(s), Some(n)) => s.len() == n && longest.starts_with(s),
                        _ => false,
                    };
                if ops[i].ok && !legal {
                    return false;
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(s: &str, call: usize, ret_at: Option<usize>) -> SlimOp<'_> {
        SlimOp {
            kind: Slim::Append(s),
            ok: ret_at.is_some(),
            call,
            ret_at: ret_at.unwrap_or(usize::MAX),
        }
    }

    fn read(v: Option<&str>, call: usize, ret_at: usize) -> SlimOp<'_> {
        SlimOp {
            kind: Slim::Read(v),
            ok: true,
            call,
            ret_at,
        }
    }

    #[test]
    fn concurrent_appends_are_ordered_by_what_reads_saw() {
        // a and b overlap; a read after both saw "b,a,"; an indeterminate c was seen too.
        let h = [
            append("a,", 0, Some(3)),
            append("b,", 1, Some(2)),
            read(None, 4, 5),
            append("c,", 6, None),
            read(Some("b,a,c,"), 7, 8),
        ];
        // The first read (absent) came after both appends completed: not linearizable.
        let order = append_candidate(None, &h).unwrap();
        assert!(!validates(None, &h, &order));
        let h = [
            read(None, 0, 1),
            append("a,", 2, Some(5)),
            append("b,", 3, Some(4)),
            append("c,", 6, None),
            read(Some("b,a,c,"), 7, 8),
        ];
        let order = append_candidate(None, &h).unwrap();
        assert_eq!(order, vec![0, 2, 1, 3, 4]);
        assert!(validates(None, &h, &order));
    }

    #[test]
    fn an_unseen_acknowledged_append_goes_last_and_an_unseen_indeterminate_one_nowhere() {
        let h = vec![
            append("a,", 0, Some(1)),
            read(Some("a,"), 2, 3),
            append("b,", 4, Some(5)),
            append("z,", 4, None),
        ];
        let order = append_candidate(None, &h).unwrap();
        assert_eq!(order, vec![0, 1, 2]);
        assert!(validates(None, &h, &order));
        // The same, but a later read misses b: b cannot go last.
        let mut h = h;
        h.push(read(Some("a,"), 6, 7));
        let order = append_candidate(None, &h).unwrap();
        assert!(!validates(None, &h, &order));
    }

    #[test]
    fn shapes_it_does_not_decide_go_to_the_search() {
        // Two appends of one string.
        let h = [append("a", 0, Some(1)), append("a", 2, Some(3))];
        assert_eq!(append_candidate(None, &h), None);
        // A read that is not a cut point.
        let h = [append("ab", 0, Some(1)), read(Some("a"), 2, 3)];
        assert_eq!(append_candidate(None, &h), None);
        // An ambiguous cut: "ab" + "c" or "a" + "bc".
        let h = [
            append("ab", 0, Some(1)),
            append("c", 0, Some(1)),
            append("a", 0, Some(1)),
            append("bc", 0, Some(1)),
            read(Some("abc"), 2, 3),
        ];
        assert_eq!(append_candidate(None, &h), None);
        // A read of absent when the key starts as a string.
        let h = [read(None, 0, 1)];
        assert_eq!(append_candidate(Some("x"), &h), None);
    }

    #[test]
    fn validation_refuses_missing_repeated_and_reordered_operations() {
        let h = [append("a,", 0, Some(1)), read(Some("a,"), 2, 3)];
        assert!(validates(None, &h, &[0, 1]));
        assert!(!validates(None, &h, &[0]), "a determinate op left out");
        assert!(!validates(None, &h, &[0, 0, 1]), "an op twice");
        assert!(
            !validates(None, &h, &[1, 0]),
            "against real time and the model"
        );
        assert!(!validates(None, &h, &[0, 7]), "an index out of range");
    }

    #[test]
    fn the_replay_checks_contents_not_only_lengths() {
        // Same lengths as the longest read's cut, other bytes: "ab" then a read of "xb".
        let h = [
            append("ab", 0, Some(1)),
            read(Some("xb"), 2, 3),
            read(Some("ab"), 4, 5),
        ];
        let order = append_candidate(None, &h);
        assert!(order.is_none_or(|o| !validates(None, &h, &o)));
        // An initial string, then one append.
        let h = [append("b", 0, Some(1)), read(Some("ab"), 2, 3)];
        assert!(validates(Some("a"), &h, &[0, 1]));
        assert!(
            !validates(Some("z"), &h, &[0, 1]),
            "the initial string differs"
        );
        // An append past the longest read, then a read: refused, not guessed.
        let h = [
            append("a", 0, Some(1)),
            append("b", 2, Some(6)),
            read(Some("a"), 4, 5),
        ];
        assert!(!validates(None, &h, &[0, 1, 2]));
        assert!(validates(None, &h, &[0, 2, 1]));
        assert_eq!(append_candidate(None, &h), Some(vec![0, 2, 1]));
    }
}
