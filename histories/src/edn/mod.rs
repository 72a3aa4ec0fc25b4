//! Jepsen / Knossos EDN histories (work in progress: not readable yet).

use crate::error::ReadError;
use crate::History;

/// Reads an EDN history. Not implemented yet: always an error.
pub fn read_str(_text: &str, file: &str) -> Result<History, ReadError> {
    Err(ReadError::parse(
        file,
        1,
        "a format this build reads (EDN is not implemented yet)",
        "EDN",
    ))
}
