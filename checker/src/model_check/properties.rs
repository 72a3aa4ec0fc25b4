//! The properties checked in every state: Raft's five guarantees (Figure 3 of the paper),
//! linearizability of the clients' operations, and one `sometimes` property so that a model
//! that never commits anything cannot pass.
//!
//! The Figure 3 checks themselves are the raft crate's test kit (`raft::testkit`), the same
//! the simulation runs; here they read the history variables each state carries. Each check
//! returns `Some(explanation)` on a violation; the stateright properties are the same checks
//! returning a bool, and the command line re-runs the check on the last state of a
//! counterexample to say what broke.

use super::actor::RaftActor;
use super::register::RegisterHistory;
use super::state::{Broken, NodeState, State};
use raft::testkit::{self, Safety};
use raft::{NodeId, Role};
use stateright::actor::{ActorModel, ActorModelState};
use stateright::Expectation;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The bounds the model needs inside its callbacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelCfg {
    /// Node actors (ids `0..nodes`).
    pub nodes: usize,
    /// Client actors (after the nodes).
    pub clients: usize,
    /// No state where a node's term exceeds this is explored.
    pub max_term: u64,
    /// No state where a node's log is longer than this is explored.
    pub max_log: u64,
    /// No state with more restarts than this (in total) is explored.
    pub max_restarts: u32,
    /// Set from outside to stop a running search (the portfolio's other worker found
    /// something).
    pub cancel: Cancel,
}

/// A flag that stops a running search: stateright 0.31 cannot cancel a search, but it stops
/// at a discovery, so a set flag makes the [`CANCELLED`] property fail in the next state.
/// Not part of the model's identity: every `Cancel` equals every other.
#[derive(Clone, Debug, Default)]
pub struct Cancel(pub Option<Arc<AtomicBool>>);

impl Cancel {
    /// Whether the search should stop.
    pub fn is_set(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
    }
}

impl PartialEq for Cancel {
    fn eq(&self, _: &Cancel) -> bool {
        true
    }
}

impl Eq for Cancel {}

/// The stateright model.
pub type RaftModel = ActorModel<RaftActor, ModelCfg, RegisterHistory>;
/// One state of it.
pub type RaftState = ActorModelState<RaftActor, RegisterHistory>;

/// The node actors' states with their index and whether they are crashed (a crashed node's
/// last state stays visible until it recovers).
pub fn nodes<'a>(
    cfg: &ModelCfg,
    state: &'a RaftState,
) -> impl Iterator<Item = (usize, &'a NodeState, bool)> + 'a {
    let n = cfg.nodes;
    state
        .actor_states
        .iter()
        .take(n)
        .enumerate()
        .filter_map(move |(i, s)| match &**s {
            State::Node(ns) => Some((i, ns, state.crashed[i])),
            State::Client(_) => None,
        })
}

/// The bounds: terms, log lengths, restarts, and clients never crash (a client's crash
/// would only forget its own operations).
pub fn within_boundary(cfg: &ModelCfg, state: &RaftState) -> bool {
    let mut restarts = 0u32;
    for (_, ns, _) in nodes(cfg, state) {
        if ns.node.term() > cfg.max_term || ns.node.log().last_index() > cfg.max_log {
            return false;
        }
    }
    for d in state.actor_storages.iter().take(cfg.nodes).flatten() {
        restarts += u32::from(d.data().boots);
    }
    restarts <= cfg.max_restarts && !state.crashed[cfg.nodes..].iter().any(|c| *c)
}

fn id(i: usize) -> NodeId {
    i as NodeId + 1
}

/// A monitor that fired inside a step and broke `property` (by the kit's variant).
fn broken_in_step(cfg: &ModelCfg, state: &RaftState, rewrote: bool) -> Option<String> {
    nodes(cfg, state).find_map(|(_, s, _)| match &s.ghost.broken {
        Some(Broken::Safety(b @ Safety::LeaderRewrote { .. })) if rewrote => Some(b.to_string()),
        Some(Broken::Safety(b @ Safety::StateMachine { .. })) if !rewrote => Some(b.to_string()),
        _ => None,
    })
}

/// Election safety: at most one leader per term, ever.
pub fn election_safety(cfg: &ModelCfg, state: &RaftState) -> Option<String> {
    let led: Vec<(NodeId, u64)> = nodes(cfg, state)
        .map(|(i, s, _)| (id(i), s.ghost.led))
        .collect();
    let any = led.iter().fold(0, |acc, (_, l)| acc | l);
    (0..64).filter(|t| any & (1 << t) != 0).find_map(|term| {
        let leaders = led.iter().filter(|(_, l)| l & (1 << term) != 0);
        testkit::election_safety(term, leaders.map(|(n, _)| *n))
            .err()
            .map(|b| b.to_string())
    })
}

/// Log matching: two logs with an entry of the same index and term are identical up to it.
pub fn log_matching(cfg: &ModelCfg, state: &RaftState) -> Option<String> {
    let logs: Vec<(usize, &NodeState)> = nodes(cfg, state)
        .filter(|(_, _, crashed)| !crashed)
        .map(|(i, s, _)| (i, s))
        .collect();
    for (k, (a, sa)) in logs.iter().enumerate() {
        for (b, sb) in &logs[k + 1..] {
            if let Err(broken) = testkit::log_matching(id(*a), sa.node.log(), id(*b), sb.node.log())
            {
                return Some(broken.to_string());
            }
        }
    }
    None
}

/// Leader completeness: an entry committed while some node was in term `c` is in the log
/// of every leader of a later term.
pub fn leader_completeness(cfg: &ModelCfg, state: &RaftState) -> Option<String> {
    for (l, ls, crashed) in nodes(cfg, state) {
        if crashed || ls.node.role() != Role::Leader {
            continue;
        }
        let term = ls.node.term();
        for (k, ks, _) in nodes(cfg, state) {
            let before = (ks.ghost.committed.iter().enumerate())
                .filter(|(_, &(_, when))| when < term)
                .map(|(i, &(entry_term, _))| (i as u64 + 1, entry_term));
            if let Err(broken) = testkit::leader_completeness(id(l), term, ls.node.log(), before) {
                return Some(format!("{broken} (seen committed by n{})", k + 1));
            }
        }
    }
    None
}

/// State machine safety: no two nodes ever apply different entries at one index (nor one
/// node two entries at one index, across restarts).
pub fn state_machine_safety(cfg: &ModelCfg, state: &RaftState) -> Option<String> {
    if let Some(text) = broken_in_step(cfg, state, false) {
        return Some(text);
    }
    let all: Vec<(usize, &NodeState)> = nodes(cfg, state).map(|(i, s, _)| (i, s)).collect();
    for (k, (_, sa)) in all.iter().enumerate() {
        for (b, sb) in &all[k + 1..] {
            let pairs = sa.ghost.committed.iter().zip(&sb.ghost.committed);
            for (i, ((ta, _), (tb, _))) in pairs.enumerate() {
                if let Err(broken) = testkit::applied_same(id(*b), i as u64 + 1, tb, ta) {
                    return Some(broken.to_string());
                }
            }
        }
    }
    None
}

/// Leader append-only, plus the other in-step monitors (a panic, a refused restart).
pub fn leader_append_only(cfg: &ModelCfg, state: &RaftState) -> Option<String> {
    if let Some(text) = broken_in_step(cfg, state, true) {
        return Some(text);
    }
    nodes(cfg, state).find_map(|(i, s, _)| match &s.ghost.broken {
        Some(Broken::Panic(text)) => Some(format!("n{}: the core panicked: {text}", i + 1)),
        Some(Broken::Restart(text)) => Some(format!("n{} could not restart: {text}", i + 1)),
        _ => None,
    })
}

/// Linearizability of the clients' operations (stateright's tester).
pub fn linearizability(_cfg: &ModelCfg, state: &RaftState) -> Option<String> {
    if state.history.is_linearizable() {
        return None;
    }
    Some(format!(
        "no order of the clients' operations explains their results: {}",
        state.history.describe()
    ))
}

/// The `sometimes` property: a client's command is applied somewhere (with no clients: any
/// entry is committed).
pub fn value_committed(cfg: &ModelCfg, state: &RaftState) -> bool {
    nodes(cfg, state).any(|(_, s, _)| {
        if cfg.clients == 0 {
            !s.ghost.committed.is_empty()
        } else {
            s.machine.sessions.iter().any(Option::is_some)
        }
    })
}

/// A safety property: its name and its check.
pub type Check = fn(&ModelCfg, &RaftState) -> Option<String>;

/// Every safety property, by name.
pub const SAFETY: [(&str, Check); 6] = [
    ("election safety", election_safety),
    ("log matching", log_matching),
    ("leader completeness", leader_completeness),
    ("state machine safety", state_machine_safety),
    ("leader append-only", leader_append_only),
    ("linearizability", linearizability),
];

/// The name of the `sometimes` property.
pub const COMMITTED: &str = "a value is committed";

/// The name of the property that stops a cancelled search (not a finding).
pub const CANCELLED: &str = "search not cancelled";

/// Adds the properties to a model.
pub fn with_properties(model: RaftModel) -> RaftModel {
    fn p<const I: usize>(m: &RaftModel, s: &RaftState) -> bool {
        (SAFETY[I].1)(&m.cfg, s).is_none()
    }
    model
        .property(Expectation::Always, SAFETY[0].0, p::<0>)
        .property(Expectation::Always, SAFETY[1].0, p::<1>)
        .property(Expectation::Always, SAFETY[2].0, p::<2>)
        .property(Expectation::Always, SAFETY[3].0, p::<3>)
        .property(Expectation::Always, SAFETY[4].0, p::<4>)
        .property(Expectation::Always, SAFETY[5].0, p::<5>)
        .property(Expectation::Always, CANCELLED, |m, _| {
            !m.cfg.cancel.is_set()
        })
        .property(Expectation::Sometimes, COMMITTED, |m, s| {
            value_committed(&m.cfg, s)
        })
}

/// The explanation of the safety property `name` on `state`, if it is violated there.
pub fn explain(cfg: &ModelCfg, name: &str, state: &RaftState) -> Option<String> {
    SAFETY
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, check)| check(cfg, state))
}
