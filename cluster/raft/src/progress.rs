//! The leader's view of one follower: nextIndex, matchIndex and the replication state.

use std::collections::VecDeque;

/// How the leader is sending to a follower (etcd's three states).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProgressState {
    /// Where the follower's log matches is unknown: send one AppendEntries at a time and wait
    /// for its answer (or a heartbeat response) before the next, backing up on rejections.
    Probe,
    /// The follower matches: stream entries optimistically (pipelining), at most
    /// `max_inflight` messages unacknowledged.
    Replicate,
    /// A snapshot ending at `index` is on its way; send nothing else until it is acknowledged.
    Snapshot {
        /// The snapshot's last index.
        index: u64,
    },
}

/// nextIndex/matchIndex (§5.3) plus flow control for one follower.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Progress {
    /// The highest index known to match the leader's log.
    pub matched: u64,
    /// The next index to send.
    pub next: u64,
    /// The replication state.
    pub state: ProgressState,
    /// In `Probe`: an AppendEntries is out, wait for its answer or the next heartbeat reply.
    pub probe_sent: bool,
    /// In `Replicate`: last index of each unacknowledged AppendEntries, oldest first.
    pub inflight: VecDeque<u64>,
    /// Heard from since the last check-quorum round.
    pub recent_active: bool,
}

impl Progress {
    /// A fresh progress for a new leader (§5.3: nextIndex starts after the leader's last
    /// entry).
    pub fn new(next: u64) -> Progress {
        Progress {
            matched: 0,
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            inflight: VecDeque::new(),
            recent_active: false,
        }
    }

    /// Back to probing, from just after the match (or after a snapshot just sent).
    pub fn become_probe(&mut self) {
        let after_snapshot = match self.state {
            ProgressState::Snapshot { index } => index + 1,
            _ => 0,
        };
        self.state = ProgressState::Probe;
        self.next = (self.matched + 1).max(after_snapshot);
        self.probe_sent = false;
        self.inflight.clear();
    }

    /// Start streaming after the match.
    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next = self.matched + 1;
        self.probe_sent = false;
        self.inflight.clear();
    }

    /// A snapshot ending at `index` has been sent.
    pub fn become_snapshot(&mut self, index: u64) {
        self.state = ProgressState::Snapshot { index };
        self.probe_sent = false;
        self.inflight.clear();
    }

    /// The follower acknowledged up to `index`; false if that is old news.
    pub fn maybe_update(&mut self, index: u64) -> bool {
        let updated = index > self.matched;
        if updated {
            self.matched = index;
            self.probe_sent = false;
        }
        self.next = self.next.max(index + 1);
        while self.inflight.front().is_some_and(|&last| last <= index) {
            self.inflight.pop_front();
        }
        updated
    }

    /// Entries up to `last` were just sent.
    pub fn sent(&mut self, last: u64, max_inflight: usize) {
        match self.state {
            ProgressState::Replicate => {
                self.next = last + 1;
                if self.inflight.len() < max_inflight {
                    self.inflight.push_back(last);
                }
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot { .. } => {}
        }
    }

    /// A rejection of the AppendEntries whose prev index was `rejected`; `hint` is where the
    /// leader computed the follower's log may match next. False if the rejection is stale.
    pub fn maybe_decrease(&mut self, rejected: u64, hint: u64) -> bool {
        if self.state == ProgressState::Replicate {
            // Stale: it is about something that matched since.
            if rejected <= self.matched {
                return false;
            }
            self.become_probe();
            self.next = hint.clamp(self.matched + 1, self.next);
            return true;
        }
        // In Probe only the answer to the last probe counts.
        if self.next == 0 || rejected != self.next - 1 {
            return false;
        }
        self.next = hint.clamp(self.matched + 1, self.next.max(self.matched + 1));
        self.probe_sent = false;
        true
    }

    /// Whether the leader must hold back new AppendEntries to this follower.
    pub fn is_paused(&self, max_inflight: usize) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflight.len() >= max_inflight,
            ProgressState::Snapshot { .. } => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicate_pauses_at_the_inflight_limit_and_resumes_on_ack() {
        let mut p = Progress::new(1);
        p.maybe_update(0);
        p.become_replicate();
        p.sent(3, 2);
        p.sent(5, 2);
        assert!(p.is_paused(2));
        assert_eq!(p.next, 6);
        assert!(p.maybe_update(3));
        assert!(!p.is_paused(2));
        assert_eq!(p.inflight, VecDeque::from([5]));
        // A stale rejection of an index already matched changes nothing.
        assert!(!p.maybe_decrease(2, 1));
        // A real one drops to probe from the hint, never below the match.
        assert!(p.maybe_decrease(5, 1));
        assert_eq!((p.state, p.next), (ProgressState::Probe, 4));
    }
}
