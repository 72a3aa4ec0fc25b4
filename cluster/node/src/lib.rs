//! The reference Raft key-value node: storage, state machine, HTTP API, peer transport, and
//! the event loop that drives the sans-IO `raft` core. The `cluster` binary wraps it.

#![deny(missing_docs)]

pub mod api;
pub mod codec;
pub mod http;
pub mod kv;
pub mod node;
pub mod parse_errors;
pub mod storage;
pub mod transport;
pub mod wire;
