//! The search's lists: the entry list of calls and returns, the list of indeterminate ops,
//! and the groups of identical indeterminate ops (links, and the dense copies the scans read).

use super::NIL;
use crate::model::SequentialModel;
use crate::prepare::{KeyHistory, KeyOp};

/// The entry list: index 0 is the head sentinel.
///
/// Besides the links, each entry carries copies of what the per-level scans read of its
/// op (`ret_at`, `class`, `read`): the scans walk the open window of the list, whose
/// entries sit next to each other in these arrays, whereas the ops they name are 48-byte
/// records spread over the history (on the 1,000,000-op hot key, `Search::dominated`
/// waiting on those loads had about a fifth of the search loop's samples).
pub(super) struct Entries {
    pub(super) next: Vec<u32>,
    pub(super) prev: Vec<u32>,
    pub(super) op: Vec<u32>,
    pub(super) is_call: Vec<bool>,
    pub(super) call_of: Vec<u32>,
    pub(super) ret_of: Vec<u32>,
    /// Entry → its op's completion (event index).
    pub(super) ret_at: Vec<usize>,
    /// Entry → its op's class: two ops have the same class iff they have the same
    /// operation and the same answer.
    pub(super) class: Vec<u32>,
    /// Entry → whether its op is read-only ([`SequentialModel::is_read_only`]).
    pub(super) read: Vec<bool>,
}

impl Entries {
    pub(super) fn new<M: SequentialModel>(h: &KeyHistory<M>) -> Self {
        let mut points: Vec<(usize, u32, bool)> = Vec::with_capacity(2 * h.ops.len());
        for (i, o) in h.ops.iter().enumerate() {
            if o.ret.is_some() {
                points.push((o.call, i as u32, true));
                points.push((o.ret_at, i as u32, false));
            }
        }
        points.sort_unstable_by_key(|p| p.0);
        let m = points.len() + 1;
        let mut e = Entries {
            next: (1..=m as u32).collect(),
            prev: (0..m as u32).map(|i| i.wrapping_sub(1)).collect(),
            op: vec![NIL; m],
            is_call: vec![false; m],
            call_of: vec![NIL; h.ops.len()],
            ret_of: vec![NIL; h.ops.len()],
            ret_at: vec![usize::MAX; m],
            class: vec![NIL; m],
            read: vec![false; m],
        };
        e.next[m - 1] = NIL;
        // Op → the (representative op, class) pairs of its answers; answers are only
        // `PartialEq`, and an operation has few distinct answers.
        let mut classes: rustc_hash::FxHashMap<&M::Op, Vec<(u32, u32)>> = Default::default();
        let mut n_classes = 0;
        for (k, &(_, op, call)) in points.iter().enumerate() {
            let id = k + 1;
            let o = &h.ops[op as usize];
            e.op[id] = op;
            e.is_call[id] = call;
            e.ret_at[id] = o.ret_at;
            e.read[id] = M::is_read_only(&o.op);
            let answers = classes.entry(&o.op).or_default();
            e.class[id] = match answers
                .iter()
                .find(|(r, _)| h.ops[*r as usize].ret == o.ret)
            {
                Some(&(_, c)) => c,
                None => {
                    answers.push((op, n_classes));
                    n_classes += 1;
                    n_classes - 1
                }
            };
            if call {
                e.call_of[op as usize] = id as u32;
            } else {
                e.ret_of[op as usize] = id as u32;
            }
        }
        e
    }

    pub(super) fn unlink(&mut self, x: u32) {
        let (p, n) = (self.prev[x as usize], self.next[x as usize]);
        self.next[p as usize] = n;
        if n != NIL {
            self.prev[n as usize] = p;
        }
    }

    pub(super) fn relink(&mut self, x: u32) {
        let (p, n) = (self.prev[x as usize], self.next[x as usize]);
        self.next[p as usize] = x;
        if n != NIL {
            self.prev[n as usize] = x;
        }
    }

    /// Removes operation `op`'s entries (call first, then return).
    pub(super) fn lift(&mut self, op: u32) {
        self.unlink(self.call_of[op as usize]);
        let r = self.ret_of[op as usize];
        if r != NIL {
            self.unlink(r);
        }
    }

    /// Undoes [`Entries::lift`], in reverse order.
    pub(super) fn unlift(&mut self, op: u32) {
        let r = self.ret_of[op as usize];
        if r != NIL {
            self.relink(r);
        }
        self.relink(self.call_of[op as usize]);
    }
}

/// A subset of the operations, in invocation order, as a linked list (index 0 is the
/// head) that ops leave when linearized and rejoin on backtracking.
pub(super) struct InfoList {
    pub(super) next: Vec<u32>,
    pub(super) prev: Vec<u32>,
    /// List node → op index.
    pub(super) op: Vec<u32>,
    /// Op index → list node.
    pub(super) node_of: Vec<u32>,
}

impl InfoList {
    pub(super) fn new<M: SequentialModel>(
        h: &KeyHistory<M>,
        keep: impl Fn(&KeyOp<M>) -> bool,
    ) -> Self {
        let ops: Vec<u32> = (0..h.ops.len() as u32)
            .filter(|&i| keep(&h.ops[i as usize]))
            .collect();
        let m = ops.len() + 1;
        let mut l = InfoList {
            next: (1..=m as u32).collect(),
            prev: (0..m as u32).map(|i| i.wrapping_sub(1)).collect(),
            op: std::iter::once(NIL).chain(ops.iter().copied()).collect(),
            node_of: vec![NIL; h.ops.len()],
        };
        l.next[m - 1] = NIL;
        for (k, &op) in ops.iter().enumerate() {
            l.node_of[op as usize] = k as u32 + 1;
        }
        l
    }

    pub(super) fn lift(&mut self, op: u32) {
        if self.node_of[op as usize] == NIL {
            return;
        }
        let x = self.node_of[op as usize] as usize;
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p as usize] = n;
        if n != NIL {
            self.prev[n as usize] = p;
        }
    }

    pub(super) fn unlift(&mut self, op: u32) {
        let x = self.node_of[op as usize];
        if x == NIL {
            return;
        }
        let (p, n) = (self.prev[x as usize], self.next[x as usize]);
        self.next[p as usize] = x;
        if n != NIL {
            self.prev[n as usize] = x;
        }
    }
}

/// The indeterminate operations grouped by encoded operation (say every timed-out
/// `write 3`), each group in invocation order with the number of its members linearized.
/// Members of a group are interchangeable once invoked (no completion to respect), so only
/// the earliest unlinearized one is ever tried: the linearized members of a group are a
/// prefix of it, and a level scans groups, not ops. On a hot register key with values
/// from a small range that is a few dozen groups instead of thousands of pending ops.
pub(super) struct InfoGroups {
    /// Group → its ops, in invocation order.
    pub(super) members: Vec<Vec<u32>>,
    /// Group → how many of its members are linearized.
    pub(super) used: Vec<u32>,
    /// Op index → its group (NIL for a completed op).
    pub(super) group_of: Vec<u32>,
    /// Group → the invocation (event index) of its earliest unlinearized op, `usize::MAX`
    /// when all are linearized.
    ///
    /// A level that reaches the indeterminate ops scans every group for one invoked before
    /// its limit; reading the head op's `call` from the history went to a different cache
    /// line per group (about a quarter of the search loop's samples on the 1,000,000-op
    /// hot key), this dense copy is one or two lines for the whole scan.
    pub(super) head_call: Vec<usize>,
}

impl InfoGroups {
    pub(super) fn new<M: SequentialModel>(h: &KeyHistory<M>) -> Self {
        let mut index: rustc_hash::FxHashMap<&M::Op, u32> = Default::default();
        let mut g = InfoGroups {
            members: Vec::new(),
            used: Vec::new(),
            group_of: vec![NIL; h.ops.len()],
            head_call: Vec::new(),
        };
        for (i, o) in h.ops.iter().enumerate() {
            if o.ret.is_some() {
                continue;
            }
            let next = g.members.len() as u32;
            let k = *index.entry(&o.op).or_insert(next);
            if k == next {
                g.members.push(Vec::new());
                g.used.push(0);
                g.head_call.push(o.call);
            }
            g.members[k as usize].push(i as u32);
            g.group_of[i] = k;
        }
        g
    }

    /// Moves `group`'s head past its earliest unlinearized op (now linearized).
    pub(super) fn take<M: SequentialModel>(&mut self, h: &KeyHistory<M>, group: usize) {
        self.used[group] += 1;
        self.head_call[group] = self.head_call_of(h, group);
    }

    /// Undoes [`InfoGroups::take`].
    pub(super) fn give<M: SequentialModel>(&mut self, h: &KeyHistory<M>, group: usize) {
        self.used[group] -= 1;
        self.head_call[group] = self.head_call_of(h, group);
    }

    /// Whether `group` has an unlinearized op invoked at or before event `limit`.
    pub(super) fn invoked(&self, group: usize, limit: usize) -> bool {
        let call = self.head_call[group];
        call != usize::MAX && call <= limit
    }

    pub(super) fn head_call_of<M: SequentialModel>(
        &self,
        h: &KeyHistory<M>,
        group: usize,
    ) -> usize {
        match self.head(group) {
            NIL => usize::MAX,
            op => h.ops[op as usize].call,
        }
    }

    /// The group's earliest unlinearized op, or NIL.
    pub(super) fn head(&self, group: usize) -> u32 {
        self.members[group]
            .get(self.used[group] as usize)
            .copied()
            .unwrap_or(NIL)
    }
}
