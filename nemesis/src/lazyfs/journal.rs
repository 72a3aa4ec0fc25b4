//! The undo journal of the lazy file system: what each file looked like at its last fsync.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// What one file looked like at its last fsync, as a length and the pre-images of every
/// range changed since.
#[derive(Debug, Default)]
struct Record {
    synced_len: u64,
    /// `(offset, bytes)` in the order the changes happened; undone in reverse.
    pre: Vec<(u64, Vec<u8>)>,
}

/// Per file (keyed by inode number), the bytes changed since its last fsync.
///
/// Why pre-images and not a copy of the synced file: the node appends and syncs small
/// records; keeping only what each write overwrote costs memory in proportion to the
/// unsynced bytes, and undoing them in reverse order is exact whatever the pattern of
/// writes and truncations.
#[derive(Debug, Default)]
pub struct Journal {
    files: HashMap<u64, Record>,
}

impl Journal {
    /// Notes a file created empty (never synced: a power loss leaves it at length 0).
    pub fn created(&mut self, ino: u64) {
        self.files.insert(ino, Record::default());
    }

    /// Before `len` bytes at `offset` of `file` (inode `ino`) are overwritten.
    pub fn before_write(&mut self, ino: u64, file: &File, offset: u64, len: u64) -> io::Result<()> {
        let size = file.metadata()?.len();
        let rec = self.files.entry(ino).or_insert_with(|| Record {
            synced_len: size,
            pre: Vec::new(),
        });
        let end = (offset + len).min(size);
        if offset < end {
            let mut buf = vec![0; (end - offset) as usize];
            file.read_exact_at(&mut buf, offset)?;
            rec.pre.push((offset, buf));
        }
        Ok(())
    }

    /// Before `file` (inode `ino`) is truncated or extended to `new_len`.
    pub fn before_truncate(&mut self, ino: u64, file: &File, new_len: u64) -> io::Result<()> {
        let size = file.metadata()?.len();
        self.before_write(ino, file, new_len, size.saturating_sub(new_len))
    }

    /// The file was fsynced: everything written so far survives.
    pub fn synced(&mut self, ino: u64) {
        self.files.remove(&ino);
    }

    /// The file is gone (unlinked or renamed over): nothing to undo.
    pub fn forget(&mut self, ino: u64) {
        self.files.remove(&ino);
    }

    /// Files with unsynced changes.
    #[cfg(test)]
    pub fn dirty(&self) -> usize {
        self.files.len()
    }

    /// Undoes every change not followed by an fsync of its file: restores the pre-images
    /// in reverse order and truncates to the length at the last fsync. `path` gives a
    /// file's current backing path (none: the file is gone). Returns the number of files
    /// rolled back.
    pub fn drop_unsynced(&mut self, path: impl Fn(u64) -> Option<PathBuf>) -> io::Result<usize> {
        let mut n = 0;
        for (ino, rec) in self.files.drain() {
            let Some(p) = path(ino) else { continue };
            let f = match OpenOptions::new().write(true).open(&p) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for (off, bytes) in rec.pre.iter().rev() {
                f.write_all_at(bytes, *off)?;
            }
            f.set_len(rec.synced_len)?;
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    struct Tmp(PathBuf);
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn tmp(name: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("lazyfs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
    fn rw(p: &Path) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(p)
            .unwrap()
    }
    /// Writes through the journal, as the file system does.
    fn write(j: &mut Journal, f: &File, off: u64, data: &[u8]) {
        j.before_write(7, f, off, data.len() as u64).unwrap();
        f.write_all_at(data, off).unwrap();
    }

    #[test]
    fn writes_after_the_last_fsync_are_undone_exactly() {
        let t = tmp("undo");
        let p = t.0.join("f");
        std::fs::write(&p, b"hello world").unwrap();
        let f = rw(&p);
        let mut j = Journal::default();
        write(&mut j, &f, 6, b"WORLD, and more");
        j.synced(7);
        let synced = std::fs::read(&p).unwrap();
        write(&mut j, &f, 0, b"HELLO");
        write(&mut j, &f, 3, b"xxxxxxxxxxxxxxxxxxxxxxxx");
        j.before_truncate(7, &f, 4).unwrap();
        f.set_len(4).unwrap();
        write(&mut j, &f, 10, b"tail");
        assert_ne!(std::fs::read(&p).unwrap(), synced);
        assert_eq!(j.drop_unsynced(|_| Some(p.clone())).unwrap(), 1);
        assert_eq!(std::fs::read(&p).unwrap(), synced);
        // Nothing left to undo: a second power loss changes nothing.
        assert_eq!(j.drop_unsynced(|_| Some(p.clone())).unwrap(), 0);
        assert_eq!(std::fs::read(&p).unwrap(), synced);
    }

    #[test]
    fn a_created_file_never_synced_comes_back_empty_and_a_gone_one_is_skipped() {
        let t = tmp("created");
        let p = t.0.join("new");
        let f = rw(&p);
        let mut j = Journal::default();
        j.created(7);
        write(&mut j, &f, 0, b"never synced");
        j.created(8);
        assert_eq!(j.dirty(), 2);
        let n = j
            .drop_unsynced(|ino| (ino == 7).then(|| p.clone()))
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
    }
}
