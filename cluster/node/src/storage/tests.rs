//! Storage tests: torn tails, corrupt middles, and random operation sequences against a model.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;

use super::*;

/// A scratch directory removed when dropped.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "cluster-storage-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: format!("command {index}@{term}").into_bytes(),
    }
}

fn opts() -> Options {
    Options {
        fsync: false,
        segment_bytes: 1 << 20,
    }
}

fn only_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    assert_eq!(segs.len(), 1);
    segs.pop().unwrap()
}

#[test]
fn reopen_restores_entries_and_hard_state() {
    let d = TempDir::new("reopen");
    let (mut s, _) = Storage::open(&d.0, opts()).unwrap();
    s.append(&[entry(1, 1), entry(2, 1), entry(3, 2)]).unwrap();
    s.set_hard_state(HardState {
        term: 2,
        vote: 3,
        commit: 2,
    });
    s.sync().unwrap();
    let before = s.state().clone();
    drop(s);
    let (s, rec) = Storage::open(&d.0, opts()).unwrap();
    assert_eq!(s.state(), &before);
    assert_eq!(rec.torn_bytes, 0);
}

#[test]
fn torn_tail_at_every_offset_of_the_last_record_recovers_the_previous_record() {
    let d = TempDir::new("torn");
    let (mut s, _) = Storage::open(&d.0, opts()).unwrap();
    s.append(&[entry(1, 1), entry(2, 1)]).unwrap();
    s.sync().unwrap();
    let before = s.state().clone();
    let seg = only_segment(&d.0);
    let good_len = fs::metadata(&seg).unwrap().len();
    s.append(&[entry(3, 1)]).unwrap();
    s.sync().unwrap();
    drop(s);
    let full = fs::read(&seg).unwrap();
    assert!(full.len() as u64 > good_len);
    for cut in good_len..full.len() as u64 {
        fs::write(&seg, &full[..cut as usize]).unwrap();
        let (mut s, rec) = Storage::open(&d.0, opts())
            .unwrap_or_else(|e| panic!("cut at {cut} of {} refused: {e}", full.len()));
        assert_eq!(s.state(), &before, "cut at {cut}");
        assert_eq!(rec.torn_bytes, cut - good_len);
        assert_eq!(fs::metadata(&seg).unwrap().len(), good_len);
        // The log goes on from the recovered point.
        s.append(&[entry(3, 2)]).unwrap();
        s.sync().unwrap();
        drop(s);
        let (s, _) = Storage::open(&d.0, opts()).unwrap();
        assert_eq!(s.state().term(3), Some(2));
    }
}

#[test]
fn a_bad_checksum_on_the_last_record_is_a_torn_tail() {
    let d = TempDir::new("lastbit");
    let (mut s, _) = Storage::open(&d.0, opts()).unwrap();
    s.append(&[entry(1, 1)]).unwrap();
    s.sync().unwrap();
    let before = s.state().clone();
    s.append(&[entry(2, 1)]).unwrap();
    s.sync().unwrap();
    drop(s);
    let seg = only_segment(&d.0);
    let mut bytes = fs::read(&seg).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0x10;
    fs::write(&seg, &bytes).unwrap();
    let (s, _) = Storage::open(&d.0, opts()).unwrap();
    assert_eq!(s.state(), &before);
}

#[test]
fn a_flipped_bit_in_the_middle_is_refused_with_file_and_offset() {
    let d = TempDir::new("middle");
    let (mut s, _) = Storage::open(&d.0, opts()).unwrap();
    s.append(&(1..=10).map(|i| entry(i, 1)).collect::<Vec<_>>())
        .unwrap();
    s.sync().unwrap();
    drop(s);
    let seg = only_segment(&d.0);
    let clean = fs::read(&seg).unwrap();
    let record_len = Record::Entry(entry(1, 1)).encode().len();
    // Flip one bit in every byte of the 4th record in turn (header and body alike).
    let start = 3 * record_len;
    for at in start..start + record_len {
        let mut bytes = clean.clone();
        bytes[at] ^= 0x04;
        fs::write(&seg, &bytes).unwrap();
        match Storage::open(&d.0, opts()) {
            Err(StorageError::Corrupt { path, offset, .. }) => {
                assert_eq!(path, seg);
                assert_eq!(offset, start as u64, "flip at byte {at}");
            }
            Err(e) => panic!("flip at {at}: wrong error {e}"),
            Ok(_) => panic!("flip at byte {at} was accepted"),
        }
    }
    let err = Storage::open(&d.0, opts()).err().unwrap().to_string();
    assert!(err.contains(&seg.display().to_string()), "{err}");
    assert!(err.contains(&format!("offset {start}")), "{err}");
}

#[test]
fn snapshot_compacts_segments_and_survives_reopen() {
    let d = TempDir::new("snap");
    let small = Options {
        fsync: true,
        segment_bytes: 200,
    };
    let (mut s, _) = Storage::open(&d.0, small.clone()).unwrap();
    for i in 1..=40 {
        s.append(&[entry(i, 1)]).unwrap();
        s.sync().unwrap();
    }
    assert!(s.segment_count() > 3);
    let meta = SnapshotMeta {
        index: 30,
        term: 1,
        conf: vec![1, 2, 3],
    };
    s.install_snapshot(meta.clone(), b"state at 30", false)
        .unwrap();
    assert_eq!(s.segment_count(), 1);
    let after = s.state().clone();
    assert_eq!(after.entries.len(), 10);
    drop(s);
    let (s, rec) = Storage::open(&d.0, small).unwrap();
    assert_eq!(s.state(), &after);
    assert_eq!(rec.snapshot_data.as_deref(), Some(&b"state at 30"[..]));
    let files = fs::read_dir(&d.0).unwrap().count();
    assert_eq!(files, 2, "one segment and one snapshot remain");
}

#[test]
fn a_missing_snapshot_file_is_refused() {
    let d = TempDir::new("nosnap");
    let (mut s, _) = Storage::open(&d.0, opts()).unwrap();
    s.append(&[entry(1, 1)]).unwrap();
    let meta = SnapshotMeta {
        index: 1,
        term: 1,
        conf: vec![],
    };
    s.install_snapshot(meta, b"x", false).unwrap();
    drop(s);
    fs::remove_file(d.0.join(snapshot::file_name(1, 1))).unwrap();
    assert!(matches!(
        Storage::open(&d.0, opts()),
        Err(StorageError::MissingSnapshot { index: 1, .. })
    ));
}

/// The model: a map from index to entry, a snapshot point and a hard state, written from the
/// definitions in the module docs rather than from `LogState`.
#[derive(Clone, Debug, Default)]
struct Model {
    entries: BTreeMap<u64, (u64, Vec<u8>)>,
    snap: (u64, u64),
    hs: HardState,
    snap_data: Vec<u8>,
}

impl Model {
    fn last(&self) -> u64 {
        self.entries
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.snap.0)
    }
    fn check(&self, s: &Storage) {
        let st = s.state();
        assert_eq!(st.hard_state, self.hs);
        assert_eq!((st.snapshot.index, st.snapshot.term), self.snap);
        let got: Vec<_> = st
            .entries
            .iter()
            .map(|e| (e.index, e.term, e.data.clone()))
            .collect();
        let want: Vec<_> = self
            .entries
            .iter()
            .map(|(&i, (t, d))| (i, *t, d.clone()))
            .collect();
        assert_eq!(got, want);
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Append `n` entries of `term` starting `back` entries before the end.
    Append {
        back: u64,
        n: u64,
        term: u64,
    },
    HardState {
        term: u64,
        vote: u64,
    },
    /// Snapshot at `back` entries before the end.
    Snapshot {
        back: u64,
    },
    /// Drop the entries from `back` before the end on.
    Truncate {
        back: u64,
    },
    /// A snapshot received from a leader, `ahead` entries past the end: replaces the log.
    Install {
        ahead: u64,
    },
    Sync,
    /// Drop the storage without syncing (a crash) and reopen.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..4, 1u64..5, 1u64..4).prop_map(|(back, n, term)| Op::Append { back, n, term }),
        2 => (0u64..5, 0u64..4).prop_map(|(term, vote)| Op::HardState { term, vote }),
        1 => (0u64..6).prop_map(|back| Op::Snapshot { back }),
        1 => (0u64..4).prop_map(|back| Op::Truncate { back }),
        1 => (0u64..4).prop_map(|ahead| Op::Install { ahead }),
        3 => Just(Op::Sync),
        1 => Just(Op::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_match_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let d = TempDir::new("prop");
        let o = Options { fsync: false, segment_bytes: 300 };
        let (mut s, _) = Storage::open(&d.0, o.clone()).unwrap();
        let mut cur = Model::default();
        let mut durable = Model::default();
        for op in ops {
            match op {
                Op::Append { back, n, term } => {
                    let first = (cur.last() + 1).saturating_sub(back).max(cur.snap.0 + 1);
                    let es: Vec<Entry> = (first..first + n)
                        .map(|i| Entry { index: i, term, data: vec![i as u8, term as u8] })
                        .collect();
                    s.append(&es).unwrap();
                    cur.entries.split_off(&first);
                    for e in es {
                        cur.entries.insert(e.index, (e.term, e.data));
                    }
                }
                Op::HardState { term, vote } => {
                    let hs = HardState { term, vote, commit: cur.last() };
                    s.set_hard_state(hs);
                    cur.hs = hs;
                }
                Op::Snapshot { back } => {
                    let index = cur.last().saturating_sub(back);
                    if index > cur.snap.0 {
                        let term = cur.entries[&index].0;
                        let data = format!("snap {index}").into_bytes();
                        s.install_snapshot(SnapshotMeta { index, term, conf: vec![7] }, &data, false).unwrap();
                        cur.entries = cur.entries.split_off(&(index + 1));
                        cur.snap = (index, term);
                        cur.snap_data = data;
                        durable = cur.clone();
                    }
                }
                Op::Truncate { back } => {
                    let from = (cur.last() + 1).saturating_sub(back).max(cur.snap.0 + 1);
                    s.truncate(from);
                    cur.entries.split_off(&from);
                }
                Op::Install { ahead } => {
                    let index = cur.last() + ahead;
                    if index > cur.snap.0 {
                        let data = format!("leader snap {index}").into_bytes();
                        let meta = SnapshotMeta { index, term: 9, conf: vec![] };
                        s.install_snapshot(meta, &data, true).unwrap();
                        cur.entries.clear();
                        cur.snap = (index, 9);
                        cur.snap_data = data;
                        durable = cur.clone();
                    }
                }
                Op::Sync => {
                    s.sync().unwrap();
                    durable = cur.clone();
                }
                Op::Crash => {
                    drop(s);
                    let (s2, rec) = Storage::open(&d.0, o.clone()).unwrap();
                    s = s2;
                    cur = durable.clone();
                    let want = (cur.snap.0 > 0).then(|| cur.snap_data.clone());
                    prop_assert_eq!(rec.snapshot_data, want);
                }
            }
            cur.check(&s);
        }
    }
}
