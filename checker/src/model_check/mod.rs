//! Model checking the Raft core (`cluster/raft`) with stateright: the same core, driven by a
//! stateright actor, under every interleaving of a small bounded world.
//!
//! The world: `nodes` Raft nodes and `clients` clients. The network loses nothing unless
//! `lossy`, reorders everything (unordered), and duplicates if `duplicating`. Nodes crash
//! and restart from what they saved; timers fire at any time. The bounds (terms, log length,
//! restarts, client operations, depth) keep it finite. Properties: see [`properties`].
//!
//! ```no_run
//! use checker::model_check::{check, Bounds, Search};
//! let outcome = check(&Bounds::default(), Search::Bfs, None).unwrap();
//! assert!(outcome.violations.is_empty());
//! ```

// The files form layers, each using only those above it in this list: `register` (the
// clients' object), `state` (states and messages), `intern` (sharing them), `actor` (the
// drivers of the core), `symmetry` (renaming nodes), `properties` (the model and what must
// hold), `trace` and `chooser` (reading and walking paths), `split` (the Figure 8 walks in
// two phases, which uses the search runner of this file), `portfolio` (the default hunt),
// `cli`.
mod actor;
mod chooser;
pub mod cli;
mod intern;
pub mod portfolio;
pub mod properties;
pub mod register;
mod split;
pub mod state;
mod symmetry;
pub mod trace;
mod workload;

pub use actor::RaftActor;
pub use chooser::WalkShape;
pub use properties::{ModelCfg, RaftModel, RaftState};
pub use state::{Msg, NodeState, Timer};
pub use workload::Grow;

use actor::{ClientActor, NodeActor};
use properties::{ActorRaftModel, CANCELLED, COMMITTED};
use raft::{Bugs, Config};
use register::RegisterHistory;
use stateright::actor::{LossyNetwork, Network};
use stateright::{Checker, HasDiscoveries, Model};
use std::time::{Duration, Instant};

/// The size of the world and the bounds of the search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Raft nodes (1 to 5).
    pub nodes: usize,
    /// No node goes beyond this term.
    pub max_term: u64,
    /// No log grows beyond this many entries.
    pub max_log: u64,
    /// Restarts in total (at most a minority of the nodes is down at once).
    pub max_crashes: u32,
    /// Client operations in total, spread over `clients` clients.
    pub client_ops: usize,
    /// Clients.
    pub clients: usize,
    /// Steps per path (`None`: unbounded).
    pub depth: Option<usize>,
    /// The network may lose messages.
    pub lossy: bool,
    /// The network may deliver a message more than once.
    pub duplicating: bool,
    /// Leaders send heartbeats on a timer.
    pub heartbeat: bool,
    /// Nodes run a pre-vote round before an election.
    pub pre_vote: bool,
    /// Bug switches of the core.
    pub bugs: Bugs,
    /// Leave the core's clock out of the state's identity (see `Node::hash_without_clock`).
    pub abstract_clock: bool,
    /// The membership workload: a leader may propose removing a voter (the highest-numbered
    /// other voter of its latest configuration) at any time. Off by default, so the default
    /// check is unchanged.
    pub membership: bool,
    /// Exhaustive searches (BFS, DFS) keep one state per class of node renamings (see
    /// `symmetry.rs`); off with the membership workload, which is not symmetric.
    pub symmetry: bool,
    /// The odds random walks draw from (see `chooser.rs`).
    pub walk: WalkShape,
    /// The growth workload: one more node than `nodes`, not an initial voter, which a
    /// leader may add (as a voter, or through a joint configuration).
    pub grow: Option<Grow>,
    /// Leaders step down without a quorum and followers with a leader ignore elections
    /// (check-quorum and its leases).
    pub check_quorum: bool,
    /// Nodes may compact their applied log into a snapshot at any time (leaders then send
    /// InstallSnapshot to followers that lag behind it).
    pub snapshots: bool,
}

impl Default for Bounds {
    /// Three nodes, terms up to 2, logs up to 2 entries, one restart, one client with one
    /// write, every state within 8 steps: the exhaustive check CI runs (58 thousand states
    /// up to renaming, which stand for 350 thousand; 8 s and 105 MB on this machine; depth
    /// 11, 2 million states, fits in 3 GB: BENCHMARKS.md).
    fn default() -> Bounds {
        Bounds {
            nodes: 3,
            max_term: 2,
            max_log: 2,
            max_crashes: 1,
            client_ops: 1,
            clients: 1,
            depth: Some(8),
            lossy: false,
            duplicating: false,
            heartbeat: true,
            pre_vote: false,
            bugs: Bugs::none(),
            abstract_clock: false,
            membership: false,
            symmetry: true,
            walk: WalkShape::Swarm,
            grow: None,
            check_quorum: false,
            snapshots: false,
        }
    }
}

/// Bounds the model refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundsError {
    /// A bound is out of its range.
    #[error("--{flag} {value}: must be {range}")]
    OutOfRange {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: u64,
        /// The accepted range.
        range: &'static str,
    },
}

impl Bounds {
    /// Checks every bound, naming the first bad one.
    pub fn validate(&self) -> Result<(), BoundsError> {
        let range = |flag, value: u64, lo: u64, hi: u64, text| {
            if value < lo || value > hi {
                Err(BoundsError::OutOfRange {
                    flag,
                    value,
                    range: text,
                })
            } else {
                Ok(())
            }
        };
        range("nodes", self.nodes as u64, 1, 5, "1 to 5")?;
        if self.grow.is_some() {
            // The spare node makes one more.
            range("nodes", self.nodes as u64, 1, 4, "1 to 4 with --grow")?;
        }
        range("max-term", self.max_term, 1, 60, "1 to 60")?;
        range("max-log", self.max_log, 1, 60, "1 to 60")?;
        range(
            "max-crashes",
            u64::from(self.max_crashes),
            0,
            250,
            "0 to 250",
        )?;
        range("clients", self.clients as u64, 1, 4, "1 to 4")?;
        range("client-ops", self.client_ops as u64, 0, 40, "0 to 40")?;
        if let Some(d) = self.depth {
            range("depth", d as u64, 1, 10_000, "1 to 10000")?;
        }
        Ok(())
    }

    /// The stateright model of these bounds, as the exhaustive searches check it (with
    /// symmetry reduction if `symmetry`).
    pub fn model(&self) -> Result<RaftModel, BoundsError> {
        self.model_for(Search::Bfs)
    }

    /// The model for `search`: the exhaustive searches share equal values between states
    /// (`intern.rs`) and reduce by symmetry; random walks do neither (they keep no states,
    /// and a renamed walk is as good as the walk).
    pub fn model_for(&self, search: Search) -> Result<RaftModel, BoundsError> {
        self.validate()?;
        let exhaustive = !matches!(search, Search::Simulation { .. });
        let symmetric = exhaustive && self.symmetry && !self.membership && self.grow.is_none();
        let voters = self.nodes;
        let n = voters + usize::from(self.grow.is_some());
        let clients = if self.client_ops == 0 {
            0
        } else {
            self.clients
        };
        let mut actors = Vec::new();
        for i in 0..n {
            let mut c = Config::new(i as u64 + 1, 1..=voters as u64);
            // Small timing (any timer fires at any time anyway), one entry per
            // AppendEntries so a follower can hold part of what the leader sent (Figure 8
            // needs that). Check-quorum only when asked: its leases depend on the clock,
            // which the model advances only when a timer fires (a follower that heard from
            // a leader refuses votes until its own election timer fires).
            c.election_ticks = 2;
            c.heartbeat_ticks = 1;
            c.max_batch = 1;
            c.max_inflight = 2;
            c.pre_vote = self.pre_vote;
            c.check_quorum = self.check_quorum;
            c.bugs = self.bugs;
            // Under symmetry, one seed for all: a renamed node must draw what the node of
            // that name draws (symmetry.rs). Timeouts mean little here anyway (timers fire at
            // any time); walks keep each node's own seed.
            if symmetric {
                c.seed = 1;
            }
            actors.push(RaftActor::Node(NodeActor {
                config: c,
                nodes: n,
                clients,
                heartbeat: self.heartbeat,
                abstract_clock: self.abstract_clock,
                membership: self.membership,
                intern: exhaustive,
                grow: self.grow,
                snapshots: self.snapshots,
            }));
        }
        for k in 0..clients {
            let ops = self.client_ops / clients + usize::from(k < self.client_ops % clients);
            actors.push(RaftActor::Client(ClientActor {
                nodes: n,
                script: register::script(k, ops),
            }));
        }
        let cfg = ModelCfg {
            nodes: n,
            clients,
            max_term: self.max_term,
            max_log: self.max_log,
            max_restarts: self.max_crashes,
            spare: self.grow.map(|_| n as raft::NodeId),
            cancel: properties::Cancel::default(),
        };
        let network = if self.duplicating {
            Network::new_unordered_duplicating([])
        } else {
            Network::new_unordered_nonduplicating([])
        };
        let concurrent = if self.max_crashes == 0 {
            0
        } else {
            ((n - 1) / 2).max(1)
        };
        let inner = ActorRaftModel::new(cfg, RegisterHistory::new(clients))
            .actors(actors)
            .init_network(network)
            .lossy_network(if self.lossy {
                LossyNetwork::Yes
            } else {
                LossyNetwork::No
            })
            .max_crashes(concurrent)
            .record_msg_out(|cfg, h, env| state::record_send(h, cfg.nodes, env))
            .record_msg_in(|cfg, h, env| state::record_receive(h, cfg.nodes, env))
            .within_boundary(properties::within_boundary);
        Ok(RaftModel {
            inner,
            symmetry: symmetric,
            starts: None,
        })
    }
}

/// How to search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// Breadth first: complete within the depth bound, shortest counterexamples.
    Bfs,
    /// Depth first: little memory, not complete under a depth bound.
    Dfs,
    /// Random walks from the initial state, seeded, scheduled by kind of step
    /// (see `chooser.rs`).
    Simulation {
        /// The seed of the first walk.
        seed: u64,
    },
}

/// A property that failed, with its path.
#[derive(Clone, Debug)]
pub struct Violation {
    /// The property's name.
    pub property: &'static str,
    /// What is wrong in the last state.
    pub explanation: String,
    /// Steps in the path.
    pub steps: usize,
    /// The path, one line per step.
    pub trace: String,
}

/// What a check found.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// States generated, repeats included.
    pub states: usize,
    /// Distinct states.
    pub unique: usize,
    /// The deepest path explored (stateright counts the initial state as depth 1).
    pub depth: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Broken properties.
    pub violations: Vec<Violation>,
    /// Whether some state committed a value (the `sometimes` property).
    pub committed: bool,
    /// The coverage milestones some state reached (`properties::MILESTONES`).
    pub milestones: Vec<&'static str>,
    /// Whether the search stopped on its timeout.
    pub timed_out: bool,
    /// The states the second phase of the Figure 8 walks started from (`split.rs`); 0 when
    /// there was none (other searches, or a find in the first phase).
    pub starts: usize,
}

impl Outcome {
    /// States per second.
    pub fn rate(&self) -> f64 {
        self.states as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs the search on two threads (this machine's cores) and collects what it found; stops
/// at the first violation.
pub fn check(
    bounds: &Bounds,
    search: Search,
    timeout: Option<Duration>,
) -> Result<Outcome, BoundsError> {
    check_with_threads(bounds, search, timeout, 2)
}

/// [`check`] on `threads` threads. One thread makes BFS strictly level by level, so its
/// state count is the same on every run (with more, a state first reached by a longer path
/// may be counted at the depth bound instead of expanded).
pub fn check_with_threads(
    bounds: &Bounds,
    search: Search,
    timeout: Option<Duration>,
    threads: usize,
) -> Result<Outcome, BoundsError> {
    check_cancellable(
        bounds,
        search,
        timeout,
        threads,
        properties::Cancel::default(),
    )
}

/// [`check_with_threads`] that also stops soon after `cancel` is set.
pub fn check_cancellable(
    bounds: &Bounds,
    search: Search,
    timeout: Option<Duration>,
    threads: usize,
    cancel: properties::Cancel,
) -> Result<Outcome, BoundsError> {
    let mut model = bounds.model_for(search)?;
    model.inner.cfg.cancel = cancel;
    let cfg = model.cfg().clone();
    let replay = model.clone();
    let start = Instant::now();
    let Run {
        states,
        unique,
        depth,
        discoveries,
        starts,
    } = match search {
        Search::Simulation { seed } if bounds.walk == WalkShape::Figure8 => {
            split::walks(&model, bounds, seed, timeout, threads)
        }
        _ => run(model, bounds, search, timeout, threads, None),
    };
    let elapsed = start.elapsed();
    let mut violations = Vec::new();
    let mut committed = false;
    let mut milestones = Vec::new();
    for (name, path) in discoveries {
        if name == COMMITTED {
            committed = true;
            continue;
        }
        if name == CANCELLED {
            continue;
        }
        if properties::MILESTONES.iter().any(|(m, _)| *m == name) {
            milestones.push(name);
            continue;
        }
        let mut steps = replay.concrete(path);
        // A walk's path is replayed from its choices and may run past the first state that
        // breaks the property: end it there.
        if let Some(first) = steps
            .iter()
            .position(|(s, _)| properties::explain(&cfg, name, s).is_some())
        {
            steps.truncate(first + 1);
        }
        let last = &steps.last().expect("a path has a state").0;
        let explanation = properties::explain(&cfg, name, last).unwrap_or_default();
        let (trace, steps) = trace::describe_path(&cfg, &steps);
        violations.push(Violation {
            property: name,
            explanation,
            steps,
            trace,
        });
    }
    violations.sort_by_key(|v| v.steps);
    let timed_out = timeout.is_some_and(|t| elapsed >= t);
    Ok(Outcome {
        states,
        unique,
        depth,
        elapsed,
        violations,
        committed,
        milestones,
        timed_out,
        starts,
    })
}

/// A path: each state with the step taken from it (none from the last).
type Steps = Vec<(RaftState, Option<trace::Action>)>;

/// What one stateright search found, before it is read.
struct Run {
    states: usize,
    unique: usize,
    depth: usize,
    discoveries: Vec<(&'static str, Steps)>,
    /// The states a second phase of walks started from (`split.rs`; 0 for other searches).
    starts: usize,
}

/// One stateright search of `model`; `collect` is where the first phase of the Figure 8
/// walks keeps its states (`split.rs`).
fn run(
    model: RaftModel,
    bounds: &Bounds,
    search: Search,
    timeout: Option<Duration>,
    threads: usize,
    collect: Option<std::sync::Arc<chooser::Prefixes>>,
) -> Run {
    let scheduler = chooser::Scheduler {
        nodes: model.cfg().nodes,
        model: std::sync::Arc::new(model.clone()),
        shape: bounds.walk,
        collect,
    };
    let mut failures: std::collections::BTreeSet<&'static str> =
        properties::SAFETY.iter().map(|(n, _)| *n).collect();
    failures.insert(CANCELLED);
    let mut builder = model
        .checker()
        .threads(threads.max(1))
        .finish_when(HasDiscoveries::AnyOf(failures));
    // stateright checks the states above its target depth only (the initial state is at
    // depth 1): add what makes `depth` mean "every state within `depth` steps is checked".
    if let Some(d) = bounds.depth {
        let extra = if matches!(search, Search::Simulation { .. }) {
            1
        } else {
            2
        };
        builder = builder.target_max_depth(d + extra);
    }
    if let Some(t) = timeout {
        builder = builder.timeout(t);
    }
    match search {
        Search::Bfs => finish(builder.spawn_bfs().join()),
        Search::Dfs => finish(builder.spawn_dfs().join()),
        Search::Simulation { seed } => finish(builder.spawn_simulation(seed, scheduler).join()),
    }
}

fn finish(c: impl Checker<RaftModel>) -> Run {
    let discoveries = c.discoveries().into_iter();
    Run {
        states: c.state_count(),
        unique: c.unique_state_count(),
        depth: c.max_depth(),
        discoveries: discoveries.map(|(n, p)| (n, p.into_vec())).collect(),
        starts: 0,
    }
}

/// Serves stateright's web explorer of the model on `addr` (blocks).
pub fn explore(bounds: &Bounds, addr: std::net::SocketAddr) -> Result<(), BoundsError> {
    // Without symmetry: the explorer shows states as they are, names included.
    let model = bounds.model_for(Search::Simulation { seed: 0 })?;
    let _checker = model.checker().threads(2).serve(addr);
    Ok(())
}
