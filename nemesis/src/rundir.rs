//! The run directory: where a run keeps its history, node logs, results and summary.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The workspace root: the nearest ancestor of the current directory (then of this
/// executable) whose `Cargo.toml` declares `[workspace]`.
pub fn workspace_root() -> Option<PathBuf> {
    let starts = [
        std::env::current_dir().ok(),
        std::env::current_exe().ok(),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
    ];
    for start in starts.into_iter().flatten() {
        for dir in start.ancestors() {
            let manifest = dir.join("Cargo.toml");
            if let Ok(text) = std::fs::read_to_string(&manifest) {
                if text.contains("[workspace]") {
                    return Some(dir.to_path_buf());
                }
            }
        }
    }
    None
}

/// Creates the run directory: `explicit` if given, else `histories/runs/<timestamp>/` under
/// the workspace root (or under the current directory outside a workspace), pointing the
/// `latest` link beside it at the new directory.
///
/// An explicit directory must be missing or empty. The nodes keep their data there, so a
/// second run in it would restart them on the first run's keys and check the reads against
/// a history that never wrote them (a false `not linearizable`). Refusing is the safe choice
/// over wiping: the directory may hold the only copy of a failing run's evidence.
pub fn create(explicit: Option<&Path>) -> Result<PathBuf> {
    let dir = match explicit {
        Some(d) => {
            refuse_non_empty(d)?;
            d.to_path_buf()
        }
        None => {
            let base = workspace_root()
                .unwrap_or_else(|| PathBuf::from("."))
                .join("histories/runs");
            // Two runs started in the same second (concurrent tests) get distinct names.
            let stamp = timestamp(SystemTime::now());
            let mut dir = base.join(&stamp);
            let mut n = 1;
            while dir.exists() {
                n += 1;
                dir = base.join(format!("{stamp}-{n}"));
            }
            dir
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating run dir {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    // Only the default location gets a `latest` link: an explicit directory may live
    // anywhere (a temp dir), where a stray link would surprise.
    if explicit.is_some() {
        return Ok(dir);
    }
    if let Some(parent) = dir.parent() {
        let link = parent.join("latest");
        // Replace atomically: a reader never sees the link missing.
        let tmp = parent.join(format!(".latest-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        if std::os::unix::fs::symlink(dir.file_name().unwrap_or_default(), &tmp).is_ok() {
            let _ = std::fs::rename(&tmp, &link);
        }
    }
    Ok(dir)
}

/// Fails when `dir` exists and holds anything (or is not a directory).
fn refuse_non_empty(dir: &Path) -> Result<()> {
    let mut entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading run dir {}", dir.display())),
    };
    if entries.next().is_some() {
        bail!(
            "run directory {} is not empty: it holds an earlier run, whose node data would be \
             checked against this run's history; give a new or empty --run-dir (or remove it)",
            dir.display()
        );
    }
    Ok(())
}

/// `YYYYMMDDTHHMMSSZ` in UTC, from the days-since-epoch civil calendar algorithm
/// (Howard Hinnant's `civil_from_days`), so no date crate is needed.
pub fn timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_explicit_run_dir_must_be_missing_or_empty() {
        let base = std::env::temp_dir().join(format!("nemesis-rundir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let fresh = base.join("fresh");
        assert_eq!(create(Some(&fresh)).unwrap(), fresh.canonicalize().unwrap());
        // Empty (as the first run left it before writing anything): accepted.
        assert!(create(Some(&fresh)).is_ok());
        // Holding an earlier run's files: refused, naming the directory, nothing touched.
        std::fs::create_dir_all(fresh.join("n1")).unwrap();
        std::fs::write(fresh.join("history.jsonl"), "{}\n").unwrap();
        let err = create(Some(&fresh)).unwrap_err().to_string();
        assert!(err.contains("is not empty"), "{err}");
        assert!(err.contains(&fresh.display().to_string()), "{err}");
        assert!(fresh.join("n1").is_dir() && fresh.join("history.jsonl").is_file());
        // A file where the directory should be is an error too.
        let file = base.join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(create(Some(&file)).is_err());
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(UNIX_EPOCH), "19700101T000000Z");
        // 2024-02-29 12:34:56 UTC, a leap day.
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(timestamp(t), "20240229T123456Z");
    }
}
