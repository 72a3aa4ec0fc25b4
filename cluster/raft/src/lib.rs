//! A deterministic, sans-IO Raft state machine.
//!
//! The crate holds the whole protocol of the Raft paper (Ongaro & Ousterhout, 2014, §5–§7)
//! plus what production implementations add (pre-vote, check-quorum, ReadIndex, joint
//! consensus, learners, fast backtracking, pipelining), and nothing else: no threads, no
//! clock, no network, no disk, no global randomness. A [`Node`] changes only when its driver
//! calls it, so the same inputs give the same outputs; the node process (`cluster/node`) and
//! the model checker drive the same code.
//!
//! # Inputs and outputs
//!
//! Inputs: [`Node::tick`] (one unit of logical time), [`Node::step`] (a message from a peer),
//! [`Node::propose`], [`Node::propose_conf_change`], [`Node::read_index`] and
//! [`Node::compact`]. Output: a [`Ready`] taken with [`Node::ready`] and acknowledged with
//! [`Node::advance`].
//!
//! # The driver contract
//!
//! A driver runs one loop, owning the node alone (one task, no locks):
//!
//! 1. Feed inputs: call `tick` at a fixed interval (the node process uses 50 ms), `step` for
//!    every message received, `propose`/`read_index`/`propose_conf_change` for clients. Each
//!    returns at once; none does I/O.
//! 2. When [`Node::has_ready`] is true, take `let rd = node.ready()`.
//! 3. **Persist first**, in this order, and make it durable (fsync) before step 4:
//!    a. `rd.snapshot`, if any: it replaces the whole persisted log;
//!    b. `rd.truncate_from`, if any: delete persisted entries from that index on;
//!    c. append `rd.entries`;
//!    d. `rd.hard_state`, if any (term, vote, commit).
//!    Raft's safety rests on this: a vote or an acknowledgement sent before the state it
//!    reports is durable can be forgotten in a crash (§5.1, Figure 2 "Persistent state";
//!    the `forget-vote` bug switch shows the consequence).
//! 4. **Then send** `rd.messages`, in any order, over any unreliable transport: Raft
//!    tolerates loss, duplication and reordering. Messages to unknown or unreachable peers
//!    may be dropped.
//! 5. **Then apply**: if `rd.snapshot` is set, restore the state machine from its data; then
//!    apply `rd.committed_entries` in order (`Normal` data to the state machine; `NoOp` and
//!    `ConfChange` entries need nothing — the core has already used the configuration; the
//!    node updates its address book). An entry whose (index, term) equals a
//!    [`ProposalId`] returned by `propose` means that proposal committed.
//! 6. Answer reads: for each of `rd.read_states`, the read with that `ctx` may now be served
//!    from the state machine (which has applied at least up to its index). Fail the reads in
//!    `rd.dropped_reads` and the proposals in `rd.dropped_proposals` (definitely not
//!    committed); the proposals in `rd.unknown_proposals` have an unknown outcome.
//! 7. Call `node.advance(rd)`. The node now counts the entries as applied.
//! 8. Optionally, once the applied state is large, call `node.compact(applied, data)` with
//!    the state machine serialized at `applied`; persist the returned snapshot, then delete
//!    the persisted entries up to its index.
//!
//! A complete driver for a one-node cluster, with a `Vec` as the disk:
//!
//! ```
//! use raft::{Config, EntryKind, Node, PersistedState};
//!
//! let mut node = Node::new(Config::new(1, [1]), None).unwrap();
//! let mut disk = PersistedState::default();
//! let mut state = Vec::new();
//! node.campaign(); // a single voter wins at once
//! let id = node.propose(b"x".to_vec()).unwrap();
//! while node.has_ready() {
//!     let rd = node.ready();
//!     if let Some(from) = rd.truncate_from {
//!         disk.entries.retain(|e| e.index < from);
//!     }
//!     disk.entries.extend(rd.entries.iter().cloned());       // 3. persist ...
//!     if let Some(hs) = &rd.hard_state {
//!         disk.hard_state = hs.clone();
//!     }
//!     assert!(rd.messages.is_empty());                        // 4. ... then send ...
//!     for e in &rd.committed_entries {                        // 5. ... then apply
//!         if let EntryKind::Normal(data) = &e.kind {
//!             state.push((e.index, e.term, data.clone()));
//!         }
//!     }
//!     node.advance(rd);                                        // 7.
//! }
//! assert_eq!(state, vec![(id.index, id.term, b"x".to_vec())]);
//! // A restart from the disk comes back in the same term with the same log.
//! let again = Node::new(Config::new(1, [1]), Some(disk)).unwrap();
//! assert_eq!((again.term(), again.status().last_index), (1, 2));
//! ```
//!
//! On restart, read back the last hard state, snapshot and entries into a
//! [`PersistedState`], restore the state machine from the snapshot, and call
//! [`Node::new`] with it. Committed entries after the snapshot come out again in the first
//! `Ready` (the commit index is a hint: applied state is not persisted by the core).
//!
//! Every node that ever joins a cluster is started with the same [`Config::voters`] (the
//! initial configuration). Later configurations travel in the log or in snapshots; a node
//! that is not a voter never starts an election.
//!
//! # Messages
//!
//! Every [`Message`] carries `from`, `to` and the sender's `term`. A node seeing a higher
//! term adopts it and becomes a follower; a message with a lower term is ignored (or
//! answered with the higher term so its stale sender steps down) — §5.1.
//!
//! - **RequestVote** (`pre_vote: false`, §5.2): a candidate in a new term asks for a vote,
//!   giving its last log index and term. A voter grants at most one vote per term, and only
//!   to a candidate whose log is at least as up to date as its own (§5.4.1: compare last
//!   terms, then last indexes). With check-quorum, a voter that heard from a leader within
//!   the last election timeout ignores it.
//! - **RequestVote** (`pre_vote: true`, dissertation §9.6): the same question for the *next*
//!   term, asked without changing anyone's term or vote. Only a node that could win runs a
//!   real election, so a node returning from a partition does not depose a working leader.
//! - **RequestVoteResponse**: the answer; `granted` counts towards a majority of every half
//!   of the configuration.
//! - **AppendEntries** (§5.3): the leader's entries after (`prev_log_index`,
//!   `prev_log_term`) and its commit index. The follower accepts only if its log has that
//!   entry, skips the entries it already holds, truncates from the first conflicting entry
//!   only, and appends the rest. Entries go out in batches of up to `max_batch` entries and
//!   `max_append_bytes` of payload (at least one entry), pipelined up to `max_inflight`
//!   messages per follower.
//! - **AppendEntriesResponse**: on success, the index up to which the follower now matches;
//!   on rejection, the rejected `prev_log_index` plus a hint (conflicting term and its first
//!   index, or the follower's log end) so the leader skips a whole term per round trip.
//!   Also answers InstallSnapshot, and stale leaders (with the responder's newer term).
//! - **Heartbeat** (§5.2): the paper's empty AppendEntries, sent every `heartbeat_ticks`,
//!   carrying `min(commit, follower's match)` and the newest ReadIndex context.
//! - **HeartbeatResponse**: echoes the context. A quorum of echoes confirms the leader was
//!   still the leader when a read arrived (ReadIndex, dissertation §6.4).
//! - **InstallSnapshot** (§7): the leader's latest snapshot, sent when the entries a
//!   follower needs are compacted away. Sent whole in one message (snapshots here are small
//!   key-value maps); the follower answers with an AppendEntriesResponse at the snapshot's
//!   index.
//!
//! # Bug switches
//!
//! [`Config::bugs`] re-introduces classic mistakes one by one ([`Bug`]) so the testers can
//! prove they catch each: `commit-old-term`, `forget-vote`, `no-log-check`, `local-read`,
//! `early-read`, `unsafe-membership`, `truncate-matching`, and for the drivers `no-fsync`.
//! Each is a single branch marked `BUG` in the source.
#![deny(missing_docs)]

pub mod bugs;
pub mod codec;
mod config;
mod election;
pub mod log;
pub mod membership;
pub mod message;
mod node;
pub mod progress;
mod read_only;
mod ready;
mod replication;
pub mod rng;
#[cfg(feature = "testkit")]
pub mod sim;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use bugs::{Bug, Bugs, UnknownBug};
pub use codec::{decode_messages, encode_messages, DecodeError};
pub use config::{
    CompactError, ConfChangeError, Config, ConfigError, ProposeError, ReadError, StartError,
    StepError,
};
pub use membership::Membership;
pub use message::{
    ConfChange, Entry, EntryKind, HardState, Message, MessageBody, NodeId, ProposalId, ReadState,
    Snapshot, SnapshotMeta,
};
pub use node::Node;
pub use ready::{PersistedState, Ready, Role, Status};
