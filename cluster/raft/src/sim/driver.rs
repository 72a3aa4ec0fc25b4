//! The simulator's driver: a state machine per node, and the loop that follows the crate's
//! driver contract (persist to the test kit's disk, send, apply, answer, advance) after every
//! input.

use super::check::ViolationKind;
use super::{Sim, Violation};
use crate::message::{Entry, EntryKind, NodeId, Snapshot};
use crate::node::Node;
use crate::testkit;

/// The simulated state machine: the commands applied, with their indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct StateMachine {
    /// The last index applied.
    pub applied: u64,
    /// (index, command) of every normal entry applied, in order.
    pub commands: Vec<(u64, u64)>,
}

impl StateMachine {
    /// The state a snapshot holds (empty without one).
    pub fn restore(snap: Option<&Snapshot>) -> StateMachine {
        let Some(snap) = snap else {
            return StateMachine::default();
        };
        let words: Vec<u64> = snap
            .data
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        StateMachine {
            applied: snap.meta.index,
            commands: words.chunks_exact(2).map(|p| (p[0], p[1])).collect(),
        }
    }

    /// The snapshot data of this state.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.commands.len() * 16);
        for (i, c) in &self.commands {
            out.extend_from_slice(&i.to_le_bytes());
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }

    /// Applies one committed entry; the command, if it carried one.
    fn apply(&mut self, e: &Entry) -> Option<u64> {
        self.applied = e.index;
        match &e.kind {
            EntryKind::Normal(data) => {
                let cmd = u64::from_le_bytes(data.as_slice().try_into().ok()?);
                self.commands.push((e.index, cmd));
                Some(cmd)
            }
            _ => None,
        }
    }
}

impl Sim {
    /// Runs `f` on node `id` if it is up, then drives it until it has no work left.
    pub(crate) fn with_node(
        &mut self,
        id: NodeId,
        f: impl FnOnce(&mut Node),
    ) -> Result<(), Violation> {
        let Some(node) = self.nodes.get_mut(&id).and_then(|s| s.node.as_mut()) else {
            return Ok(());
        };
        f(node);
        self.drain(id)
    }

    /// The driver loop for one node (the crate's driver contract, steps 2–7).
    pub(crate) fn drain(&mut self, id: NodeId) -> Result<(), Violation> {
        loop {
            let s = self.nodes.get_mut(&id).expect("node");
            let Some(node) = s.node.as_mut() else {
                return Ok(());
            };
            self.checker.observe(id, node)?;
            self.stats.max_term = self.stats.max_term.max(node.term());
            if !node.has_ready() {
                return Ok(());
            }
            let rd = node.ready();
            s.disk.persist(&rd);
            for m in &rd.messages {
                if !self.rng.chance(u64::from(self.cfg.drop), 1000) {
                    self.net.push(m.clone());
                }
            }
            if let Some(snap) = &rd.snapshot {
                s.sm = StateMachine::restore(Some(snap));
                self.stats.snapshots_installed += 1;
            }
            let writes = self.writes.entry(id).or_default();
            for e in &rd.committed_entries {
                if e.index != s.sm.applied + 1 {
                    return Err(Violation::new(ViolationKind::ApplyGap {
                        node: id,
                        index: e.index,
                        applied: s.sm.applied,
                    }));
                }
                self.checker.applied(id, e)?;
                let cmd = s.sm.apply(e);
                if let Some(c) = writes.remove(&(e.index, e.term)) {
                    if cmd != Some(c) {
                        return Err(Violation::new(ViolationKind::WrongAck {
                            node: id,
                            index: e.index,
                        }));
                    }
                    self.checker.acked(c, e.index);
                    self.stats.acked += 1;
                }
            }
            for r in &rd.read_states {
                if let Some(must_see) = self.reads.remove(&(id, r.ctx)) {
                    self.checker.read(id, r.ctx, s.sm.applied, must_see)?;
                    self.stats.reads += 1;
                }
            }
            for ctx in &rd.dropped_reads {
                self.reads.remove(&(id, *ctx));
            }
            for p in &rd.dropped_proposals {
                if let Some(c) = writes.remove(&(p.index, p.term)) {
                    self.checker.dropped(c);
                }
            }
            for p in &rd.unknown_proposals {
                writes.remove(&(p.index, p.term));
            }
            node.advance(rd);
        }
    }

    /// Log matching (§5.3) across every pair of running nodes.
    pub(crate) fn check_logs(&self) -> Result<(), Violation> {
        let logs: Vec<(NodeId, &Node)> = self
            .nodes
            .iter()
            .filter_map(|(id, s)| s.node.as_ref().map(|n| (*id, n)))
            .collect();
        for (i, (a, na)) in logs.iter().enumerate() {
            for (b, nb) in &logs[i + 1..] {
                testkit::log_matching(*a, na.log(), *b, nb.log()).map_err(Violation::safety)?;
            }
        }
        Ok(())
    }
}
