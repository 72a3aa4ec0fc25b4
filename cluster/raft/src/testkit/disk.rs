//! An in-memory disk: what a driver persists (step 3 of the driver contract) and what a
//! crash keeps of it.

use crate::message::Snapshot;
use crate::ready::{PersistedState, Ready};

/// What a node has on stable storage, and what it wrote that is not stable yet.
///
/// A correct driver makes each write durable before it sends or answers (fsync), so
/// `written` stays empty and a crash loses nothing. A driver with the `no-fsync` bug switch
/// uses [`Disk::lazy`]: writes land in `written` (the page cache) and become durable only
/// when the driver calls [`Disk::sync`] at some later step; [`Disk::crash`] drops them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Disk {
    /// What survives a crash.
    durable: PersistedState,
    /// Written since the last sync (only on a lazy disk; `None` when all is durable).
    written: Option<PersistedState>,
    /// Writes wait for [`Disk::sync`] instead of being durable at once.
    lazy: bool,
}

impl Disk {
    /// A disk whose writes are durable only after [`Disk::sync`] (the `no-fsync` bug).
    pub fn lazy() -> Disk {
        Disk {
            lazy: true,
            ..Disk::default()
        }
    }

    /// A disk that is lazy exactly when `lazy` is true.
    pub fn new(lazy: bool) -> Disk {
        if lazy {
            Disk::lazy()
        } else {
            Disk::default()
        }
    }

    /// Step 3 of the driver contract: snapshot, truncation, entries, hard state.
    pub fn persist(&mut self, rd: &Ready) {
        let p = self.target();
        if let Some(snap) = &rd.snapshot {
            p.entries.clear();
            p.snapshot = Some(snap.clone());
        }
        if let Some(from) = rd.truncate_from {
            p.entries.retain(|e| e.index < from);
        }
        p.entries.extend(rd.entries.iter().cloned());
        if let Some(hs) = &rd.hard_state {
            p.hard_state = hs.clone();
        }
    }

    /// Step 8: a snapshot the node made itself; the covered entries go.
    pub fn install_own_snapshot(&mut self, snap: Snapshot) {
        let p = self.target();
        p.entries.retain(|e| e.index > snap.meta.index);
        p.snapshot = Some(snap);
    }

    /// Makes every write durable (a no-op on a disk that is not lazy).
    pub fn sync(&mut self) {
        if let Some(w) = self.written.take() {
            self.durable = w;
        }
    }

    /// A crash (power lost): what was written but not synced is gone.
    pub fn crash(&mut self) {
        self.written = None;
    }

    /// Whether some write is not durable yet.
    pub fn has_unsynced(&self) -> bool {
        self.written.is_some()
    }

    /// What the disk holds now (the page cache included).
    pub fn current(&self) -> &PersistedState {
        self.written.as_ref().unwrap_or(&self.durable)
    }

    /// What a restarting node reads back: what the disk holds now (call [`Disk::crash`]
    /// first to model a power loss).
    pub fn persisted(&self) -> PersistedState {
        self.current().clone()
    }

    /// The same disk with node ids renamed (see [`crate::testkit::Relabel`]).
    pub(crate) fn relabelled(&self, map: &dyn Fn(crate::NodeId) -> crate::NodeId) -> Disk {
        use crate::testkit::Relabel;
        Disk {
            durable: self.durable.relabel(map),
            written: self.written.relabel(map),
            lazy: self.lazy,
        }
    }

    /// Where the next write goes.
    fn target(&mut self) -> &mut PersistedState {
        if !self.lazy {
            return &mut self.durable;
        }
        let durable = &self.durable;
        self.written.get_or_insert_with(|| durable.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Entry, EntryKind, HardState};

    fn ready(term: u64, entries: &[u64]) -> Ready {
        Ready {
            hard_state: Some(HardState {
                term,
                vote: Some(1),
                commit: 0,
            }),
            entries: entries
                .iter()
                .map(|&index| Entry {
                    index,
                    term,
                    kind: EntryKind::NoOp,
                })
                .collect(),
            ..Ready::default()
        }
    }

    #[test]
    fn a_crash_loses_nothing_on_a_disk_that_syncs() {
        let mut d = Disk::default();
        d.persist(&ready(2, &[1, 2]));
        d.crash();
        assert_eq!(d.persisted().hard_state.term, 2);
        assert_eq!(d.persisted().entries.len(), 2);
        assert!(!d.has_unsynced());
    }

    #[test]
    fn a_crash_loses_what_a_lazy_disk_did_not_sync() {
        let mut d = Disk::lazy();
        d.persist(&ready(1, &[1]));
        d.sync();
        d.persist(&ready(2, &[2]));
        assert_eq!(d.current().hard_state.term, 2);
        assert!(d.has_unsynced());
        d.crash();
        assert_eq!(d.persisted().hard_state.term, 1);
        assert_eq!(d.persisted().entries.len(), 1);
    }
}
