//! The Raft node: its state, the driver's API (`tick`, `step`, `propose`, `ready`, `advance`)
//! and the role transitions. Message handling lives in `election.rs` and `replication.rs`.

use crate::bugs::Bug;
use crate::config::{
    CompactError, ConfChangeError, Config, ProposeError, ReadError, StartError, StepError,
};
use crate::log::RaftLog;
use crate::membership::Membership;
use crate::message::{
    ConfChange, Entry, EntryKind, HardState, Message, MessageBody, NodeId, ProposalId, ReadState,
    Snapshot,
};
use crate::progress::Progress;
use crate::read_only::ReadOnly;
use crate::ready::{PersistedState, Ready, Role, Status};
use crate::rng::Rng;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

/// One Raft node: a deterministic state machine driven by its inputs alone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    pub(crate) cfg: Config,
    pub(crate) role: Role,
    pub(crate) term: u64,
    pub(crate) vote: Option<NodeId>,
    pub(crate) leader: Option<NodeId>,
    pub(crate) log: RaftLog,
    /// The latest snapshot, kept to send to lagging followers.
    pub(crate) snapshot: Option<Snapshot>,
    /// A snapshot received from the leader, not yet handed to the driver.
    pub(crate) pending_snapshot: Option<Snapshot>,
    /// The leader's view of each member (itself included).
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// Votes received in the current (pre-)election.
    pub(crate) votes: BTreeMap<NodeId, bool>,
    pub(crate) election_elapsed: u32,
    pub(crate) heartbeat_elapsed: u32,
    /// This election timeout, drawn in [T, 2T) (§5.2).
    pub(crate) randomized_timeout: u32,
    pub(crate) rng: Rng,
    pub(crate) read_only: ReadOnly,
    /// index → term of proposals made through this node and not yet resolved.
    pub(crate) pending_proposals: BTreeMap<u64, u64>,
    /// New entries wait for `ready()` to be sent, so proposals made in a burst travel in one
    /// AppendEntries (batching).
    pub(crate) pending_broadcast: bool,
    pub(crate) msgs: Vec<Message>,
    pub(crate) read_states: Vec<ReadState>,
    pub(crate) dropped_reads: Vec<u64>,
    pub(crate) dropped_proposals: Vec<ProposalId>,
    pub(crate) unknown_proposals: Vec<ProposalId>,
    /// The hard state last handed out (as handed out).
    pub(crate) persisted_hs: HardState,
}

impl Node {
    /// Starts a node: fresh when `persisted` is `None`, otherwise from what the driver read
    /// back from stable storage (the driver restores its state machine from the snapshot).
    pub fn new(cfg: Config, persisted: Option<PersistedState>) -> Result<Node, StartError> {
        cfg.validate()?;
        let mut membership = Membership::new(cfg.voters.iter().copied());
        membership.learners = cfg.learners.clone();
        let mut node = Node {
            role: Role::Follower,
            term: 0,
            vote: None,
            leader: None,
            log: RaftLog::new(membership),
            snapshot: None,
            pending_snapshot: None,
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_timeout: cfg.election_ticks,
            rng: Rng::new(cfg.seed),
            read_only: ReadOnly::default(),
            pending_proposals: BTreeMap::new(),
            pending_broadcast: false,
            msgs: Vec::new(),
            read_states: Vec::new(),
            dropped_reads: Vec::new(),
            dropped_proposals: Vec::new(),
            unknown_proposals: Vec::new(),
            persisted_hs: HardState::default(),
            cfg,
        };
        if let Some(p) = persisted {
            node.restore(p)?;
        }
        let term = node.term;
        node.become_follower(term, None);
        Ok(node)
    }

    fn restore(&mut self, p: PersistedState) -> Result<(), StartError> {
        if let Some(snap) = p.snapshot {
            self.log.restore(snap.meta.clone());
            self.snapshot = Some(snap);
        }
        let mut entries = p.entries;
        entries.retain(|e| e.index > self.log.last_index());
        if let Some(first) = entries.first() {
            if first.index != self.log.last_index() + 1 {
                return Err(StartError::Gap {
                    expected: self.log.last_index() + 1,
                    found: first.index,
                });
            }
        }
        for w in entries.windows(2) {
            if w[1].index != w[0].index + 1 {
                return Err(StartError::Gap {
                    expected: w[0].index + 1,
                    found: w[1].index,
                });
            }
        }
        self.log.append(entries);
        self.log.mark_stable();
        let hs = p.hard_state;
        // With the forget-vote bug the persisted term is 0 by construction; accept it.
        if hs.term < self.log.last_term() && !self.cfg.bugs.contains(Bug::ForgetVote) {
            return Err(StartError::TermBehindLog {
                term: hs.term,
                last_term: self.log.last_term(),
            });
        }
        self.term = hs.term;
        self.vote = hs.vote;
        // The persisted commit index is a hint: never beyond the log we have.
        self.log.commit_to(hs.commit.min(self.log.last_index()));
        self.persisted_hs = hs;
        Ok(())
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The leader this node knows of in its current term, if any.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Feeds the node's state into `h` without its clock: the configuration (constant per
    /// node), the elapsed ticks, the drawn election timeout, the generator drawing it, and
    /// each follower's `recent_active` flag.
    ///
    /// For model checkers that replace ticks by timer events firing at any moment: two
    /// nodes that differ only in these fields behave alike there (with check-quorum off), so
    /// hashing them apart multiplies the states. The destructuring is exhaustive on
    /// purpose: a new field does not compile until it is sorted into clock or state.
    pub fn hash_without_clock<H: Hasher>(&self, h: &mut H) {
        let Node {
            cfg: _,
            role,
            term,
            vote,
            leader,
            log,
            snapshot,
            pending_snapshot,
            progress,
            votes,
            election_elapsed: _,
            heartbeat_elapsed: _,
            randomized_timeout: _,
            rng: _,
            read_only,
            pending_proposals,
            pending_broadcast,
            msgs,
            read_states,
            dropped_reads,
            dropped_proposals,
            unknown_proposals,
            persisted_hs,
        } = self;
        (role, term, vote, leader, log, snapshot, pending_snapshot).hash(h);
        progress.len().hash(h);
        for (id, p) in progress {
            let Progress {
                matched,
                next,
                state,
                probe_sent,
                inflight,
                recent_active: _,
            } = p;
            (id, matched, next, state, probe_sent, inflight).hash(h);
        }
        (votes, read_only, pending_proposals, pending_broadcast, msgs).hash(h);
        (read_states, dropped_reads, dropped_proposals).hash(h);
        (unknown_proposals, persisted_hs).hash(h);
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// The configuration in force (the latest appended).
    pub fn membership(&self) -> &Membership {
        self.log.membership()
    }

    /// The log, read-only (for tests and invariant checks).
    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    /// A summary for `/status`.
    pub fn status(&self) -> Status {
        let m = self.log.membership();
        Status {
            id: self.cfg.id,
            role: self.role,
            term: self.term,
            vote: self.vote,
            leader: self.leader,
            commit: self.log.committed,
            applied: self.log.applied,
            last_index: self.log.last_index(),
            snapshot_index: self.log.snapshot_meta().index,
            voters: m.voters.clone(),
            outgoing: m.outgoing.clone(),
            learners: m
                .learners
                .iter()
                .filter(|id| !m.is_voter(**id))
                .copied()
                .collect(),
        }
    }

    /// One unit of logical time: followers and candidates count towards an election, the
    /// leader towards its next heartbeat and check-quorum round.
    pub fn tick(&mut self) {
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.tick_election();
        }
    }

    /// Starts an election now, as if the election timeout fired (pre-vote first if
    /// configured). Does nothing on a leader or a node that is not a voter.
    pub fn campaign(&mut self) {
        if self.role != Role::Leader && self.log.membership().is_voter(self.cfg.id) {
            self.start_election(self.cfg.pre_vote);
        }
    }

    /// Feeds a message from a peer.
    pub fn step(&mut self, m: Message) -> Result<(), StepError> {
        if m.to != self.cfg.id {
            return Err(StepError::WrongRecipient {
                to: m.to,
                id: self.cfg.id,
            });
        }
        if m.from == 0 || m.from == self.cfg.id {
            return Err(StepError::BadSender { from: m.from });
        }
        if !self.check_term(&m) {
            return Ok(());
        }
        match m.body {
            MessageBody::RequestVote { .. } => self.handle_request_vote(m),
            MessageBody::RequestVoteResponse { .. } => self.handle_vote_response(m),
            MessageBody::AppendEntries { .. } => self.handle_append_entries(m),
            MessageBody::AppendEntriesResponse { .. } => self.handle_append_response(m),
            MessageBody::Heartbeat { .. } => self.handle_heartbeat(m),
            MessageBody::HeartbeatResponse { .. } => self.handle_heartbeat_response(m),
            MessageBody::InstallSnapshot { .. } => self.handle_install_snapshot(m),
        }
        Ok(())
    }

    /// Proposes a command. On success the entry is appended at the returned position; it is
    /// committed iff a committed entry later shows the same index and term.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<ProposalId, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        Ok(self.append_proposal(EntryKind::Normal(data)))
    }

    /// Proposes a membership change (§6). Single-server changes and entering a joint
    /// configuration need the leader to have committed an entry of its term and no other
    /// change pending.
    pub fn propose_conf_change(
        &mut self,
        change: ConfChange,
    ) -> Result<ProposalId, ConfChangeError> {
        if self.role != Role::Leader {
            return Err(ConfChangeError::NotLeader {
                leader: self.leader,
            });
        }
        if self.cfg.bugs.contains(Bug::UnsafeMembership) {
            // BUG (unsafe-membership): skip both safety checks below.
        } else {
            if !self.committed_in_current_term() {
                return Err(ConfChangeError::NotCommittedInTerm { term: self.term });
            }
            if self.log.conf_index() > self.log.committed {
                return Err(ConfChangeError::Pending {
                    index: self.log.conf_index(),
                });
            }
        }
        self.log
            .membership()
            .apply(&change)
            .map_err(|reason| ConfChangeError::Invalid { reason })?;
        Ok(self.append_proposal(EntryKind::ConfChange(change)))
    }

    /// Asks for a linearizable read (ReadIndex, dissertation §6.4). Once confirmed, a
    /// [`ReadState`] with this `ctx` (unique, non-zero) appears in a `Ready`.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), ReadError> {
        if self.role != Role::Leader {
            return Err(ReadError::NotLeader {
                leader: self.leader,
            });
        }
        if ctx == 0 || self.read_only.contains(ctx) {
            return Err(ReadError::BadContext { ctx });
        }
        if self.cfg.bugs.contains(Bug::LocalRead) {
            // BUG (local-read): answer from the local commit index; a deposed leader that
            // does not know it yet serves stale data.
            self.read_states.push(ReadState {
                ctx,
                index: self.log.committed,
            });
            return Ok(());
        }
        let early = self.cfg.bugs.contains(Bug::EarlyRead);
        // BUG (early-read) when `early`: serve at a commit index that may be behind.
        if !self.committed_in_current_term() && !early {
            self.read_only.waiting_for_commit.push(ctx);
            return Ok(());
        }
        self.start_read(ctx);
        Ok(())
    }

    /// Records that the state machine's state at `index` (applied) is `data`, and drops the
    /// log up to it. Returns the snapshot the driver must persist before deleting the log
    /// prefix from its storage.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<Snapshot, CompactError> {
        if index > self.log.applied {
            return Err(CompactError::NotApplied {
                index,
                applied: self.log.applied,
            });
        }
        let current = self.log.snapshot_meta().index;
        if index <= current {
            return Err(CompactError::AlreadyCompacted {
                index,
                snapshot: current,
            });
        }
        if self.log.term(index).is_none() {
            // Only reachable with a bug switch that lets the log lose applied entries.
            return Err(CompactError::NotInLog {
                index,
                last: self.log.last_index(),
            });
        }
        let meta = self.log.compact(index);
        let snap = Snapshot { meta, data };
        self.snapshot = Some(snap.clone());
        Ok(snap)
    }

    /// Whether [`Node::ready`] has anything.
    pub fn has_ready(&self) -> bool {
        self.pending_broadcast
            || !self.msgs.is_empty()
            || self.hard_state_to_persist() != self.persisted_hs
            || self.pending_snapshot.is_some()
            || self.log.has_unstable()
            || self.log.has_committed()
            || self
                .read_states
                .iter()
                .any(|r| r.index <= self.log.applying)
            || !self.dropped_reads.is_empty()
            || !self.dropped_proposals.is_empty()
            || !self.unknown_proposals.is_empty()
    }

    /// Takes the work for the driver (see the crate docs for what to do with it).
    pub fn ready(&mut self) -> Ready {
        if self.pending_broadcast {
            self.pending_broadcast = false;
            self.broadcast_append(false);
        }
        let hs = self.hard_state_to_persist();
        let hard_state = (hs != self.persisted_hs).then(|| hs.clone());
        self.persisted_hs = hs;
        let snapshot = self.pending_snapshot.take();
        let (truncate_from, entries) = self.log.take_unstable();
        let committed_entries = self.log.take_committed();
        self.resolve_proposals(&committed_entries);
        let applying = self.log.applying;
        let (read_states, later) = std::mem::take(&mut self.read_states)
            .into_iter()
            .partition(|r| r.index <= applying);
        self.read_states = later;
        Ready {
            hard_state,
            snapshot,
            truncate_from,
            entries,
            messages: std::mem::take(&mut self.msgs),
            committed_entries,
            read_states,
            dropped_reads: std::mem::take(&mut self.dropped_reads),
            dropped_proposals: std::mem::take(&mut self.dropped_proposals),
            unknown_proposals: std::mem::take(&mut self.unknown_proposals),
        }
    }

    /// The driver has persisted, sent and applied everything in `ready`.
    pub fn advance(&mut self, ready: Ready) {
        let mut applied = self.log.applied;
        if let Some(s) = &ready.snapshot {
            applied = applied.max(s.meta.index);
        }
        if let Some(e) = ready.committed_entries.last() {
            applied = applied.max(e.index);
        }
        self.log.applied = applied.min(self.log.applying);
    }

    /// The hard state as handed to the driver.
    fn hard_state_to_persist(&self) -> HardState {
        if self.cfg.bugs.contains(Bug::ForgetVote) {
            // BUG (forget-vote): term and vote never reach stable storage, so a restarted
            // node starts in term 0 with no vote and can vote twice in one term.
            return HardState {
                term: 0,
                vote: None,
                commit: self.log.committed,
            };
        }
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    /// Matches committed entries against this node's proposals.
    fn resolve_proposals(&mut self, committed: &[Entry]) {
        for e in committed {
            if let Some(term) = self.pending_proposals.remove(&e.index) {
                if term != e.term {
                    self.dropped_proposals.push(ProposalId {
                        index: e.index,
                        term,
                    });
                }
            }
        }
    }

    /// Appends a proposal of the leader's and remembers it.
    fn append_proposal(&mut self, kind: EntryKind) -> ProposalId {
        let id = self.append_as_leader(kind);
        self.pending_proposals.insert(id.index, id.term);
        self.pending_broadcast = true;
        id
    }

    /// Whether the entry at the commit index is of the current term: then every entry of
    /// earlier terms the cluster ever committed is committed here too (§5.4.2, §8).
    pub(crate) fn committed_in_current_term(&self) -> bool {
        self.log.term(self.log.committed) == Some(self.term)
    }

    /// Queues a message to `to`.
    pub(crate) fn send(&mut self, to: NodeId, body: MessageBody) {
        self.msgs.push(Message {
            from: self.cfg.id,
            to,
            term: self.term,
            body,
        });
    }

    /// Draws a new election timeout in [T, 2T).
    pub(crate) fn reset_timeout(&mut self) {
        let t = self.cfg.election_ticks;
        self.election_elapsed = 0;
        self.randomized_timeout = t + self.rng.below(u64::from(t)) as u32;
    }

    /// Becomes a follower in `term` (a new term forgets the vote, §5.1).
    pub(crate) fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        if term != self.term {
            self.term = term;
            self.vote = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.progress.clear();
        self.pending_broadcast = false;
        let dropped = self.read_only.drain_all();
        self.dropped_reads.extend(dropped);
        self.reset_timeout();
    }

    /// Becomes the leader of the current term: fresh progress for every member, and a no-op
    /// entry of the new term so earlier entries get committed (§8).
    pub(crate) fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        self.votes.clear();
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        self.progress.clear();
        self.sync_progress();
        self.append_as_leader(EntryKind::NoOp);
        self.broadcast_append(true);
    }

    /// Keeps one progress per member (leader only), after the configuration changed.
    pub(crate) fn sync_progress(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let members = self.log.membership().members();
        let me = self.cfg.id;
        self.progress
            .retain(|id, _| members.contains(id) || *id == me);
        let next = self.log.last_index() + 1;
        for id in members.into_iter().chain([me]) {
            self.progress.entry(id).or_insert_with(|| {
                let mut p = Progress::new(next);
                p.recent_active = true;
                p
            });
        }
        let last = self.log.last_index();
        if let Some(p) = self.progress.get_mut(&me) {
            p.maybe_update(last);
        }
    }
}
