//! A compact binary encoding of messages, entries, hard state and snapshots: LEB128 varints
//! and length-prefixed byte strings. Decoding never panics: bad bytes are a [`DecodeError`].
//!
//! Hand-written rather than serde-derived so the core keeps no dependency but `thiserror`,
//! and so the format is fixed here in one page: a change to it shows as a diff to this file.

use crate::membership::Membership;
use crate::message::{
    ConfChange, Entry, EntryKind, HardState, Message, MessageBody, NodeId, Snapshot, SnapshotMeta,
};
use std::collections::BTreeSet;

/// Bytes that are not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("truncated input: {what} at byte {at}")]
    Truncated {
        /// The value being read.
        what: &'static str,
        /// Byte offset.
        at: usize,
    },
    /// A varint longer than 64 bits.
    #[error("varint overflow at byte {at}")]
    VarintOverflow {
        /// Byte offset.
        at: usize,
    },
    /// A tag that names no variant.
    #[error("unknown {what} tag {tag} at byte {at}")]
    UnknownTag {
        /// The kind of value.
        what: &'static str,
        /// The tag found.
        tag: u64,
        /// Byte offset.
        at: usize,
    },
    /// A length larger than the remaining input.
    #[error("length {len} of {what} at byte {at} exceeds the {remaining} bytes left")]
    BadLength {
        /// The value being read.
        what: &'static str,
        /// The length found.
        len: u64,
        /// Byte offset.
        at: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// Bytes left over after a complete value.
    #[error("{extra} trailing bytes after {what}")]
    Trailing {
        /// The value decoded.
        what: &'static str,
        /// How many bytes were left.
        extra: usize,
    },
}

/// Appends encodings to a buffer.
struct Enc<'a>(&'a mut Vec<u8>);

impl Enc<'_> {
    fn u64(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }
    fn bool(&mut self, b: bool) {
        self.0.push(u8::from(b));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn ids(&mut self, ids: &BTreeSet<NodeId>) {
        self.u64(ids.len() as u64);
        for id in ids {
            self.u64(*id);
        }
    }
    fn membership(&mut self, m: &Membership) {
        self.ids(&m.voters);
        self.ids(&m.outgoing);
        self.ids(&m.learners);
        self.bool(m.auto_leave);
    }
    fn entry(&mut self, e: &Entry) {
        self.u64(e.index);
        self.u64(e.term);
        match &e.kind {
            EntryKind::Normal(data) => {
                self.u64(0);
                self.bytes(data);
            }
            EntryKind::NoOp => self.u64(1),
            EntryKind::ConfChange(cc) => {
                self.u64(2);
                self.conf_change(cc);
            }
        }
    }
    fn conf_change(&mut self, cc: &ConfChange) {
        match cc {
            ConfChange::AddVoter(id) => {
                self.u64(0);
                self.u64(*id);
            }
            ConfChange::AddLearner(id) => {
                self.u64(1);
                self.u64(*id);
            }
            ConfChange::Remove(id) => {
                self.u64(2);
                self.u64(*id);
            }
            ConfChange::EnterJoint {
                voters,
                learners,
                auto_leave,
            } => {
                self.u64(3);
                self.ids(voters);
                self.ids(learners);
                self.bool(*auto_leave);
            }
            ConfChange::LeaveJoint => self.u64(4),
        }
    }
    fn snapshot(&mut self, s: &Snapshot) {
        self.u64(s.meta.index);
        self.u64(s.meta.term);
        self.membership(&s.meta.membership);
        self.bytes(&s.data);
    }
    fn message(&mut self, m: &Message) {
        self.u64(m.from);
        self.u64(m.to);
        self.u64(m.term);
        match &m.body {
            MessageBody::RequestVote {
                pre_vote,
                last_log_index,
                last_log_term,
            } => {
                self.u64(0);
                self.bool(*pre_vote);
                self.u64(*last_log_index);
                self.u64(*last_log_term);
            }
            MessageBody::RequestVoteResponse { pre_vote, granted } => {
                self.u64(1);
                self.bool(*pre_vote);
                self.bool(*granted);
            }
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                commit,
            } => {
                self.u64(2);
                self.u64(*prev_log_index);
                self.u64(*prev_log_term);
                self.u64(*commit);
                self.u64(entries.len() as u64);
                for e in entries {
                    self.entry(e);
                }
            }
            MessageBody::AppendEntriesResponse {
                success,
                index,
                conflict_index,
                conflict_term,
            } => {
                self.u64(3);
                self.bool(*success);
                self.u64(*index);
                self.u64(*conflict_index);
                self.u64(*conflict_term);
            }
            MessageBody::Heartbeat { commit, ctx } => {
                self.u64(4);
                self.u64(*commit);
                self.u64(*ctx);
            }
            MessageBody::HeartbeatResponse { ctx } => {
                self.u64(5);
                self.u64(*ctx);
            }
            MessageBody::InstallSnapshot { snapshot } => {
                self.u64(6);
                self.snapshot(snapshot);
            }
        }
    }
}

/// Reads encodings from a byte slice.
struct Dec<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Dec<'a> {
    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let start = self.at;
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.buf.get(self.at) else {
                return Err(DecodeError::Truncated { what, at: self.at });
            };
            self.at += 1;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(DecodeError::VarintOverflow { at: start });
            }
            v |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::VarintOverflow { at: start })
    }
    fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u64(what)? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::UnknownTag {
                what,
                tag,
                at: self.at - 1,
            }),
        }
    }
    /// A count of items each at least one byte long: bounded by the input left.
    fn len(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let at = self.at;
        let len = self.u64(what)?;
        let remaining = self.buf.len() - self.at;
        if len > remaining as u64 {
            return Err(DecodeError::BadLength {
                what,
                len,
                at,
                remaining,
            });
        }
        Ok(len as usize)
    }
    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.len(what)?;
        let out = &self.buf[self.at..self.at + len];
        self.at += len;
        Ok(out)
    }
    fn tag_error<T>(&self, what: &'static str, tag: u64) -> Result<T, DecodeError> {
        Err(DecodeError::UnknownTag {
            what,
            tag,
            at: self.at.saturating_sub(1),
        })
    }
    fn ids(&mut self, what: &'static str) -> Result<BTreeSet<NodeId>, DecodeError> {
        let n = self.len(what)?;
        (0..n).map(|_| self.u64(what)).collect()
    }
    fn membership(&mut self) -> Result<Membership, DecodeError> {
        Ok(Membership {
            voters: self.ids("voters")?,
            outgoing: self.ids("outgoing voters")?,
            learners: self.ids("learners")?,
            auto_leave: self.bool("auto_leave")?,
        })
    }
    fn entry(&mut self) -> Result<Entry, DecodeError> {
        let index = self.u64("entry index")?;
        let term = self.u64("entry term")?;
        let kind = match self.u64("entry kind")? {
            0 => EntryKind::Normal(self.bytes("entry data")?.to_vec()),
            1 => EntryKind::NoOp,
            2 => EntryKind::ConfChange(self.conf_change()?),
            tag => return self.tag_error("entry kind", tag),
        };
        Ok(Entry { index, term, kind })
    }
    fn conf_change(&mut self) -> Result<ConfChange, DecodeError> {
        Ok(match self.u64("conf change kind")? {
            0 => ConfChange::AddVoter(self.u64("node id")?),
            1 => ConfChange::AddLearner(self.u64("node id")?),
            2 => ConfChange::Remove(self.u64("node id")?),
            3 => ConfChange::EnterJoint {
                voters: self.ids("voters")?,
                learners: self.ids("learners")?,
                auto_leave: self.bool("auto_leave")?,
            },
            4 => ConfChange::LeaveJoint,
            tag => return self.tag_error("conf change kind", tag),
        })
    }
    fn snapshot(&mut self) -> Result<Snapshot, DecodeError> {
        Ok(Snapshot {
            meta: SnapshotMeta {
                index: self.u64("snapshot index")?,
                term: self.u64("snapshot term")?,
                membership: self.membership()?,
            },
            data: self.bytes("snapshot data")?.to_vec(),
        })
    }
    fn message(&mut self) -> Result<Message, DecodeError> {
        let from = self.u64("from")?;
        let to = self.u64("to")?;
        let term = self.u64("term")?;
        let body = match self.u64("message type")? {
            0 => MessageBody::RequestVote {
                pre_vote: self.bool("pre_vote")?,
                last_log_index: self.u64("last_log_index")?,
                last_log_term: self.u64("last_log_term")?,
            },
            1 => MessageBody::RequestVoteResponse {
                pre_vote: self.bool("pre_vote")?,
                granted: self.bool("granted")?,
            },
            2 => {
                let prev_log_index = self.u64("prev_log_index")?;
                let prev_log_term = self.u64("prev_log_term")?;
                let commit = self.u64("commit")?;
                let n = self.len("entry count")?;
                let entries = (0..n).map(|_| self.entry()).collect::<Result<_, _>>()?;
                MessageBody::AppendEntries {
                    prev_log_index,
                    prev_log_term,
                    entries,
                    commit,
                }
            }
            3 => MessageBody::AppendEntriesResponse {
                success: self.bool("success")?,
                index: self.u64("index")?,
                conflict_index: self.u64("conflict_index")?,
                conflict_term: self.u64("conflict_term")?,
            },
            4 => MessageBody::Heartbeat {
                commit: self.u64("commit")?,
                ctx: self.u64("ctx")?,
            },
            5 => MessageBody::HeartbeatResponse {
                ctx: self.u64("ctx")?,
            },
            6 => MessageBody::InstallSnapshot {
                snapshot: self.snapshot()?,
            },
            tag => return self.tag_error("message type", tag),
        };
        Ok(Message {
            from,
            to,
            term,
            body,
        })
    }
    fn finish<T>(self, what: &'static str, value: T) -> Result<T, DecodeError> {
        let extra = self.buf.len() - self.at;
        if extra != 0 {
            return Err(DecodeError::Trailing { what, extra });
        }
        Ok(value)
    }
}

fn decode_whole<'a, T>(
    buf: &'a [u8],
    what: &'static str,
    f: impl FnOnce(&mut Dec<'a>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let mut d = Dec { buf, at: 0 };
    let v = f(&mut d)?;
    d.finish(what, v)
}

impl Message {
    /// Appends this message's encoding to `buf`.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        Enc(buf).message(self);
    }
    /// Decodes exactly one message.
    pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
        decode_whole(buf, "message", Dec::message)
    }
}

impl Entry {
    /// Appends this entry's encoding to `buf`.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        Enc(buf).entry(self);
    }
    /// Decodes exactly one entry.
    pub fn decode(buf: &[u8]) -> Result<Entry, DecodeError> {
        decode_whole(buf, "entry", Dec::entry)
    }
}

impl HardState {
    /// Appends this hard state's encoding to `buf` (a vote of `None` is written as 0).
    pub fn encode(&self, buf: &mut Vec<u8>) {
        let mut e = Enc(buf);
        e.u64(self.term);
        e.u64(self.vote.unwrap_or(0));
        e.u64(self.commit);
    }
    /// Decodes exactly one hard state.
    pub fn decode(buf: &[u8]) -> Result<HardState, DecodeError> {
        decode_whole(buf, "hard state", |d| {
            let term = d.u64("term")?;
            let vote = d.u64("vote")?;
            Ok(HardState {
                term,
                vote: (vote != 0).then_some(vote),
                commit: d.u64("commit")?,
            })
        })
    }
}

impl Snapshot {
    /// Appends this snapshot's encoding to `buf`.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        Enc(buf).snapshot(self);
    }
    /// Decodes exactly one snapshot.
    pub fn decode(buf: &[u8]) -> Result<Snapshot, DecodeError> {
        decode_whole(buf, "snapshot", Dec::snapshot)
    }
}

/// Encodes a batch of messages: a count, then each message length-prefixed.
pub fn encode_messages(msgs: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut item = Vec::new();
    Enc(&mut out).u64(msgs.len() as u64);
    for m in msgs {
        item.clear();
        m.encode(&mut item);
        Enc(&mut out).bytes(&item);
    }
    out
}

/// Decodes a batch written by [`encode_messages`].
pub fn decode_messages(buf: &[u8]) -> Result<Vec<Message>, DecodeError> {
    decode_whole(buf, "message batch", |d| {
        let n = d.len("message count")?;
        (0..n)
            .map(|_| Message::decode(d.bytes("message")?))
            .collect()
    })
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
