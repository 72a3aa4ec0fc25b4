//! What the core hands its driver ([`Ready`]), what the driver hands back on restart
//! ([`PersistedState`]), and the node's [`Status`].

use crate::message::{Entry, HardState, Message, NodeId, ProposalId, ReadState, Snapshot};
use std::collections::BTreeSet;

/// A node's role (§5.1, plus the pre-vote phase).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Answers leaders and candidates.
    Follower,
    /// Asks whether it could win before disrupting anyone with a new term.
    PreCandidate,
    /// Asks for votes in a new term.
    Candidate,
    /// Accepts proposals and replicates the log.
    Leader,
}

impl Role {
    /// Lower-case name (`"leader"`), as in the node's `/status`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        }
    }
}

/// Work for the driver. Handle the fields in the order of the crate docs' driver contract:
/// persist (snapshot, truncation, entries, hard state), then send `messages`, then apply
/// (`snapshot`, then `committed_entries`), answer reads and proposals, then call
/// [`crate::Node::advance`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ready {
    /// The new hard state to persist, if it changed.
    pub hard_state: Option<HardState>,
    /// A snapshot received from the leader: persist it (it replaces every persisted entry),
    /// then restore the state machine from it before applying `committed_entries`.
    pub snapshot: Option<Snapshot>,
    /// Delete the persisted entries from this index on before appending `entries`.
    pub truncate_from: Option<u64>,
    /// Entries to append to stable storage.
    pub entries: Vec<Entry>,
    /// Messages to send once the above is durable.
    pub messages: Vec<Message>,
    /// Entries to apply to the state machine, in order.
    pub committed_entries: Vec<Entry>,
    /// Reads confirmed linearizable: answer each after applying `committed_entries`.
    pub read_states: Vec<ReadState>,
    /// Reads that will never be confirmed (leadership lost): fail them.
    pub dropped_reads: Vec<u64>,
    /// Proposals of this node that will never commit (another entry committed at their
    /// index): answer their clients with a definite failure.
    pub dropped_proposals: Vec<ProposalId>,
    /// Proposals of this node whose fate this node can no longer learn (covered by an
    /// installed snapshot): their outcome is unknown.
    pub unknown_proposals: Vec<ProposalId>,
}

impl Ready {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        *self == Ready::default()
    }
}

/// What the driver read back from stable storage on restart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PersistedState {
    /// The last hard state persisted.
    pub hard_state: HardState,
    /// The last snapshot persisted (the driver restores its state machine from it).
    pub snapshot: Option<Snapshot>,
    /// The persisted entries, in order (entries the snapshot covers are skipped).
    pub entries: Vec<Entry>,
}

/// A summary of the node, for `/status` and tests.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: u64,
    /// Its vote in `term`.
    pub vote: Option<NodeId>,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// The commit index.
    pub commit: u64,
    /// The index applied by the driver.
    pub applied: u64,
    /// The last log index.
    pub last_index: u64,
    /// The snapshot's index (0 if none).
    pub snapshot_index: u64,
    /// The voters (of C_new while joint).
    pub voters: BTreeSet<NodeId>,
    /// The outgoing voters while joint (C_old), else empty.
    pub outgoing: BTreeSet<NodeId>,
    /// The learners.
    pub learners: BTreeSet<NodeId>,
}
