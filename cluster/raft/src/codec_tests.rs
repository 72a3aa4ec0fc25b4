//! Round trips of every message type, and random bytes that must decode to an error, not a
//! panic.

use super::*;
use crate::rng::Rng;

fn sample_messages() -> Vec<Message> {
    let entries = vec![
        Entry {
            index: 5,
            term: 2,
            kind: EntryKind::Normal(b"put x 1".to_vec()),
        },
        Entry {
            index: 6,
            term: 2,
            kind: EntryKind::NoOp,
        },
        Entry {
            index: 7,
            term: 3,
            kind: EntryKind::ConfChange(ConfChange::EnterJoint {
                voters: [1, 2, 4].into(),
                learners: [5].into(),
                auto_leave: true,
            }),
        },
        Entry {
            index: 8,
            term: 3,
            kind: EntryKind::ConfChange(ConfChange::Remove(u64::MAX)),
        },
    ];
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            index: 9,
            term: 3,
            membership: Membership {
                voters: [1, 2, 4].into(),
                outgoing: [1, 2, 3].into(),
                learners: [5].into(),
                auto_leave: true,
            },
        },
        data: vec![0, 255, 7],
    };
    let bodies = vec![
        MessageBody::RequestVote {
            pre_vote: true,
            last_log_index: 300,
            last_log_term: 7,
        },
        MessageBody::RequestVoteResponse {
            pre_vote: false,
            granted: true,
        },
        MessageBody::AppendEntries {
            prev_log_index: 4,
            prev_log_term: 1,
            entries,
            commit: 3,
        },
        MessageBody::AppendEntriesResponse {
            success: false,
            index: 4,
            conflict_index: 2,
            conflict_term: 1,
        },
        MessageBody::Heartbeat { commit: 3, ctx: 99 },
        MessageBody::HeartbeatResponse { ctx: 99 },
        MessageBody::InstallSnapshot { snapshot },
    ];
    bodies
        .into_iter()
        .map(|body| Message {
            from: 1,
            to: 2,
            term: 1 << 40,
            body,
        })
        .collect()
}

#[test]
fn every_message_type_round_trips_alone_and_in_a_batch() {
    let msgs = sample_messages();
    for m in &msgs {
        let mut buf = Vec::new();
        m.encode(&mut buf);
        assert_eq!(&Message::decode(&buf).unwrap(), m);
    }
    let batch = encode_messages(&msgs);
    assert_eq!(decode_messages(&batch).unwrap(), msgs);
    let hs = HardState {
        term: 4,
        vote: Some(2),
        commit: 10,
    };
    let mut buf = Vec::new();
    hs.encode(&mut buf);
    assert_eq!(HardState::decode(&buf).unwrap(), hs);
}

#[test]
fn bad_bytes_are_errors_with_a_position() {
    let mut buf = Vec::new();
    sample_messages()[2].encode(&mut buf);
    // Every strict prefix is truncated or otherwise invalid; never a panic.
    for cut in 0..buf.len() {
        assert!(
            Message::decode(&buf[..cut]).is_err(),
            "prefix {cut} decoded"
        );
    }
    let mut extra = buf.clone();
    extra.push(0);
    assert!(matches!(
        Message::decode(&extra),
        Err(DecodeError::Trailing { extra: 1, .. })
    ));
    assert!(matches!(
        Message::decode(&[1, 2, 3, 42]),
        Err(DecodeError::UnknownTag { tag: 42, .. })
    ));
    assert!(matches!(
        Message::decode(&[0xff; 11]),
        Err(DecodeError::VarintOverflow { at: 0 })
    ));
    // A length claiming more than is left is refused before allocating.
    assert!(matches!(
        decode_messages(&[0xff, 0xff, 0xff, 0x7f]),
        Err(DecodeError::BadLength { .. })
    ));
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = Rng::new(11);
    let batch = encode_messages(&sample_messages());
    for _ in 0..20_000 {
        let mut b = batch.clone();
        for _ in 0..=rng.below(4) {
            let i = rng.below(b.len() as u64) as usize;
            b[i] = rng.next_u64() as u8;
        }
        let cut = rng.below(b.len() as u64 + 1) as usize;
        let _ = decode_messages(&b[..cut]);
    }
}
