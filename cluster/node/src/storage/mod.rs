//! Durable storage for one node: a segmented, checksummed write-ahead log plus snapshot files.
//!
//! On disk, a data directory holds `NNNNNNNNNNNNNNNNNNNN.wal` segments (replayed in sequence
//! order) and `snap-INDEX-TERM.snap` snapshots. Every change is a [`Record`]; the writer stages
//! records in memory and [`Storage::sync`] writes the whole batch with one `write` and one
//! `fdatasync` (group commit): nothing is acknowledged before `sync` returns.
//!
//! Compaction: [`Storage::install_snapshot`] first makes the snapshot file durable, then starts
//! a new segment holding a checkpoint (snapshot record, hard state, the entries after the
//! snapshot), fsyncs it and the directory, and only then deletes the older segments and
//! snapshots. A crash at any point leaves either the old segments (still complete) or the new
//! checkpoint, and replay of a partial checkpoint on top of the old segments is harmless
//! because restating an entry with the same index and term is a no-op.
//!
//! Recovery: a record that fails its checksum or is cut short is a *torn tail* (dropped, the
//! file truncated there) only if it is in the last segment and no valid record follows it;
//! anything else is corruption, refused with the file and offset.

mod crc;
pub mod owner;
mod record;
mod snapshot;
mod state;

#[cfg(test)]
mod tests;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use record::{Entry, HardState, Record, SnapshotMeta};
pub use state::LogState;

use record::Decoded;

/// Why the storage could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The data directory belongs to another node.
    #[error(
        "data directory {dir} belongs to node {found}, not to this node (--id {id}): start node \
         {found} on it, or give this node its own --data-dir"
    )]
    OtherNode {
        /// The directory.
        dir: PathBuf,
        /// The id stored in it.
        found: u64,
        /// This node's id.
        id: u64,
    },
    /// The id file does not hold an id.
    #[error("{path} does not hold a node id (found {text:?})")]
    BadIdFile {
        /// The file.
        path: PathBuf,
        /// The start of what it holds.
        text: String,
    },
    /// The operating system refused a file operation.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A WAL segment is damaged somewhere other than its torn tail: refuse to start.
    #[error("corrupt WAL record in {path} at offset {offset}: {why}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the damaged record.
        offset: u64,
        /// What is wrong with it.
        why: String,
    },
    /// A snapshot file fails its checksum or does not parse.
    #[error("corrupt snapshot {path}: {why}")]
    CorruptSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The WAL names a snapshot whose file is not in the data directory.
    #[error("the WAL refers to snapshot index {index} term {term}, but {path} does not exist")]
    MissingSnapshot {
        /// Snapshot index.
        index: u64,
        /// Snapshot term.
        term: u64,
        /// Where the file was expected.
        path: PathBuf,
    },
    /// The caller asked to append entries that do not continue the log.
    #[error("cannot append entry {index}: the log ends at {last}")]
    Gap {
        /// First index offered.
        index: u64,
        /// Current last index.
        last: u64,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// fsyncs a directory, so that file creations, renames and removals in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Tuning of the storage.
#[derive(Clone, Debug)]
pub struct Options {
    /// fsync on every [`Storage::sync`] (off only for benchmarks of everything but the disk).
    pub fsync: bool,
    /// Start a new segment once the current one reaches this many bytes.
    pub segment_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fsync: true,
            segment_bytes: 64 << 20,
        }
    }
}

/// The open storage of one node.
pub struct Storage {
    dir: PathBuf,
    opts: Options,
    state: LogState,
    /// Sequence numbers of the segments on disk, oldest first; the last is being written.
    segments: Vec<u64>,
    file: File,
    file_len: u64,
    /// Encoded records staged since the last sync.
    staged: Vec<u8>,
}

/// What [`Storage::open`] found on disk.
pub struct Recovered {
    /// The data of the snapshot named by the log, if any.
    pub snapshot_data: Option<Vec<u8>>,
    /// Bytes dropped from the end of the last segment as a torn tail.
    pub torn_bytes: u64,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

impl Storage {
    /// Opens (or creates) the data directory and replays it.
    pub fn open(dir: &Path, opts: Options) -> Result<(Storage, Recovered), StorageError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut segments = Vec::new();
        for item in fs::read_dir(dir).map_err(io_err(dir))? {
            let item = item.map_err(io_err(dir))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                // A snapshot that was never renamed into place: never part of the state.
                fs::remove_file(item.path()).map_err(io_err(&item.path()))?;
            } else if let Some(seq) = name.strip_suffix(".wal").and_then(|s| s.parse().ok()) {
                segments.push(seq);
            }
        }
        segments.sort_unstable();
        let mut state = LogState::default();
        let mut torn_bytes = 0;
        for (i, &seq) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            torn_bytes += replay_segment(&segment_path(dir, seq), last, &mut state)?;
        }
        if segments.is_empty() {
            segments.push(1);
        }
        let current = segment_path(dir, *segments.last().unwrap());
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&current)
            .map_err(io_err(&current))?;
        let file_len = file.metadata().map_err(io_err(&current))?.len();
        if segments.len() == 1 && file_len == 0 && opts.fsync {
            sync_dir(dir)?;
        }
        let snapshot_data = if state.snapshot.index > 0 {
            let (index, term) = (state.snapshot.index, state.snapshot.term);
            let path = dir.join(snapshot::file_name(index, term));
            if !path.exists() {
                return Err(StorageError::MissingSnapshot { index, term, path });
            }
            let (meta, data) = snapshot::read(&path)?;
            if (meta.index, meta.term) != (index, term) {
                return Err(StorageError::CorruptSnapshot {
                    path,
                    why: format!("holds index {} term {}", meta.index, meta.term),
                });
            }
            Some(data)
        } else {
            None
        };
        let storage = Storage {
            dir: dir.to_path_buf(),
            opts,
            state,
            segments,
            file,
            file_len,
            staged: Vec::new(),
        };
        Ok((
            storage,
            Recovered {
                snapshot_data,
                torn_bytes,
            },
        ))
    }

    /// The state as of the last staged record (durable once [`Storage::sync`] returns).
    pub fn state(&self) -> &LogState {
        &self.state
    }

    /// Stages `entries`; if the first one is at or before the last index, the log from there
    /// on is replaced (a truncation record is staged first).
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let last = self.state.last_index();
        if first.index > last + 1 {
            return Err(StorageError::Gap {
                index: first.index,
                last,
            });
        }
        if first.index <= last {
            self.stage(Record::Truncate { from: first.index });
        }
        for (i, e) in entries.iter().enumerate() {
            if e.index != first.index + i as u64 {
                return Err(StorageError::Gap {
                    index: e.index,
                    last: first.index + i as u64 - 1,
                });
            }
            self.stage(Record::Entry(e.clone()));
        }
        Ok(())
    }

    /// Stages a new hard state (nothing if it is unchanged).
    pub fn set_hard_state(&mut self, hs: HardState) {
        if hs != self.state.hard_state {
            self.stage(Record::HardState(hs));
        }
    }

    fn stage(&mut self, r: Record) {
        r.encode_into(&mut self.staged);
        self.state
            .apply(&r)
            .expect("the writer checked continuity before staging");
    }

    /// Whether records are staged and not yet durable.
    pub fn has_staged(&self) -> bool {
        !self.staged.is_empty()
    }

    /// Writes every staged record with one write and one fdatasync (group commit), then
    /// starts a new segment if this one is full.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.write_staged(true)
    }

    /// Writes every staged record without waiting for the disk: for records whose loss in
    /// a crash is harmless (a hard state that only moves the commit index, which Raft treats
    /// as a hint). The next [`Storage::sync`] makes them durable along with its own.
    pub fn write_unsynced(&mut self) -> Result<(), StorageError> {
        self.write_staged(false)
    }

    fn write_staged(&mut self, durable: bool) -> Result<(), StorageError> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let path = segment_path(&self.dir, *self.segments.last().unwrap());
        self.file.write_all(&self.staged).map_err(io_err(&path))?;
        if durable && self.opts.fsync {
            self.file.sync_data().map_err(io_err(&path))?;
        }
        self.file_len += self.staged.len() as u64;
        self.staged.clear();
        if self.file_len >= self.opts.segment_bytes {
            self.open_segment(Vec::new())?;
        }
        Ok(())
    }

    /// Creates the next segment with `content`, makes it durable, and makes it current.
    fn open_segment(&mut self, content: Vec<u8>) -> Result<(), StorageError> {
        let seq = self.segments.last().unwrap() + 1;
        let path = segment_path(&self.dir, seq);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.write_all(&content).map_err(io_err(&path))?;
        if self.opts.fsync {
            file.sync_data().map_err(io_err(&path))?;
            sync_dir(&self.dir)?;
        }
        self.segments.push(seq);
        self.file = file;
        self.file_len = content.len() as u64;
        Ok(())
    }

    /// Makes `data` the snapshot up to `meta.index` and compacts the log: entries up to the
    /// snapshot are dropped (all of them if `replace_log`, as for a snapshot received from the
    /// leader, or if the snapshot is ahead of or conflicts with the log) and segments and
    /// snapshots no longer needed are removed. Syncs staged records first.
    pub fn install_snapshot(
        &mut self,
        meta: SnapshotMeta,
        data: &[u8],
        replace_log: bool,
    ) -> Result<(), StorageError> {
        if meta.index <= self.state.snapshot.index {
            return Ok(());
        }
        self.sync()?;
        snapshot::write(&self.dir, &meta, data, self.opts.fsync)?;
        if replace_log {
            // Only the mirror needs the truncation: the checkpoint below then holds no entry,
            // and replaying old segments plus a torn checkpoint still ends in a valid log.
            let from = self.state.snapshot.index + 1;
            self.state
                .apply(&Record::Truncate { from })
                .expect("truncation always applies");
        }
        self.state
            .apply(&Record::Snapshot(meta.clone()))
            .expect("snapshot records always apply");
        let mut checkpoint = Vec::new();
        Record::Snapshot(meta).encode_into(&mut checkpoint);
        Record::HardState(self.state.hard_state).encode_into(&mut checkpoint);
        for e in &self.state.entries {
            // Clone-free encode would need a borrowed record type; checkpoints are rare.
            Record::Entry(e.clone()).encode_into(&mut checkpoint);
        }
        let old: Vec<u64> = self.segments.clone();
        self.open_segment(checkpoint)?;
        // Newest first: a crash half-way leaves a prefix of the old segments, which replays
        // to a valid (older) log before the checkpoint; a suffix would start with a gap.
        for seq in old.into_iter().rev() {
            let p = segment_path(&self.dir, seq);
            fs::remove_file(&p).map_err(io_err(&p))?;
        }
        self.segments.drain(..self.segments.len() - 1);
        let keep = snapshot::file_name(self.state.snapshot.index, self.state.snapshot.term);
        for item in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let item = item.map_err(io_err(&self.dir))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if snapshot::parse_name(&name).is_some() && name != keep {
                fs::remove_file(item.path()).map_err(io_err(&item.path()))?;
            }
        }
        if self.opts.fsync {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Reads the current snapshot's data back from disk.
    pub fn snapshot_data(&self) -> Result<Option<Vec<u8>>, StorageError> {
        let s = &self.state.snapshot;
        if s.index == 0 {
            return Ok(None);
        }
        let path = self.dir.join(snapshot::file_name(s.index, s.term));
        Ok(Some(snapshot::read(&path)?.1))
    }

    /// Stages the removal of every entry from `from` on.
    pub fn truncate(&mut self, from: u64) {
        if from <= self.state.last_index() {
            self.stage(Record::Truncate { from });
        }
    }

    /// Number of segment files on disk.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

/// Replays one segment into `state`; returns the number of torn-tail bytes cut off.
fn replay_segment(path: &Path, last: bool, state: &mut LogState) -> Result<u64, StorageError> {
    let buf = fs::read(path).map_err(io_err(path))?;
    let mut off = 0usize;
    while off < buf.len() {
        let corrupt = |why: &str| StorageError::Corrupt {
            path: path.to_path_buf(),
            offset: off as u64,
            why: why.to_string(),
        };
        let why = match record::decode(&buf[off..]) {
            Decoded::Record(r, n) => {
                state.apply(&r).map_err(corrupt)?;
                off += n;
                continue;
            }
            Decoded::Malformed(why) => return Err(corrupt(why)),
            Decoded::Incomplete => "record cut short",
            Decoded::BadHeader => "header checksum mismatch",
            Decoded::BadBody => "body checksum mismatch",
        };
        if !last {
            return Err(corrupt(&format!("{why} in a segment that is not the last")));
        }
        if let Some(next) = next_valid_record(&buf, off + 1) {
            return Err(corrupt(&format!(
                "{why}, yet a valid record follows at offset {next}"
            )));
        }
        let torn = (buf.len() - off) as u64;
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        f.set_len(off as u64).map_err(io_err(path))?;
        f.sync_all().map_err(io_err(path))?;
        return Ok(torn);
    }
    Ok(0)
}

/// The first offset at or after `from` where a complete, valid record starts.
fn next_valid_record(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len()).find(|&p| matches!(record::decode(&buf[p..]), Decoded::Record(..)))
}
