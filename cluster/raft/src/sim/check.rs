//! The simulator's invariant checks: Figure 3's properties (from the test kit) as the run
//! goes, durable acknowledged writes and linearizable reads.

use super::SimNode;
use crate::message::{Entry, EntryKind, NodeId};
use crate::node::Node;
use crate::ready::Role;
use crate::testkit::{self, Safety};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A broken safety property, with the seed and step that found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The run's seed.
    pub seed: u64,
    /// The step of the faulty phase (or `steps` for the final phase).
    pub step: u32,
    /// What broke.
    pub kind: ViolationKind,
}

impl Violation {
    pub(crate) fn new(kind: ViolationKind) -> Violation {
        Violation {
            seed: 0,
            step: 0,
            kind,
        }
    }
    pub(crate) fn safety(broken: Safety) -> Violation {
        Violation::new(ViolationKind::Safety(broken))
    }
    pub(crate) fn at(mut self, seed: u64, step: u32) -> Violation {
        self.seed = seed;
        self.step = step;
        self
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seed {} step {}: {}", self.seed, self.step, self.kind)
    }
}

impl std::error::Error for Violation {}

/// The properties (Figure 3 of the paper, plus what clients see).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ViolationKind {
    /// One of Figure 3's properties (the test kit's checks).
    #[error("{0}")]
    Safety(#[from] Safety),
    /// Entries were not applied one after another.
    #[error("node {node} applied index {index} after {applied}")]
    ApplyGap {
        /// The node.
        node: NodeId,
        /// The entry.
        index: u64,
        /// What it had applied.
        applied: u64,
    },
    /// A proposal's id matched an entry holding another command.
    #[error("node {node}: the entry at {index} has the proposal's id but not its command")]
    WrongAck {
        /// The node.
        node: NodeId,
        /// The index.
        index: u64,
    },
    /// A read was served from a state older than a write or read that completed before it
    /// began (linearizability).
    #[error("stale read: node {node} served ctx {ctx} at applied index {served}, but index {must_see} was acknowledged before the read began")]
    StaleRead {
        /// The node.
        node: NodeId,
        /// The read.
        ctx: u64,
        /// The state it was served from.
        served: u64,
        /// The state it had to include.
        must_see: u64,
    },
    /// An acknowledged write is missing from the final state.
    #[error("lost write: command {cmd} acknowledged at index {index} is not in node {node}'s final state")]
    LostWrite {
        /// The command.
        cmd: u64,
        /// Its index.
        index: u64,
        /// The node checked.
        node: NodeId,
    },
    /// A proposal reported definitely dropped is in the final state.
    #[error("command {cmd} was reported dropped but is in the final state")]
    DroppedButCommitted {
        /// The command.
        cmd: u64,
    },
    /// Members disagree on the final state.
    #[error("final states differ between nodes {a} and {b}")]
    Diverged {
        /// A node.
        a: NodeId,
        /// Another.
        b: NodeId,
    },
    /// A node could not restart from its own disk.
    #[error("node {node} could not restart: {error}")]
    Restart {
        /// The node.
        node: NodeId,
        /// Why.
        error: String,
    },
    /// After healing, the cluster did not converge (liveness, not safety).
    #[error("no convergence after healing: {detail}")]
    NoProgress {
        /// The nodes' states.
        detail: String,
    },
}

/// What the checker remembers across the run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Checker {
    leaders: BTreeMap<u64, NodeId>,
    /// Every entry any node applied: index → (term, kind).
    committed: BTreeMap<u64, (u64, EntryKind)>,
    acked: BTreeMap<u64, u64>,
    max_acked: u64,
    max_served: u64,
    dropped: BTreeSet<u64>,
    last_seen: BTreeMap<NodeId, (u64, Role)>,
}

impl Checker {
    /// The index a read starting now must reflect.
    pub(crate) fn must_see(&self) -> u64 {
        self.max_acked.max(self.max_served)
    }

    /// Checks a node after every input: one leader per term, a new leader holds every
    /// committed entry (§5.4), and the commit index is within the log.
    pub(crate) fn observe(&mut self, id: NodeId, node: &Node) -> Result<(), Violation> {
        let st = node.status();
        testkit::commit_within_log(id, st.commit, st.last_index).map_err(Violation::safety)?;
        let now = (st.term, st.role);
        if self.last_seen.insert(id, now) == Some(now) || st.role != Role::Leader {
            return Ok(());
        }
        let first = *self.leaders.entry(st.term).or_insert(id);
        testkit::election_safety(st.term, [first, id]).map_err(Violation::safety)?;
        let committed = self
            .committed
            .iter()
            .map(|(&index, (term, _))| (index, *term));
        testkit::leader_completeness(id, st.term, node.log(), committed).map_err(Violation::safety)
    }

    /// State machine safety: every node applies the same entry at each index.
    pub(crate) fn applied(&mut self, id: NodeId, e: &Entry) -> Result<(), Violation> {
        let want = self
            .committed
            .entry(e.index)
            .or_insert_with(|| (e.term, e.kind.clone()));
        testkit::applied_same(id, e.index, &(e.term, e.kind.clone()), &*want)
            .map_err(Violation::safety)
    }

    pub(crate) fn acked(&mut self, cmd: u64, index: u64) {
        self.acked.insert(cmd, index);
        self.max_acked = self.max_acked.max(index);
    }

    pub(crate) fn dropped(&mut self, cmd: u64) {
        self.dropped.insert(cmd);
    }

    pub(crate) fn read(
        &mut self,
        node: NodeId,
        ctx: u64,
        served: u64,
        must_see: u64,
    ) -> Result<(), Violation> {
        if served < must_see {
            return Err(Violation::new(ViolationKind::StaleRead {
                node,
                ctx,
                served,
                must_see,
            }));
        }
        self.max_served = self.max_served.max(served);
        Ok(())
    }

    /// After convergence: every acknowledged write is in the final state of every member,
    /// no dropped proposal is, and members agree.
    pub(crate) fn check_final(
        &self,
        nodes: &BTreeMap<NodeId, SimNode>,
        leader: Option<NodeId>,
    ) -> Result<(), Violation> {
        let Some(leader) = leader else {
            return Ok(());
        };
        let members = nodes[&leader]
            .node
            .as_ref()
            .map(|n| n.membership().members())
            .unwrap_or_default();
        let reference = &nodes[&leader].sm;
        let state: BTreeMap<u64, u64> = reference.commands.iter().copied().collect();
        for (&cmd, &index) in &self.acked {
            if state.get(&index) != Some(&cmd) {
                return Err(Violation::new(ViolationKind::LostWrite {
                    cmd,
                    index,
                    node: leader,
                }));
            }
        }
        let cmds: BTreeSet<u64> = state.values().copied().collect();
        if let Some(&cmd) = self.dropped.iter().find(|c| cmds.contains(c)) {
            return Err(Violation::new(ViolationKind::DroppedButCommitted { cmd }));
        }
        for id in members {
            if nodes.get(&id).map(|s| &s.sm) != Some(reference) {
                return Err(Violation::new(ViolationKind::Diverged { a: leader, b: id }));
            }
        }
        Ok(())
    }
}
