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
use super::state::{hash_of, Action, Broken, NodeState, State};
use super::symmetry::representative;
use raft::testkit::{self, Safety};
use raft::{NodeId, Role};
use stateright::actor::{ActorModel, ActorModelState};
use stateright::{Model, Property};
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
    /// The spare node of the growth workload, if any.
    pub spare: Option<NodeId>,
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

/// The actors, network and bounds as stateright's actor model (no properties: see
/// [`RaftModel`]).
pub type ActorRaftModel = ActorModel<RaftActor, ModelCfg, RegisterHistory>;

/// The stateright model: the actor model, its properties, and (when `symmetry`) every
/// state replaced by the representative of its renamings (`symmetry.rs`).
///
/// Why a wrapper rather than stateright's `CheckerBuilder::symmetry`: stateright 0.31 applies
/// a representative function in DFS and random walks only, not in BFS, which is where the
/// states must be few. Replacing each successor by its representative in `next_state`
/// works for every search, and a path found is a path of representatives, which
/// [`RaftModel::concrete`] turns back into a path of the real model.
#[derive(Clone)]
pub struct RaftModel {
    /// The actor model.
    pub inner: ActorRaftModel,
    /// Reduce by symmetry over node ids.
    pub symmetry: bool,
    /// Start from these states instead of the initial state (the second phase of the
    /// Figure 8 walks, `split.rs`); `None` for every other search.
    pub starts: Option<Arc<Vec<RaftState>>>,
}

impl RaftModel {
    /// The bounds.
    pub fn cfg(&self) -> &ModelCfg {
        &self.inner.cfg
    }

    fn canonical(&self, s: RaftState) -> RaftState {
        if self.symmetry {
            representative(&s, self.inner.cfg.nodes)
        } else {
            s
        }
    }

    /// A path of this model as a path of the actor model: under symmetry each state of a
    /// found path is a representative, and consecutive representatives may name the nodes
    /// differently; this replays the path from the real initial state, at each step taking
    /// the step whose result has the same representative, so the trace reads as one run.
    pub fn concrete(
        &self,
        path: Vec<(RaftState, Option<Action>)>,
    ) -> Vec<(RaftState, Option<Action>)> {
        if !self.symmetry || path.is_empty() {
            return path;
        }
        let Some(mut at) = self.inner.init_states().into_iter().next() else {
            return path;
        };
        let mut out = Vec::with_capacity(path.len());
        let mut actions = Vec::new();
        for window in path.windows(2) {
            let target = hash_of(&window[1].0);
            actions.clear();
            self.inner.actions(&at, &mut actions);
            let step = actions.drain(..).find_map(|a| {
                let next = self.inner.next_state(&at, a.clone())?;
                (hash_of(&self.canonical(next.clone())) == target).then_some((a, next))
            });
            let Some((a, next)) = step else {
                // Cannot happen for a path of this model; keep what it found.
                return path;
            };
            out.push((at, Some(a)));
            at = next;
        }
        out.push((at, None));
        out
    }
}

thread_local! {
    /// The step a walk's scheduler just chose and computed: (the state's address, the
    /// action, the next state).
    static CHOSEN: std::cell::RefCell<Option<(usize, Action, RaftState)>> =
        const { std::cell::RefCell::new(None) };
}

/// Remembers the step the scheduler chose (see `chooser.rs`), so that stateright's walk,
/// which asks the model for the same step right after, does not compute it twice.
///
/// Why by address: stateright calls `next_state(&state, action)` on the very state it
/// passed to the scheduler, at once; the entry is taken by the first `next_state` call and
/// must match the address and the action, so a stale entry is never used.
pub(super) fn remember_chosen(state: &RaftState, action: &Action, next: RaftState) {
    let at = state as *const RaftState as usize;
    CHOSEN.with(|c| *c.borrow_mut() = Some((at, action.clone(), next)));
}

fn take_chosen(state: &RaftState, action: &Action) -> Option<RaftState> {
    let at = state as *const RaftState as usize;
    let (was, a, next) = CHOSEN.with(|c| c.borrow_mut().take())?;
    (was == at && a == *action).then_some(next)
}

impl Model for RaftModel {
    type State = RaftState;
    type Action = Action;

    fn init_states(&self) -> Vec<RaftState> {
        if let Some(starts) = &self.starts {
            return starts.to_vec();
        }
        let init = self.inner.init_states().into_iter();
        init.map(|s| self.canonical(s)).collect()
    }

    fn actions(&self, state: &RaftState, actions: &mut Vec<Action>) {
        self.inner.actions(state, actions)
    }

    fn next_state(&self, state: &RaftState, action: Action) -> Option<RaftState> {
        if let Some(next) = take_chosen(state, &action) {
            return Some(next);
        }
        let next = self.inner.next_state(state, action)?;
        Some(self.canonical(next))
    }

    fn format_action(&self, action: &Action) -> String {
        self.inner.format_action(action)
    }

    fn format_step(&self, state: &RaftState, action: Action) -> Option<String> {
        self.inner.format_step(state, action)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        fn p<const I: usize>(m: &RaftModel, s: &RaftState) -> bool {
            (SAFETY[I].1)(m.cfg(), s).is_none()
        }
        fn q<const I: usize>(m: &RaftModel, s: &RaftState) -> bool {
            (MILESTONES[I].1)(m.cfg(), s)
        }
        vec![
            Property::always(SAFETY[0].0, p::<0>),
            Property::always(SAFETY[1].0, p::<1>),
            Property::always(SAFETY[2].0, p::<2>),
            Property::always(SAFETY[3].0, p::<3>),
            Property::always(SAFETY[4].0, p::<4>),
            Property::always(SAFETY[5].0, p::<5>),
            Property::always(CANCELLED, |m: &RaftModel, _: &RaftState| {
                !m.cfg().cancel.is_set()
            }),
            Property::sometimes(COMMITTED, |m: &RaftModel, s: &RaftState| {
                value_committed(m.cfg(), s)
            }),
            Property::sometimes(MILESTONES[0].0, q::<0>),
            Property::sometimes(MILESTONES[1].0, q::<1>),
            Property::sometimes(MILESTONES[2].0, q::<2>),
            Property::sometimes(MILESTONES[3].0, q::<3>),
            Property::sometimes(MILESTONES[4].0, q::<4>),
        ]
    }

    fn within_boundary(&self, state: &RaftState) -> bool {
        Model::within_boundary(&self.inner, state)
    }
}
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
            State::Node(ns) => Some((i, &**ns, state.crashed[i])),
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

/// A coverage milestone: its name and whether a state reaches it.
pub type Milestone = fn(&ModelCfg, &RaftState) -> bool;

/// What the optional parts of the model reach (the `sometimes` properties behind the
/// coverage tests): each names a behaviour that only a switched-on feature produces.
pub const MILESTONES: [(&str, Milestone); 5] = [
    ("a follower installed a leader's snapshot", |cfg, s| {
        nodes(cfg, s).any(|(_, n, _)| n.ghost.installed)
    }),
    // Without a restart: a leader that crashes comes back a follower of its term too.
    (
        "a leader stepped down within its term (check-quorum)",
        |cfg, s| {
            nodes(cfg, s).any(|(_, n, _)| {
                let t = n.node.term();
                let led = t < 64 && n.ghost.led & (1 << t) != 0;
                led && n.node.role() != Role::Leader && n.storage.data().boots == 0
            })
        },
    ),
    ("a pre-candidate asked for pre-votes", |cfg, s| {
        nodes(cfg, s).any(|(_, n, _)| n.node.role() == Role::PreCandidate)
    }),
    ("a joint configuration was in force", |cfg, s| {
        nodes(cfg, s).any(|(_, n, _)| n.node.log().membership().is_joint())
    }),
    (
        "the spare node became a voter of a committed configuration",
        |cfg, s| {
            let Some(spare) = cfg.spare else {
                return false;
            };
            nodes(cfg, s).any(|(_, n, _)| {
                let m = n.node.log().membership();
                m.is_voter(spare)
                    && !m.is_joint()
                    && n.node.status().commit >= n.node.log().conf_index()
            })
        },
    ),
];

/// The name of the property that stops a cancelled search (not a finding).
pub const CANCELLED: &str = "search not cancelled";

/// The explanation of the safety property `name` on `state`, if it is violated there.
pub fn explain(cfg: &ModelCfg, name: &str, state: &RaftState) -> Option<String> {
    SAFETY
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, check)| check(cfg, state))
}
