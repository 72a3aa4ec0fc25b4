//! The `node-id` file: which node a data directory belongs to.
//!
//! Why: a data directory holds one node's votes and log. Started under another `--id`, a node
//! would vote and acknowledge with another node's promises (two nodes could then vote twice in
//! one term), and nothing in the WAL names its owner. So the first start writes the id beside
//! the WAL, and every later start compares. A directory from before this file (WAL, no id)
//! is adopted by whoever starts on it, as before: there is nothing to compare with.

use std::fs;
use std::io::Write;
use std::path::Path;

use super::{io_err, sync_dir, StorageError};

/// The file's name inside the data directory.
pub const ID_FILE: &str = "node-id";

/// Makes sure `dir` exists and belongs to node `id`, writing the id file if there is none.
pub fn claim(dir: &Path, id: u64) -> Result<(), StorageError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let path = dir.join(ID_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let found = text
                .trim()
                .parse::<u64>()
                .map_err(|_| StorageError::BadIdFile {
                    path: path.clone(),
                    text: text.chars().take(40).collect(),
                })?;
            if found != id {
                return Err(StorageError::OtherNode {
                    dir: dir.to_path_buf(),
                    found,
                    id,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let tmp = dir.join(format!("{ID_FILE}.tmp"));
            let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
            writeln!(f, "{id}").map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
            fs::rename(&tmp, &path).map_err(io_err(&path))?;
            sync_dir(dir)
        }
        Err(e) => Err(io_err(&path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_claimed_once_and_refused_to_others() {
        let dir = std::env::temp_dir().join(format!("cluster-node-owner-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        claim(&dir, 3).unwrap();
        claim(&dir, 3).unwrap();
        let e = claim(&dir, 4).unwrap_err();
        assert!(
            matches!(
                e,
                StorageError::OtherNode {
                    found: 3,
                    id: 4,
                    ..
                }
            ),
            "{e}"
        );
        fs::write(dir.join(ID_FILE), "x").unwrap();
        assert!(matches!(
            claim(&dir, 3),
            Err(StorageError::BadIdFile { .. })
        ));
        let _ = fs::remove_dir_all(&dir);
    }
}
