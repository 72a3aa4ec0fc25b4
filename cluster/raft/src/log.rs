//! The in-memory Raft log: entries after the last snapshot, commit/apply cursors, what the
//! driver has not yet persisted, and the membership each configuration entry brings.

use crate::membership::Membership;
use crate::message::{Entry, EntryKind, SnapshotMeta};

/// The log as the core sees it. The core keeps every entry after the last snapshot in memory
/// (the driver's disk holds the same entries); [`crate::Node::compact`] bounds it.
///
/// Why no `Storage` trait as in etcd/raft-rs: a single owner of the entries keeps the state
/// one value that can be cloned and hashed by the model checker, and the driver only ever
/// writes what the core hands out in a `Ready`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RaftLog {
    /// The snapshot the entries follow (index 0, term 0 for an empty log).
    snapshot: SnapshotMeta,
    /// Entries `snapshot.index + 1 ..= last_index()`.
    entries: Vec<Entry>,
    /// (index, membership after it) of each configuration entry in `entries`.
    confs: Vec<(u64, Membership)>,
    /// The highest index known committed.
    pub committed: u64,
    /// The highest index handed to the driver for applying.
    pub applying: u64,
    /// The highest index the driver has applied (acknowledged with `advance`).
    pub applied: u64,
    /// The first index not yet handed to the driver for persisting.
    unstable_from: u64,
    /// The driver must delete its persisted entries from this index on.
    truncated_from: Option<u64>,
}

impl RaftLog {
    /// An empty log whose configuration is `membership`.
    pub fn new(membership: Membership) -> RaftLog {
        RaftLog {
            snapshot: SnapshotMeta {
                index: 0,
                term: 0,
                membership,
            },
            entries: Vec::new(),
            confs: Vec::new(),
            committed: 0,
            applying: 0,
            applied: 0,
            unstable_from: 1,
            truncated_from: None,
        }
    }

    /// Replaces the whole log by a snapshot (restart or InstallSnapshot).
    pub fn restore(&mut self, meta: SnapshotMeta) {
        self.committed = meta.index;
        self.applying = meta.index;
        self.applied = meta.index;
        self.unstable_from = meta.index + 1;
        self.truncated_from = None;
        self.entries.clear();
        self.confs.clear();
        self.snapshot = meta;
    }

    /// The snapshot the log starts after.
    pub fn snapshot_meta(&self) -> &SnapshotMeta {
        &self.snapshot
    }

    /// The first index held in memory.
    pub fn first_index(&self) -> u64 {
        self.snapshot.index + 1
    }

    /// The last index (the snapshot's when there is no entry).
    pub fn last_index(&self) -> u64 {
        self.snapshot.index + self.entries.len() as u64
    }

    /// The term of the last entry.
    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.snapshot.term, |e| e.term)
    }

    /// The term at `index`, if known (compacted and future indexes are not).
    pub fn term(&self, index: u64) -> Option<u64> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.entry(index).map(|e| e.term)
    }

    /// The entry at `index`, if held.
    pub fn entry(&self, index: u64) -> Option<&Entry> {
        if index <= self.snapshot.index {
            return None;
        }
        self.entries.get((index - self.snapshot.index - 1) as usize)
    }

    /// Up to `max` entries from `lo` on.
    pub fn entries_from(&self, lo: u64, max: usize) -> Vec<Entry> {
        self.entries_within(lo, max, usize::MAX)
    }

    /// Up to `max` entries from `lo` on, whose payloads add up to at most `max_bytes`, but at
    /// least one entry if `lo` is held (so no entry is ever too large to send).
    pub fn entries_within(&self, lo: u64, max: usize, max_bytes: usize) -> Vec<Entry> {
        if lo <= self.snapshot.index || lo > self.last_index() {
            return Vec::new();
        }
        let start = (lo - self.snapshot.index - 1) as usize;
        let end = start.saturating_add(max).min(self.entries.len());
        let mut bytes = 0usize;
        let taken = self.entries[start..end]
            .iter()
            .take_while(|e| {
                bytes = bytes.saturating_add(e.payload_len());
                bytes <= max_bytes
            })
            .count()
            .max(1);
        self.entries[start..start + taken].to_vec()
    }

    /// All entries held, for tests and the simulator's invariant checks.
    pub fn all_entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The election restriction (§5.4.1): is a log ending at (`index`, `term`) at least as
    /// up to date as this one? Compare last terms, then last indexes.
    pub fn is_up_to_date(&self, index: u64, term: u64) -> bool {
        term > self.last_term() || (term == self.last_term() && index >= self.last_index())
    }

    /// The configuration in force: the latest configuration entry, appended or not (§6).
    pub fn membership(&self) -> &Membership {
        self.confs
            .last()
            .map_or(&self.snapshot.membership, |(_, m)| m)
    }

    /// The configuration in force at `index`.
    pub fn membership_at(&self, index: u64) -> &Membership {
        self.confs
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map_or(&self.snapshot.membership, |(_, m)| m)
    }

    /// Index of the latest configuration entry (the snapshot's index if none is held).
    pub fn conf_index(&self) -> u64 {
        self.confs.last().map_or(self.snapshot.index, |(i, _)| *i)
    }

    /// Appends entries that directly follow the last one.
    ///
    /// Panics (an internal invariant) if they do not.
    pub fn append(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            assert_eq!(
                entry.index,
                self.last_index() + 1,
                "append out of order: log ends at {}",
                self.last_index()
            );
            if let EntryKind::ConfChange(change) = &entry.kind {
                // An invalid change leaves the configuration as it was; every node decides
                // the same way from the same log.
                let next = self
                    .membership()
                    .apply(change)
                    .unwrap_or_else(|_| self.membership().clone());
                self.confs.push((entry.index, next));
            }
            self.entries.push(entry);
        }
    }

    /// Removes the entries from `index` on.
    pub fn truncate(&mut self, index: u64) {
        if index > self.last_index() {
            return;
        }
        let index = index.max(self.first_index());
        self.entries
            .truncate((index - self.snapshot.index - 1) as usize);
        self.confs.retain(|(i, _)| *i < index);
        if index < self.unstable_from {
            self.truncated_from = Some(self.truncated_from.map_or(index, |t| t.min(index)));
            self.unstable_from = index;
        }
    }

    /// The follower's side of AppendEntries (§5.3): if the entry at `prev_index` has
    /// `prev_term`, append `entries`, truncating only a conflicting suffix, and return the
    /// index of the last new entry. `None` if the log does not match at `prev_index`.
    ///
    /// `truncate_matching` is the `truncate-matching` bug switch. `strict` (no bug switch on)
    /// makes overwriting a committed entry a broken invariant (a panic); with a bug switch on
    /// the node overwrites it as a buggy implementation would, and the checkers see the loss.
    pub fn maybe_append(
        &mut self,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        truncate_matching: bool,
        strict: bool,
    ) -> Option<u64> {
        if self.term(prev_index) != Some(prev_term) {
            return None;
        }
        let last_new = prev_index + entries.len() as u64;
        if truncate_matching {
            // BUG (truncate-matching): drop everything after prevLogIndex even when it
            // agrees with `entries`; a stale, shorter AppendEntries then erases entries that
            // were acknowledged (and maybe committed) since.
            self.truncate(prev_index + 1);
            self.append(entries);
            return Some(last_new);
        }
        // Skip the entries already held with the same term (log matching, §5.3), truncate
        // from the first conflict only, and append the rest.
        let first_new = entries
            .iter()
            .position(|e| self.term(e.index) != Some(e.term))
            .unwrap_or(entries.len());
        if let Some(conflict) = entries.get(first_new) {
            if conflict.index <= self.last_index() {
                assert!(
                    !strict || conflict.index > self.committed,
                    "leader overwrites committed entry {} (commit {})",
                    conflict.index,
                    self.committed
                );
                self.truncate(conflict.index);
            }
        }
        self.append(entries.into_iter().skip(first_new).collect());
        Some(last_new)
    }

    /// The rejection hint for a failed AppendEntries at `prev_index` (fast backtracking):
    /// `(conflict_index, conflict_term)`, see [`crate::MessageBody::AppendEntriesResponse`].
    pub fn conflict_hint(&self, prev_index: u64) -> (u64, u64) {
        if prev_index > self.last_index() {
            return (self.last_index() + 1, 0);
        }
        let Some(term) = self.term(prev_index) else {
            return (self.first_index(), 0);
        };
        let mut first = prev_index;
        while first > self.first_index() && self.term(first - 1) == Some(term) {
            first -= 1;
        }
        (first, term)
    }

    /// The leader's side of fast backtracking: the last index at or before `at` whose term is
    /// `term`, if the leader has one.
    pub fn last_index_of_term(&self, term: u64, at: u64) -> Option<u64> {
        let mut i = at.min(self.last_index());
        while i >= self.snapshot.index {
            match self.term(i) {
                Some(t) if t == term => return Some(i),
                Some(t) if t < term => return None,
                _ => {}
            }
            if i == 0 {
                break;
            }
            i -= 1;
        }
        None
    }

    /// Advances the commit index (never backwards).
    pub fn commit_to(&mut self, index: u64) {
        self.committed = self.committed.max(index);
    }

    /// Committed entries not yet handed to the driver; marks them handed out.
    pub fn take_committed(&mut self) -> Vec<Entry> {
        let hi = self.committed.min(self.last_index());
        if hi <= self.applying {
            return Vec::new();
        }
        let out = self.entries_from(self.applying + 1, (hi - self.applying) as usize);
        self.applying = hi;
        out
    }

    /// Whether committed entries wait to be handed out.
    pub fn has_committed(&self) -> bool {
        self.committed.min(self.last_index()) > self.applying
    }

    /// Entries not yet handed out for persisting, and from where the driver must first delete
    /// its copy; marks them handed out.
    pub fn take_unstable(&mut self) -> (Option<u64>, Vec<Entry>) {
        let truncated = self.truncated_from.take();
        let out = self.entries_from(self.unstable_from, usize::MAX);
        self.unstable_from = self.last_index() + 1;
        (truncated, out)
    }

    /// Whether entries (or a truncation) wait to be persisted.
    pub fn has_unstable(&self) -> bool {
        self.truncated_from.is_some() || self.unstable_from <= self.last_index()
    }

    /// Marks everything held as already persisted (used on restart).
    pub fn mark_stable(&mut self) {
        self.unstable_from = self.last_index() + 1;
        self.truncated_from = None;
    }

    /// The log with node ids renamed (the test kit's `Relabel`).
    #[cfg(feature = "testkit")]
    pub(crate) fn relabelled(&self, map: &dyn Fn(crate::NodeId) -> crate::NodeId) -> RaftLog {
        use crate::testkit::Relabel;
        RaftLog {
            snapshot: self.snapshot.relabel(map),
            entries: self.entries.relabel(map),
            confs: (self.confs.iter())
                .map(|(i, m)| (*i, m.relabel(map)))
                .collect(),
            ..self.clone()
        }
    }

    /// Drops the entries up to `index` (which must be held or be the snapshot's) and returns
    /// the new snapshot position.
    pub fn compact(&mut self, index: u64) -> SnapshotMeta {
        let term = self.term(index).expect("compact: index must be held");
        let membership = self.membership_at(index).clone();
        let drop = (index - self.snapshot.index) as usize;
        self.entries.drain(..drop);
        self.confs.retain(|(i, _)| *i > index);
        self.snapshot = SnapshotMeta {
            index,
            term,
            membership,
        };
        self.unstable_from = self.unstable_from.max(index + 1);
        self.snapshot.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ents(terms: &[u64], from: u64) -> Vec<Entry> {
        terms
            .iter()
            .enumerate()
            .map(|(i, &term)| Entry {
                index: from + i as u64,
                term,
                kind: EntryKind::NoOp,
            })
            .collect()
    }

    #[test]
    fn conflicting_suffix_only_is_truncated() {
        let mut log = RaftLog::new(Membership::new([1]));
        log.append(ents(&[1, 1, 2, 2], 1));
        let _ = log.take_unstable();
        // A stale AppendEntries carrying a prefix we hold changes nothing (§5.3).
        assert_eq!(log.maybe_append(1, 1, ents(&[1], 2), false, true), Some(2));
        assert_eq!(log.last_index(), 4);
        assert!(!log.has_unstable());
        // A conflict at 3 truncates from 3 only.
        assert_eq!(log.maybe_append(2, 1, ents(&[3], 3), false, true), Some(3));
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.term(3), Some(3));
        let (truncated, new) = log.take_unstable();
        assert_eq!(truncated, Some(3));
        assert_eq!(new, ents(&[3], 3));
        // With the bug switch the stale prefix erases what follows.
        log.append(ents(&[3, 3], 4));
        assert_eq!(log.maybe_append(1, 1, ents(&[1], 2), true, false), Some(2));
        assert_eq!(log.last_index(), 2);
        // Mismatch at prev.
        assert_eq!(log.maybe_append(2, 9, vec![], false, true), None);
    }

    #[test]
    fn backtracking_hints() {
        let mut log = RaftLog::new(Membership::new([1]));
        log.append(ents(&[1, 1, 4, 4, 4], 1));
        assert_eq!(log.conflict_hint(9), (6, 0));
        assert_eq!(log.conflict_hint(5), (3, 4));
        assert_eq!(log.last_index_of_term(1, 5), Some(2));
        assert_eq!(log.last_index_of_term(2, 5), None);
        assert_eq!(log.last_index_of_term(4, 4), Some(4));
        let meta = log.compact(3);
        assert_eq!((meta.index, meta.term), (3, 4));
        assert_eq!(log.term(2), None);
        assert_eq!(log.first_index(), 4);
        assert_eq!(log.conflict_hint(5), (4, 4));
    }

    /// The byte budget of one AppendEntries (etcd's MaxSizePerMsg): entries up to the budget,
    /// but always the first one, however large, so no entry is ever stuck.
    #[test]
    fn a_byte_budget_bounds_a_batch_but_never_starves_one_entry() {
        let mut log = RaftLog::new(Membership::new([1]));
        let sized = |index, n| Entry {
            index,
            term: 1,
            kind: EntryKind::Normal(vec![0; n]),
        };
        log.append(vec![
            sized(1, 600),
            sized(2, 300),
            sized(3, 100),
            sized(4, 5),
        ]);
        assert_eq!(log.entries_within(1, 10, 1000).len(), 3);
        assert_eq!(log.entries_within(1, 10, 899).len(), 1);
        assert_eq!(
            log.entries_within(1, 10, 10).len(),
            1,
            "one entry always goes"
        );
        assert_eq!(
            log.entries_within(2, 2, 1000).len(),
            2,
            "the count cap still holds"
        );
        assert_eq!(log.entries_within(4, 10, 1).len(), 1);
        assert!(log.entries_within(5, 10, 1000).is_empty());
    }
}
