//! Porcupine's kv logs (work in progress: not readable yet).

use crate::error::ReadError;
use crate::History;

/// Reads a Porcupine kv log. Not implemented yet: always an error.
pub fn read_str(_text: &str, file: &str) -> Result<History, ReadError> {
    Err(ReadError::parse(
        file,
        1,
        "a format this build reads (porcupine-kv is not implemented yet)",
        "porcupine-kv",
    ))
}
