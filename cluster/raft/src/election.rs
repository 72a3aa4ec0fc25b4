//! Elections: timeouts, terms as a logical clock, pre-vote, RequestVote and its answers.

use crate::bugs::Bug;
use crate::membership::VoteResult;
use crate::message::{Message, MessageBody};
use crate::node::Node;
use crate::ready::Role;

impl Node {
    /// Follower and candidate tick: start an election when the timeout fires (§5.2).
    pub(crate) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.election_elapsed < self.randomized_timeout {
            return;
        }
        self.election_elapsed = 0;
        // Learners and non-members never campaign.
        if self.log.membership().is_voter(self.cfg.id) {
            self.start_election(self.cfg.pre_vote);
        } else {
            self.reset_timeout();
        }
    }

    /// Starts a pre-vote round (no term change) or a real election (new term, own vote).
    pub(crate) fn start_election(&mut self, pre_vote: bool) {
        let term = if pre_vote {
            self.role = Role::PreCandidate;
            self.leader = None;
            self.reset_timeout();
            self.term + 1
        } else {
            let next = self.term + 1;
            self.become_follower(next, None);
            self.role = Role::Candidate;
            self.vote = Some(self.cfg.id);
            self.term
        };
        self.votes.clear();
        self.votes.insert(self.cfg.id, true);
        if self.tally(pre_vote) {
            return;
        }
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        let me = self.cfg.id;
        for to in self.log.membership().all_voters() {
            if to == me {
                continue;
            }
            self.msgs.push(Message {
                from: me,
                to,
                term,
                body: MessageBody::RequestVote {
                    pre_vote,
                    last_log_index,
                    last_log_term,
                },
            });
        }
    }

    /// Counts votes; acts on a decided election. True when decided.
    fn tally(&mut self, pre_vote: bool) -> bool {
        match self.log.membership().vote_result(&self.votes) {
            VoteResult::Won if pre_vote => {
                self.start_election(false);
                true
            }
            VoteResult::Won => {
                self.become_leader();
                true
            }
            VoteResult::Lost => {
                let term = self.term;
                self.become_follower(term, None);
                true
            }
            VoteResult::Pending => false,
        }
    }

    /// Applies the term rules (§5.1) before a message is handled; false when the message is
    /// to be dropped.
    pub(crate) fn check_term(&mut self, m: &Message) -> bool {
        if m.term > self.term {
            match m.body {
                MessageBody::RequestVote { pre_vote, .. } => {
                    // A node that heard from a live leader within the minimum election
                    // timeout ignores vote requests (dissertation §4.2.3): a node coming back
                    // from a partition cannot depose a healthy leader.
                    let in_lease = self.cfg.check_quorum
                        && self.leader.is_some()
                        && self.election_elapsed < self.cfg.election_ticks;
                    if in_lease {
                        return false;
                    }
                    if !pre_vote {
                        self.become_follower(m.term, None);
                    }
                }
                // A granted pre-vote carries the term the pre-vote was for, not a newer term
                // anyone is in.
                MessageBody::RequestVoteResponse {
                    pre_vote: true,
                    granted: true,
                } => {}
                MessageBody::AppendEntries { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. } => self.become_follower(m.term, Some(m.from)),
                _ => self.become_follower(m.term, None),
            }
            return true;
        }
        if m.term < self.term {
            match m.body {
                // A stale leader learns our term from the answer and steps down. Needed
                // with check-quorum and pre-vote: we may have moved on without it knowing.
                MessageBody::AppendEntries { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. } => {
                    self.send(
                        m.from,
                        MessageBody::AppendEntriesResponse {
                            success: false,
                            index: 0,
                            conflict_index: 0,
                            conflict_term: 0,
                        },
                    );
                }
                // Answer a stale pre-vote so its sender learns our term.
                MessageBody::RequestVote { pre_vote: true, .. } => {
                    self.send(
                        m.from,
                        MessageBody::RequestVoteResponse {
                            pre_vote: true,
                            granted: false,
                        },
                    );
                }
                _ => {}
            }
            return false;
        }
        true
    }

    /// RequestVote (§5.2, §5.4.1): grant if we have not voted otherwise in this term (for a
    /// pre-vote: if the term would be newer) and the candidate's log is at least as up to date.
    pub(crate) fn handle_request_vote(&mut self, m: Message) {
        let MessageBody::RequestVote {
            pre_vote,
            last_log_index,
            last_log_term,
        } = m.body
        else {
            return;
        };
        let can_vote = self.vote == Some(m.from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && m.term > self.term);
        let log_ok = if self.cfg.bugs.contains(Bug::NoLogCheck) {
            // BUG (no-log-check): skip the election restriction; a candidate missing
            // committed entries can win and overwrite them.
            true
        } else {
            self.log.is_up_to_date(last_log_index, last_log_term)
        };
        let granted = can_vote && log_ok;
        if granted && !pre_vote {
            self.vote = Some(m.from);
            self.election_elapsed = 0;
        }
        let term = if granted && pre_vote {
            m.term
        } else {
            self.term
        };
        self.msgs.push(Message {
            from: self.cfg.id,
            to: m.from,
            term,
            body: MessageBody::RequestVoteResponse { pre_vote, granted },
        });
    }

    /// A vote (or pre-vote) answer, counted if we are still asking.
    pub(crate) fn handle_vote_response(&mut self, m: Message) {
        let MessageBody::RequestVoteResponse { pre_vote, granted } = m.body else {
            return;
        };
        let asking = match self.role {
            Role::PreCandidate => pre_vote,
            Role::Candidate => !pre_vote,
            _ => false,
        };
        if !asking {
            return;
        }
        self.votes.insert(m.from, granted);
        self.tally(pre_vote);
    }
}
