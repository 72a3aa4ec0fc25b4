//! The log state that replaying WAL records produces: hard state, snapshot point, entries.
//!
//! The writer applies every record it stages to this same structure, so what the node holds in
//! memory is by construction what recovery will rebuild from disk.

use std::collections::VecDeque;

use super::record::{Entry, HardState, Record, SnapshotMeta};

/// The durable state of one node's log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogState {
    /// Latest hard state.
    pub hard_state: HardState,
    /// The snapshot point (index 0 = no snapshot).
    pub snapshot: SnapshotMeta,
    /// Entries `snapshot.index + 1 ..= last_index()`, in order, without gaps.
    pub entries: VecDeque<Entry>,
}

impl LogState {
    /// Index of the last entry (the snapshot index if the log is empty).
    pub fn last_index(&self) -> u64 {
        self.snapshot.index + self.entries.len() as u64
    }

    /// Term of the entry at `index`, if it is the snapshot point or still in the log.
    pub fn term(&self, index: u64) -> Option<u64> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.entry(index).map(|e| e.term)
    }

    /// The entry at `index`, if it is in the log.
    pub fn entry(&self, index: u64) -> Option<&Entry> {
        let pos = index.checked_sub(self.snapshot.index + 1)?;
        self.entries.get(usize::try_from(pos).ok()?)
    }

    /// Applies one record. An `Err` names why the record cannot follow the current state (a
    /// gap in the log), which on replay means corruption.
    pub fn apply(&mut self, record: &Record) -> Result<(), &'static str> {
        match record {
            Record::Entry(e) => self.apply_entry(e)?,
            Record::Truncate { from } => {
                let keep = from.saturating_sub(self.snapshot.index + 1);
                self.entries.truncate(keep as usize);
            }
            Record::HardState(hs) => self.hard_state = *hs,
            Record::Snapshot(m) => self.apply_snapshot(m),
        }
        Ok(())
    }

    /// An entry either extends the log, or restates one already there (same index and term:
    /// by Raft's log matching property the same entry; this is what a torn compaction
    /// checkpoint replays), or replaces a conflicting suffix.
    fn apply_entry(&mut self, e: &Entry) -> Result<(), &'static str> {
        let last = self.last_index();
        if e.index <= self.snapshot.index {
            return Ok(());
        }
        if e.index > last + 1 {
            return Err("entry leaves a gap after the last index");
        }
        if e.index <= last {
            if self.term(e.index) == Some(e.term) {
                return Ok(());
            }
            self.entries
                .truncate((e.index - self.snapshot.index - 1) as usize);
        }
        self.entries.push_back(e.clone());
        Ok(())
    }

    fn apply_snapshot(&mut self, m: &SnapshotMeta) {
        if m.index <= self.snapshot.index {
            return;
        }
        if self.term(m.index) == Some(m.term) {
            let drop = (m.index - self.snapshot.index) as usize;
            self.entries.drain(..drop);
        } else {
            self.entries.clear();
        }
        self.snapshot = m.clone();
    }
}
