//! The client, status and admin API as values: parsed requests, answers and errors (an
//! [`ErrorKind`], a message and the leader's address), independent of hyper: `http.rs` alone
//! turns a kind into an HTTP status.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

use crate::kv::Command;

/// Largest request body accepted (413 above it).
pub const BODY_LIMIT: usize = 1 << 20;

/// A client operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOp {
    /// Linearizable read of a key.
    Read {
        /// The key.
        key: String,
    },
    /// A command to replicate.
    Write(Command),
}

/// A membership change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminOp {
    /// Add one server (a voter, or a learner).
    Add {
        /// Its id.
        id: u64,
        /// Its address; `None` re-adds a server every node already knows (one removed
        /// earlier, or one of the initial `--peer`s), keeping the address each node has for it.
        addr: Option<String>,
        /// Whether it joins as a learner.
        learner: bool,
    },
    /// Remove one server.
    Remove {
        /// Its id.
        id: u64,
    },
    /// Move to a new voter set through joint consensus.
    Joint {
        /// The new voters.
        voters: Vec<u64>,
        /// Addresses of servers not yet known.
        addrs: BTreeMap<u64, String>,
    },
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A read's value.
    Value(Option<String>),
    /// A put or a cas that swapped.
    Done,
    /// An append's resulting value.
    Appended(String),
    /// A cas whose comparison failed (definitely not applied); the value found.
    CasFailed(Option<String>),
    /// A committed membership change's log index.
    Index(u64),
}

/// Why the event loop did not answer with success.
#[derive(Debug)]
pub enum Refusal {
    /// This node is not the leader; the HTTP layer forwards or refuses.
    NotLeader {
        /// The leader this node knows of.
        leader: Option<u64>,
        /// The client operation, handed back so the HTTP layer can forward it without keeping
        /// a copy of every request (`None` for admin requests, and in a leader's answer to a
        /// forwarded one, which is never forwarded again).
        op: Option<ClientOp>,
    },
    /// A final error for the client.
    Error(ApiError),
}

/// What kind of failure an [`ApiError`] is, in the node's own terms. Each kind is one
/// decision for the client (retry elsewhere, retry later, fix the request, or treat the
/// outcome as unknown); `http.rs` maps each to one HTTP status (`cluster/API.md`).
///
/// The discriminants are the kind's code on the peer wire (an answer to a forwarded request,
/// see `wire.rs` and the table in `codec.rs`): fixed, never reused. They are small numbers on
/// purpose, far from any HTTP status, so a status number can never be read as a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorKind {
    /// The node cannot serve the request now (stopping, leadership lost, leader unreachable,
    /// proposal replaced by another leader's entry); definitely not applied.
    Unavailable = 1,
    /// This node is not the leader and does not forward (no leader known, or the request was
    /// already forwarded once); definitely not applied. The error names the leader if known.
    NotLeader = 2,
    /// The outcome is unknown: the operation may or may not take effect (deadline passed,
    /// connection lost after sending a write, entry covered by a snapshot).
    Unknown = 3,
    /// The request is malformed (body, key, JSON, peer frame).
    BadRequest = 4,
    /// The sender is not allowed (a peer stream from an unknown node id).
    Forbidden = 5,
    /// No such path.
    NotFound = 6,
    /// The path exists but not with this method.
    MethodNotAllowed = 7,
    /// A body or frame over its size limit.
    TooLarge = 8,
}

impl ErrorKind {
    /// Every kind, in code order.
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Unavailable,
        ErrorKind::NotLeader,
        ErrorKind::Unknown,
        ErrorKind::BadRequest,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::TooLarge,
    ];

    /// The kind's code on the peer wire.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The kind with wire code `code`, if any.
    pub fn from_code(code: u8) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// An error as the API reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// Human-readable message.
    pub message: String,
    /// The leader's address, if known.
    pub leader: Option<String>,
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
            leader: None,
        }
    }

    /// The node cannot serve the request now; definitely not applied.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Unavailable, message)
    }

    /// An error of unknown outcome.
    pub fn unknown(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Unknown, message)
    }

    /// A malformed request.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::BadRequest, message)
    }

    /// `true`: the operation was not applied and never will be (every kind but
    /// [`ErrorKind::Unknown`]).
    pub fn definite(&self) -> bool {
        self.kind != ErrorKind::Unknown
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": self.message, "definite": self.definite(), "leader": self.leader})
    }
}

/// `GET /status`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct StatusInfo {
    /// This node's id.
    pub id: u64,
    /// `follower`, `pre-candidate`, `candidate` or `leader`.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// The leader's id, if known.
    pub leader: Option<u64>,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// The last index of its log (written, maybe not committed).
    pub last_index: u64,
    /// Voting members.
    pub voters: Vec<u64>,
    /// Learners.
    pub learners: Vec<u64>,
    /// This node's listen address.
    pub addr: String,
}

/// Where the event loop sends its answer.
pub type ReplyTo = oneshot::Sender<Result<Answer, Refusal>>;

/// What the HTTP tasks send to the event loop.
#[derive(Debug)]
pub enum Input {
    /// A client read or write.
    Client {
        /// The operation.
        op: ClientOp,
        /// Where to answer.
        reply: ReplyTo,
    },
    /// A membership change.
    Admin {
        /// The change.
        op: AdminOp,
        /// Where to answer.
        reply: ReplyTo,
    },
    /// A status query.
    Status {
        /// Where to answer.
        reply: oneshot::Sender<StatusInfo>,
    },
    /// Raft messages from a known peer (a peer frame's Raft section, still encoded).
    Peer {
        /// The sender's id (`x-raft-from`).
        from: u64,
        /// The framed messages.
        body: bytes::Bytes,
    },
}

/// Parses a JSON object body, refusing anything else.
fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    match v {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::bad_request(format!(
            "expected a JSON object, got {}",
            kind(&other)
        ))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks that `m` has only the `allowed` fields.
fn only(m: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(format!(
            "unknown field {k:?} (expected {})",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

fn string(m: &Map<String, Value>, f: &str) -> Result<String, ApiError> {
    match m.get(f) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(ApiError::bad_request(format!(
            "field {f:?} must be a string, got {}",
            kind(other)
        ))),
        None => Err(ApiError::bad_request(format!("missing field {f:?}"))),
    }
}

fn u64_field(m: &Map<String, Value>, f: &str) -> Result<u64, ApiError> {
    match m.get(f) {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|x| x > 0) => Ok(n.as_u64().unwrap()),
        Some(other) => Err(ApiError::bad_request(format!(
            "field {f:?} must be a positive integer, got {other}"
        ))),
        None => Err(ApiError::bad_request(format!("missing field {f:?}"))),
    }
}

/// `PUT /kv/{key}` body.
pub fn parse_put(key: String, body: &[u8]) -> Result<ClientOp, ApiError> {
    let m = object(body)?;
    only(&m, &["value"])?;
    let value = string(&m, "value")?;
    Ok(ClientOp::Write(Command::Put { key, value }))
}

/// `POST /kv/{key}/append` body.
pub fn parse_append(key: String, body: &[u8]) -> Result<ClientOp, ApiError> {
    let m = object(body)?;
    only(&m, &["value"])?;
    let value = string(&m, "value")?;
    Ok(ClientOp::Write(Command::Append { key, value }))
}

/// `POST /kv/{key}/cas` body: `expected` must be present, a string or null.
pub fn parse_cas(key: String, body: &[u8]) -> Result<ClientOp, ApiError> {
    let m = object(body)?;
    only(&m, &["expected", "new"])?;
    let expected = match m.get("expected") {
        Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "field \"expected\" must be a string or null, got {}",
                kind(other)
            )))
        }
        None => return Err(ApiError::bad_request("missing field \"expected\"")),
    };
    let new = string(&m, "new")?;
    Ok(ClientOp::Write(Command::Cas { key, expected, new }))
}

/// `POST /admin/add`, `/admin/remove`, `/admin/joint` bodies.
pub fn parse_admin(which: &str, body: &[u8]) -> Result<AdminOp, ApiError> {
    let m = object(body)?;
    match which {
        "add" => {
            only(&m, &["id", "addr", "learner"])?;
            let learner = match m.get("learner") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "field \"learner\" must be a boolean, got {}",
                        kind(other)
                    )))
                }
            };
            let addr = match m.get("addr") {
                None | Some(Value::Null) => None,
                Some(_) => Some(string(&m, "addr")?),
            };
            Ok(AdminOp::Add {
                id: u64_field(&m, "id")?,
                addr,
                learner,
            })
        }
        "remove" => {
            only(&m, &["id"])?;
            Ok(AdminOp::Remove {
                id: u64_field(&m, "id")?,
            })
        }
        _ => {
            only(&m, &["voters", "addrs"])?;
            let voters = match m.get("voters") {
                Some(Value::Array(a)) if !a.is_empty() => a
                    .iter()
                    .map(|v| v.as_u64().filter(|&x| x > 0))
                    .collect::<Option<Vec<u64>>>()
                    .ok_or_else(|| {
                        ApiError::bad_request("\"voters\" must hold positive integers")
                    })?,
                _ => {
                    return Err(ApiError::bad_request(
                        "field \"voters\" must be a non-empty array of ids",
                    ))
                }
            };
            let mut addrs = BTreeMap::new();
            match m.get("addrs") {
                None | Some(Value::Null) => {}
                Some(Value::Object(o)) => {
                    for (k, v) in o {
                        let id = k.parse::<u64>().ok().filter(|&x| x > 0).ok_or_else(|| {
                            ApiError::bad_request(format!("\"addrs\" key {k:?} is not an id"))
                        })?;
                        let a = v.as_str().ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "\"addrs\" value for {k} is not a string"
                            ))
                        })?;
                        addrs.insert(id, a.to_string());
                    }
                }
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "field \"addrs\" must be an object, got {}",
                        kind(other)
                    )))
                }
            }
            Ok(AdminOp::Joint { voters, addrs })
        }
    }
}

/// Decodes a percent-encoded path segment into a key.
pub fn decode_key(seg: &str) -> Result<String, ApiError> {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(format!("bad percent-escape in key {seg:?}"))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    let key = String::from_utf8(out)
        .map_err(|_| ApiError::bad_request(format!("key {seg:?} is not UTF-8")))?;
    if key.is_empty() {
        return Err(ApiError::bad_request("empty key"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_needs_expected_present() {
        let e = parse_cas("k".into(), br#"{"new":"b"}"#).unwrap_err();
        assert!(e.message.contains("expected"));
        assert_eq!(
            parse_cas("k".into(), br#"{"expected":null,"new":"b"}"#).unwrap(),
            ClientOp::Write(Command::Cas {
                key: "k".into(),
                expected: None,
                new: "b".into()
            })
        );
    }

    #[test]
    fn wrong_types_and_unknown_fields_are_400() {
        for body in [
            &br#"{"value":1}"#[..],
            br#"[]"#,
            br#"{"value":"a","x":1}"#,
            b"{",
            b"",
        ] {
            let e = parse_put("k".into(), body).unwrap_err();
            assert_eq!(e.kind, ErrorKind::BadRequest, "{body:?}");
            assert!(e.definite());
        }
    }

    /// Wire codes are one per kind, round-trip, and no HTTP status number is a code.
    #[test]
    fn error_kind_codes_are_distinct_and_no_status_is_one() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_code(k.code()), Some(k));
        }
        let codes: std::collections::BTreeSet<u8> =
            ErrorKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(codes.len(), ErrorKind::ALL.len());
        for status in 100..=255u8 {
            assert_eq!(ErrorKind::from_code(status), None, "{status}");
        }
        assert_eq!(ErrorKind::from_code(0), None);
    }

    #[test]
    fn only_an_unknown_outcome_is_not_definite() {
        for k in ErrorKind::ALL {
            assert_eq!(ApiError::new(k, "x").definite(), k != ErrorKind::Unknown);
        }
        let body = ApiError::unknown("late").body();
        assert_eq!(
            body,
            json!({"error": "late", "definite": false, "leader": null})
        );
    }

    #[test]
    fn keys_are_percent_decoded() {
        assert_eq!(decode_key("a%2Fb%20c").unwrap(), "a/b c");
        assert!(decode_key("%zz").is_err());
        assert!(decode_key("%ff").is_err());
        assert!(decode_key("").is_err());
    }
}
