//! The Wing & Gong / Lowe search for one key: backtracking over a doubly linked list of call
//! and return entries, memoizing (linearized set, state) configurations.
//!
//! The history is a list of entries in real-time order: a call entry per kept operation and
//! a return entry per completed (`ok`) one. An indeterminate operation has no return entry:
//! it may take effect at any time after its invocation or never, which is the same as a
//! return at the very end of the history, and the search stops as soon as every `ok`
//! operation is linearized (what is left is indeterminate and can be placed last, or never).
//!
//! From a configuration, every call entry before the first return entry is a candidate: its
//! operation was invoked before the oldest pending completion, so it may take effect next.
//! Linearizing one unlinks its entries (O(1), as in Porcupine) and restarts the scan from the
//! head; reaching a return entry means the pending operation it closes can no longer be
//! placed, so the search backtracks. A configuration already in the memo was entered before
//! and, since it is not an ancestor (its set is not a prefix of ours), failed: skip it.
//!
//! **Reads are forced.** If a pending read is legal in the current state, the search
//! linearizes it at once and does not branch. Sound: the read is a candidate, so it was
//! invoked before every pending operation completed and may be ordered before all of them;
//! it leaves the state unchanged, so any linearization from here, with the read moved to the
//! front, is still legal. So this configuration is linearizable iff the one after the read
//! is, and when the latter fails the search backtracks past both. Without this, k concurrent
//! reads of one value give 2^k orders to memoize; with it, none. It also means a read that
//! is a candidate but not forced is illegal at this level, so the scan skips reads.
//!
//! **Indeterminate operations come last, and one of each kind.** They live apart, grouped by
//! encoded operation ([`InfoGroups`]), scanned after the completed candidates: an
//! indeterminate op is a candidate when it was invoked before the first pending return. Trying completed operations first
//! finds a linearization of a valid history sooner (an `info` write invoked early is
//! otherwise tried at every level). And two pending indeterminate operations with the same
//! encoded operation (say two timed-out `write 3`) are interchangeable once both are
//! invoked: neither has a completion to respect, so swapping them in any linearization
//! gives another. The search only tries the earliest unlinearized one of each such group,
//! which keeps the linearized members of a group a prefix of it.
//!
//! **Indeterminate ops only where they are observed** (on unless `Options::reductions` is
//! off). After an indeterminate op the next op placed must not be blind
//! ([`SequentialModel::is_blind`]: a plain write), and an indeterminate op that leaves the
//! state unchanged is never placed. Sound: take any linearization and repeatedly delete an
//! indeterminate op that changes nothing, that is last, or that a blind op follows (the
//! blind op leaves the same state and answer whether or not it ran). Deleting an
//! indeterminate op is allowed ("or never") and keeps every other op's state, so what
//! remains is a linearization in which every indeterminate op changes the state and is
//! followed by an op that depends on it (a read of its value, a cas expecting it, an
//! append to it), possibly through a chain of indeterminate cas ops ending in such an op.
//! The search looks only for such linearizations. Since whether the last op was
//! indeterminate changes what may follow, it is part of the memo key. The README proves it
//! at length, with the other prunings it combines with.
//!
//! **Of identical completed candidates, the one returning first** (also behind
//! `Options::reductions`). Two candidates with the same operation and the same answer, say
//! two `write 3` that both returned ok, X returning after Y: if placing X now leads to a
//! linearization, swapping the two in it places Y now and X where Y was, which is before
//! Y's return, so before X's; both were invoked already. So only Y is tried. On a hot key
//! with values from a small range, most concurrent writes have a twin.
//!
//! **The urgent op first.** At each level the op owning the first pending return entry is
//! tried before the other candidates: it has to be linearized before that return anyway,
//! so placing it first tends to reach a linearization of a valid history sooner. Only the
//! order of the candidates changes, so every candidate is still tried.
//!
//! **Dead reads on append keys.** When every pending op that could reset the state (a write
//! or cas) was invoked after some pending read returned, only appends can be linearized
//! before that read. Appends only extend a string, so if the current state is not a prefix
//! of what the read returned ([`SequentialModel::may_grow_into`]), no continuation can make
//! the read legal and the configuration is abandoned at once instead of after every order
//! of the concurrent appends (on Porcupine's kv c50-ok this cuts 170,000 configurations to
//! 7,000).
//!
//! **What the memo records.** A configuration entered by a forced read is not recorded:
//! the configuration before the read is, and from there the read follows without a choice,
//! so recording both only doubles the table on a key where half the ops are reads (the
//! memo is a pruning, so leaving an entry out never changes a verdict). An indeterminate op
//! after which no candidate could be placed under the reduction is not entered at all
//! (`Search::observable`).
//!
//! For counterexamples the search keeps its own record: the deepest configurations reached
//! (most `ok` operations linearized), snapshotted when it first backtracks from them, so a
//! failing key needs no second enumeration of partial linearizations.

mod lists;

use crate::memo::{Bitset, Memo};
use crate::model::SequentialModel;
use crate::prepare::KeyHistory;
use lists::{Entries, InfoGroups, InfoList};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

/// Limits shared by every key's search.
pub(crate) struct Budget<'a> {
    /// Give up at this instant.
    pub deadline: Option<Instant>,
    /// Set when another key was found not linearizable.
    pub stop: &'a AtomicBool,
    /// Memo bytes held by all running searches.
    pub mem_used: &'a AtomicUsize,
    /// Give up when `mem_used` exceeds this.
    pub mem_limit: Option<usize>,
}

/// Why a search gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    TimeLimit,
    MemoryLimit,
    Stopped,
}

/// How a key's search ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Linearizable,
    NotLinearizable,
    Unknown(Cut),
}

/// A key's search result.
#[derive(Debug, Clone)]
pub(crate) struct Searched {
    pub outcome: Outcome,
    /// Configurations entered (memo entries).
    pub explored: u64,
    /// Memo bytes at the end.
    pub memo_bytes: usize,
    /// The longest partial linearizations, as indices into `KeyHistory::ops`.
    pub deepest: Vec<Vec<u32>>,
}

const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;
/// Partial linearizations kept for a counterexample.
const MAX_PATHS: usize = 3;
/// Budget checks every this many steps.
const CHECK_EVERY: u64 = 1024;

/// Where the scan of a level is: in the completed ops' entries, or in the indeterminate
/// ops invoked before `limit` (the position of the level's first pending return).
#[derive(Debug, Clone, Copy)]
enum Cursor {
    /// First, the op whose completion is the level's first pending return.
    Urgent,
    Main(u32),
    Info {
        group: usize,
        limit: usize,
    },
}

/// What `forced_read` found.
enum Reads {
    Forced(u32),
    Dead,
    None,
}

/// How an op was placed, which says where the level's scan resumes when it is undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A forced read: no choice, so backtracking goes past it.
    Forced,
    /// In the ordinary scan.
    Plain,
}

struct Frame<M> {
    op: u32,
    state: M,
    kind: Kind,
    /// For an indeterminate op: the level's limit, to resume its scan.
    limit: usize,
    /// The level's urgent op (see `Search::urgent`), restored on backtracking.
    level_urgent: u32,
}

/// The search's mutable state.
struct Search<'h, M: SequentialModel> {
    h: &'h KeyHistory<M>,
    entries: Entries,
    info: InfoGroups,
    /// Pending operations that may reset the state (neither reads nor appends), in
    /// invocation order: while the first of them was invoked after a pending read returned,
    /// only appends can come before that read (see `forced_read`).
    resetters: InfoList,
    bits: Bitset,
    memo: Memo<M>,
    state: M,
    stack: Vec<Frame<M>>,
    ok_total: usize,
    ok_left: usize,
    best_depth: usize,
    best_pending: bool,
    /// The first deepest path recorded; the stack's first `common` ops equal its first
    /// `common` ops, so recording the path again copies only what was pushed since.
    best_path: Vec<u32>,
    common: usize,
    /// Other deepest paths (up to `MAX_PATHS - 1`): `best_path[..c]` then a suffix.
    others: Vec<(usize, Vec<u32>)>,
    deepest_states: Vec<M>,
    flushed_bytes: usize,
    /// The op owning the current level's first pending return entry: it must be linearized
    /// before that return, so it is tried first (then the other candidates in invocation
    /// order, skipping it).
    urgent: u32,
    /// Whether the indeterminate-op reduction is on (see the module docs).
    reduce: bool,
    /// `observable`'s answers at the current level, by state; emptied when the level
    /// changes.
    observable_cache: Vec<(M, bool)>,
}

impl<'h, M: SequentialModel> Search<'h, M> {
    fn new(h: &'h KeyHistory<M>, reduce: bool) -> Self {
        let is_info: Vec<bool> = h.ops.iter().map(|o| o.ret.is_none()).collect();
        let bits = Bitset::new(&is_info);
        let ok_total = h.ops.iter().filter(|o| o.ret.is_some()).count();
        let info = InfoGroups::new(h);
        let memo = Memo::new(&info.members.iter().map(Vec::len).collect::<Vec<_>>());
        Search {
            h,
            entries: Entries::new(h),
            info,
            resetters: InfoList::new(h, |o| !M::is_read_only(&o.op) && !M::grows_only(&o.op)),
            memo,
            bits,
            state: h.init.clone(),
            stack: Vec::new(),
            ok_total,
            ok_left: ok_total,
            best_depth: 0,
            best_pending: true,
            best_path: Vec::new(),
            common: 0,
            others: Vec::new(),
            deepest_states: Vec::new(),
            flushed_bytes: 0,
            urgent: NIL,
            reduce,
            observable_cache: Vec::new(),
        }
    }

    /// The state after `op` from the current state, if `op` is legal there.
    fn step(&self, op: u32) -> Option<M> {
        let o = &self.h.ops[op as usize];
        let mut next = self.state.clone();
        match &o.ret {
            Some(ret) => next.is_valid_step(&o.op, ret).then_some(next),
            None => {
                next.invoke(&o.op);
                Some(next)
            }
        }
    }

    /// A pending read legal in the current state (see the module docs), or a pending read
    /// that can never become legal: only appends can precede it (every pending resetting
    /// op was invoked after it returned) and they cannot grow the state into its value.
    fn forced_read(&mut self) -> Reads {
        let first_reset = self.resetters.next[HEAD as usize];
        let reset_call = match first_reset {
            NIL => usize::MAX,
            n => self.h.ops[self.resetters.op[n as usize] as usize].call,
        };
        let mut e = self.entries.next[HEAD as usize];
        while e != NIL && self.entries.is_call[e as usize] {
            // Reads never change the state, legal or not (SequentialModel::is_read_only);
            // the entry's own flag saves loading the other ops.
            if self.entries.read[e as usize] {
                let op = self.entries.op[e as usize];
                let o = &self.h.ops[op as usize];
                if let Some(ret) = &o.ret {
                    if self.state.is_valid_step(&o.op, ret) {
                        return Reads::Forced(op);
                    }
                    if reset_call > o.ret_at && !self.state.may_grow_into(ret) {
                        return Reads::Dead;
                    }
                }
            }
            e = self.entries.next[e as usize];
        }
        Reads::None
    }

    /// The op of the first return entry in the list (NIL if none).
    fn first_return_op(&self) -> u32 {
        let mut e = self.entries.next[HEAD as usize];
        while e != NIL && self.entries.is_call[e as usize] {
            e = self.entries.next[e as usize];
        }
        if e == NIL {
            NIL
        } else {
            self.entries.op[e as usize]
        }
    }

    /// Enters the configuration after `op` if it is new; false if the memo had it.
    fn push(&mut self, op: u32, next: M, kind: Kind, limit: usize) -> bool {
        let is_info = self.h.ops[op as usize].ret.is_none();
        let group = self.info.group_of[op as usize] as usize;
        self.bits.set(op as usize);
        if is_info {
            self.info.take(self.h, group);
        }
        let after_info = self.reduce && is_info;
        // A forced read's configuration is not recorded: the one before it is, and from
        // there the read is placed without a choice (see `Search::run`).
        let fresh = kind == Kind::Forced
            || self
                .memo
                .insert(&self.bits, &self.info.used, &next, after_info);
        if !fresh {
            self.bits.clear(op as usize);
            if is_info {
                self.info.give(self.h, group);
            }
            return false;
        }
        self.observable_cache.clear();
        let state = std::mem::replace(&mut self.state, next);
        self.stack.push(Frame {
            op,
            state,
            kind,
            limit,
            level_urgent: self.urgent,
        });
        if self.h.ops[op as usize].ret.is_some() {
            self.entries.lift(op);
            self.ok_left -= 1;
            let depth = self.ok_total - self.ok_left;
            if depth > self.best_depth {
                self.best_depth = depth;
                self.best_pending = true;
                self.others.clear();
                self.deepest_states.clear();
            }
        }
        self.resetters.lift(op);
        true
    }

    /// Snapshots the current path if it is one of the deepest and not yet recorded.
    ///
    /// Copying the whole stack at every new depth would be quadratic on a long key (the
    /// search backtracks a little after most new depths): only the part of the stack
    /// pushed since it last shared a prefix with the recorded path is copied.
    fn record(&mut self) {
        let depth = self.ok_total - self.ok_left;
        if depth != self.best_depth || self.deepest_states.len() >= MAX_PATHS {
            return;
        }
        if !self.best_pending && self.deepest_states.contains(&self.state) {
            return;
        }
        let fresh = self.stack[self.common..].iter().map(|f| f.op);
        if self.deepest_states.is_empty() {
            self.best_path.truncate(self.common);
            self.best_path.extend(fresh);
            self.common = self.stack.len();
        } else {
            self.others.push((self.common, fresh.collect()));
        }
        self.best_pending = false;
        self.deepest_states.push(self.state.clone());
    }

    /// The recorded deepest paths.
    fn deepest(&self) -> Vec<Vec<u32>> {
        if self.deepest_states.is_empty() {
            return Vec::new();
        }
        let others = self.others.iter().map(|(c, tail)| {
            let mut path = self.best_path[..*c].to_vec();
            path.extend_from_slice(tail);
            path
        });
        std::iter::once(self.best_path.clone())
            .chain(others)
            .collect()
    }

    /// Backtracks to the last choice point; returns where to resume the scan, or `None`
    /// when nothing is left to try.
    fn backtrack(&mut self) -> Option<Cursor> {
        self.record();
        self.observable_cache.clear();
        while let Some(f) = self.stack.pop() {
            self.common = self.common.min(self.stack.len());
            self.state = f.state;
            self.bits.clear(f.op as usize);
            self.resetters.unlift(f.op);
            let ok = self.h.ops[f.op as usize].ret.is_some();
            if ok {
                self.entries.unlift(f.op);
                self.ok_left += 1;
            } else {
                let group = self.info.group_of[f.op as usize] as usize;
                self.info.give(self.h, group);
            }
            self.urgent = f.level_urgent;
            if f.kind == Kind::Plain {
                return Some(if ok && f.op == f.level_urgent {
                    Cursor::Main(self.entries.next[HEAD as usize])
                } else if ok {
                    let call = self.entries.call_of[f.op as usize];
                    Cursor::Main(self.entries.next[call as usize])
                } else {
                    Cursor::Info {
                        group: self.info.group_of[f.op as usize] as usize + 1,
                        limit: f.limit,
                    }
                });
            }
        }
        None
    }

    fn over_budget(&mut self, budget: &Budget) -> Option<Cut> {
        if budget.stop.load(Ordering::Relaxed) {
            return Some(Cut::Stopped);
        }
        if budget.deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(Cut::TimeLimit);
        }
        let bytes = self.memo.bytes();
        let total = budget
            .mem_used
            .fetch_add(bytes - self.flushed_bytes, Ordering::Relaxed)
            + (bytes - self.flushed_bytes);
        self.flushed_bytes = bytes;
        match budget.mem_limit {
            Some(limit) if total > limit => Some(Cut::MemoryLimit),
            _ => None,
        }
    }

    /// Whether the last op placed is indeterminate, so that the next one must observe the
    /// state (the reduction: see the module docs).
    fn after_info(&self) -> bool {
        self.reduce
            && self
                .stack
                .last()
                .is_some_and(|f| self.h.ops[f.op as usize].ret.is_none())
    }

    /// Whether another candidate does what `op` does (same operation, same answer) and
    /// returns earlier: placing that one now instead of `op` loses nothing (see the
    /// module docs), so `op` is not tried at this level.
    ///
    /// `at` is `op`'s call entry.
    fn dominated(&self, at: u32) -> bool {
        let en = &self.entries;
        let (ret_at, class) = (en.ret_at[at as usize], en.class[at as usize]);
        let mut e = en.next[HEAD as usize];
        while e != NIL && en.is_call[e as usize] {
            if en.ret_at[e as usize] < ret_at && en.class[e as usize] == class {
                return true;
            }
            e = en.next[e as usize];
        }
        false
    }

    /// Tries `op` from the current state; true if the search moved to a new level.
    fn try_op(&mut self, op: u32, limit: usize) -> bool {
        let o = &self.h.ops[op as usize];
        if self.after_info() && M::is_blind(&o.op) {
            return false;
        }
        match self.step(op) {
            // An indeterminate op that changes nothing is never needed.
            Some(next) if self.reduce && o.ret.is_none() && next == self.state => false,
            Some(next) if self.reduce && o.ret.is_none() && !self.observable(limit, &next) => false,
            Some(next) => self.push(op, next, Kind::Plain, limit),
            None => false,
        }
    }

    /// Whether some candidate could follow an indeterminate op that leads to `next`, as
    /// the reduction requires: a completed candidate that is not blind and is legal in
    /// `next`, or an indeterminate candidate that is not blind and changes `next`. If none,
    /// the level after it would find nothing to place, so it is not entered (saving a memo
    /// entry and a scan). The indeterminate op itself, or its twin that heads its group
    /// next, never counts: a write is blind, and a cas that changed the state to its new
    /// value does not change it again. Answers are cached per level and state (a register
    /// key has a few values, and a few dozen groups to try).
    fn observable(&mut self, limit: usize, next: &M) -> bool {
        if let Some((_, seen)) = self.observable_cache.iter().find(|(s, _)| s == next) {
            return *seen;
        }
        let seen = self.observable_scan(limit, next);
        self.observable_cache.push((next.clone(), seen));
        seen
    }

    fn observable_scan(&self, limit: usize, next: &M) -> bool {
        let mut e = self.entries.next[HEAD as usize];
        while e != NIL && self.entries.is_call[e as usize] {
            let y = self.entries.op[e as usize];
            let o = &self.h.ops[y as usize];
            if !M::is_blind(&o.op) && self.legal_in(y, next) {
                return true;
            }
            e = self.entries.next[e as usize];
        }
        (0..self.info.members.len()).any(|g| {
            if !self.info.invoked(g, limit) {
                return false;
            }
            let y = self.info.head(g);
            let o = &self.h.ops[y as usize].op;
            let mut after = next.clone();
            after.invoke(o);
            !M::is_blind(o) && after != *next
        })
    }

    /// Whether completed op `op` is legal in `state`.
    fn legal_in(&self, op: u32, state: &M) -> bool {
        let o = &self.h.ops[op as usize];
        o.ret
            .as_ref()
            .is_some_and(|ret| state.clone().is_valid_step(&o.op, ret))
    }

    /// One scan step at the current level: the next cursor, or `None` to backtrack.
    fn advance(&mut self, cursor: Cursor) -> Result<Cursor, ()> {
        match cursor {
            Cursor::Urgent => {
                let op = self.urgent;
                let read = op != NIL && M::is_read_only(&self.h.ops[op as usize].op);
                if op != NIL && !read && self.try_op(op, 0) {
                    return Ok(Cursor::Urgent);
                }
                Ok(Cursor::Main(self.entries.next[HEAD as usize]))
            }
            Cursor::Main(e) if e != NIL && self.entries.is_call[e as usize] => {
                let op = self.entries.op[e as usize];
                // Reads were offered by `forced_read` at this level: any left are illegal.
                let read = self.entries.read[e as usize];
                let dominated = self.reduce && self.dominated(e);
                if !read && op != self.urgent && !dominated && self.try_op(op, 0) {
                    return Ok(Cursor::Urgent);
                }
                Ok(Cursor::Main(self.entries.next[e as usize]))
            }
            Cursor::Main(e) => {
                let limit = if e == NIL {
                    usize::MAX
                } else {
                    self.h.ops[self.entries.op[e as usize] as usize].ret_at
                };
                Ok(Cursor::Info { group: 0, limit })
            }
            Cursor::Info { group, limit } => {
                if group >= self.info.members.len() {
                    return Err(());
                }
                let invoked = self.info.invoked(group, limit);
                if invoked && self.try_op(self.info.head(group), limit) {
                    return Ok(Cursor::Urgent);
                }
                Ok(Cursor::Info {
                    group: group + 1,
                    limit,
                })
            }
        }
    }

    fn run(&mut self, budget: &Budget) -> Outcome {
        let mut steps: u64 = 0;
        let mut cursor = Cursor::Urgent;
        let mut depth = usize::MAX;
        loop {
            steps += 1;
            if steps % CHECK_EVERY == 0 {
                if let Some(cut) = self.over_budget(budget) {
                    return Outcome::Unknown(cut);
                }
            }
            if self.ok_left == 0 {
                return Outcome::Linearizable;
            }
            if self.stack.len() != depth {
                // A new level: offer the reads first, then the urgent op.
                depth = self.stack.len();
                self.urgent = self.first_return_op();
                let forced = match self.forced_read() {
                    Reads::Forced(op) => Some(op),
                    Reads::Dead => None,
                    Reads::None => Some(NIL),
                };
                if forced != Some(NIL) {
                    let pushed = match forced {
                        Some(op) => {
                            let state = self.state.clone();
                            self.push(op, state, Kind::Forced, 0)
                        }
                        None => false,
                    };
                    if !pushed {
                        // Dead, or the configuration after the read failed before: this
                        // one fails too.
                        match self.backtrack() {
                            Some(c) => {
                                cursor = c;
                                depth = self.stack.len();
                            }
                            None => return Outcome::NotLinearizable,
                        }
                    } else {
                        cursor = Cursor::Urgent;
                    }
                    continue;
                }
            }
            match self.advance(cursor) {
                Ok(c) => cursor = c,
                Err(()) => match self.backtrack() {
                    Some(c) => {
                        cursor = c;
                        depth = self.stack.len();
                    }
                    None => return Outcome::NotLinearizable,
                },
            }
        }
    }
}

/// Checks one key.
pub(crate) fn search<M: SequentialModel>(
    h: &KeyHistory<M>,
    budget: &Budget,
    reduce: bool,
) -> Searched {
    let mut s = Search::new(h, reduce);
    let outcome = s.run(budget);
    budget
        .mem_used
        .fetch_sub(s.flushed_bytes, Ordering::Relaxed);
    Searched {
        outcome,
        explored: s.memo.len() as u64,
        memo_bytes: s.memo.bytes(),
        deepest: s.deepest(),
    }
}
