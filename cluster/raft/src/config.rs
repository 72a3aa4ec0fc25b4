//! A node's configuration and the errors the core returns to its driver.

use crate::bugs::Bugs;
use crate::message::NodeId;
use std::collections::BTreeSet;

/// Everything a node needs to start. Build with [`Config::new`] and adjust the fields.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// This node's id (not 0).
    pub id: NodeId,
    /// The cluster's initial voters. Every node that ever joins the cluster is started with
    /// the same initial set: later configurations come from the log (or a snapshot), so a
    /// node that is not in this set starts as a non-member and waits to be contacted.
    pub voters: BTreeSet<NodeId>,
    /// The cluster's initial learners.
    pub learners: BTreeSet<NodeId>,
    /// T: a follower starts an election after a random timeout in [T, 2T) ticks without
    /// hearing from a leader (§5.2). Also the check-quorum period.
    pub election_ticks: u32,
    /// The leader sends heartbeats every this many ticks (much less than T, §5.6).
    pub heartbeat_ticks: u32,
    /// At most this many unacknowledged AppendEntries per follower while streaming.
    pub max_inflight: usize,
    /// At most this many entries per AppendEntries.
    pub max_batch: usize,
    /// At most this many payload bytes per AppendEntries (etcd's `MaxSizePerMsg`), counted
    /// with [`crate::Entry::payload_len`]. A message always carries at least one entry, so a
    /// single entry larger than the budget still goes, alone: the budget bounds batching,
    /// never what may be proposed. Without it, a few entries near the driver's frame limit
    /// batch into a message no transport accepts, and the follower never catches up.
    pub max_append_bytes: usize,
    /// Run a pre-vote round before a real election (dissertation §9.6).
    pub pre_vote: bool,
    /// A leader steps down when it has not heard from a quorum for an election timeout, and
    /// followers that heard from a leader recently ignore RequestVote (dissertation §6.2, §4.2.3).
    pub check_quorum: bool,
    /// Seed of the node's own random generator (election timeouts).
    pub seed: u64,
    /// Classic mistakes to re-introduce (none by default).
    pub bugs: Bugs,
}

impl Config {
    /// The default [`Config::max_inflight`].
    pub const DEFAULT_MAX_INFLIGHT: usize = 64;
    /// The default [`Config::max_batch`].
    pub const DEFAULT_MAX_BATCH: usize = 256;

    /// A configuration with the defaults: T = 10 ticks, heartbeat every 2, 64 messages in
    /// flight of up to 256 entries and 256 KiB of payload each, pre-vote and check-quorum on,
    /// no bug, seed = id.
    pub fn new(id: NodeId, voters: impl IntoIterator<Item = NodeId>) -> Config {
        Config {
            id,
            voters: voters.into_iter().collect(),
            learners: BTreeSet::new(),
            election_ticks: 10,
            heartbeat_ticks: 2,
            max_inflight: Config::DEFAULT_MAX_INFLIGHT,
            max_batch: Config::DEFAULT_MAX_BATCH,
            max_append_bytes: 256 << 10,
            pre_vote: true,
            check_quorum: true,
            seed: id,
            bugs: Bugs::none(),
        }
    }

    /// Checks the values, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::ZeroId);
        }
        if self.voters.is_empty() {
            return Err(ConfigError::NoVoters);
        }
        if self.voters.contains(&0) || self.learners.contains(&0) {
            return Err(ConfigError::ZeroMember);
        }
        if let Some(id) = self.voters.intersection(&self.learners).next() {
            return Err(ConfigError::VoterAndLearner { id: *id });
        }
        if self.heartbeat_ticks == 0 || self.election_ticks <= self.heartbeat_ticks {
            return Err(ConfigError::Timing {
                election_ticks: self.election_ticks,
                heartbeat_ticks: self.heartbeat_ticks,
            });
        }
        if self.max_inflight == 0 {
            return Err(ConfigError::ZeroLimit {
                field: "max_inflight",
            });
        }
        if self.max_batch == 0 {
            return Err(ConfigError::ZeroLimit { field: "max_batch" });
        }
        if self.max_append_bytes == 0 {
            return Err(ConfigError::ZeroLimit {
                field: "max_append_bytes",
            });
        }
        Ok(())
    }
}

/// A configuration the core refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `id` is 0.
    #[error("config: id 0 is reserved")]
    ZeroId,
    /// `voters` is empty.
    #[error("config: the initial voter set is empty")]
    NoVoters,
    /// A member id is 0.
    #[error("config: member id 0 is reserved")]
    ZeroMember,
    /// A node is both voter and learner.
    #[error("config: node {id} is both a voter and a learner")]
    VoterAndLearner {
        /// The node.
        id: NodeId,
    },
    /// Heartbeats must be at least one tick apart and shorter than the election timeout.
    #[error(
        "config: need 0 < heartbeat_ticks ({heartbeat_ticks}) < election_ticks ({election_ticks})"
    )]
    Timing {
        /// As given.
        election_ticks: u32,
        /// As given.
        heartbeat_ticks: u32,
    },
    /// A limit is 0.
    #[error("config: {field} must be at least 1")]
    ZeroLimit {
        /// The field.
        field: &'static str,
    },
}

/// Why [`crate::Node::new`] refused to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The persisted entries do not follow each other (or the snapshot).
    #[error("persisted log: expected entry {expected}, found entry {found}")]
    Gap {
        /// The index that should come next.
        expected: u64,
        /// The index found.
        found: u64,
    },
    /// The persisted term is older than the persisted log's last term.
    #[error("persisted hard state: term {term} is older than the last log term {last_term}")]
    TermBehindLog {
        /// The persisted term.
        term: u64,
        /// The last entry's term.
        last_term: u64,
    },
}

/// Why a proposal was refused; nothing was appended, so it will never commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader appends; try `leader` if known.
    #[error("node is not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
}

/// Why a membership change was refused; nothing was appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfChangeError {
    /// Only the leader changes the membership.
    #[error("node is not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// The leader has not yet committed an entry of its term (Ongaro, raft-dev 2015): retry
    /// shortly.
    #[error("the leader has not yet committed an entry of term {term}; retry shortly")]
    NotCommittedInTerm {
        /// The leader's term.
        term: u64,
    },
    /// Another change (at `index`) is not committed yet: one change at a time.
    #[error("membership change at index {index} is still pending")]
    Pending {
        /// Index of the pending change.
        index: u64,
    },
    /// The change does not apply to the current configuration.
    #[error("invalid membership change: {reason}")]
    Invalid {
        /// Why.
        reason: String,
    },
}

/// Why a read request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Only the leader serves ReadIndex.
    #[error("node is not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// Context 0 is reserved, and each pending context must be unique.
    #[error("read context {ctx} is 0 or already pending")]
    BadContext {
        /// The context given.
        ctx: u64,
    },
}

/// Why a message was refused by [`crate::Node::step`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The message is addressed to another node.
    #[error("message for node {to} delivered to node {id}")]
    WrongRecipient {
        /// The addressee.
        to: NodeId,
        /// This node.
        id: NodeId,
    },
    /// The sender id is 0 or this node's own.
    #[error("message from invalid sender {from}")]
    BadSender {
        /// The sender.
        from: NodeId,
    },
}

/// Why [`crate::Node::compact`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// Only applied entries can be compacted.
    #[error("cannot compact to {index}: only applied up to {applied}")]
    NotApplied {
        /// Requested.
        index: u64,
        /// Applied.
        applied: u64,
    },
    /// The log no longer holds that index (only with a bug switch on).
    #[error("cannot compact to {index}: the log ends at {last}")]
    NotInLog {
        /// Requested.
        index: u64,
        /// The last index held.
        last: u64,
    },
    /// Already compacted that far.
    #[error("cannot compact to {index}: already compacted to {snapshot}")]
    AlreadyCompacted {
        /// Requested.
        index: u64,
        /// Current snapshot index.
        snapshot: u64,
    },
}
