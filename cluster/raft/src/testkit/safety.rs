//! Raft's safety properties (Figure 3 of the paper), as checks over what a driver observes.
//!
//! Each check takes plain facts (logs, terms, which nodes led which term, what was applied)
//! and returns the broken property as a [`Safety`] value. The simulation feeds them what it
//! observes as it runs; the model check feeds them the history variables it keeps in each
//! state. Neither decides on its own what "log matching" means.

use crate::log::RaftLog;
use crate::message::NodeId;
use std::fmt::Debug;

/// A broken safety property.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Safety {
    /// Election safety: two leaders in one term.
    #[error("election safety: nodes {first} and {second} both leaders in term {term}")]
    TwoLeaders {
        /// The term.
        term: u64,
        /// The first leader.
        first: NodeId,
        /// The second.
        second: NodeId,
    },
    /// Leader append-only: a leader overwrote or deleted an entry of its own log.
    #[error("leader append-only: node {node}, leader of term {term}, changed its entry at index {index}")]
    LeaderRewrote {
        /// The leader.
        node: NodeId,
        /// Its term.
        term: u64,
        /// The first index that changed.
        index: u64,
    },
    /// Log matching: same index and term, different entries (or prefixes).
    #[error("log matching: nodes {a} and {b} agree on the term at {agree} but differ at {index}")]
    LogMatching {
        /// A node.
        a: NodeId,
        /// Another.
        b: NodeId,
        /// The index where the terms agree.
        agree: u64,
        /// An index at or before it where the entries differ.
        index: u64,
    },
    /// Leader completeness: a leader lacks a committed entry.
    #[error("leader completeness: leader {node} of term {term} lacks committed entry {index}")]
    LeaderIncomplete {
        /// The leader.
        node: NodeId,
        /// Its term.
        term: u64,
        /// The entry it lacks.
        index: u64,
    },
    /// State machine safety: two different entries applied at one index.
    #[error("state machine safety: node {node} applied {got} at index {index}, {want} was applied there before")]
    StateMachine {
        /// The node.
        node: NodeId,
        /// The index.
        index: u64,
        /// What it applied.
        got: String,
        /// What was applied there before (by it or another node).
        want: String,
    },
    /// A node's commit index points past its log: committed entries were lost.
    #[error("node {node} has commit index {commit} beyond its last index {last}")]
    CommitBeyondLog {
        /// The node.
        node: NodeId,
        /// Its commit index.
        commit: u64,
        /// Its last index.
        last: u64,
    },
}

/// Election safety: `leaders` are the nodes seen leading `term`; at most one may.
pub fn election_safety(term: u64, leaders: impl IntoIterator<Item = NodeId>) -> Result<(), Safety> {
    let mut leaders = leaders.into_iter();
    let Some(first) = leaders.next() else {
        return Ok(());
    };
    match leaders.find(|&id| id != first) {
        Some(second) => Err(Safety::TwoLeaders {
            term,
            first,
            second,
        }),
        None => Ok(()),
    }
}

/// Leader append-only: `old` and `now` are the terms of a leader's entries from `first`
/// on, before and after a step in which it stayed leader of `term`.
pub fn append_only(
    node: NodeId,
    term: u64,
    first: u64,
    old: &[u64],
    now: &[u64],
) -> Result<(), Safety> {
    match (0..old.len()).find(|&i| now.get(i) != Some(&old[i])) {
        Some(i) => Err(Safety::LeaderRewrote {
            node,
            term,
            index: first + i as u64,
        }),
        None => Ok(()),
    }
}

/// Log matching between two logs: if they agree on the term at an index, they hold the same
/// entries up to it (of what both still hold: entries a snapshot covers are gone).
pub fn log_matching(a: NodeId, la: &RaftLog, b: NodeId, lb: &RaftLog) -> Result<(), Safety> {
    let lo = la.first_index().max(lb.first_index());
    let hi = la.last_index().min(lb.last_index());
    let Some(agree) = (lo.max(1)..=hi).rev().find(|&i| la.term(i) == lb.term(i)) else {
        return Ok(());
    };
    match (lo..=agree).find(|&i| la.entry(i) != lb.entry(i)) {
        Some(index) => Err(Safety::LogMatching { a, b, agree, index }),
        None => Ok(()),
    }
}

/// Leader completeness: the log of `node`, leader of `term`, holds every entry of
/// `committed` (index, term) that it has not compacted into its snapshot. The caller passes
/// the entries that were committed before `term` began.
pub fn leader_completeness(
    node: NodeId,
    term: u64,
    log: &RaftLog,
    committed: impl IntoIterator<Item = (u64, u64)>,
) -> Result<(), Safety> {
    let after = log.snapshot_meta().index;
    let missing = committed
        .into_iter()
        .find(|&(index, t)| index > after && log.term(index) != Some(t));
    match missing {
        Some((index, _)) => Err(Safety::LeaderIncomplete { node, term, index }),
        None => Ok(()),
    }
}

/// State machine safety: `node` applied `got` at `index`, where `want` was applied before.
/// What an "entry" is (its term, or its term and contents) is the caller's to say.
pub fn applied_same<T: PartialEq + Debug>(
    node: NodeId,
    index: u64,
    got: &T,
    want: &T,
) -> Result<(), Safety> {
    if got == want {
        return Ok(());
    }
    Err(Safety::StateMachine {
        node,
        index,
        got: format!("{got:?}"),
        want: format!("{want:?}"),
    })
}

/// A node's commit index is within its log.
pub fn commit_within_log(node: NodeId, commit: u64, last: u64) -> Result<(), Safety> {
    if commit > last {
        return Err(Safety::CommitBeyondLog { node, commit, last });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::Membership;
    use crate::message::{Entry, EntryKind};

    fn log(terms: &[u64]) -> RaftLog {
        let mut l = RaftLog::new(Membership::new([1, 2, 3]));
        let entries: Vec<Entry> = terms
            .iter()
            .enumerate()
            .map(|(i, &term)| Entry {
                index: i as u64 + 1,
                term,
                kind: EntryKind::Normal(vec![i as u8, term as u8]),
            })
            .collect();
        l.append(entries);
        l
    }

    #[test]
    fn one_leader_per_term() {
        assert!(election_safety(3, [1, 1]).is_ok());
        assert_eq!(
            election_safety(3, [1, 2]),
            Err(Safety::TwoLeaders {
                term: 3,
                first: 1,
                second: 2
            })
        );
    }

    #[test]
    fn log_matching_finds_the_first_difference_below_an_agreement() {
        assert!(log_matching(1, &log(&[1, 1, 2]), 2, &log(&[1, 1])).is_ok());
        // Same terms at 1..=2 but built separately with the same data: equal entries.
        assert!(log_matching(1, &log(&[1, 2]), 2, &log(&[1, 2, 2])).is_ok());
        let mut odd = RaftLog::new(Membership::new([1, 2, 3]));
        odd.append(vec![
            Entry {
                index: 1,
                term: 1,
                kind: EntryKind::NoOp,
            },
            Entry {
                index: 2,
                term: 2,
                kind: EntryKind::Normal(vec![1, 2]),
            },
        ]);
        assert_eq!(
            log_matching(1, &log(&[1, 2]), 2, &odd),
            Err(Safety::LogMatching {
                a: 1,
                b: 2,
                agree: 2,
                index: 1
            })
        );
    }

    #[test]
    fn a_leader_must_hold_every_committed_entry() {
        let l = log(&[1, 2]);
        assert!(leader_completeness(1, 3, &l, [(1, 1), (2, 2)]).is_ok());
        assert_eq!(
            leader_completeness(1, 3, &l, [(2, 1)]),
            Err(Safety::LeaderIncomplete {
                node: 1,
                term: 3,
                index: 2
            })
        );
    }

    #[test]
    fn append_only_and_applied_and_commit() {
        assert!(append_only(1, 2, 1, &[1, 2], &[1, 2, 2]).is_ok());
        assert!(append_only(1, 2, 1, &[1, 2], &[1]).is_err());
        assert!(applied_same(1, 4, &(2, "x"), &(2, "x")).is_ok());
        assert!(applied_same(1, 4, &3u64, &2u64).is_err());
        assert!(commit_within_log(1, 2, 2).is_ok());
        assert!(commit_within_log(1, 3, 2).is_err());
    }
}
