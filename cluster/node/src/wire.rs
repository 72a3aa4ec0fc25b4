//! The peer stream's frames: Raft messages, client requests a follower forwards to the
//! leader, and the leader's answers to them, batched together.
//!
//! A frame is a `u32` length (little-endian, counting what follows) and then sections, each a
//! tag byte, a `u32` length and its bytes:
//! - [`RAFT`]: messages as [`raft::encode_messages`] writes them;
//! - [`FORWARD`]: a count, then per request its id (`u64`) and the encoded [`ClientOp`];
//! - [`ANSWER`]: a count, then per answer the request's id and the encoded result: a tag
//!   byte (0-4 an [`Answer`], 5 not the leader, 7 an error as its [`ErrorKind`] code, the
//!   message and the leader's address), then the fields.
//!
//! Answer tag 6 is retired: it was an error carrying an HTTP status number and a `definite`
//! flag. It is refused as malformed, never read as a kind, so a frame from an older node
//! cannot have its refusal change meaning on the way (the stream is refused, and the
//! waiting clients get the outcome a lost connection gives). The node speaks in kinds; only
//! `http.rs` knows statuses.
//!
//! Why forward over the stream rather than as an HTTP request of its own: under load a
//! follower's clients forward thousands of requests a second; each used to cost a request
//! and a response on its own connection (four socket calls and as many wake-ups on two
//! nodes). In a frame they ride with the Raft traffic that flows anyway, many per write,
//! the way etcd forwards proposals inside its Raft transport. Measured in BENCHMARKS.md.
//!
//! Every decoder checks lengths and tags and returns an error, never panics: the bytes come
//! from the network.

use bytes::{BufMut, Bytes, BytesMut};

use crate::api::{Answer, ApiError, ClientOp, ErrorKind, Refusal};
use crate::codec::{put_str, CodecError, Reader};
use crate::kv::Command;

/// Section tag: Raft messages.
pub const RAFT: u8 = 1;
/// Section tag: forwarded client requests.
pub const FORWARD: u8 = 2;
/// Section tag: answers to forwarded requests.
pub const ANSWER: u8 = 3;
/// Section tag: one piece of a frame too large to go whole (see [`pieces`]).
pub const PIECE: u8 = 4;

/// Answer tag of an error: its [`ErrorKind`] code follows (tag 6, an HTTP status, is retired).
const ERROR_ANSWER: u8 = 7;

/// Header naming the sender of a peer stream (its node id).
pub const RAFT_FROM: &str = "x-raft-from";
/// Header of a refused peer stream's answer: how many frames the receiver handled before
/// refusing. Requests forwarded in later frames were never seen: definitely not applied.
pub const FRAMES_DONE: &str = "x-frames-done";

/// Largest frame accepted. It fits the largest single entry a client can make (a value up to
/// the body limit, a key up to the request line's limit, and their encoding), plus headers,
/// so one such entry goes in one frame; anything larger travels in [`pieces`].
pub const FRAME_LIMIT: usize = crate::api::BODY_LIMIT + (128 << 10);
/// Largest frame rebuilt from pieces (a snapshot is the usual one). The receiver holds the
/// pieces in memory until the last, so this bounds what a peer can make it buffer.
pub const ASSEMBLED_LIMIT: usize = 1 << 30;
/// Size of one piece (see [`pieces`]).
const PIECE_BYTES: usize = 512 << 10;

/// Bytes that are not a well-formed frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// A frame announces more bytes than [`FRAME_LIMIT`].
    #[error("frame of {0} bytes over the limit of {FRAME_LIMIT}")]
    TooLarge(usize),
    /// Pieces add up to more than [`ASSEMBLED_LIMIT`].
    #[error("pieces of {0} bytes over the limit of {ASSEMBLED_LIMIT}")]
    AssembledTooLarge(usize),
    /// Something inside a frame does not decode.
    #[error("malformed {what} in a peer frame")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
    },
}

fn bad(what: &'static str) -> WireError {
    WireError::Malformed { what }
}

impl From<CodecError> for WireError {
    fn from(e: CodecError) -> WireError {
        bad(e.what)
    }
}

/// What one frame carries.
#[derive(Debug, Default)]
pub struct Frame {
    /// Encoded Raft messages (for [`raft::decode_messages`]), if any.
    pub raft: Option<Bytes>,
    /// Forwarded requests: (id, operation).
    pub forwards: Vec<(u64, ClientOp)>,
    /// Answers: (id, result).
    pub answers: Vec<(u64, Result<Answer, Refusal>)>,
}

/// Builds frames: add sections, then [`FrameBuilder::finish`].
#[derive(Default)]
pub struct FrameBuilder {
    forwards: Vec<u8>,
    n_forwards: u32,
    answers: Vec<u8>,
    n_answers: u32,
}

impl FrameBuilder {
    /// Adds a forwarded request.
    pub fn forward(&mut self, id: u64, op: &ClientOp) {
        self.n_forwards += 1;
        record(&mut self.forwards, id, |out| match op {
            ClientOp::Read { key } => {
                out.put_u8(0);
                out.extend_from_slice(key.as_bytes());
            }
            ClientOp::Write(cmd) => {
                out.put_u8(1);
                out.extend_from_slice(&cmd.encode(0));
            }
        });
    }

    /// Adds the answer to forwarded request `id`.
    pub fn answer(&mut self, id: u64, res: &Result<Answer, Refusal>) {
        self.n_answers += 1;
        record(&mut self.answers, id, |out| encode_answer(out, res));
    }

    /// Bytes of the forwarded requests and answers added so far.
    pub fn len(&self) -> usize {
        self.forwards.len() + self.answers.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.n_forwards == 0 && self.n_answers == 0
    }

    /// The frame, with `raft` (already encoded messages) as its first section if non-empty.
    pub fn finish(self, raft: Option<Vec<u8>>) -> Bytes {
        let mut out = BytesMut::new();
        out.put_u32_le(0);
        if let Some(r) = raft {
            section(&mut out, RAFT, None, &r);
        }
        if self.n_forwards > 0 {
            section(&mut out, FORWARD, Some(self.n_forwards), &self.forwards);
        }
        if self.n_answers > 0 {
            section(&mut out, ANSWER, Some(self.n_answers), &self.answers);
        }
        let len = (out.len() - 4) as u32;
        out[..4].copy_from_slice(&len.to_le_bytes());
        out.freeze()
    }
}

fn section(out: &mut BytesMut, tag: u8, count: Option<u32>, body: &[u8]) {
    out.put_u8(tag);
    out.put_u32_le((body.len() + if count.is_some() { 4 } else { 0 }) as u32);
    if let Some(n) = count {
        out.put_u32_le(n);
    }
    out.extend_from_slice(body);
}

/// Appends one record of a FORWARD or ANSWER section: the id, the payload's `u32` length,
/// the payload `body` writes.
fn record(out: &mut Vec<u8>, id: u64, body: impl FnOnce(&mut Vec<u8>)) {
    out.put_u64_le(id);
    let at = out.len();
    out.put_u32_le(0);
    body(out);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.put_u8(0),
        Some(s) => {
            out.put_u8(1);
            put_str(out, s);
        }
    }
}

fn encode_answer(out: &mut Vec<u8>, res: &Result<Answer, Refusal>) {
    match res {
        Ok(Answer::Value(v)) => {
            out.put_u8(0);
            put_opt_str(out, v.as_deref());
        }
        Ok(Answer::Done) => out.put_u8(1),
        Ok(Answer::Appended(v)) => {
            out.put_u8(2);
            put_str(out, v);
        }
        Ok(Answer::CasFailed(v)) => {
            out.put_u8(3);
            put_opt_str(out, v.as_deref());
        }
        Ok(Answer::Index(i)) => {
            out.put_u8(4);
            out.put_u64_le(*i);
        }
        Err(Refusal::NotLeader { leader, .. }) => {
            out.put_u8(5);
            match leader {
                None => out.put_u8(0),
                Some(l) => {
                    out.put_u8(1);
                    out.put_u64_le(*l);
                }
            }
        }
        Err(Refusal::Error(e)) => {
            out.put_u8(ERROR_ANSWER);
            out.put_u8(e.kind.code());
            put_str(out, &e.message);
            put_opt_str(out, e.leader.as_deref());
        }
    }
}

fn opt_str(r: &mut Reader, what: &'static str) -> Result<Option<String>, WireError> {
    match r.u8(what)? {
        0 => Ok(None),
        1 => Ok(Some(r.str(what)?)),
        _ => Err(bad(what)),
    }
}

fn decode_op(b: &[u8]) -> Result<ClientOp, WireError> {
    let (&tag, rest) = b.split_first().ok_or_else(|| bad("forwarded operation"))?;
    match tag {
        0 => Ok(ClientOp::Read {
            key: String::from_utf8(rest.to_vec()).map_err(|_| bad("forwarded key"))?,
        }),
        1 => {
            let (_, cmd) = Command::decode(rest).map_err(|_| bad("forwarded command"))?;
            if matches!(cmd, Command::SetPeer { .. }) {
                // Only a leader's admin path proposes these, never a client.
                return Err(bad("forwarded command"));
            }
            Ok(ClientOp::Write(cmd))
        }
        _ => Err(bad("forwarded operation tag")),
    }
}

fn decode_answer(b: &[u8]) -> Result<Result<Answer, Refusal>, WireError> {
    let mut c = Reader::new(b);
    let res = match c.u8("answer tag")? {
        0 => Ok(Answer::Value(opt_str(&mut c, "value")?)),
        1 => Ok(Answer::Done),
        2 => Ok(Answer::Appended(c.str("value")?)),
        3 => Ok(Answer::CasFailed(opt_str(&mut c, "value")?)),
        4 => Ok(Answer::Index(c.u64("index")?)),
        5 => Err(Refusal::NotLeader {
            leader: match c.u8("leader")? {
                0 => None,
                1 => Some(c.u64("leader")?),
                _ => return Err(bad("leader")),
            },
            op: None,
        }),
        ERROR_ANSWER => {
            let kind =
                ErrorKind::from_code(c.u8("error kind")?).ok_or_else(|| bad("error kind"))?;
            Err(Refusal::Error(ApiError {
                kind,
                message: c.str("message")?,
                leader: opt_str(&mut c, "leader")?,
            }))
        }
        _ => return Err(bad("answer tag")),
    };
    c.finish("answer")?;
    Ok(res)
}

/// Splits `(id, payload)` records off a FORWARD or ANSWER section.
fn records<'a>(body: &'a [u8], what: &'static str) -> Result<Vec<(u64, &'a [u8])>, WireError> {
    let mut c = Reader::new(body);
    let n = c.u32(what)? as usize;
    // Each record takes at least 12 bytes: refuse counts the section cannot hold.
    if n > c.remaining() / 12 {
        return Err(bad(what));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = c.u64(what)?;
        let len = c.u32(what)? as usize;
        out.push((id, c.take(len, what)?));
    }
    c.finish(what)?;
    Ok(out)
}

/// The length of the frame at the start of `buf`, once its 4-byte header is there.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let n = u32::from_le_bytes(buf[..4].try_into().expect("four bytes")) as usize;
    if n > FRAME_LIMIT {
        return Err(WireError::TooLarge(n));
    }
    Ok(Some(n))
}

/// Decodes one frame's sections (`body` is the frame without its length header).
pub fn decode_frame(body: Bytes) -> Result<Frame, WireError> {
    let mut frame = Frame::default();
    let mut at = 0;
    while at < body.len() {
        let mut c = Reader::new(&body[at..]);
        let tag = c.u8("section tag")?;
        let len = c.u32("section length")? as usize;
        c.take(len, "section")?;
        let start = at + 5;
        let sec = body.slice(start..start + len);
        at = start + len;
        match tag {
            RAFT => frame.raft = Some(sec),
            FORWARD => {
                for (id, op) in records(&sec, "forwarded requests")? {
                    frame.forwards.push((id, decode_op(op)?));
                }
            }
            ANSWER => {
                for (id, a) in records(&sec, "answers")? {
                    frame.answers.push((id, decode_answer(a)?));
                }
            }
            _ => return Err(bad("section tag")),
        }
    }
    Ok(frame)
}

/// Splits a frame (as [`FrameBuilder::finish`] makes it) that is over [`FRAME_LIMIT`] into
/// frames of one [`PIECE`] section each; a smaller frame comes back whole. A piece's section
/// holds a flag byte (1 on the last piece) and then the next bytes of the big frame's body.
///
/// Why pieces, at this level: a snapshot can be any size, and an answer to a forwarded read
/// of a long-appended key too; the core need not know. The receiver ([`Assembler`]) rebuilds
/// the frame and decodes it as if it had come whole. The pieces of one frame must go out
/// back to back on one stream (the sender task writes them in a row; a broken stream drops
/// the half-built frame with the connection).
pub fn pieces(frame: Bytes) -> Vec<Bytes> {
    if frame.len() - 4 <= FRAME_LIMIT {
        return vec![frame];
    }
    let body = frame.slice(4..);
    let n = body.len().div_ceil(PIECE_BYTES);
    (0..n)
        .map(|i| {
            let part = body.slice(i * PIECE_BYTES..((i + 1) * PIECE_BYTES).min(body.len()));
            let mut out = BytesMut::with_capacity(part.len() + 14);
            out.put_u32_le((part.len() + 6) as u32);
            out.put_u8(PIECE);
            out.put_u32_le((part.len() + 1) as u32);
            out.put_u8((i + 1 == n) as u8);
            out.extend_from_slice(&part);
            out.freeze()
        })
        .collect()
}

/// Rebuilds frames sent in [`pieces`] and decodes every frame of a stream, in order.
#[derive(Default)]
pub struct Assembler {
    partial: BytesMut,
}

impl Assembler {
    /// Takes one frame's body (without its length header); `Some` once a whole frame is in.
    pub fn push(&mut self, body: Bytes) -> Result<Option<Frame>, WireError> {
        if body.first() != Some(&PIECE) {
            if !self.partial.is_empty() {
                return Err(bad("frame inside a pieced frame"));
            }
            return decode_frame(body).map(Some);
        }
        let mut c = Reader::new(&body);
        c.u8("section tag")?;
        let len = c.u32("piece length")? as usize;
        let last = match c.u8("piece flag")? {
            0 => false,
            1 => true,
            _ => return Err(bad("piece flag")),
        };
        let part = c.take(
            len.checked_sub(1).ok_or_else(|| bad("piece length"))?,
            "piece",
        )?;
        c.finish("piece")?;
        let total = self.partial.len() + part.len();
        if total > ASSEMBLED_LIMIT {
            return Err(WireError::AssembledTooLarge(total));
        }
        self.partial.extend_from_slice(part);
        if !last {
            return Ok(None);
        }
        let whole = std::mem::take(&mut self.partial).freeze();
        if whole.first() == Some(&PIECE) {
            return Err(bad("piece inside a piece"));
        }
        decode_frame(whole).map(Some)
    }

    /// Whether a pieced frame is half received.
    pub fn is_partial(&self) -> bool {
        !self.partial.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn answers() -> Vec<Result<Answer, Refusal>> {
        vec![
            Ok(Answer::Value(None)),
            Ok(Answer::Value(Some("v".into()))),
            Ok(Answer::Done),
            Ok(Answer::Appended("abc".into())),
            Ok(Answer::CasFailed(Some("x".into()))),
            Ok(Answer::CasFailed(None)),
            Ok(Answer::Index(42)),
            Err(Refusal::NotLeader {
                leader: Some(3),
                op: None,
            }),
            Err(Refusal::NotLeader {
                leader: None,
                op: None,
            }),
            Err(Refusal::Error(ApiError::unknown("deadline passed"))),
            Err(Refusal::Error(ApiError {
                kind: ErrorKind::NotLeader,
                message: "not the leader".into(),
                leader: Some("127.0.0.2:7000".into()),
            })),
        ]
        .into_iter()
        .chain(ErrorKind::ALL.map(|k| Err(Refusal::Error(ApiError::new(k, "refused")))))
        .collect()
    }

    fn same(a: &Result<Answer, Refusal>, b: &Result<Answer, Refusal>) -> bool {
        match (a, b) {
            (Ok(x), Ok(y)) => x == y,
            (
                Err(Refusal::NotLeader { leader: x, .. }),
                Err(Refusal::NotLeader { leader: y, .. }),
            ) => x == y,
            (Err(Refusal::Error(x)), Err(Refusal::Error(y))) => x == y,
            _ => false,
        }
    }

    #[test]
    fn a_frame_of_every_section_round_trips() {
        let ops = [
            ClientOp::Read { key: "k1".into() },
            ClientOp::Write(Command::Put {
                key: "k".into(),
                value: "v".into(),
            }),
            ClientOp::Write(Command::Cas {
                key: "k".into(),
                expected: None,
                new: "n".into(),
            }),
            ClientOp::Write(Command::Append {
                key: "k".into(),
                value: "x".into(),
            }),
        ];
        let mut b = FrameBuilder::default();
        for (i, op) in ops.iter().enumerate() {
            b.forward(i as u64 + 10, op);
        }
        for (i, a) in answers().iter().enumerate() {
            b.answer(i as u64, a);
        }
        let f = b.finish(Some(vec![9, 8, 7]));
        let len = frame_len(&f).unwrap().unwrap();
        assert_eq!(len, f.len() - 4);
        let got = decode_frame(f.slice(4..)).unwrap();
        assert_eq!(got.raft.as_deref(), Some(&[9u8, 8, 7][..]));
        let want: Vec<(u64, ClientOp)> = ops
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, o)| (i as u64 + 10, o))
            .collect();
        assert_eq!(got.forwards, want);
        assert_eq!(got.answers.len(), answers().len());
        for ((id, a), (i, b)) in got.answers.iter().zip(answers().iter().enumerate()) {
            assert_eq!(*id, i as u64);
            assert!(same(a, b), "{a:?} != {b:?}");
        }
    }

    /// An error answer as older nodes wrote it (tag 6, HTTP status 503 as a `u32`, the
    /// definite flag, message, no leader) is refused, not read as some kind; and an unknown
    /// kind code is refused too.
    #[test]
    fn an_error_answer_with_a_status_or_an_unknown_kind_is_refused() {
        let mut old = vec![6u8];
        old.put_u32_le(503);
        old.put_u8(1);
        put_str(&mut old, "not the leader");
        old.put_u8(0);
        assert_eq!(decode_answer(&old).unwrap_err(), bad("answer tag"));
        let mut unknown = vec![ERROR_ANSWER, 0];
        put_str(&mut unknown, "x");
        unknown.put_u8(0);
        assert_eq!(decode_answer(&unknown).unwrap_err(), bad("error kind"));
        unknown[1] = ErrorKind::TooLarge.code();
        assert!(matches!(
            decode_answer(&unknown),
            Ok(Err(Refusal::Error(ApiError {
                kind: ErrorKind::TooLarge,
                ..
            })))
        ));
    }

    #[test]
    fn oversized_frames_are_refused_before_buffering() {
        let mut buf = vec![0u8; 4];
        buf[..4].copy_from_slice(&((FRAME_LIMIT + 1) as u32).to_le_bytes());
        assert_eq!(frame_len(&buf), Err(WireError::TooLarge(FRAME_LIMIT + 1)));
        assert_eq!(frame_len(&buf[..3]), Ok(None));
    }

    #[test]
    fn a_client_cannot_forward_a_peer_address_change() {
        let mut b = FrameBuilder::default();
        b.forward(
            1,
            &ClientOp::Write(Command::SetPeer {
                id: 7,
                addr: "x".into(),
            }),
        );
        let f = b.finish(None);
        assert!(decode_frame(f.slice(4..)).is_err());
    }

    /// A frame far over the limit (a 3 MB snapshot, say) goes as pieces under the limit and
    /// comes out whole and equal.
    #[test]
    fn a_frame_over_the_limit_goes_in_pieces_and_comes_back_whole() {
        let big = vec![7u8; 3 * FRAME_LIMIT + 5];
        let mut b = FrameBuilder::default();
        b.answer(9, &Ok(Answer::Done));
        let frame = b.finish(Some(big.clone()));
        let parts = pieces(frame);
        assert_eq!(
            parts.len(),
            (3 * FRAME_LIMIT + 5 + 30).div_ceil(PIECE_BYTES)
        );
        let mut a = Assembler::default();
        let mut got = None;
        for (i, p) in parts.iter().enumerate() {
            let len = frame_len(p).unwrap().unwrap();
            assert_eq!(len, p.len() - 4);
            let out = a.push(p.slice(4..)).unwrap();
            assert_eq!(out.is_some(), i + 1 == parts.len());
            got = out.or(got);
        }
        let got = got.unwrap();
        assert_eq!(got.raft.as_deref(), Some(&big[..]));
        assert_eq!(got.answers.len(), 1);
        assert!(!a.is_partial());
        // A small frame is not cut.
        assert_eq!(
            pieces(FrameBuilder::default().finish(Some(vec![1]))).len(),
            1
        );
    }

    #[test]
    fn a_whole_frame_inside_a_pieced_one_is_refused() {
        let parts = pieces(FrameBuilder::default().finish(Some(vec![1; FRAME_LIMIT + 1])));
        let mut a = Assembler::default();
        assert!(a.push(parts[0].slice(4..)).unwrap().is_none());
        let small = FrameBuilder::default().finish(Some(vec![1]));
        assert!(a.push(small.slice(4..)).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_frame(Bytes::from(bytes.clone()));
            let _ = Assembler::default().push(Bytes::from(bytes));
        }

        #[test]
        fn every_cut_inside_a_section_is_an_error(cut in 1usize..60) {
            let mut b = FrameBuilder::default();
            b.forward(1, &ClientOp::Read { key: "key".into() });
            b.answer(2, &Ok(Answer::Appended("value".into())));
            let f = b.finish(None);
            let body = f.slice(4..);
            let first = 5 + u32::from_le_bytes(body[1..5].try_into().unwrap()) as usize;
            prop_assume!(cut < body.len() && cut != first);
            prop_assert!(decode_frame(body.slice(..cut)).is_err());
        }
    }
}
