//! The data the core exchanges with its driver and its peers: entries, hard state, snapshots
//! and the messages of the protocol.

pub use crate::membership::{ConfChange, Membership, NodeId};
use std::fmt;

/// What must be on stable storage before a node answers anyone (§5.1, Figure 2): the current
/// term and the vote in it. The commit index is carried too, as etcd does, so a restarted node
/// can re-apply committed entries at once; it is only a hint (§5.3: commitIndex is volatile).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: u64,
    /// The candidate this node voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// The highest index known committed when this state was written.
    pub commit: u64,
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A client command for the state machine.
    Normal(Vec<u8>),
    /// The empty entry a new leader appends to commit earlier entries (§8; etcd does this).
    NoOp,
    /// A membership change, used by every node as soon as it is appended (§6).
    ConfChange(ConfChange),
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Position in the log, from 1.
    pub index: u64,
    /// The term of the leader that created it.
    pub term: u64,
    /// The payload.
    pub kind: EntryKind,
}

impl Entry {
    /// The bytes of its payload, which the [`crate::Config::max_append_bytes`] budget counts:
    /// a command's length; nothing for a no-op; a configuration change, a few bytes per member,
    /// counts as 0 (it is never what makes a message large).
    pub fn payload_len(&self) -> usize {
        match &self.kind {
            EntryKind::Normal(data) => data.len(),
            EntryKind::NoOp | EntryKind::ConfChange(_) => 0,
        }
    }
}

/// Where a snapshot ends and the configuration in force there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SnapshotMeta {
    /// The last index the snapshot covers.
    pub index: u64,
    /// The term of the entry at `index`.
    pub term: u64,
    /// The membership in force at `index`.
    pub membership: Membership,
}

/// A state-machine snapshot: the driver's bytes plus the log position they stand for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Snapshot {
    /// Position and configuration.
    pub meta: SnapshotMeta,
    /// The state machine's serialized state, opaque to the core.
    pub data: Vec<u8>,
}

/// One protocol message between two nodes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Recipient.
    pub to: NodeId,
    /// The sender's term (for a granted pre-vote response: the term the pre-vote was for).
    pub term: u64,
    /// What it says.
    pub body: MessageBody,
}

/// The message types; [`crate`]'s docs have a paragraph on each.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MessageBody {
    /// RequestVote (§5.2), or a pre-vote probe when `pre_vote` (§9.6 of the dissertation).
    RequestVote {
        /// A pre-vote: nobody changes term or records a vote for it.
        pre_vote: bool,
        /// The candidate's last log index.
        last_log_index: u64,
        /// The candidate's last log term.
        last_log_term: u64,
    },
    /// The answer to a [`MessageBody::RequestVote`].
    RequestVoteResponse {
        /// Answers a pre-vote.
        pre_vote: bool,
        /// Whether the vote is granted.
        granted: bool,
    },
    /// AppendEntries (§5.3): entries following (`prev_log_index`, `prev_log_term`).
    AppendEntries {
        /// Index of the entry just before `entries`.
        prev_log_index: u64,
        /// Term of that entry.
        prev_log_term: u64,
        /// The entries to append (possibly none).
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit: u64,
    },
    /// The answer to [`MessageBody::AppendEntries`] or [`MessageBody::InstallSnapshot`].
    AppendEntriesResponse {
        /// The entries were accepted.
        success: bool,
        /// On success, the follower's log matches the leader's up to here. On rejection,
        /// the `prev_log_index` that did not match.
        index: u64,
        /// On rejection, where the leader should look next: the first index of
        /// `conflict_term` in the follower's log, or its last index + 1 when the log is
        /// too short (then `conflict_term` is 0).
        conflict_index: u64,
        /// On rejection, the term of the follower's entry at `index` (0 if it has none).
        conflict_term: u64,
    },
    /// A heartbeat: the paper's empty AppendEntries (§5.2), carrying the commit index the
    /// follower can safely use and a ReadIndex context (0: none).
    Heartbeat {
        /// min(leader commit, follower's match index).
        commit: u64,
        /// The newest pending ReadIndex request, echoed back.
        ctx: u64,
    },
    /// The answer to a heartbeat.
    HeartbeatResponse {
        /// The echoed ReadIndex context.
        ctx: u64,
    },
    /// InstallSnapshot (§7): the leader no longer has the entries the follower needs.
    InstallSnapshot {
        /// The whole snapshot (sent in one message; see the crate docs).
        snapshot: Snapshot,
    },
}

impl MessageBody {
    /// A short name for traces.
    pub fn name(&self) -> &'static str {
        match self {
            MessageBody::RequestVote { pre_vote: true, .. } => "PreVote",
            MessageBody::RequestVote { .. } => "RequestVote",
            MessageBody::RequestVoteResponse { pre_vote: true, .. } => "PreVoteResponse",
            MessageBody::RequestVoteResponse { .. } => "RequestVoteResponse",
            MessageBody::AppendEntries { .. } => "AppendEntries",
            MessageBody::AppendEntriesResponse { .. } => "AppendEntriesResponse",
            MessageBody::Heartbeat { .. } => "Heartbeat",
            MessageBody::HeartbeatResponse { .. } => "HeartbeatResponse",
            MessageBody::InstallSnapshot { .. } => "InstallSnapshot",
        }
    }
}

/// Identifies a proposal: the index and term its entry was appended at. The proposal is
/// committed iff a committed entry has this index and term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProposalId {
    /// Log index of the entry.
    pub index: u64,
    /// Term of the entry.
    pub term: u64,
}

/// A confirmed linearizable read: the state machine may answer request `ctx` once it has
/// applied up to `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReadState {
    /// The context the driver passed to [`crate::Node::read_index`].
    pub ctx: u64,
    /// The commit index the read must observe.
    pub index: u64,
}

/// `index@term payload`, e.g. `5@2 "x"`, `4@2 noop`, `6@2 add-voter 4`.
impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{} ", self.index, self.term)?;
        match &self.kind {
            EntryKind::Normal(data) => write!(f, "{:?}", String::from_utf8_lossy(data)),
            EntryKind::NoOp => write!(f, "noop"),
            EntryKind::ConfChange(cc) => write!(f, "{cc}"),
        }
    }
}

/// One line in the style of a protocol trace, e.g.
/// `1->2 AppendEntries term=2 prev=3@1 commit=3 [4@2 noop]`.
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}->{} {} term={}",
            self.from,
            self.to,
            self.body.name(),
            self.term
        )?;
        match &self.body {
            MessageBody::RequestVote {
                last_log_index,
                last_log_term,
                ..
            } => write!(f, " last={last_log_index}@{last_log_term}"),
            MessageBody::RequestVoteResponse { granted, .. } => {
                f.write_str(if *granted { " granted" } else { " rejected" })
            }
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                commit,
            } => {
                write!(f, " prev={prev_log_index}@{prev_log_term} commit={commit}")?;
                if !entries.is_empty() {
                    let es: Vec<String> = entries.iter().map(Entry::to_string).collect();
                    write!(f, " [{}]", es.join(", "))?;
                }
                Ok(())
            }
            MessageBody::AppendEntriesResponse {
                success: true,
                index,
                ..
            } => write!(f, " ok index={index}"),
            MessageBody::AppendEntriesResponse {
                index,
                conflict_index,
                conflict_term,
                ..
            } => write!(
                f,
                " reject index={index} hint={conflict_index}@{conflict_term}"
            ),
            MessageBody::Heartbeat { commit, ctx } => {
                write!(f, " commit={commit}")?;
                if *ctx != 0 {
                    write!(f, " ctx={ctx}")?;
                }
                Ok(())
            }
            MessageBody::HeartbeatResponse { ctx } => {
                if *ctx != 0 {
                    write!(f, " ctx={ctx}")?;
                }
                Ok(())
            }
            MessageBody::InstallSnapshot { snapshot } => write!(
                f,
                " snapshot={}@{} {}",
                snapshot.meta.index, snapshot.meta.term, snapshot.meta.membership
            ),
        }
    }
}
