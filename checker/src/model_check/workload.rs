//! What the administrators of the modelled cluster do besides serving clients: change the
//! membership (remove a voter, add one, go through a joint configuration) and compact logs
//! into snapshots. Each is a timer of the node actor that may fire at any moment while it
//! applies (see `actor.rs`); the choices here are the few that keep the branching small.

use raft::{ConfChange, Node, NodeId, Role};
use std::collections::BTreeSet;

/// How the membership grows (a spare node, not an initial voter, joins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Grow {
    /// A single-server change: `AddVoter(spare)`.
    AddVoter,
    /// Joint consensus (§6): enter C_old,new where the spare replaces the highest-numbered
    /// other voter, and leave it automatically once committed.
    Joint,
}

/// The voter the removal workload removes next: the highest-numbered voter of the node's
/// latest configuration other than itself.
///
/// Why removals only, one fixed choice: two removals from three voters already leave
/// configurations whose quorums do not overlap ({1,2,3} then {1}), which is all the
/// `unsafe-membership` switch needs to show, and a fixed choice adds one step per leader
/// instead of one per voter to the branching.
pub(super) fn removable(node: &Node) -> Option<NodeId> {
    let me = node.status().id;
    node.log()
        .membership()
        .all_voters()
        .into_iter()
        .rev()
        .find(|&v| v != me)
}

/// The change the growth workload proposes next on a leader, if any: once the spare is a
/// voter (or the configuration is joint) there is nothing left to do.
pub(super) fn growth(node: &Node, grow: Grow, spare: NodeId) -> Option<ConfChange> {
    if node.role() != Role::Leader {
        return None;
    }
    let m = node.log().membership();
    if m.is_joint() || m.is_voter(spare) {
        return None;
    }
    match grow {
        Grow::AddVoter => Some(ConfChange::AddVoter(spare)),
        Grow::Joint => {
            let me = node.status().id;
            let out = m.voters.iter().rev().find(|&&v| v != me).copied();
            let mut voters: BTreeSet<NodeId> = m.voters.clone();
            if let Some(out) = out {
                voters.remove(&out);
            }
            voters.insert(spare);
            Some(ConfChange::EnterJoint {
                voters,
                learners: BTreeSet::new(),
                auto_leave: true,
            })
        }
    }
}

/// Whether the node has applied entries it could compact into a snapshot.
pub(super) fn can_compact(node: &Node) -> bool {
    node.log().applied > node.status().snapshot_index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_proposes_once_per_configuration() {
        let mut c = raft::Config::new(1, [1, 2, 3]);
        c.pre_vote = false;
        let mut n = Node::new(c, None).unwrap();
        assert_eq!(growth(&n, Grow::AddVoter, 4), None, "not a leader");
        n.campaign();
        let _ = n.step(raft::Message {
            from: 2,
            to: 1,
            term: 1,
            body: raft::MessageBody::RequestVoteResponse {
                pre_vote: false,
                granted: true,
            },
        });
        assert_eq!(n.role(), Role::Leader);
        assert_eq!(growth(&n, Grow::AddVoter, 4), Some(ConfChange::AddVoter(4)));
        let Some(ConfChange::EnterJoint { voters, .. }) = growth(&n, Grow::Joint, 4) else {
            panic!("a joint change")
        };
        assert_eq!(voters, BTreeSet::from([1, 2, 4]));
    }
}
