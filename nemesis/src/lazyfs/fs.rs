//! The FUSE side of the lazy file system: inode numbers, open files, and each operation
//! passed through to the backing directory.

use super::Journal;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nothing is cached by the kernel: a rollback must be seen at once.
const TTL: Duration = Duration::ZERO;

/// The state shared by the FUSE thread and the [`super::LazyFs`] handle.
pub struct Shared {
    backing: PathBuf,
    /// Inode number to path relative to the backing directory (1: the root).
    paths: HashMap<u64, PathBuf>,
    inodes: HashMap<PathBuf, u64>,
    next_ino: u64,
    open: HashMap<u64, (u64, File)>,
    next_fh: u64,
    journal: Journal,
}

impl Shared {
    pub fn new(backing: PathBuf) -> Shared {
        let mut s = Shared {
            backing,
            paths: HashMap::new(),
            inodes: HashMap::new(),
            next_ino: 2,
            open: HashMap::new(),
            next_fh: 1,
            journal: Journal::default(),
        };
        s.paths.insert(1, PathBuf::new());
        s.inodes.insert(PathBuf::new(), 1);
        s
    }

    pub fn drop_unsynced(&mut self) -> io::Result<usize> {
        let (backing, paths) = (&self.backing, &self.paths);
        self.journal
            .drop_unsynced(|ino| paths.get(&ino).map(|p| backing.join(p)))
    }

    fn rel(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn ino_of(&mut self, rel: &Path) -> u64 {
        if let Some(&i) = self.inodes.get(rel) {
            return i;
        }
        let i = self.next_ino;
        self.next_ino += 1;
        self.paths.insert(i, rel.to_path_buf());
        self.inodes.insert(rel.to_path_buf(), i);
        i
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.rel(parent)?.join(name))
    }

    fn attr(&mut self, rel: &Path) -> Result<FileAttr, Errno> {
        let m = std::fs::symlink_metadata(self.backing.join(rel)).map_err(Errno::from)?;
        let ino = self.ino_of(rel);
        let t = |s: i64, ns: i64| UNIX_EPOCH + Duration::new(s.max(0) as u64, ns as u32);
        let kind = if m.is_dir() {
            FileType::Directory
        } else if m.file_type().is_symlink() {
            FileType::Symlink
        } else {
            FileType::RegularFile
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size: m.len(),
            blocks: m.blocks(),
            atime: t(m.atime(), m.atime_nsec()),
            mtime: t(m.mtime(), m.mtime_nsec()),
            ctime: t(m.ctime(), m.ctime_nsec()),
            crtime: SystemTime::UNIX_EPOCH,
            kind,
            perm: (m.mode() & 0o7777) as u16,
            nlink: m.nlink() as u32,
            uid: m.uid(),
            gid: m.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    /// Forgets the inode at `rel` (unlinked or replaced), and its journal record.
    fn gone(&mut self, rel: &Path) {
        if let Some(i) = self.inodes.remove(rel) {
            self.paths.remove(&i);
            self.journal.forget(i);
        }
    }

    fn open_file(&mut self, ino: u64, rel: &Path, flags: i32, create: bool) -> io::Result<u64> {
        let acc = flags & nix::libc::O_ACCMODE;
        // Append and truncation are the kernel's business (it passes the offset of every
        // write) or done here through the journal; the backing file never sees them.
        let f = OpenOptions::new()
            .read(acc != nix::libc::O_WRONLY)
            .write(acc != nix::libc::O_RDONLY)
            .create(create)
            .truncate(false)
            .custom_flags(
                flags
                    & !(nix::libc::O_ACCMODE
                        | nix::libc::O_APPEND
                        | nix::libc::O_TRUNC
                        | nix::libc::O_CREAT
                        | nix::libc::O_EXCL
                        | nix::libc::O_DIRECT),
            )
            .open(self.backing.join(rel))?;
        if flags & nix::libc::O_TRUNC != 0 && acc != nix::libc::O_RDONLY {
            self.journal.before_truncate(ino, &f, 0)?;
            f.set_len(0)?;
        }
        let fh = self.next_fh;
        self.next_fh += 1;
        self.open.insert(fh, (ino, f));
        Ok(fh)
    }
}

/// The file system handed to fuser.
pub struct Lazy(pub Arc<Mutex<Shared>>);

impl Lazy {
    fn s(&self) -> MutexGuard<'_, Shared> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Unlink or rmdir: `op` on the backing path, then the inode and its record are gone.
    fn remove(
        &self,
        parent: INodeNo,
        name: &OsStr,
        reply: ReplyEmpty,
        op: fn(&Path) -> io::Result<()>,
    ) {
        let mut s = self.s();
        let r = s.child(parent, name).and_then(|rel| {
            op(&s.backing.join(&rel)).map_err(errno)?;
            s.gone(&rel);
            Ok(())
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

fn errno(e: io::Error) -> Errno {
    Errno::from(e)
}

impl Filesystem for Lazy {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut s = self.s();
        match s.child(parent, name).and_then(|rel| s.attr(&rel)) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let mut s = self.s();
        match s.rel(ino).and_then(|rel| s.attr(&rel)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = self.s();
        let r = (|| {
            let rel = s.rel(ino)?;
            let path = s.backing.join(&rel);
            if let Some(mode) = mode {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .map_err(errno)?;
            }
            if let Some(len) = size {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(errno)?;
                s.journal.before_truncate(ino.0, &f, len).map_err(errno)?;
                f.set_len(len).map_err(errno)?;
            }
            s.attr(&rel)
        })();
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let mut s = self.s();
        let r = s.child(parent, name).and_then(|rel| {
            std::fs::create_dir(s.backing.join(&rel)).map_err(errno)?;
            s.attr(&rel)
        });
        match r {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, reply, |p| std::fs::remove_file(p));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, reply, |p| std::fs::remove_dir(p));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut s = self.s();
        let r = (|| {
            let from = s.child(parent, name)?;
            let to = s.child(newparent, newname)?;
            std::fs::rename(s.backing.join(&from), s.backing.join(&to)).map_err(errno)?;
            s.gone(&to);
            // Move the renamed path and everything under it (a directory) to the new name.
            let moved: Vec<(PathBuf, u64)> = s
                .inodes
                .iter()
                .filter(|(p, _)| p.starts_with(&from))
                .map(|(p, &i)| (p.clone(), i))
                .collect();
            for (p, i) in moved {
                // (`join("")` would add a trailing slash, which names a directory.)
                let rest = p.strip_prefix(&from).expect("filtered on the prefix");
                let new = match rest.as_os_str().is_empty() {
                    true => to.clone(),
                    false => to.join(rest),
                };
                s.inodes.remove(&p);
                s.inodes.insert(new.clone(), i);
                s.paths.insert(i, new);
            }
            Ok(())
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut s = self.s();
        let r = s
            .rel(ino)
            .and_then(|rel| s.open_file(ino.0, &rel, flags.0, false).map_err(errno));
        match r {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut s = self.s();
        let r = (|| {
            let rel = s.child(parent, name)?;
            let path = s.backing.join(&rel);
            let existed = path.exists();
            if existed && flags & nix::libc::O_EXCL != 0 {
                return Err(Errno::EEXIST);
            }
            File::options()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(mode & 0o7777)
                .open(&path)
                .map_err(errno)?;
            let a = s.attr(&rel)?;
            if !existed {
                s.journal.created(a.ino.0);
            }
            let fh = s.open_file(a.ino.0, &rel, flags, false).map_err(errno)?;
            let a = s.attr(&rel)?;
            Ok((a, fh))
        })();
        match r {
            Ok((a, fh)) => reply.created(
                &TTL,
                &a,
                Generation(0),
                FileHandle(fh),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let s = self.s();
        let Some((_, f)) = s.open.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let mut buf = vec![0; size as usize];
        let mut got = 0;
        while got < buf.len() {
            match f.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return reply.error(errno(e)),
            }
        }
        reply.data(&buf[..got]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut s = self.s();
        let s = &mut *s;
        let Some((ino, f)) = s.open.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let r = s
            .journal
            .before_write(*ino, f, offset, data.len() as u64)
            .and_then(|()| f.write_all_at(data, offset));
        match r {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.s().open.remove(&fh.0);
        reply.ok();
    }

    /// The one place durability happens: the file's record is cleared. The backing file
    /// is not fsynced (the machine does not lose power; only our journal pretends to).
    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.s().journal.synced(ino.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut s = self.s();
        let r = (|| {
            let rel = s.rel(ino)?;
            let mut entries = vec![
                (ino.0, FileType::Directory, ".".into()),
                (1, FileType::Directory, "..".into()),
            ];
            for e in std::fs::read_dir(s.backing.join(&rel)).map_err(errno)? {
                let e = e.map_err(errno)?;
                let kind = match e.file_type().map_err(errno)? {
                    t if t.is_dir() => FileType::Directory,
                    t if t.is_symlink() => FileType::Symlink,
                    _ => FileType::RegularFile,
                };
                let i = s.ino_of(&rel.join(e.file_name()));
                entries.push((i, kind, e.file_name()));
            }
            Ok::<_, Errno>(entries)
        })();
        match r {
            Ok(entries) => {
                for (k, (i, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
                    if reply.add(INodeNo(i), (k + 1) as u64, kind, &name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }
}
