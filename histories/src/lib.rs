//! The history format: Jepsen's vocabulary (`invoke` / `ok` / `fail` / `info`) as JSON Lines.
//!
//! See `histories/README.md` for the format, exactly. Other crates call [`read_path`] /
//! [`read_str`] with a [`Format`] (or [`Format::Auto`]), write histories with
//! [`JsonlWriter`], and export them for Knossos / Elle with [`write_edn`].

pub mod edn;
mod error;
mod event;
mod fields;
mod format;
mod history;
pub mod jepsen_log;
pub mod jsonl;
pub mod porcupine_kv;

pub use edn::write_edn;
pub use error::ReadError;
pub use event::{Event, EventType, Key, Process, F};
pub use format::{detect, read_bytes, read_path, read_str, Format, UnknownFormatName};
pub use history::{History, Operation, PairingError, Status};
pub use jsonl::JsonlWriter;
