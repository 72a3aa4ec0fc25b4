//! The replicated state machine: a map from string keys to string values, with the commands
//! the client API offers (write, compare-and-set, append) and its snapshot encoding.
//!
//! Commands travel in log entries as a small binary encoding (`Command::encode`) that carries
//! the proposing node's request id, so the leader can hand each applied result to the client
//! that is waiting for it.

use std::collections::BTreeMap;

use crate::codec::{put_str, CodecError, Reader};

/// A state-changing client command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Set `key` to `new` if its value is `expected` (`None`: if it is absent).
    Cas {
        /// The key.
        key: String,
        /// The value the key must have (`None` = absent).
        expected: Option<String>,
        /// The value to set.
        new: String,
    },
    /// Append `value` to the key's value (absent = empty).
    Append {
        /// The key.
        key: String,
        /// The suffix.
        value: String,
    },
    /// Record the address of node `id` (proposed by the admin API before a membership change,
    /// so that every node, and every later snapshot, knows where the new member is).
    SetPeer {
        /// The node.
        id: u64,
        /// Its address.
        addr: String,
    },
}

/// What applying a command produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A put, or a cas that swapped.
    Done,
    /// A cas whose comparison failed; the value found.
    CasFailed(Option<String>),
    /// An append; the whole value after it.
    Appended(String),
}

const TAG_PUT: u8 = 1;
const TAG_CAS: u8 = 2;
const TAG_CAS_ABSENT: u8 = 3;
const TAG_APPEND: u8 = 4;
const TAG_SET_PEER: u8 = 5;

impl Command {
    /// Encodes `request_id` and the command.
    pub fn encode(&self, request_id: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        out.extend_from_slice(&request_id.to_le_bytes());
        match self {
            Command::Put { key, value } => {
                out.push(TAG_PUT);
                put_str(&mut out, key);
                put_str(&mut out, value);
            }
            Command::Cas { key, expected, new } => {
                out.push(if expected.is_some() {
                    TAG_CAS
                } else {
                    TAG_CAS_ABSENT
                });
                put_str(&mut out, key);
                if let Some(e) = expected {
                    put_str(&mut out, e);
                }
                put_str(&mut out, new);
            }
            Command::Append { key, value } => {
                out.push(TAG_APPEND);
                put_str(&mut out, key);
                put_str(&mut out, value);
            }
            Command::SetPeer { id, addr } => {
                out.push(TAG_SET_PEER);
                out.extend_from_slice(&id.to_le_bytes());
                put_str(&mut out, addr);
            }
        }
        out
    }

    /// Decodes what [`Command::encode`] wrote: (request id, command).
    pub fn decode(buf: &[u8]) -> Result<(u64, Command), CodecError> {
        let mut r = Reader::new(buf);
        let id = r.u64("request id")?;
        let cmd = match r.u8("tag")? {
            TAG_PUT => Command::Put {
                key: r.str("key")?,
                value: r.str("value")?,
            },
            TAG_CAS => Command::Cas {
                key: r.str("key")?,
                expected: Some(r.str("expected")?),
                new: r.str("new")?,
            },
            TAG_CAS_ABSENT => Command::Cas {
                key: r.str("key")?,
                expected: None,
                new: r.str("new")?,
            },
            TAG_APPEND => Command::Append {
                key: r.str("key")?,
                value: r.str("value")?,
            },
            TAG_SET_PEER => Command::SetPeer {
                id: r.u64("peer id")?,
                addr: r.str("peer address")?,
            },
            _ => return Err(r.err("tag")),
        };
        Ok((id, cmd))
    }
}

/// The key-value map and the index of the last entry applied to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kv {
    map: BTreeMap<String, String>,
    /// Peer addresses recorded by [`Command::SetPeer`].
    pub peers: BTreeMap<u64, String>,
    /// Index of the last log entry applied.
    pub applied: u64,
}

impl Kv {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Applies a command.
    pub fn apply(&mut self, cmd: Command) -> Outcome {
        match cmd {
            Command::Put { key, value } => {
                self.map.insert(key, value);
                Outcome::Done
            }
            Command::Cas { key, expected, new } => {
                let current = self.map.get(&key);
                if current == expected.as_ref() {
                    self.map.insert(key, new);
                    Outcome::Done
                } else {
                    Outcome::CasFailed(current.cloned())
                }
            }
            Command::Append { key, value } => {
                let v = self.map.entry(key).or_default();
                v.push_str(&value);
                Outcome::Appended(v.clone())
            }
            Command::SetPeer { id, addr } => {
                self.peers.insert(id, addr);
                Outcome::Done
            }
        }
    }

    /// The snapshot encoding: applied index, then (key, value) pairs.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.map.len() * 24);
        out.extend_from_slice(&self.applied.to_le_bytes());
        out.extend_from_slice(&(self.map.len() as u64).to_le_bytes());
        for (k, v) in &self.map {
            put_str(&mut out, k);
            put_str(&mut out, v);
        }
        out.extend_from_slice(&(self.peers.len() as u64).to_le_bytes());
        for (id, a) in &self.peers {
            out.extend_from_slice(&id.to_le_bytes());
            put_str(&mut out, a);
        }
        out
    }

    /// Decodes [`Kv::encode`].
    pub fn decode(buf: &[u8]) -> Result<Kv, CodecError> {
        let mut r = Reader::new(buf);
        let applied = r.u64("applied index")?;
        let n = r.u64("key count")?;
        let mut map = BTreeMap::new();
        for _ in 0..n {
            let k = r.str("key")?;
            let v = r.str("value")?;
            map.insert(k, v);
        }
        let mut peers = BTreeMap::new();
        for _ in 0..r.u64("peer count")? {
            let id = r.u64("peer id")?;
            peers.insert(id, r.str("peer address")?);
        }
        if r.remaining() != 0 {
            return Err(r.err("trailing bytes"));
        }
        Ok(Kv {
            map,
            peers,
            applied,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(x: &str) -> String {
        x.to_string()
    }

    #[test]
    fn cas_with_null_expected_only_sets_an_absent_key() {
        let mut kv = Kv::default();
        let first = Command::Cas {
            key: s("k"),
            expected: None,
            new: s("a"),
        };
        assert_eq!(kv.apply(first.clone()), Outcome::Done);
        assert_eq!(kv.apply(first), Outcome::CasFailed(Some(s("a"))));
        let swap = Command::Cas {
            key: s("k"),
            expected: Some(s("a")),
            new: s("b"),
        };
        assert_eq!(kv.apply(swap.clone()), Outcome::Done);
        assert_eq!(kv.apply(swap), Outcome::CasFailed(Some(s("b"))));
        assert_eq!(kv.get("k"), Some("b"));
    }

    #[test]
    fn append_to_absent_starts_from_empty() {
        let mut kv = Kv::default();
        let a = |v: &str| Command::Append {
            key: s("k"),
            value: s(v),
        };
        assert_eq!(kv.apply(a("x")), Outcome::Appended(s("x")));
        assert_eq!(kv.apply(a("yz")), Outcome::Appended(s("xyz")));
    }

    fn command() -> impl Strategy<Value = Command> {
        let k = "[a-c]{1,2}";
        let v = ".{0,8}";
        prop_oneof![
            (k, v).prop_map(|(key, value)| Command::Put { key, value }),
            (k, proptest::option::of(v), v).prop_map(|(key, expected, new)| Command::Cas {
                key,
                expected,
                new
            }),
            (k, v).prop_map(|(key, value)| Command::Append { key, value }),
            (1u64..5, v).prop_map(|(id, addr)| Command::SetPeer { id, addr }),
        ]
    }

    proptest! {
        #[test]
        fn commands_round_trip(id: u64, c in command()) {
            prop_assert_eq!(Command::decode(&c.encode(id)), Ok((id, c)));
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = Command::decode(&bytes);
            let _ = Kv::decode(&bytes);
        }

        #[test]
        fn snapshots_round_trip(cs in prop::collection::vec(command(), 0..30)) {
            let mut kv = Kv::default();
            for c in cs {
                kv.apply(c);
                kv.applied += 1;
            }
            prop_assert_eq!(Kv::decode(&kv.encode()), Ok(kv));
        }
    }
}
