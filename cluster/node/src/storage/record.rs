//! The WAL's record types and their framing: a checksummed header, then a checksummed body.
//!
//! Frame layout (little-endian):
//!
//! ```text
//! +---------+--------+-------------+---------------+----------------+
//! | len u32 | kind u8| body_crc u32| header_crc u32| body (len bytes)|
//! +---------+--------+-------------+---------------+----------------+
//! ```
//!
//! The header has its own checksum so that a flipped bit in a length field is detected as
//! corruption instead of being read as "the record runs past the end of the file", which would
//! look like a torn tail and silently drop every record after it.

use super::crc::crc32c;

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 13;
/// Largest body accepted on decode; anything larger is treated as a damaged length.
pub const MAX_BODY: usize = 64 << 20;

/// One log entry as the WAL sees it: position and term, and an opaque payload that the node
/// encodes (entry kind and command).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Log index (1-based).
    pub index: u64,
    /// Term in which the leader created the entry.
    pub term: u64,
    /// The node's encoding of the entry's kind and command.
    pub data: Vec<u8>,
}

/// Raft's persistent per-node state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// Current term.
    pub term: u64,
    /// Candidate voted for in `term` (0 = none).
    pub vote: u64,
    /// Highest index known committed.
    pub commit: u64,
}

/// What a snapshot covers: the last index and term folded into it, and the membership at that
/// point (opaque bytes owned by the node).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// Last log index included in the snapshot.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// The node's encoding of the membership configuration at `index`.
    pub conf: Vec<u8>,
}

/// One durable change to the log or the hard state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// Append (or, if it agrees with what is there, re-state) one entry.
    Entry(Entry),
    /// Drop every entry with index >= `from`.
    Truncate {
        /// First index removed.
        from: u64,
    },
    /// Replace the hard state.
    HardState(HardState),
    /// A snapshot now covers the log up to `meta.index`; earlier entries are gone.
    Snapshot(SnapshotMeta),
}

const KIND_ENTRY: u8 = 1;
const KIND_TRUNCATE: u8 = 2;
const KIND_HARD_STATE: u8 = 3;
const KIND_SNAPSHOT: u8 = 4;

/// Outcome of reading one frame at an offset.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A valid record and the number of bytes its frame takes.
    Record(Record, usize),
    /// The frame runs past the end of the data (a write cut short).
    Incomplete,
    /// The header checksum does not match.
    BadHeader,
    /// The header is sound but the body checksum does not match.
    BadBody,
    /// Both checksums match but the body does not parse: written by a different program.
    Malformed(&'static str),
}

impl Record {
    /// Appends this record's frame to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0u8; HEADER_LEN]);
        let kind = match self {
            Record::Entry(e) => {
                put_u64(out, e.index);
                put_u64(out, e.term);
                out.extend_from_slice(&e.data);
                KIND_ENTRY
            }
            Record::Truncate { from } => {
                put_u64(out, *from);
                KIND_TRUNCATE
            }
            Record::HardState(hs) => {
                put_u64(out, hs.term);
                put_u64(out, hs.vote);
                put_u64(out, hs.commit);
                KIND_HARD_STATE
            }
            Record::Snapshot(m) => {
                put_u64(out, m.index);
                put_u64(out, m.term);
                out.extend_from_slice(&m.conf);
                KIND_SNAPSHOT
            }
        };
        let body_len = out.len() - start - HEADER_LEN;
        let body_crc = crc32c(&out[start + HEADER_LEN..]);
        let header = &mut out[start..start + HEADER_LEN];
        header[0..4].copy_from_slice(&(body_len as u32).to_le_bytes());
        header[4] = kind;
        header[5..9].copy_from_slice(&body_crc.to_le_bytes());
        let header_crc = crc32c(&header[0..9]);
        header[9..13].copy_from_slice(&header_crc.to_le_bytes());
    }

    /// This record's frame as a new buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_into(&mut v);
        v
    }
}

/// Reads the frame at the start of `buf`.
pub fn decode(buf: &[u8]) -> Decoded {
    if buf.len() < HEADER_LEN {
        return Decoded::Incomplete;
    }
    let header = &buf[..HEADER_LEN];
    if crc32c(&header[0..9]) != u32::from_le_bytes(header[9..13].try_into().unwrap()) {
        return Decoded::BadHeader;
    }
    let len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
    if len > MAX_BODY {
        return Decoded::Malformed("body length over the limit");
    }
    let kind = header[4];
    let body_crc = u32::from_le_bytes(header[5..9].try_into().unwrap());
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Decoded::Incomplete;
    };
    if crc32c(body) != body_crc {
        return Decoded::BadBody;
    }
    match parse_body(kind, body) {
        Ok(r) => Decoded::Record(r, HEADER_LEN + len),
        Err(why) => Decoded::Malformed(why),
    }
}

fn parse_body(kind: u8, body: &[u8]) -> Result<Record, &'static str> {
    let u = |i: usize| -> Result<u64, &'static str> {
        body.get(i * 8..i * 8 + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
            .ok_or("body too short")
    };
    Ok(match kind {
        KIND_ENTRY => Record::Entry(Entry {
            index: u(0)?,
            term: u(1)?,
            data: body[16..].to_vec(),
        }),
        KIND_TRUNCATE => Record::Truncate { from: u(0)? },
        KIND_HARD_STATE => Record::HardState(HardState {
            term: u(0)?,
            vote: u(1)?,
            commit: u(2)?,
        }),
        KIND_SNAPSHOT => Record::Snapshot(SnapshotMeta {
            index: u(0)?,
            term: u(1)?,
            conf: body[16..].to_vec(),
        }),
        _ => return Err("unknown record kind"),
    })
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Record> {
        vec![
            Record::Entry(Entry {
                index: 7,
                term: 3,
                data: b"hello".to_vec(),
            }),
            Record::Entry(Entry {
                index: 8,
                term: 3,
                data: vec![],
            }),
            Record::Truncate { from: 5 },
            Record::HardState(HardState {
                term: 9,
                vote: 2,
                commit: 40,
            }),
            Record::Snapshot(SnapshotMeta {
                index: 30,
                term: 8,
                conf: vec![1, 2, 3],
            }),
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        for r in samples() {
            let bytes = r.encode();
            assert_eq!(decode(&bytes), Decoded::Record(r, bytes.len()));
        }
    }

    #[test]
    fn every_prefix_is_incomplete_or_bad() {
        for r in samples() {
            let bytes = r.encode();
            for cut in 0..bytes.len() {
                assert_eq!(decode(&bytes[..cut]), Decoded::Incomplete, "cut at {cut}");
            }
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        for r in samples() {
            let bytes = r.encode();
            for bit in 0..bytes.len() * 8 {
                let mut b = bytes.clone();
                b[bit / 8] ^= 1 << (bit % 8);
                match decode(&b) {
                    Decoded::Record(..) => panic!("flip of bit {bit} of {r:?} went unnoticed"),
                    Decoded::BadHeader | Decoded::BadBody | Decoded::Incomplete => {}
                    Decoded::Malformed(_) => {}
                }
            }
        }
    }
}
