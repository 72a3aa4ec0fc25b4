//! Snapshots in the event loop: taking one when the log has grown, installing one the leader
//! sent (on disk, then into the state machine), and reading one back from disk on start.
//!
//! Sending needs nothing here: the core puts a snapshot into an `InstallSnapshot` message,
//! which the transport sends like any other (a leader queues it before its own fsync, like
//! AppendEntries, see `mod.rs`), in pieces when it is over the frame limit (`wire::pieces`).
//!
//! A snapshot's data is the state machine's own encoding (`Kv::encode`), its metadata the
//! node's (`codec::membership_bytes`): the storage layer (`storage/snapshot.rs`) keeps both
//! opaque.

use raft::Snapshot;

use super::{Driver, NodeError};
use crate::codec;
use crate::kv::Kv;
use crate::storage;

pub(super) fn to_storage_meta(m: &raft::SnapshotMeta) -> storage::SnapshotMeta {
    storage::SnapshotMeta {
        index: m.index,
        term: m.term,
        conf: codec::membership_bytes(&m.membership),
    }
}

/// The state machine a snapshot at `index` holds, applied up to `index`.
fn decode_kv(index: u64, data: &[u8]) -> Result<Kv, NodeError> {
    let mut kv = Kv::decode(data).map_err(|e| NodeError::BadSnapshot {
        index,
        why: e.to_string(),
    })?;
    kv.applied = index;
    Ok(kv)
}

/// The snapshot found on disk at start (metadata `meta`, data `data`), for the core, and the
/// state machine it holds.
pub(super) fn read_back(
    meta: &storage::SnapshotMeta,
    data: Vec<u8>,
) -> Result<(Snapshot, Kv), NodeError> {
    let index = meta.index;
    let membership =
        codec::membership_from_bytes(&meta.conf).map_err(|e| NodeError::BadSnapshot {
            index,
            why: e.to_string(),
        })?;
    let kv = decode_kv(index, &data)?;
    let snapshot = Snapshot {
        meta: raft::SnapshotMeta {
            index,
            term: meta.term,
            membership,
        },
        data,
    };
    Ok((snapshot, kv))
}

impl Driver {
    /// Writes a snapshot the leader sent to disk, replacing the log it covers, before the
    /// rest of its `Ready` is staged (see `Driver::persist`).
    pub(super) async fn install_snapshot(&mut self, s: &Snapshot) -> Result<(), NodeError> {
        let meta = to_storage_meta(&s.meta);
        let data = s.data.clone();
        self.on_disk(move |st| st.install_snapshot(meta, &data, true))
            .await?;
        Ok(())
    }

    /// Replaces the state machine by a snapshot the leader sent.
    pub(super) fn restore(&mut self, s: &Snapshot) -> Result<(), NodeError> {
        self.kv = decode_kv(s.meta.index, &s.data)?;
        let peers: Vec<(u64, String)> = self.kv.peers.clone().into_iter().collect();
        for (id, a) in peers {
            self.learn_peer(id, &a);
        }
        Ok(())
    }

    /// Takes a snapshot and compacts the log once `snapshot_every` entries have been applied
    /// since the last one.
    pub(super) async fn maybe_snapshot(&mut self) -> Result<(), NodeError> {
        let since = self.kv.applied - self.storage().state().snapshot.index;
        if self.snapshot_every == 0 || since < self.snapshot_every {
            return Ok(());
        }
        let data = self.kv.encode();
        match self.node.compact(self.kv.applied, data) {
            Ok(snap) => {
                let meta = to_storage_meta(&snap.meta);
                let data = snap.data;
                self.on_disk(move |st| st.install_snapshot(meta, &data, false))
                    .await?;
                tracing::info!(index = snap.meta.index, "snapshot taken, log compacted");
            }
            Err(e) => tracing::debug!("no snapshot: {e}"),
        }
        Ok(())
    }
}
