//! The node's byte encodings: the one [`Reader`] every decoder of the node uses, the
//! encodings of the core's types that the node stores (entry payloads in the WAL, memberships
//! in snapshot metadata), and the map of which encoding each thing uses.
//!
//! | what | encoding | where |
//! |---|---|---|
//! | WAL record framing (length, kind, checksums) | fixed little-endian header, CRC32C | `storage/record.rs` |
//! | WAL entry payload (entry kind and command) | [`put_kind`] / [`get_kind`] | here |
//! | membership in snapshot metadata | [`put_membership`] / [`get_membership`] | here |
//! | snapshot file header | fixed little-endian header, CRC32C | `storage/snapshot.rs` |
//! | client command inside a normal entry | `Command::encode` / `decode` | `kv.rs` |
//! | state machine snapshot (the key-value map) | `Kv::encode` / `decode` | `kv.rs` |
//! | peer stream frames (messages, forwards, answers, pieces) | length-prefixed sections | `wire.rs` |
//! | an error in an answer to a forwarded request | `ErrorKind` as a `u8` code (1 unavailable, 2 not leader, 3 unknown outcome, 4 bad request, 5 forbidden, 6 not found, 7 method not allowed, 8 too large; never an HTTP status) | `api.rs`, `wire.rs` |
//! | Raft messages inside a frame | the core's codec ([`raft::encode_messages`]) | `cluster/raft` |
//! | client API | JSON over HTTP/1.1 (`cluster/API.md`) | `api.rs`, `http.rs` |
//!
//! All integers are little-endian; strings are a `u32` length and UTF-8 bytes (`put_str`).
//! The storage format belongs to the node, so it is encoded here even though the core has a
//! codec of its own: a change in the core's wire format must not silently change what an
//! existing data directory means. Every decoder checks lengths and tags and returns an error,
//! never panics.

use std::collections::BTreeSet;

use raft::{ConfChange, EntryKind, Membership};

/// Bytes that do not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed {what} at byte {at}")]
pub struct CodecError {
    /// What was being decoded.
    pub what: &'static str,
    /// Where.
    pub at: usize,
}

/// A cursor over bytes being decoded that fails instead of panicking: the one reader of the
/// node (entry payloads, memberships, commands, snapshots, peer frames).
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Starts at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, at: 0 }
    }
    pub(crate) fn err(&self, what: &'static str) -> CodecError {
        CodecError { what, at: self.at }
    }
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        let end = self.at.checked_add(n).ok_or_else(|| self.err(what))?;
        let s = self.buf.get(self.at..end).ok_or_else(|| self.err(what))?;
        self.at = end;
        Ok(s)
    }
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }
    fn bool(&mut self, what: &'static str) -> Result<bool, CodecError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.err(what)),
        }
    }
    fn bytes(&mut self, what: &'static str) -> Result<Vec<u8>, CodecError> {
        let n = self.u64(what)?;
        let n = usize::try_from(n).map_err(|_| self.err(what))?;
        Ok(self.take(n, what)?.to_vec())
    }
    /// A string written by [`put_str`].
    pub(crate) fn str(&mut self, what: &'static str) -> Result<String, CodecError> {
        let n = self.u32(what)? as usize;
        let at = self.at;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| CodecError { what, at })
    }
    fn ids(&mut self, what: &'static str) -> Result<BTreeSet<u64>, CodecError> {
        let n = self.u64(what)?;
        if n > self.remaining() as u64 / 8 {
            return Err(self.err(what));
        }
        (0..n).map(|_| self.u64(what)).collect()
    }
    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.at
    }
    /// Fails unless every byte was consumed.
    pub fn finish(&self, what: &'static str) -> Result<(), CodecError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(self.err(what))
        }
    }
}

/// Writes a string as a `u32` length and its bytes (commands, snapshots, peer frames).
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u64(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_ids(out: &mut Vec<u8>, ids: &BTreeSet<u64>) {
    put_u64(out, ids.len() as u64);
    for id in ids {
        put_u64(out, *id);
    }
}

/// Encodes a membership.
pub fn put_membership(out: &mut Vec<u8>, m: &Membership) {
    put_ids(out, &m.voters);
    put_ids(out, &m.outgoing);
    put_ids(out, &m.learners);
    out.push(m.auto_leave as u8);
}

/// Decodes a membership.
pub fn get_membership(r: &mut Reader) -> Result<Membership, CodecError> {
    Ok(Membership {
        voters: r.ids("voters")?,
        outgoing: r.ids("outgoing voters")?,
        learners: r.ids("learners")?,
        auto_leave: r.bool("auto_leave")?,
    })
}

/// `x` encoded by `put` as bytes of its own.
fn standalone<T>(x: &T, put: fn(&mut Vec<u8>, &T)) -> Vec<u8> {
    let mut v = Vec::new();
    put(&mut v, x);
    v
}

/// Decodes bytes of [`standalone`] with `get`, which must consume every byte.
fn from_standalone<T>(
    b: &[u8],
    what: &'static str,
    get: fn(&mut Reader) -> Result<T, CodecError>,
) -> Result<T, CodecError> {
    let mut r = Reader::new(b);
    let x = get(&mut r)?;
    r.finish(what)?;
    Ok(x)
}

/// A membership as standalone bytes (the snapshot metadata in the WAL).
pub fn membership_bytes(m: &Membership) -> Vec<u8> {
    standalone(m, put_membership)
}

/// Decodes [`membership_bytes`].
pub fn membership_from_bytes(b: &[u8]) -> Result<Membership, CodecError> {
    from_standalone(b, "membership", get_membership)
}

const K_NORMAL: u8 = 1;
const K_NOOP: u8 = 2;
const K_ADD_VOTER: u8 = 3;
const K_ADD_LEARNER: u8 = 4;
const K_REMOVE: u8 = 5;
const K_ENTER_JOINT: u8 = 6;
const K_LEAVE_JOINT: u8 = 7;

/// Encodes an entry's kind and payload (index and term travel separately in the WAL).
pub fn put_kind(out: &mut Vec<u8>, k: &EntryKind) {
    match k {
        EntryKind::Normal(d) => {
            out.push(K_NORMAL);
            put_bytes(out, d);
        }
        EntryKind::NoOp => out.push(K_NOOP),
        EntryKind::ConfChange(c) => match c {
            ConfChange::AddVoter(id) => {
                out.push(K_ADD_VOTER);
                put_u64(out, *id);
            }
            ConfChange::AddLearner(id) => {
                out.push(K_ADD_LEARNER);
                put_u64(out, *id);
            }
            ConfChange::Remove(id) => {
                out.push(K_REMOVE);
                put_u64(out, *id);
            }
            ConfChange::EnterJoint {
                voters,
                learners,
                auto_leave,
            } => {
                out.push(K_ENTER_JOINT);
                put_ids(out, voters);
                put_ids(out, learners);
                out.push(*auto_leave as u8);
            }
            ConfChange::LeaveJoint => out.push(K_LEAVE_JOINT),
        },
    }
}

/// Decodes [`put_kind`].
pub fn get_kind(r: &mut Reader) -> Result<EntryKind, CodecError> {
    Ok(match r.u8("entry kind")? {
        K_NORMAL => EntryKind::Normal(r.bytes("command")?),
        K_NOOP => EntryKind::NoOp,
        K_ADD_VOTER => EntryKind::ConfChange(ConfChange::AddVoter(r.u64("id")?)),
        K_ADD_LEARNER => EntryKind::ConfChange(ConfChange::AddLearner(r.u64("id")?)),
        K_REMOVE => EntryKind::ConfChange(ConfChange::Remove(r.u64("id")?)),
        K_ENTER_JOINT => EntryKind::ConfChange(ConfChange::EnterJoint {
            voters: r.ids("voters")?,
            learners: r.ids("learners")?,
            auto_leave: r.bool("auto_leave")?,
        }),
        K_LEAVE_JOINT => EntryKind::ConfChange(ConfChange::LeaveJoint),
        _ => return Err(r.err("entry kind")),
    })
}

/// An entry's kind as standalone bytes (the WAL entry payload).
pub fn kind_bytes(k: &EntryKind) -> Vec<u8> {
    standalone(k, put_kind)
}

/// Decodes [`kind_bytes`].
pub fn kind_from_bytes(b: &[u8]) -> Result<EntryKind, CodecError> {
    from_standalone(b, "entry", get_kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids() -> impl Strategy<Value = BTreeSet<u64>> {
        prop::collection::btree_set(1u64..9, 0..4)
    }

    fn kind() -> impl Strategy<Value = EntryKind> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..20).prop_map(EntryKind::Normal),
            Just(EntryKind::NoOp),
            (1u64..9).prop_map(|i| EntryKind::ConfChange(ConfChange::AddVoter(i))),
            (1u64..9).prop_map(|i| EntryKind::ConfChange(ConfChange::AddLearner(i))),
            (1u64..9).prop_map(|i| EntryKind::ConfChange(ConfChange::Remove(i))),
            (ids(), ids(), any::<bool>()).prop_map(|(voters, learners, auto_leave)| {
                EntryKind::ConfChange(ConfChange::EnterJoint {
                    voters,
                    learners,
                    auto_leave,
                })
            }),
            Just(EntryKind::ConfChange(ConfChange::LeaveJoint)),
        ]
    }

    fn membership() -> impl Strategy<Value = Membership> {
        (ids(), ids(), ids(), any::<bool>()).prop_map(|(voters, outgoing, learners, auto_leave)| {
            Membership {
                voters,
                outgoing,
                learners,
                auto_leave,
            }
        })
    }

    proptest! {
        #[test]
        fn kinds_and_memberships_round_trip(k in kind(), m in membership()) {
            prop_assert_eq!(kind_from_bytes(&kind_bytes(&k)), Ok(k));
            prop_assert_eq!(membership_from_bytes(&membership_bytes(&m)), Ok(m));
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
            let _ = kind_from_bytes(&bytes);
            let _ = membership_from_bytes(&bytes);
        }
    }
}
