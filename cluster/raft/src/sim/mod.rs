//! A deterministic simulation harness: many nodes in one process, a seeded faulty network,
//! crashes and restarts from persisted state, and Raft's safety properties checked as it runs.
//!
//! Everything is driven by one seeded generator, so a failing seed replays exactly. The
//! harness is an ordinary driver of the public API (it follows the crate's driver contract
//! step by step), so the node process can reuse it to test its own state machine logic.

mod check;
mod driver;

pub use check::{Violation, ViolationKind};
pub use driver::StateMachine;

use crate::bugs::{Bug, Bugs};
use crate::config::Config;
use crate::message::{ConfChange, Message, NodeId};
use crate::node::Node;
use crate::ready::Role;
use crate::rng::Rng;
use crate::testkit::Disk;
use check::Checker;
use std::collections::{BTreeMap, BTreeSet};

/// The shape of a simulated run. Probabilities are per mille, per step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SimConfig {
    /// The seed of everything.
    pub seed: u64,
    /// Initial voters `1..=voters`.
    pub voters: u64,
    /// Extra nodes `voters+1..=voters+spares`, running but not members until added.
    pub spares: u64,
    /// Steps of faults and load; a quiet period to converge follows.
    pub steps: u32,
    /// Chance that a step ticks every node.
    pub tick: u32,
    /// Chance that a sent message is lost.
    pub drop: u32,
    /// Chance that a delivered message stays in the network to be delivered again.
    pub duplicate: u32,
    /// Chance that a delivery picks a random in-flight message instead of the oldest.
    pub reorder: u32,
    /// Chance of a client proposal (at the node believed leader).
    pub propose: u32,
    /// Chance of a client read.
    pub read: u32,
    /// Chance of a crash of a running node (and of a restart of a crashed one).
    pub crash: u32,
    /// Chance of a new random partition (and of healing).
    pub partition: u32,
    /// Chance of crashing the leader itself (the Figure 8 schedules: leaders crash right
    /// after proposing).
    pub crash_leader: u32,
    /// Chance of a membership change request.
    pub conf_change: u32,
    /// Chance of a snapshot + compaction on a random node.
    pub compact: u32,
    /// Pre-vote on every node.
    pub pre_vote: bool,
    /// Check-quorum on every node.
    pub check_quorum: bool,
    /// Entries per AppendEntries.
    pub max_batch: usize,
    /// Bug switches on every node.
    pub bugs: Bugs,
}

impl SimConfig {
    /// A 3-node run of `steps` with every fault at moderate rates.
    pub fn new(seed: u64, steps: u32) -> SimConfig {
        SimConfig {
            seed,
            voters: 3,
            spares: 0,
            steps,
            tick: 100,
            drop: 50,
            duplicate: 20,
            reorder: 200,
            propose: 80,
            read: 40,
            crash: 4,
            partition: 4,
            crash_leader: 0,
            conf_change: 0,
            compact: 5,
            pre_vote: true,
            check_quorum: true,
            max_batch: 8,
            bugs: Bugs::none(),
        }
    }
}

/// What a run did, for sanity checks that the workload really happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Proposals accepted by a leader.
    pub proposed: u64,
    /// Proposals known committed by their proposer.
    pub acked: u64,
    /// Reads served.
    pub reads: u64,
    /// Crashes.
    pub crashes: u64,
    /// Membership changes accepted.
    pub conf_changes: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// Highest term reached.
    pub max_term: u64,
    /// Messages delivered.
    pub delivered: u64,
}

/// One simulated node: the core (absent while crashed), its disk and its state machine.
#[derive(Clone, Debug)]
pub(crate) struct SimNode {
    pub(crate) node: Option<Node>,
    pub(crate) config: Config,
    pub(crate) disk: Disk,
    pub(crate) sm: StateMachine,
}

/// A simulated cluster.
pub struct Sim {
    pub(crate) cfg: SimConfig,
    pub(crate) rng: Rng,
    pub(crate) nodes: BTreeMap<NodeId, SimNode>,
    /// Messages in flight, oldest first.
    pub(crate) net: Vec<Message>,
    /// Nodes on the minority side of the current partition (empty: healed).
    pub(crate) cut: BTreeSet<NodeId>,
    pub(crate) checker: Checker,
    pub(crate) stats: SimStats,
    next_cmd: u64,
    next_ctx: u64,
    /// Pending client writes: node → (proposal index, term) → command.
    pub(crate) writes: BTreeMap<NodeId, BTreeMap<(u64, u64), u64>>,
    /// Pending client reads: (node, ctx) → the index the answer must reflect.
    pub(crate) reads: BTreeMap<(NodeId, u64), u64>,
}

impl Sim {
    /// A cluster ready to run.
    pub fn new(cfg: SimConfig) -> Sim {
        let mut rng = Rng::new(cfg.seed);
        let mut nodes = BTreeMap::new();
        for id in 1..=cfg.voters + cfg.spares {
            let mut c = Config::new(id, 1..=cfg.voters);
            c.seed = rng.next_u64();
            c.pre_vote = cfg.pre_vote;
            c.check_quorum = cfg.check_quorum;
            c.bugs = cfg.bugs;
            c.max_inflight = 4;
            c.max_batch = cfg.max_batch;
            let node = Node::new(c.clone(), None).expect("valid config");
            nodes.insert(
                id,
                SimNode {
                    node: Some(node),
                    config: c,
                    disk: Disk::new(cfg.bugs.contains(Bug::NoFsync)),
                    sm: StateMachine::default(),
                },
            );
        }
        Sim {
            cfg,
            rng,
            nodes,
            net: Vec::new(),
            cut: BTreeSet::new(),
            checker: Checker::default(),
            stats: SimStats::default(),
            next_cmd: 1,
            next_ctx: 1,
            writes: BTreeMap::new(),
            reads: BTreeMap::new(),
        }
    }

    /// Runs the faulty phase, heals, lets the cluster converge, and checks the end state.
    pub fn run(mut self) -> Result<SimStats, Violation> {
        for step in 0..self.cfg.steps {
            self.step().map_err(|v| v.at(self.cfg.seed, step))?;
            if step % 64 == 0 {
                self.check_logs().map_err(|v| v.at(self.cfg.seed, step))?;
            }
        }
        self.settle()
            .map_err(|v| v.at(self.cfg.seed, self.cfg.steps))?;
        Ok(self.stats)
    }

    /// One random event.
    fn step(&mut self) -> Result<(), Violation> {
        let c = self.cfg.clone();
        let r = self.rng.below(1000) as u32;
        let mut acc = 0;
        let mut hit = |w: u32| {
            acc += w;
            r < acc
        };
        if hit(c.tick) {
            // A lazy disk (`no-fsync`) is flushed in the background once per tick: what a
            // node wrote since the last tick is lost if it crashes before this.
            for s in self.nodes.values_mut() {
                s.disk.sync();
            }
            for id in self.ids() {
                self.with_node(id, |n| n.tick())?;
            }
        } else if hit(c.propose) {
            self.client_write()?;
        } else if hit(c.read) {
            self.client_read()?;
        } else if hit(c.crash) {
            self.crash_or_restart()?;
        } else if hit(c.partition) {
            self.repartition();
        } else if hit(c.crash_leader) {
            if let Some(l) = self.leader() {
                self.crash(l);
            }
        } else if hit(c.conf_change) {
            self.client_conf_change()?;
        } else if hit(c.compact) {
            self.compact_one();
        } else {
            self.deliver_one()?;
        }
        Ok(())
    }

    fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// A running node believed leader, if any (the highest term wins).
    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter_map(|(id, s)| s.node.as_ref().map(|n| (n.term(), n.role(), *id)))
            .filter(|(_, role, _)| *role == Role::Leader)
            .max()
            .map(|(_, _, id)| id)
    }

    /// A client write at a random running node: accepted only by a leader.
    fn client_write(&mut self) -> Result<(), Violation> {
        let target = self.random_target();
        let cmd = self.next_cmd;
        self.next_cmd += 1;
        // Registered before the driver loop runs: the entry may commit within it.
        let Some(node) = self.nodes.get_mut(&target).and_then(|s| s.node.as_mut()) else {
            return Ok(());
        };
        if let Ok(id) = node.propose(cmd.to_le_bytes().to_vec()) {
            self.stats.proposed += 1;
            self.writes
                .entry(target)
                .or_default()
                .insert((id.index, id.term), cmd);
        }
        self.drain(target)
    }

    /// A client read at a random running node.
    fn client_read(&mut self) -> Result<(), Violation> {
        let target = self.random_target();
        let ctx = self.next_ctx;
        self.next_ctx += 1;
        // Registered before the call: a read may be confirmed within it.
        self.reads.insert((target, ctx), self.checker.must_see());
        let mut ok = false;
        self.with_node(target, |n| ok = n.read_index(ctx).is_ok())?;
        if !ok {
            self.reads.remove(&(target, ctx));
        }
        Ok(())
    }

    /// Mostly the leader (clients find it), sometimes anyone.
    fn random_target(&mut self) -> NodeId {
        let ids = self.ids();
        match self.leader() {
            Some(l) if self.rng.chance(3, 4) => l,
            _ => ids[self.rng.below(ids.len() as u64) as usize],
        }
    }

    fn client_conf_change(&mut self) -> Result<(), Violation> {
        let Some(leader) = self.leader() else {
            return Ok(());
        };
        let all: Vec<NodeId> = self.ids();
        let m = self.nodes[&leader]
            .node
            .as_ref()
            .map(|n| n.membership().clone())
            .unwrap_or_default();
        let pick = |rng: &mut Rng, from: &[NodeId]| from[rng.below(from.len() as u64) as usize];
        let change = match self.rng.below(5) {
            0 | 1 => ConfChange::AddVoter(pick(&mut self.rng, &all)),
            2 => ConfChange::AddLearner(pick(&mut self.rng, &all)),
            3 => ConfChange::Remove(pick(&mut self.rng, &all)),
            _ => {
                let mut voters = BTreeSet::new();
                while voters.len() < 3 {
                    voters.insert(pick(&mut self.rng, &all));
                }
                ConfChange::EnterJoint {
                    voters,
                    learners: BTreeSet::new(),
                    auto_leave: true,
                }
            }
        };
        // Keep at least three voters so the cluster stays able to make progress with a
        // node down.
        if let ConfChange::Remove(id) | ConfChange::AddLearner(id) = change {
            if m.voters.contains(&id) && m.voters.len() <= 3 {
                return Ok(());
            }
        }
        let mut ok = false;
        self.with_node(leader, |n| ok = n.propose_conf_change(change).is_ok())?;
        self.stats.conf_changes += u64::from(ok);
        Ok(())
    }

    fn crash_or_restart(&mut self) -> Result<(), Violation> {
        let ids = self.ids();
        let id = ids[self.rng.below(ids.len() as u64) as usize];
        let down = self.nodes[&id].node.is_none();
        if down {
            self.restart(id)
        } else {
            // At most a minority of the initial voters down at once, so progress is possible.
            let downs = self.nodes.values().filter(|s| s.node.is_none()).count() as u64;
            if downs < (self.cfg.voters - 1) / 2 || self.cfg.voters < 3 {
                self.crash(id);
            } else if let Some(&victim) = self
                .nodes
                .iter()
                .find(|(_, s)| s.node.is_none())
                .map(|(id, _)| id)
            {
                self.restart(victim)?;
            }
            Ok(())
        }
    }

    fn crash(&mut self, id: NodeId) {
        let s = self.nodes.get_mut(&id).expect("node");
        s.node = None;
        s.disk.crash();
        self.writes.remove(&id);
        self.reads.retain(|(n, _), _| *n != id);
        self.stats.crashes += 1;
    }

    fn restart(&mut self, id: NodeId) -> Result<(), Violation> {
        let s = self.nodes.get_mut(&id).expect("node");
        let node = Node::new(s.config.clone(), Some(s.disk.persisted())).map_err(|e| {
            Violation::new(ViolationKind::Restart {
                node: id,
                error: e.to_string(),
            })
        })?;
        s.sm = StateMachine::restore(s.disk.current().snapshot.as_ref());
        s.node = Some(node);
        self.drain(id)
    }

    fn repartition(&mut self) {
        if !self.cut.is_empty() || self.rng.chance(1, 3) {
            self.cut.clear();
            return;
        }
        let ids = self.ids();
        let k = 1 + self.rng.below((ids.len() as u64 - 1) / 2) as usize;
        while self.cut.len() < k {
            self.cut
                .insert(ids[self.rng.below(ids.len() as u64) as usize]);
        }
    }

    fn compact_one(&mut self) {
        let ids = self.ids();
        let id = ids[self.rng.below(ids.len() as u64) as usize];
        let s = self.nodes.get_mut(&id).expect("node");
        let Some(node) = s.node.as_mut() else {
            return;
        };
        let applied = node.status().applied;
        if applied < node.status().snapshot_index + 8 || s.sm.applied != applied {
            return;
        }
        if let Ok(snap) = node.compact(applied, s.sm.encode()) {
            s.disk.install_own_snapshot(snap);
        }
    }

    /// Delivers one in-flight message (the oldest, or a random one to reorder).
    fn deliver_one(&mut self) -> Result<(), Violation> {
        if self.net.is_empty() {
            return Ok(());
        }
        let i = if self.rng.chance(u64::from(self.cfg.reorder), 1000) {
            self.rng.below(self.net.len() as u64) as usize
        } else {
            0
        };
        let m = if self.rng.chance(u64::from(self.cfg.duplicate), 1000) {
            self.net[i].clone()
        } else {
            self.net.remove(i)
        };
        if self.cut.contains(&m.from) != self.cut.contains(&m.to) {
            return Ok(());
        }
        self.stats.delivered += 1;
        let to = m.to;
        self.with_node(to, |n| {
            let _ = n.step(m);
        })
    }

    /// Heals everything, restarts crashed nodes, and runs faultless until every member has
    /// applied the same log; then checks that every acknowledged write is in it.
    fn settle(&mut self) -> Result<(), Violation> {
        self.cut.clear();
        for id in self.ids() {
            if self.nodes[&id].node.is_none() {
                self.restart(id)?;
            }
        }
        for round in 0..4000 {
            if round % 4 == 0 {
                for id in self.ids() {
                    self.with_node(id, |n| n.tick())?;
                }
            }
            while !self.net.is_empty() {
                let m = self.net.remove(0);
                let to = m.to;
                self.with_node(to, |n| {
                    let _ = n.step(m);
                })?;
            }
            if round > 200 && self.converged() {
                self.check_logs()?;
                return self.checker.check_final(&self.nodes, self.leader());
            }
        }
        Err(Violation::new(ViolationKind::NoProgress {
            detail: self.describe(),
        }))
    }

    /// A leader exists and every member has applied its commit index.
    fn converged(&self) -> bool {
        let Some(l) = self.leader() else {
            return false;
        };
        let leader = self.nodes[&l].node.as_ref().expect("running");
        let commit = leader.status().commit;
        if leader.log().term(commit) != Some(leader.term()) {
            return false;
        }
        leader.membership().members().iter().all(|id| {
            self.nodes
                .get(id)
                .and_then(|s| s.node.as_ref())
                .is_some_and(|n| n.status().applied == commit)
        })
    }

    fn describe(&self) -> String {
        let mut out = String::new();
        for (id, s) in &self.nodes {
            match &s.node {
                Some(n) => {
                    let st = n.status();
                    out += &format!(
                        "{id}: {} term {} commit {} applied {} last {} voters {:?}; ",
                        st.role.name(),
                        st.term,
                        st.commit,
                        st.applied,
                        st.last_index,
                        st.voters
                    );
                }
                None => out += &format!("{id}: down; "),
            }
        }
        out
    }
}
