//! Cluster membership: voters, joint configurations (C_old,new), learners and quorums.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A node's identifier; `0` is never a valid id.
pub type NodeId = u64;

/// A membership change, carried by an [`crate::EntryKind::ConfChange`] entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ConfChange {
    /// Add a voter (or promote a learner): a single-server change.
    AddVoter(NodeId),
    /// Add a learner (or demote a voter): a single-server change.
    AddLearner(NodeId),
    /// Remove a voter or learner: a single-server change.
    Remove(NodeId),
    /// Enter the joint configuration C_old,new with these incoming voters and learners.
    /// With `auto_leave` the leader proposes [`ConfChange::LeaveJoint`] itself once the joint
    /// configuration is committed.
    EnterJoint {
        /// The voters of C_new.
        voters: BTreeSet<NodeId>,
        /// The learners of C_new.
        learners: BTreeSet<NodeId>,
        /// Leave the joint configuration automatically once it is committed.
        auto_leave: bool,
    },
    /// Leave the joint configuration: C_new alone decides from now on.
    LeaveJoint,
}

/// The configuration in force: the voters, the outgoing voters while in a joint configuration
/// (§6: decisions then need a majority of both), and the learners (non-voting members that
/// receive the log).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Membership {
    /// The voters (of C_new while joint).
    pub voters: BTreeSet<NodeId>,
    /// The voters of C_old while joint; empty otherwise.
    pub outgoing: BTreeSet<NodeId>,
    /// Non-voting members.
    pub learners: BTreeSet<NodeId>,
    /// While joint: leave automatically once the joint configuration is committed.
    pub auto_leave: bool,
}

/// How an election stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// Granted by a majority (of both halves when joint).
    Won,
    /// Can no longer be won.
    Lost,
    /// Still open.
    Pending,
}

impl Membership {
    /// A plain (non-joint) configuration of these voters.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership {
            voters: voters.into_iter().collect(),
            ..Membership::default()
        }
    }

    /// Whether this is a joint configuration.
    pub fn is_joint(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Whether `id` votes (in either half).
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.outgoing.contains(&id)
    }

    /// Whether `id` is a learner and not a voter.
    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id) && !self.is_voter(id)
    }

    /// Every member: voters of both halves and learners.
    pub fn members(&self) -> BTreeSet<NodeId> {
        let mut all = self.voters.clone();
        all.extend(&self.outgoing);
        all.extend(&self.learners);
        all
    }

    /// Every voter of both halves.
    pub fn all_voters(&self) -> BTreeSet<NodeId> {
        self.voters.union(&self.outgoing).copied().collect()
    }

    /// The configuration after `change`, or why it cannot be applied.
    pub fn apply(&self, change: &ConfChange) -> Result<Membership, String> {
        let mut next = self.clone();
        let single = !matches!(change, ConfChange::LeaveJoint);
        if single && self.is_joint() {
            return Err("the configuration is joint: leave it first".into());
        }
        match change {
            ConfChange::AddVoter(id) => {
                if self.voters.contains(id) {
                    return Err(format!("node {id} is already a voter"));
                }
                next.voters.insert(*id);
                next.learners.remove(id);
            }
            ConfChange::AddLearner(id) => {
                if self.learners.contains(id) {
                    return Err(format!("node {id} is already a learner"));
                }
                next.voters.remove(id);
                next.learners.insert(*id);
            }
            ConfChange::Remove(id) => {
                if !self.voters.contains(id) && !self.learners.contains(id) {
                    return Err(format!("node {id} is not a member"));
                }
                next.voters.remove(id);
                next.learners.remove(id);
            }
            ConfChange::EnterJoint {
                voters,
                learners,
                auto_leave,
            } => {
                if let Some(id) = voters.intersection(learners).next() {
                    return Err(format!("node {id} cannot be both voter and learner"));
                }
                next.outgoing = self.voters.clone();
                next.voters = voters.clone();
                next.learners = learners.clone();
                next.auto_leave = *auto_leave;
            }
            ConfChange::LeaveJoint => {
                if !self.is_joint() {
                    return Err("the configuration is not joint".into());
                }
                next.outgoing.clear();
                next.auto_leave = false;
            }
        }
        if next.voters.is_empty() {
            return Err("the change would leave no voter".into());
        }
        if next.voters.contains(&0) || next.learners.contains(&0) {
            return Err("node id 0 is reserved".into());
        }
        Ok(next)
    }

    /// The largest index that a majority of each half has matched (§5.3, §6), given each
    /// node's match index. `u64::MAX` for an empty half, so it never limits the other.
    pub fn committed_index(&self, matched: impl Fn(NodeId) -> u64) -> u64 {
        let half = |ids: &BTreeSet<NodeId>| -> u64 {
            if ids.is_empty() {
                return u64::MAX;
            }
            let mut m: Vec<u64> = ids.iter().map(|&id| matched(id)).collect();
            m.sort_unstable_by(|a, b| b.cmp(a));
            m[ids.len() / 2]
        };
        half(&self.voters).min(half(&self.outgoing))
    }

    /// Tallies votes (`true`: granted) in both halves.
    pub fn vote_result(&self, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
        let half = |ids: &BTreeSet<NodeId>| -> VoteResult {
            if ids.is_empty() {
                return VoteResult::Won;
            }
            let granted = ids.iter().filter(|id| votes.get(id) == Some(&true)).count();
            let rejected = ids
                .iter()
                .filter(|id| votes.get(id) == Some(&false))
                .count();
            let need = ids.len() / 2 + 1;
            if granted >= need {
                VoteResult::Won
            } else if ids.len() - rejected < need {
                VoteResult::Lost
            } else {
                VoteResult::Pending
            }
        };
        match (half(&self.voters), half(&self.outgoing)) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }

    /// Whether `ids` contains a majority of each half.
    pub fn has_quorum(&self, ids: &BTreeSet<NodeId>) -> bool {
        let votes = ids.iter().map(|&id| (id, true)).collect();
        self.vote_result(&votes) == VoteResult::Won
    }
}

fn ids(set: &BTreeSet<NodeId>) -> String {
    let v: Vec<String> = set.iter().map(u64::to_string).collect();
    format!("[{}]", v.join(","))
}

impl fmt::Display for ConfChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfChange::AddVoter(id) => write!(f, "add-voter {id}"),
            ConfChange::AddLearner(id) => write!(f, "add-learner {id}"),
            ConfChange::Remove(id) => write!(f, "remove {id}"),
            ConfChange::EnterJoint {
                voters,
                learners,
                auto_leave,
            } => {
                write!(f, "enter-joint voters={}", ids(voters))?;
                if !learners.is_empty() {
                    write!(f, " learners={}", ids(learners))?;
                }
                if *auto_leave {
                    write!(f, " auto-leave")?;
                }
                Ok(())
            }
            ConfChange::LeaveJoint => write!(f, "leave-joint"),
        }
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "voters={}", ids(&self.voters))?;
        if self.is_joint() {
            write!(f, "&&{}", ids(&self.outgoing))?;
        }
        if !self.learners.is_empty() {
            write!(f, " learners={}", ids(&self.learners))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn joint_quorum_needs_both_majorities() {
        let m = Membership::new([1, 2, 3])
            .apply(&ConfChange::EnterJoint {
                voters: set(&[3, 4, 5]),
                learners: set(&[]),
                auto_leave: false,
            })
            .unwrap();
        assert!(m.is_joint());
        // {1,2} is a majority of C_old only, {4,5} of C_new only (§6).
        assert!(!m.has_quorum(&set(&[1, 2])));
        assert!(!m.has_quorum(&set(&[4, 5])));
        assert!(m.has_quorum(&set(&[1, 3, 4])));
        let matched = |id: u64| [0, 10, 9, 5, 7, 1][id as usize];
        // C_new {3,4,5}: 7,5,1 -> 5; C_old {1,2,3}: 10,9,5 -> 9.
        assert_eq!(m.committed_index(matched), 5);
        let left = m.apply(&ConfChange::LeaveJoint).unwrap();
        assert_eq!(left.all_voters(), set(&[3, 4, 5]));
        assert!(left.apply(&ConfChange::LeaveJoint).is_err());
    }

    #[test]
    fn single_changes_are_validated() {
        let m = Membership::new([1]);
        assert!(m.apply(&ConfChange::Remove(1)).is_err());
        assert!(m.apply(&ConfChange::AddVoter(1)).is_err());
        let m = m.apply(&ConfChange::AddLearner(2)).unwrap();
        assert!(m.is_learner(2) && !m.is_voter(2));
        let m = m.apply(&ConfChange::AddVoter(2)).unwrap();
        assert!(m.is_voter(2) && !m.is_learner(2));
        let mut votes = BTreeMap::new();
        votes.insert(1, true);
        assert_eq!(m.vote_result(&votes), VoteResult::Pending);
        votes.insert(2, false);
        assert_eq!(m.vote_result(&votes), VoteResult::Lost);
    }
}
