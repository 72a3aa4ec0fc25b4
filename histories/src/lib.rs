//! The history format: Jepsen's vocabulary (`invoke` / `ok` / `fail` / `info`) as JSON Lines.
//!
//! See `histories/README.md` for the format, exactly. Other crates call [`read_path`] /
//! [`read_str`] with a [`Format`] (or [`Format::Auto`]), write histories with
//! [`JsonlWriter`], and export them for Knossos / Elle with [`write_edn`].
//!
//! 1. Record a history as the test runs, one flushed line per event:
//!
//! ```
//! use histories::{Event, EventType, JsonlWriter, Key, F};
//! use serde_json::json;
//!
//! let mut w = JsonlWriter::from_writer(Vec::new()); // JsonlWriter::create(path) for a file
//! w.write(&Event::client(3, EventType::Invoke, F::Cas, Some(Key::Int(7)), json!([1, 2])).at(10))?;
//! w.write(&Event::nemesis("start-partition", json!("halves")).at(11))?;
//! w.write(&Event::client(3, EventType::Ok, F::Cas, Some(Key::Int(7)), json!([1, 2])).at(12))?;
//! let bytes = w.finish()?;
//! assert_eq!(String::from_utf8(bytes).unwrap().lines().count(), 3);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! 2. Read it back (or any Jepsen / Knossos / Porcupine history), as operations:
//!
//! ```
//! use histories::{read_str, Format, Status};
//!
//! let text = r#"{"process":3,"type":"invoke","f":"cas","key":7,"value":[1,2],"time":10}
//! {"process":3,"type":"ok","f":"cas","key":7,"value":[1,2],"time":12}"#;
//! let h = read_str(text, Format::Auto, "example.jsonl")?;
//! assert_eq!(h.operations[0].status, Status::Ok);
//! # Ok::<(), histories::ReadError>(())
//! ```
//!
//! 3. Bad input is an error with the file and line, never a panic:
//!
//! ```
//! use histories::{read_str, Format};
//!
//! let text = "{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":3}";
//! let e = read_str(text, Format::Jsonl, "h.jsonl").unwrap_err();
//! assert_eq!(e.to_string(), "h.jsonl:1: ok completion by process 1 with no open invocation");
//! ```

#![deny(missing_docs)]

pub mod edn;
mod error;
mod event;
pub mod faults;
mod fields;
mod format;
mod history;
pub mod jepsen_log;
pub mod jsonl;
pub mod porcupine_kv;

pub use edn::write_edn;
pub use error::ReadError;
pub use event::{Event, EventType, Key, Process, F};
pub use faults::{fault_windows, FaultWindow, FaultWindows};
pub use format::{detect, read_bytes, read_path, read_str, Format, UnknownFormatName};
pub use history::{History, Operation, PairingError, Status};
pub use jsonl::JsonlWriter;
