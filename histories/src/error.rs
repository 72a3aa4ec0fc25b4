//! Why a history file could not be read: every variant names the file, and the line when
//! there is one.

use crate::PairingError;
use std::path::PathBuf;

/// An error from one of the readers. `Display` reads `file:line: expected X, found Y`.
///
/// One variant per decision a caller makes: `Io` (the file could not be opened: a usage
/// problem), `Parse` and `Pairing` (the file is not a valid history: fix the producer),
/// `UnknownFormat` (auto-detection failed: pass a format explicitly).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path given.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line (or EDN form) does not follow the format.
    #[error("{file}:{line}: expected {expected}, found {found}")]
    Parse {
        /// The source name (a path, or what the caller passed to `read_str`).
        file: String,
        /// 1-based line of the offending text.
        line: usize,
        /// What the format requires there.
        expected: String,
        /// What the file has there (quoted, shortened).
        found: String,
    },
    /// The events parse, but do not pair into operations under Jepsen's rules.
    #[error("{file}:{line}: {source}{}", see_line(.source, .related_line))]
    Pairing {
        /// The source name.
        file: String,
        /// 1-based line of the offending event.
        line: usize,
        /// Which rule is broken.
        source: PairingError,
        /// 1-based line of the earlier event the rule involves (the open invocation, the
        /// `info` that retired the process), if any.
        related_line: Option<usize>,
    },
    /// Auto-detection did not recognise the first non-empty line.
    #[error("{file}:{line}: cannot tell the history format from {found} (expected a JSON object, an EDN form, an etcd `INFO  jepsen.util` log line or a Porcupine kv map); choose one with --format")]
    UnknownFormat {
        /// The source name.
        file: String,
        /// 1-based line of the first non-empty line.
        line: usize,
        /// That line, quoted and shortened.
        found: String,
    },
}

impl ReadError {
    /// The 1-based line the error points at, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            ReadError::Io { .. } => None,
            ReadError::Parse { line, .. }
            | ReadError::Pairing { line, .. }
            | ReadError::UnknownFormat { line, .. } => Some(*line),
        }
    }

    pub(crate) fn parse(
        file: &str,
        line: usize,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        ReadError::Parse {
            file: file.to_string(),
            line,
            expected: expected.into(),
            found: found.into(),
        }
    }
}

/// PairingError counts events from 0 (it knows no file); this names the line of the earlier
/// event it mentions.
fn see_line(source: &PairingError, line: &Option<usize>) -> String {
    match (source.related_index(), line) {
        (Some(i), Some(l)) => format!("; event {i} is line {l}"),
        _ => String::new(),
    }
}

/// Quotes a piece of input for an error message, shortened to at most 60 characters.
pub(crate) fn quote(text: &str) -> String {
    const MAX: usize = 60;
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(MAX).collect();
    if chars.next().is_some() {
        format!("{:?}…", head)
    } else {
        format!("{head:?}")
    }
}

/// Pairs events into a history, turning a [`PairingError`]'s event index into the line of
/// that event (`lines[i]` is the 1-based line of `events[i]`).
pub(crate) fn pair(
    events: Vec<crate::Event>,
    lines: &[usize],
    file: &str,
) -> Result<crate::History, ReadError> {
    crate::History::from_events(events).map_err(|source| ReadError::Pairing {
        file: file.to_string(),
        line: lines.get(source.index()).copied().unwrap_or(0),
        related_line: source.related_index().and_then(|i| lines.get(i).copied()),
        source,
    })
}
