//! Snapshot files: written to a temporary file, fsynced, renamed, and the directory fsynced.
//!
//! Layout: `magic (8) | crc32c of the rest (4) | index u64 | term u64 | conf_len u32 | conf |
//! data`. The file name carries index and term (`snap-INDEX-TERM.snap`) so that recovery opens
//! exactly the snapshot the WAL's last snapshot record names.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::crc::crc32c;
use super::record::SnapshotMeta;
use super::{io_err, sync_dir, StorageError};

const MAGIC: &[u8; 8] = b"RKVSNAP1";

/// The file name of the snapshot for `meta`.
pub fn file_name(index: u64, term: u64) -> String {
    format!("snap-{index:020}-{term:020}.snap")
}

/// Parses a snapshot file name back into (index, term).
pub fn parse_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    let (i, t) = rest.split_once('-')?;
    Some((i.parse().ok()?, t.parse().ok()?))
}

/// Writes the snapshot durably into `dir` and returns its path.
pub fn write(
    dir: &Path,
    meta: &SnapshotMeta,
    data: &[u8],
    fsync: bool,
) -> Result<PathBuf, StorageError> {
    let path = dir.join(file_name(meta.index, meta.term));
    let tmp = dir.join(format!("{}.tmp", file_name(meta.index, meta.term)));
    let mut body = Vec::with_capacity(28 + meta.conf.len() + data.len());
    body.extend_from_slice(&meta.index.to_le_bytes());
    body.extend_from_slice(&meta.term.to_le_bytes());
    body.extend_from_slice(&(meta.conf.len() as u32).to_le_bytes());
    body.extend_from_slice(&meta.conf);
    body.extend_from_slice(data);
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(MAGIC).map_err(io_err(&tmp))?;
    f.write_all(&crc32c(&body).to_le_bytes())
        .map_err(io_err(&tmp))?;
    f.write_all(&body).map_err(io_err(&tmp))?;
    if fsync {
        f.sync_all().map_err(io_err(&tmp))?;
    }
    drop(f);
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    if fsync {
        sync_dir(dir)?;
    }
    Ok(path)
}

/// Reads and verifies a snapshot file.
pub fn read(path: &Path) -> Result<(SnapshotMeta, Vec<u8>), StorageError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    let corrupt = |why: &str| StorageError::CorruptSnapshot {
        path: path.to_path_buf(),
        why: why.to_string(),
    };
    if bytes.len() < 12 + 20 || &bytes[..8] != MAGIC {
        return Err(corrupt("missing header"));
    }
    let crc = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    let body = &bytes[12..];
    if crc32c(body) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    let index = u64::from_le_bytes(body[0..8].try_into().unwrap());
    let term = u64::from_le_bytes(body[8..16].try_into().unwrap());
    let conf_len = u32::from_le_bytes(body[16..20].try_into().unwrap()) as usize;
    let conf = body
        .get(20..20 + conf_len)
        .ok_or_else(|| corrupt("membership runs past the end"))?
        .to_vec();
    let data = body[20 + conf_len..].to_vec();
    Ok((SnapshotMeta { index, term, conf }, data))
}
