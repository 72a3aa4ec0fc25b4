//! Renaming nodes: the same state with every node id passed through a permutation, for the
//! symmetry reduction of a model checker.
//!
//! Nodes started alike (same initial voters, same seed) behave alike up to their names: a
//! state in which n1 and n2 swap every role, vote and message is as good as the original
//! for finding a violation, so a checker keeps one state of each such class. That needs the
//! core's state renamed exactly, field by field, which only this crate can do.
//!
//! What is not renamed: the random generator (each node's draws stay its own: the checker
//! must give every node the same seed, or a renamed node would draw another node's
//! timeouts), and anything that holds no id (terms, indices, payloads).

use crate::log::RaftLog;
use crate::membership::{ConfChange, Membership, NodeId};
use crate::message::{Entry, EntryKind, HardState, Message, MessageBody, Snapshot, SnapshotMeta};
use crate::node::Node;
use crate::ready::PersistedState;
use crate::testkit::Disk;
use std::collections::{BTreeMap, BTreeSet};

/// A value whose node ids can be renamed. `map` must be a permutation of the ids in use.
pub trait Relabel {
    /// The value with every node id `i` replaced by `map(i)`.
    fn relabel(&self, map: &dyn Fn(NodeId) -> NodeId) -> Self;
}

fn set(ids: &BTreeSet<NodeId>, map: &dyn Fn(NodeId) -> NodeId) -> BTreeSet<NodeId> {
    ids.iter().map(|&i| map(i)).collect()
}

fn keys<V: Clone>(m: &BTreeMap<NodeId, V>, map: &dyn Fn(NodeId) -> NodeId) -> BTreeMap<NodeId, V> {
    m.iter().map(|(&i, v)| (map(i), v.clone())).collect()
}

impl<T: Relabel> Relabel for Option<T> {
    fn relabel(&self, map: &dyn Fn(NodeId) -> NodeId) -> Self {
        self.as_ref().map(|t| t.relabel(map))
    }
}

impl<T: Relabel> Relabel for Vec<T> {
    fn relabel(&self, map: &dyn Fn(NodeId) -> NodeId) -> Self {
        self.iter().map(|t| t.relabel(map)).collect()
    }
}

impl Relabel for Membership {
    fn relabel(&self, map: &dyn Fn(NodeId) -> NodeId) -> Self {
        Membership {
            voters: set(&self.voters, map),
            outgoing: set(&self.outgoing, map),
            learners: set(&self.learners, map),
            auto_leave: self.auto_leave,
        }
    }
}

impl Relabel for ConfChange {
    fn relabel(&self, map: &dyn Fn(NodeId) -> NodeId) -> Self {
        match self {
            ConfChange::AddVoter(i) => ConfChange::AddVoter(map(*i)),
            ConfChange::AddLearner(i) => ConfChange::AddLearner(map(*i)),
            ConfChange::Remove(i) => ConfChange::Remove(map(*i)),
            ConfChange::EnterJoint {
                voters,
                learners,
                auto_leave,
            } => ConfChange::EnterJoint {
                voters: set(voters, map),
                learners: set(learners, map),
                auto_leave: *auto_leave,
            },
            ConfChange::LeaveJoint => ConfChange::LeaveJoint,
        }
    }
}

impl Relabel for Entry {
    fn relabel(&self, map: &dyn Fn(NodeId) -> NodeId) -> Self {
        let kind = match &self.kind {
            EntryKind::ConfChange(cc) => EntryKind::ConfChange(cc.relabel(map)),
            other => other.clone(),
        };
        Entry {
            index: self.index,
            term: self.term,
            kind,
        }
    }
}

impl Relabel for HardState {
    fn relabel(&self, map: &dyn Fn(NodeId) -> NodeId) -> Self {
        HardState {
            vote: self.vote.map(map),
            ..self.clone()
        }
    }
}

impl Relabel for SnapshotMeta {
    fn relabel(&self, map: &dyn Fn(NodeId) -> NodeId) -> Self {
        SnapshotMeta {
            index: self.index,
            term: self.term,
            membership: self.membership.relabel(map),
        }
    }
}

impl Relabel for Snapshot {
    fn relabel(&self, map: &dyn Fn(NodeId) -> NodeId) -> Self {
        Snapshot {
            meta: self.meta.relabel(map),
            data: self.data.clone(),
        }
    }
}

impl Relabel for PersistedState {
    fn relabel(&self, map: &dyn Fn(NodeId) -> NodeId) -> Self {
        PersistedState {
            hard_state: self.hard_state.relabel(map),
            snapshot: self.snapshot.relabel(map),
            entries: self.entries.relabel(map),
        }
    }
}

impl Relabel for Message {
    fn relabel(&self, map: &dyn Fn(NodeId) -> NodeId) -> Self {
        let body = match &self.body {
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                commit,
            } => MessageBody::AppendEntries {
                prev_log_index: *prev_log_index,
                prev_log_term: *prev_log_term,
                entries: entries.relabel(map),
                commit: *commit,
            },
            MessageBody::InstallSnapshot { snapshot } => MessageBody::InstallSnapshot {
                snapshot: snapshot.relabel(map),
            },
            other => other.clone(),
        };
        Message {
            from: map(self.from),
            to: map(self.to),
            term: self.term,
            body,
        }
    }
}

impl Relabel for RaftLog {
    fn relabel(&self, map: &dyn Fn(NodeId) -> NodeId) -> Self {
        self.relabelled(map)
    }
}

impl Relabel for Disk {
    fn relabel(&self, map: &dyn Fn(NodeId) -> NodeId) -> Self {
        self.relabelled(map)
    }
}

impl Relabel for Node {
    fn relabel(&self, map: &dyn Fn(NodeId) -> NodeId) -> Self {
        // Exhaustive on purpose, as `hash_without_clock`: a new field does not compile until
        // someone decides whether it holds ids.
        let Node {
            cfg,
            role,
            term,
            vote,
            leader,
            log,
            snapshot,
            pending_snapshot,
            progress,
            votes,
            election_elapsed,
            heartbeat_elapsed,
            randomized_timeout,
            rng,
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
        let mut cfg = cfg.clone();
        cfg.id = map(cfg.id);
        cfg.voters = set(&cfg.voters, map);
        cfg.learners = set(&cfg.learners, map);
        Node {
            cfg,
            role: *role,
            term: *term,
            vote: vote.map(map),
            leader: leader.map(map),
            log: log.relabel(map),
            snapshot: snapshot.relabel(map),
            pending_snapshot: pending_snapshot.relabel(map),
            progress: keys(progress, map),
            votes: keys(votes, map),
            election_elapsed: *election_elapsed,
            heartbeat_elapsed: *heartbeat_elapsed,
            randomized_timeout: *randomized_timeout,
            rng: rng.clone(),
            read_only: read_only.relabelled(map),
            pending_proposals: pending_proposals.clone(),
            pending_broadcast: *pending_broadcast,
            msgs: msgs.relabel(map),
            read_states: read_states.clone(),
            dropped_reads: dropped_reads.clone(),
            dropped_proposals: dropped_proposals.clone(),
            unknown_proposals: unknown_proposals.clone(),
            persisted_hs: persisted_hs.relabel(map),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Role};

    fn swap12(i: NodeId) -> NodeId {
        match i {
            1 => 2,
            2 => 1,
            other => other,
        }
    }

    /// Drives three nodes until n1 leads with an entry replicated to n2; returns them.
    fn cluster_led_by(first: NodeId) -> Vec<Node> {
        let mut nodes: Vec<Node> = (1..=3)
            .map(|i| {
                let mut c = Config::new(i, [1, 2, 3]);
                c.seed = 7;
                Node::new(c, None).unwrap()
            })
            .collect();
        nodes[(first - 1) as usize].campaign();
        for _ in 0..10 {
            let mut out = Vec::new();
            for n in nodes.iter_mut() {
                if n.has_ready() {
                    let rd = n.ready();
                    out.extend(rd.messages.clone());
                    n.advance(rd);
                }
            }
            for m in out {
                let _ = nodes[(m.to - 1) as usize].step(m);
            }
        }
        nodes
    }

    /// Renaming n1 and n2 in a run led by n1 gives exactly the run led by n2, with the two
    /// nodes' states swapped: the core has no preference among ids.
    #[test]
    fn a_renamed_run_is_the_run_of_the_renamed_nodes() {
        let by1 = cluster_led_by(1);
        let by2 = cluster_led_by(2);
        assert_eq!(by1[0].role(), Role::Leader);
        assert!(by1[0].log().last_index() >= 1);
        assert_eq!(by1[0].relabel(&swap12), by2[1]);
        assert_eq!(by1[1].relabel(&swap12), by2[0]);
        assert_eq!(by1[2].relabel(&swap12), by2[2]);
        // Renaming twice by a swap is the identity.
        assert_eq!(by1[0].relabel(&swap12).relabel(&swap12), by1[0]);
    }

    #[test]
    fn messages_and_configurations_are_renamed() {
        let m = Message {
            from: 1,
            to: 3,
            term: 2,
            body: MessageBody::AppendEntries {
                prev_log_index: 0,
                prev_log_term: 0,
                entries: vec![Entry {
                    index: 1,
                    term: 2,
                    kind: EntryKind::ConfChange(ConfChange::Remove(2)),
                }],
                commit: 0,
            },
        };
        let r = m.relabel(&swap12);
        assert_eq!((r.from, r.to), (2, 3));
        let MessageBody::AppendEntries { entries, .. } = &r.body else {
            panic!("same body")
        };
        assert_eq!(
            entries[0].kind,
            EntryKind::ConfChange(ConfChange::Remove(1))
        );
        let joint = Membership {
            voters: [1, 3].into(),
            outgoing: [2].into(),
            ..Membership::default()
        };
        assert_eq!(joint.relabel(&swap12).outgoing, [1].into());
    }
}
