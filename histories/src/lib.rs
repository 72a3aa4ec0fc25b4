//! The history format: Jepsen's vocabulary (`invoke` / `ok` / `fail` / `info`) as JSON Lines.
//!
//! See `histories/README.md` for the format, exactly.

mod event;
mod history;

pub use event::{Event, EventType, Key, Process, F};
pub use history::{History, Operation, PairingError, Status};
