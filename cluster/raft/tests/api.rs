//! The driver-facing API refuses bad input with the error a caller can act on, never a panic.

use raft::{
    CompactError, ConfChange, ConfChangeError, Config, ConfigError, Entry, EntryKind, HardState,
    Message, MessageBody, Node, PersistedState, ProposeError, ReadError, StartError, StepError,
};

fn leader_of_one() -> Node {
    let mut n = Node::new(Config::new(1, [1]), None).unwrap();
    n.campaign();
    while n.has_ready() {
        let rd = n.ready();
        n.advance(rd);
    }
    n
}

#[test]
fn bad_configs_name_the_field() {
    let mut c = Config::new(0, [1]);
    assert_eq!(
        Node::new(c.clone(), None).unwrap_err(),
        StartError::Config(ConfigError::ZeroId)
    );
    c.id = 1;
    c.heartbeat_ticks = 10;
    let err = Node::new(c.clone(), None).unwrap_err();
    assert!(err.to_string().contains("heartbeat_ticks (10)"), "{err}");
    c.heartbeat_ticks = 2;
    c.max_batch = 0;
    assert!(Node::new(c, None)
        .unwrap_err()
        .to_string()
        .contains("max_batch"));
    let mut c = Config::new(1, [1, 2]);
    c.learners.insert(2);
    assert_eq!(c.validate(), Err(ConfigError::VoterAndLearner { id: 2 }));
}

#[test]
fn a_persisted_log_with_a_gap_is_refused() {
    let e = |index| Entry {
        index,
        term: 1,
        kind: EntryKind::NoOp,
    };
    let persisted = PersistedState {
        hard_state: HardState {
            term: 1,
            vote: Some(1),
            commit: 1,
        },
        snapshot: None,
        entries: vec![e(1), e(3)],
    };
    let err = Node::new(Config::new(1, [1]), Some(persisted.clone())).unwrap_err();
    assert_eq!(
        err,
        StartError::Gap {
            expected: 2,
            found: 3
        }
    );
    let mut behind = persisted;
    behind.entries = vec![e(1)];
    behind.hard_state.term = 0;
    assert!(matches!(
        Node::new(Config::new(1, [1]), Some(behind)),
        Err(StartError::TermBehindLog {
            term: 0,
            last_term: 1
        })
    ));
}

#[test]
fn requests_to_a_follower_name_the_leader() {
    let mut n = Node::new(Config::new(2, [1, 2, 3]), None).unwrap();
    assert_eq!(
        n.propose(b"x".to_vec()),
        Err(ProposeError::NotLeader { leader: None })
    );
    assert_eq!(n.read_index(5), Err(ReadError::NotLeader { leader: None }));
    // A heartbeat from leader 1 in term 1 teaches it the leader.
    n.step(Message {
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::Heartbeat { commit: 0, ctx: 0 },
    })
    .unwrap();
    assert_eq!(
        n.propose(vec![]),
        Err(ProposeError::NotLeader { leader: Some(1) })
    );
    assert_eq!(
        n.propose_conf_change(ConfChange::AddVoter(4)),
        Err(ConfChangeError::NotLeader { leader: Some(1) })
    );
}

#[test]
fn misaddressed_messages_and_bad_contexts_are_errors() {
    let mut n = leader_of_one();
    let m = Message {
        from: 2,
        to: 9,
        term: 1,
        body: MessageBody::HeartbeatResponse { ctx: 0 },
    };
    assert_eq!(n.step(m), Err(StepError::WrongRecipient { to: 9, id: 1 }));
    let m = Message {
        from: 1,
        to: 1,
        term: 1,
        body: MessageBody::HeartbeatResponse { ctx: 0 },
    };
    assert_eq!(n.step(m), Err(StepError::BadSender { from: 1 }));
    assert_eq!(n.read_index(0), Err(ReadError::BadContext { ctx: 0 }));
    // A single voter confirms reads by itself.
    n.read_index(3).unwrap();
    assert_eq!(n.ready().read_states.len(), 1);
}

#[test]
fn invalid_membership_changes_and_compactions_are_refused() {
    let mut n = leader_of_one();
    assert!(matches!(
        n.propose_conf_change(ConfChange::Remove(1)),
        Err(ConfChangeError::Invalid { .. })
    ));
    assert!(matches!(
        n.propose_conf_change(ConfChange::LeaveJoint),
        Err(ConfChangeError::Invalid { .. })
    ));
    let applied = n.status().applied;
    assert_eq!(
        n.compact(applied + 1, vec![]),
        Err(CompactError::NotApplied {
            index: applied + 1,
            applied
        })
    );
    let snap = n.compact(applied, vec![1, 2]).unwrap();
    assert_eq!(snap.meta.index, applied);
    assert!(matches!(
        n.compact(applied, vec![]),
        Err(CompactError::AlreadyCompacted { .. })
    ));
}
