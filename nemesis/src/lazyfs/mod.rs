//! A FUSE pass-through file system that can lose what was not fsynced (a power loss).
//!
//! One mount per node: the node's data directory is the mountpoint, backed by a real
//! directory beside it (`n1.backing`). Reads and writes go straight through to the backing
//! files; before a write or a truncation changes bytes of a file, the [`Journal`] keeps the
//! pre-image of the range and the file's length at its last fsync; an fsync (or fdatasync)
//! of the file clears its record. [`LazyFs::drop_unsynced`] undoes exactly the bytes
//! written since each file's last fsync, as a power loss would (no torn pages).
//!
//! Metadata operations (create, rename, unlink, mkdir) go through at once and are never
//! undone: only file contents are lazy. A file created and never fsynced keeps its name
//! and comes back empty. That is weaker than a real disk (which may lose the name too), so
//! a bug that only shows when a rename or creation is lost is out of reach.
//!
//! Kernel caches are kept out of the way: entries and attributes have a zero time to live
//! and every file is opened with direct I/O, so the kernel never serves a page or a length
//! from before a rollback.

mod fs;
mod journal;

pub use journal::Journal;

use fs::{Lazy, Shared};
use fuser::{BackgroundSession, Config, MountOption};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// The source name of our mounts in `/proc/self/mountinfo`, followed by `-PID` of the runner
/// that mounted it: how leftovers are recognised.
pub const FS_NAME: &str = "nemesis-lazyfs";

/// What can go wrong with a lazy mount.
#[derive(Debug, Error)]
pub enum LazyError {
    /// Mounting failed.
    #[error("mounting {path}: {source}")]
    Mount {
        /// The mountpoint.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Rolling the files back failed.
    #[error("dropping unsynced writes under {path}: {source}")]
    Drop {
        /// The backing directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Whether FUSE can be used here: root, and `/dev/fuse` present.
pub fn available() -> bool {
    nix::unistd::geteuid().is_root() && Path::new("/dev/fuse").exists()
}

/// One mounted lazy file system. Dropping it unmounts it.
pub struct LazyFs {
    backing: PathBuf,
    shared: Arc<Mutex<Shared>>,
    session: Option<BackgroundSession>,
}

impl LazyFs {
    /// Mounts at `mountpoint` (created if missing), backed by `backing` (created if missing).
    pub fn mount(mountpoint: &Path, backing: &Path) -> Result<LazyFs, LazyError> {
        let err = |source| LazyError::Mount {
            path: mountpoint.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(mountpoint).map_err(err)?;
        std::fs::create_dir_all(backing).map_err(err)?;
        let shared = Arc::new(Mutex::new(Shared::new(backing.to_path_buf())));
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName(format!("{FS_NAME}-{}", std::process::id())),
            MountOption::Subtype("lazyfs".into()),
            MountOption::RW,
        ];
        let session = fuser::spawn_mount(Lazy(shared.clone()), mountpoint, &config).map_err(err)?;
        Ok(LazyFs {
            backing: backing.to_path_buf(),
            shared,
            session: Some(session),
        })
    }

    /// Loses every write not followed by an fsync of its file. Call it only while no
    /// process uses the mount (the node is dead). Returns the files rolled back.
    pub fn drop_unsynced(&self) -> Result<usize, LazyError> {
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        s.drop_unsynced().map_err(|source| LazyError::Drop {
            path: self.backing.clone(),
            source,
        })
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
    }
}

/// Lazily unmounts every mount of ours (source [`FS_NAME`]`-PID`) under `root` whose runner
/// is dead: leftovers of a run that died without unmounting. Returns the mountpoints
/// unmounted.
///
/// Why only dead runners': two runs in one directory (two batches, or two default runs in
/// `histories/runs/`) are each other's neighbours; unmounting a live run's mounts detached
/// them under its nodes, and every node it restarted afterwards started on the bare, empty
/// mountpoint (a correct cluster then lost everything it had acknowledged).
pub fn unmount_leftovers(root: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let mut out = Vec::new();
    for line in info.lines() {
        // `id parent major:minor root mountpoint options... - fstype source superopts`
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let point = left.split(' ').nth(4).unwrap_or_default();
        let source = right.split(' ').nth(1).unwrap_or_default();
        let point = PathBuf::from(point.replace("\\040", " "));
        let owner_alive = source
            .strip_prefix(FS_NAME)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|pid| pid.parse::<i32>().ok())
            .is_some_and(|pid| {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
            });
        if source.starts_with(FS_NAME)
            && !owner_alive
            && point.starts_with(&root)
            && nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH).is_ok()
        {
            out.push(point);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Through a real mount (root only): what was fsynced survives a power loss, what was
    /// written after is lost, a file never synced comes back empty, renames stay.
    #[test]
    fn a_mount_loses_exactly_the_unsynced_bytes() {
        if !available() {
            eprintln!("skipped: needs root and /dev/fuse");
            return;
        }
        let dir = std::env::temp_dir().join(format!("lazyfs-mount-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mnt, back) = (dir.join("n1"), dir.join("n1.backing"));
        let fs = match LazyFs::mount(&mnt, &back) {
            Ok(fs) => fs,
            // A container without CAP_SYS_ADMIN: root, /dev/fuse, and still no mount.
            Err(LazyError::Mount { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                eprintln!("skipped: mounting FUSE is not permitted here: {source}");
                let _ = std::fs::remove_dir_all(&dir);
                return;
            }
            Err(e) => panic!("{e}"),
        };
        assert!(
            unmount_leftovers(&dir).is_empty(),
            "a live runner's mount is not a leftover"
        );
        let wal = mnt.join("wal");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&wal)
            .unwrap();
        f.write_all(b"synced;").unwrap();
        f.sync_data().unwrap();
        f.write_all(b"lost;").unwrap();
        let mut tmp = std::fs::File::create(mnt.join("tmp")).unwrap();
        tmp.write_all(b"never synced").unwrap();
        std::fs::rename(mnt.join("tmp"), mnt.join("moved")).unwrap();
        drop((f, tmp));
        assert_eq!(std::fs::read(&wal).unwrap(), b"synced;lost;");
        assert_eq!(fs.drop_unsynced().unwrap(), 2);
        assert_eq!(std::fs::read(&wal).unwrap(), b"synced;");
        assert_eq!(std::fs::read(mnt.join("moved")).unwrap(), b"");
        assert_eq!(std::fs::read(back.join("wal")).unwrap(), b"synced;");
        // Appending after the rollback continues at the rolled-back end.
        let mut f = std::fs::OpenOptions::new().append(true).open(&wal).unwrap();
        f.write_all(b"again").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&wal).unwrap(), b"synced;again");
        drop(fs);
        assert!(unmount_leftovers(&dir).is_empty(), "dropping unmounts");
        let mut names: Vec<_> = std::fs::read_dir(&mnt)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert!(names.is_empty(), "the mountpoint is bare again: {names:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
