//! Log replication: AppendEntries and heartbeats both ways, the commit rule, snapshots sent
//! to lagging followers, ReadIndex rounds, and the leader's tick.

use crate::bugs::Bug;
use crate::message::{ConfChange, Entry, EntryKind, Message, MessageBody, NodeId, ProposalId};
use crate::node::Node;
use crate::progress::ProgressState;
use crate::ready::Role;
use std::collections::BTreeSet;

impl Node {
    /// Leader tick: heartbeats every `heartbeat_ticks`, a check-quorum round every
    /// `election_ticks`.
    pub(crate) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.cfg.election_ticks {
            self.election_elapsed = 0;
            if self.cfg.check_quorum && !self.quorum_active() {
                // Cut off from a majority: step down so clients look elsewhere.
                let term = self.term;
                self.become_follower(term, None);
                return;
            }
            let me = self.cfg.id;
            for (id, p) in self.progress.iter_mut() {
                p.recent_active = *id == me;
            }
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
    }

    /// Whether a quorum was heard from since the last round.
    fn quorum_active(&self) -> bool {
        let me = self.cfg.id;
        let active: BTreeSet<NodeId> = self
            .progress
            .iter()
            .filter(|(id, p)| p.recent_active || **id == me)
            .map(|(id, _)| *id)
            .collect();
        self.log.membership().has_quorum(&active)
    }

    /// Appends one entry of the current term to the leader's own log.
    pub(crate) fn append_as_leader(&mut self, kind: EntryKind) -> ProposalId {
        let id = ProposalId {
            index: self.log.last_index() + 1,
            term: self.term,
        };
        let is_conf = matches!(kind, EntryKind::ConfChange(_));
        self.log.append(vec![Entry {
            index: id.index,
            term: id.term,
            kind,
        }]);
        if is_conf {
            // A configuration is used as soon as it is appended (§6).
            self.sync_progress();
        }
        let me = self.cfg.id;
        if let Some(p) = self.progress.get_mut(&me) {
            p.maybe_update(id.index);
        }
        // A single-voter cluster commits on its own.
        self.maybe_commit();
        id
    }

    /// Sends AppendEntries to every follower that is not paused.
    pub(crate) fn broadcast_append(&mut self, send_if_empty: bool) {
        let me = self.cfg.id;
        let ids: Vec<NodeId> = self
            .progress
            .keys()
            .copied()
            .filter(|&id| id != me)
            .collect();
        for id in ids {
            self.send_append(id, send_if_empty);
        }
    }

    /// Sends the next AppendEntries (or the snapshot) to `to`; false if nothing was sent.
    pub(crate) fn send_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
        let max_inflight = self.cfg.max_inflight;
        let Some(pr) = self.progress.get(&to) else {
            return false;
        };
        if pr.is_paused(max_inflight) {
            return false;
        }
        let next = pr.next;
        let prev_log_index = next - 1;
        let Some(prev_log_term) = self.log.term(prev_log_index) else {
            return self.send_snapshot(to);
        };
        let entries = self
            .log
            .entries_within(next, self.cfg.max_batch, self.cfg.max_append_bytes);
        let in_probe = pr.state == ProgressState::Probe;
        if entries.is_empty() && !send_if_empty && !in_probe {
            return false;
        }
        let last = entries.last().map_or(prev_log_index, |e| e.index);
        let commit = self.log.committed;
        if let Some(pr) = self.progress.get_mut(&to) {
            pr.sent(last, max_inflight);
        }
        self.send(
            to,
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                commit,
            },
        );
        true
    }

    /// The follower needs compacted entries: send the snapshot instead (§7).
    fn send_snapshot(&mut self, to: NodeId) -> bool {
        let Some(snapshot) = self.snapshot.clone() else {
            return false;
        };
        if let Some(pr) = self.progress.get_mut(&to) {
            pr.become_snapshot(snapshot.meta.index);
        }
        self.send(to, MessageBody::InstallSnapshot { snapshot });
        true
    }

    /// Heartbeats to every follower, carrying the newest pending read context.
    pub(crate) fn broadcast_heartbeat(&mut self) {
        let ctx = self.read_only.last_ctx();
        let me = self.cfg.id;
        let targets: Vec<(NodeId, u64)> = self
            .progress
            .iter()
            .filter(|(id, _)| **id != me)
            .map(|(id, p)| (*id, p.matched.min(self.log.committed)))
            .collect();
        for (to, commit) in targets {
            self.send(to, MessageBody::Heartbeat { commit, ctx });
        }
    }

    /// Starts a ReadIndex round at the current commit index (dissertation §6.4).
    pub(crate) fn start_read(&mut self, ctx: u64) {
        let index = self.log.committed;
        let me = self.cfg.id;
        self.read_only.add(ctx, index, me);
        // A single voter is its own quorum.
        let released = self.read_only.recv_ack(me, ctx, self.log.membership());
        if released.is_empty() {
            self.broadcast_heartbeat();
        }
        self.read_states.extend(released);
    }

    /// The Figure 8 rule (§5.4.2): commit the largest index a quorum has matched, but only
    /// by counting replicas of an entry of the current term. True if the commit advanced.
    pub(crate) fn maybe_commit(&mut self) -> bool {
        if self.role != Role::Leader {
            return false;
        }
        let progress = &self.progress;
        let quorum_index = self
            .log
            .membership()
            .committed_index(|id| progress.get(&id).map_or(0, |p| p.matched));
        if quorum_index <= self.log.committed || quorum_index == u64::MAX {
            return false;
        }
        let current_term = self.log.term(quorum_index) == Some(self.term);
        if !current_term && !self.cfg.bugs.contains(Bug::CommitOldTerm) {
            return false;
        }
        // BUG (commit-old-term) when `!current_term`: commits an earlier term's entry by
        // counting replicas; a later leader may still overwrite it (Figure 8).
        self.log.commit_to(quorum_index);
        self.after_leader_commit();
        true
    }

    /// What a leader does once its commit index moved: serve the reads that waited for its
    /// first commit, leave a joint configuration, step down if removed.
    fn after_leader_commit(&mut self) {
        if self.committed_in_current_term() {
            let waiting = std::mem::take(&mut self.read_only.waiting_for_commit);
            for ctx in waiting {
                self.start_read(ctx);
            }
        }
        let conf_index = self.log.conf_index();
        if conf_index > self.log.committed {
            return;
        }
        let membership = self.log.membership().clone();
        if membership.is_joint() && membership.auto_leave {
            self.append_as_leader(EntryKind::ConfChange(ConfChange::LeaveJoint));
            self.pending_broadcast = true;
        } else if !membership.is_voter(self.cfg.id) {
            // Removed, and C_new is committed: hand over (§6).
            let term = self.term;
            self.broadcast_append(true);
            self.become_follower(term, None);
        }
    }

    /// AppendEntries from the leader (§5.3).
    pub(crate) fn handle_append_entries(&mut self, m: Message) {
        self.follow(m.from);
        let MessageBody::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            commit,
        } = m.body
        else {
            return;
        };
        if prev_log_index < self.log.committed {
            // Old news: what we committed matches the leader's log (leader completeness).
            let index = self.log.committed;
            self.reply_append(m.from, true, index, (0, 0));
            return;
        }
        let truncate_matching = self.cfg.bugs.contains(Bug::TruncateMatching);
        let strict = self.cfg.bugs.is_empty();
        let had_conf = self.log.conf_index();
        match self.log.maybe_append(
            prev_log_index,
            prev_log_term,
            entries,
            truncate_matching,
            strict,
        ) {
            Some(last_new) => {
                self.log.commit_to(commit.min(last_new));
                self.after_log_change(had_conf);
                self.reply_append(m.from, true, last_new, (0, 0));
            }
            None => {
                let hint = self.log.conflict_hint(prev_log_index);
                self.reply_append(m.from, false, prev_log_index, hint);
            }
        }
    }

    fn reply_append(&mut self, to: NodeId, success: bool, index: u64, hint: (u64, u64)) {
        self.send(
            to,
            MessageBody::AppendEntriesResponse {
                success,
                index,
                conflict_index: hint.0,
                conflict_term: hint.1,
            },
        );
    }

    /// A message from the leader of our term: follow it and restart the election timer.
    fn follow(&mut self, leader: NodeId) {
        if self.role != Role::Follower || self.leader != Some(leader) {
            let term = self.term;
            self.become_follower(term, Some(leader));
        }
        self.election_elapsed = 0;
    }

    /// After entries were appended or truncated: membership may have changed.
    fn after_log_change(&mut self, had_conf: u64) {
        if self.log.conf_index() != had_conf {
            self.sync_progress();
        }
    }

    /// The answer to AppendEntries or InstallSnapshot.
    pub(crate) fn handle_append_response(&mut self, m: Message) {
        if self.role != Role::Leader {
            return;
        }
        let MessageBody::AppendEntriesResponse {
            success,
            index,
            conflict_index,
            conflict_term,
        } = m.body
        else {
            return;
        };
        let Some(pr) = self.progress.get_mut(&m.from) else {
            return;
        };
        pr.recent_active = true;
        if !success {
            // Fast backtracking: jump over the follower's whole conflicting term, or to the
            // end of its log, instead of one entry per round trip.
            let hint = if conflict_term == 0 {
                conflict_index
            } else {
                match self.log.last_index_of_term(conflict_term, index) {
                    Some(i) => i + 1,
                    None => conflict_index,
                }
            };
            let pr = self.progress.get_mut(&m.from).expect("checked above");
            if pr.maybe_decrease(index, hint) {
                self.send_append(m.from, true);
            }
            return;
        }
        pr.maybe_update(index);
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot { index: snap } if pr.matched >= snap => pr.become_replicate(),
            _ => {}
        }
        if self.maybe_commit() {
            self.broadcast_append(true);
        } else {
            while self.send_append(m.from, false) {}
        }
    }

    /// A heartbeat: learn the commit index and answer, echoing the read context.
    pub(crate) fn handle_heartbeat(&mut self, m: Message) {
        self.follow(m.from);
        let MessageBody::Heartbeat { commit, ctx } = m.body else {
            return;
        };
        self.log.commit_to(commit.min(self.log.last_index()));
        self.send(m.from, MessageBody::HeartbeatResponse { ctx });
    }

    /// A heartbeat answer: the follower is alive; resume probing; count read acks.
    pub(crate) fn handle_heartbeat_response(&mut self, m: Message) {
        if self.role != Role::Leader {
            return;
        }
        let MessageBody::HeartbeatResponse { ctx } = m.body else {
            return;
        };
        let last = self.log.last_index();
        let max_inflight = self.cfg.max_inflight;
        let Some(pr) = self.progress.get_mut(&m.from) else {
            return;
        };
        pr.recent_active = true;
        match pr.state {
            // The snapshot (or its answer) may have been lost: probe again.
            ProgressState::Snapshot { .. } => pr.become_probe(),
            ProgressState::Probe => pr.probe_sent = false,
            // Acknowledgements may have been lost: free a slot so replication cannot stall
            // (the follower rejects a gap and the leader falls back to probing).
            ProgressState::Replicate => {
                if pr.inflight.len() >= max_inflight {
                    pr.inflight.pop_front();
                }
            }
        }
        if pr.matched < last {
            self.send_append(m.from, true);
        }
        if ctx != 0 {
            let released = self.read_only.recv_ack(m.from, ctx, self.log.membership());
            self.read_states.extend(released);
        }
    }

    /// InstallSnapshot (§7): replace the log unless it already holds the snapshot's end.
    pub(crate) fn handle_install_snapshot(&mut self, m: Message) {
        self.follow(m.from);
        let MessageBody::InstallSnapshot { snapshot } = m.body else {
            return;
        };
        let (index, term) = (snapshot.meta.index, snapshot.meta.term);
        if index <= self.log.committed {
            let committed = self.log.committed;
            self.reply_append(m.from, true, committed, (0, 0));
            return;
        }
        if self.log.term(index) == Some(term) {
            // We hold the snapshot's last entry: everything up to it is committed.
            self.log.commit_to(index);
            self.reply_append(m.from, true, index, (0, 0));
            return;
        }
        self.log.restore(snapshot.meta.clone());
        let lost: Vec<u64> = self
            .pending_proposals
            .range(..=index)
            .map(|(i, _)| *i)
            .collect();
        for i in lost {
            let term = self.pending_proposals.remove(&i).expect("listed");
            self.unknown_proposals.push(ProposalId { index: i, term });
        }
        self.snapshot = Some(snapshot.clone());
        self.pending_snapshot = Some(snapshot);
        self.sync_progress();
        self.reply_append(m.from, true, index, (0, 0));
    }
}
