//! What the WAL holds, both ways: a `Ready` staged into it, and on start the data directory
//! read back into what the core and the state machine start from (a snapshot on disk is read
//! by `snapshot.rs`).

use raft::{PersistedState, Ready};

use super::snapshot::read_back;
use super::NodeError;
use crate::codec;
use crate::kv::Kv;
use crate::storage::{self, Storage};

fn to_storage_hs(hs: &raft::HardState) -> storage::HardState {
    storage::HardState {
        term: hs.term,
        vote: hs.vote.unwrap_or(0),
        commit: hs.commit,
    }
}

fn to_storage_entry(e: &raft::Entry) -> storage::Entry {
    storage::Entry {
        index: e.index,
        term: e.term,
        data: codec::kind_bytes(&e.kind),
    }
}

/// Reads the data directory back into what the core and the state machine start from.
pub(super) fn recover(
    storage: &Storage,
    snapshot_data: Option<Vec<u8>>,
) -> Result<(Option<PersistedState>, Kv), NodeError> {
    let st = storage.state();
    let (snapshot, kv) = match snapshot_data {
        Some(data) => {
            let (snapshot, kv) = read_back(&st.snapshot, data)?;
            (Some(snapshot), kv)
        }
        None => (None, Kv::default()),
    };
    let entries = st
        .entries
        .iter()
        .map(|e| {
            Ok(raft::Entry {
                index: e.index,
                term: e.term,
                kind: codec::kind_from_bytes(&e.data).map_err(|source| NodeError::BadEntry {
                    index: e.index,
                    source,
                })?,
            })
        })
        .collect::<Result<Vec<_>, NodeError>>()?;
    let hs = &st.hard_state;
    let fresh = hs.term == 0 && entries.is_empty() && snapshot.is_none();
    let persisted = (!fresh).then(|| PersistedState {
        hard_state: raft::HardState {
            term: hs.term,
            vote: (hs.vote != 0).then_some(hs.vote),
            commit: hs.commit,
        },
        snapshot,
        entries,
    });
    Ok((persisted, kv))
}

/// Stages a `Ready`'s truncation, hard state and entries (its snapshot is installed apart);
/// returns whether they need an fsync before anything is sent.
///
/// Term and vote must be durable before anyone hears of them; the commit index is a hint the
/// core recomputes after a restart, so a hard state that only moves the commit index needs
/// no fsync of its own. That takes one fsync off the critical path of every write: on the
/// leader once a quorum acknowledges, and on each follower when it learns the new commit.
pub(super) fn stage_ready(storage: &mut Storage, rd: &Ready) -> Result<bool, NodeError> {
    if let Some(from) = rd.truncate_from {
        storage.truncate(from);
    }
    let mut durable = rd.snapshot.is_some() || rd.truncate_from.is_some() || !rd.entries.is_empty();
    if let Some(hs) = &rd.hard_state {
        let new = to_storage_hs(hs);
        let old = storage.state().hard_state;
        durable |= (new.term, new.vote) != (old.term, old.vote);
        storage.set_hard_state(new);
    }
    if !rd.entries.is_empty() {
        let es: Vec<storage::Entry> = rd.entries.iter().map(to_storage_entry).collect();
        storage.append(&es)?;
    }
    Ok(durable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::{Config, EntryKind};

    /// A follower's batch that adopts a new term and appends entries of it, cut by a SIGKILL
    /// at every byte: whatever prefix survives, the node restarts (the core refuses a log
    /// whose last term is ahead of the persisted term, so the hard state must come first).
    #[test]
    fn every_torn_prefix_of_a_new_term_batch_restarts() {
        let dir = std::env::temp_dir().join(format!("cluster-node-torn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let opts = storage::Options {
            fsync: false,
            segment_bytes: 1 << 20,
        };
        let (mut st, _) = Storage::open(&dir, opts.clone()).unwrap();
        let entry = |index, term| raft::Entry {
            index,
            term,
            kind: EntryKind::Normal(vec![7; 300]),
        };
        let first = Ready {
            hard_state: Some(raft::HardState {
                term: 1,
                vote: Some(2),
                commit: 0,
            }),
            entries: vec![entry(1, 1)],
            ..Ready::default()
        };
        assert!(stage_ready(&mut st, &first).unwrap());
        st.sync().unwrap();
        let seg = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "wal"))
            .unwrap();
        let base = std::fs::metadata(&seg).unwrap().len() as usize;
        let second = Ready {
            hard_state: Some(raft::HardState {
                term: 2,
                vote: None,
                commit: 1,
            }),
            entries: (2..6).map(|i| entry(i, 2)).collect(),
            ..Ready::default()
        };
        assert!(stage_ready(&mut st, &second).unwrap());
        st.sync().unwrap();
        drop(st);
        let full = std::fs::read(&seg).unwrap();
        for cut in base..=full.len() {
            std::fs::write(&seg, &full[..cut]).unwrap();
            let (st, rec) = Storage::open(&dir, opts.clone()).unwrap();
            let (persisted, _) = recover(&st, rec.snapshot_data).unwrap();
            let cfg = Config::new(1, [1, 2, 3]);
            if let Err(e) = raft::Node::new(cfg, persisted) {
                panic!("cut at byte {cut} of {}: restart refused: {e}", full.len());
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_commit_only_hard_state_needs_no_fsync() {
        let dir = std::env::temp_dir().join(format!("cluster-node-commit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut st, _) = Storage::open(&dir, storage::Options::default()).unwrap();
        let vote = Ready {
            hard_state: Some(raft::HardState {
                term: 3,
                vote: Some(1),
                commit: 0,
            }),
            ..Ready::default()
        };
        assert!(
            stage_ready(&mut st, &vote).unwrap(),
            "a vote must be durable"
        );
        let commit = Ready {
            hard_state: Some(raft::HardState {
                term: 3,
                vote: Some(1),
                commit: 5,
            }),
            ..Ready::default()
        };
        assert!(!stage_ready(&mut st, &commit).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
