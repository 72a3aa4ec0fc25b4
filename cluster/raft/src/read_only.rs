//! ReadIndex bookkeeping: reads waiting for a heartbeat round to confirm leadership.

use crate::membership::Membership;
use crate::message::{NodeId, ReadState};
use std::collections::{BTreeSet, VecDeque};

/// One read waiting for its heartbeat round.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PendingRead {
    ctx: u64,
    /// The commit index when the read arrived: the read must observe at least this.
    index: u64,
    /// Nodes that answered a heartbeat carrying this (or a later) context.
    acks: BTreeSet<NodeId>,
}

/// Reads in arrival order, plus reads waiting for the leader's first commit in its term.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReadOnly {
    pending: VecDeque<PendingRead>,
    /// Reads that arrived before the leader committed an entry of its term (§8: until then
    /// its commit index may be behind the cluster's).
    pub waiting_for_commit: Vec<u64>,
}

impl ReadOnly {
    /// Whether `ctx` is already waiting.
    pub fn contains(&self, ctx: u64) -> bool {
        self.waiting_for_commit.contains(&ctx) || self.pending.iter().any(|r| r.ctx == ctx)
    }

    /// Registers a read at `index`, acknowledged by the leader itself.
    pub fn add(&mut self, ctx: u64, index: u64, leader: NodeId) {
        self.pending.push_back(PendingRead {
            ctx,
            index,
            acks: BTreeSet::from([leader]),
        });
    }

    /// The newest waiting context, to piggyback on heartbeats (0: none).
    pub fn last_ctx(&self) -> u64 {
        self.pending.back().map_or(0, |r| r.ctx)
    }

    /// `from` answered a heartbeat carrying `ctx`. When a quorum has answered for it, that
    /// read and every older one are confirmed: the round started after they arrived.
    pub fn recv_ack(&mut self, from: NodeId, ctx: u64, membership: &Membership) -> Vec<ReadState> {
        let Some(pos) = self.pending.iter().position(|r| r.ctx == ctx) else {
            return Vec::new();
        };
        let read = &mut self.pending[pos];
        read.acks.insert(from);
        if !membership.has_quorum(&read.acks) {
            return Vec::new();
        }
        self.pending
            .drain(..=pos)
            .map(|r| ReadState {
                ctx: r.ctx,
                index: r.index,
            })
            .collect()
    }

    /// The same reads with node ids renamed (the test kit's `Relabel`).
    #[cfg(feature = "testkit")]
    pub(crate) fn relabelled(&self, map: &dyn Fn(NodeId) -> NodeId) -> ReadOnly {
        let pending = (self.pending.iter())
            .map(|r| PendingRead {
                acks: r.acks.iter().map(|&i| map(i)).collect(),
                ..r.clone()
            })
            .collect();
        ReadOnly {
            pending,
            waiting_for_commit: self.waiting_for_commit.clone(),
        }
    }

    /// Every read still waiting (leadership is lost: they fail).
    pub fn drain_all(&mut self) -> Vec<u64> {
        let mut out: Vec<u64> = self.waiting_for_commit.drain(..).collect();
        out.extend(self.pending.drain(..).map(|r| r.ctx));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quorum_ack_releases_the_read_and_older_ones() {
        let m = Membership::new([1, 2, 3]);
        let mut ro = ReadOnly::default();
        ro.add(10, 5, 1);
        ro.add(11, 6, 1);
        assert_eq!(ro.last_ctx(), 11);
        assert!(ro.recv_ack(2, 99, &m).is_empty());
        let released = ro.recv_ack(3, 11, &m);
        assert_eq!(
            released,
            vec![
                ReadState { ctx: 10, index: 5 },
                ReadState { ctx: 11, index: 6 }
            ]
        );
        assert!(!ro.contains(10));
    }
}
