//! `checker model-check`: the command line of the model check (flags, report, exit code).

use super::portfolio::{self, Leg};
use super::{check, explore, Bounds, Grow, Outcome, Search, WalkShape};
use raft::Bugs;
use std::net::SocketAddr;
use std::time::Duration;

/// Arguments of `checker model-check`.
///
/// With no flag but `--bug`, `--seed` and `--timeout`, the command runs the portfolio (see
/// `portfolio.rs`); any flag that picks a search or a bound runs that one search instead.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Raft nodes [default: 3].
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Breadth-first search: complete within the depth bound.
    #[arg(long, group = "search")]
    pub bfs: bool,
    /// Depth-first search: little memory, not complete under a depth bound.
    #[arg(long, group = "search")]
    pub dfs: bool,
    /// Seeded random walks (use --seed, --timeout and --depth).
    #[arg(long, group = "search")]
    pub simulation: bool,
    /// Seed of the simulation, or of the portfolio's walks [default: drawn and printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Check every state within this many steps (0: no bound) [default: 8].
    #[arg(long)]
    pub depth: Option<usize>,
    /// Highest term explored [default: 2].
    #[arg(long)]
    pub max_term: Option<u64>,
    /// Longest log explored [default: 2].
    #[arg(long)]
    pub max_log: Option<u64>,
    /// Node restarts in total [default: 1].
    #[arg(long)]
    pub max_crashes: Option<u32>,
    /// Client operations in total (write, read, cas, read, … per client) [default: 1].
    #[arg(long)]
    pub client_ops: Option<usize>,
    /// Clients [default: 1].
    #[arg(long)]
    pub clients: Option<usize>,
    /// The network may lose messages.
    #[arg(long)]
    pub lossy: bool,
    /// The network may deliver a message more than once.
    #[arg(long)]
    pub duplicating: bool,
    /// No heartbeat timer on leaders.
    #[arg(long)]
    pub no_heartbeat: bool,
    /// Run a pre-vote round before elections.
    #[arg(long)]
    pub pre_vote: bool,
    /// Leave the core's clock (elapsed ticks, timeout draws) out of the state's identity.
    #[arg(long)]
    pub abstract_clock: bool,
    /// The membership workload: leaders may propose removing a voter at any time (needed
    /// for `--bug unsafe-membership` to show in a single search).
    #[arg(long)]
    pub membership: bool,
    /// The odds of random walks: swarm (calm runs with clients) or elections (leaders
    /// cut off in turn, Figure 8) [default: swarm].
    #[arg(long, value_enum)]
    pub walk: Option<WalkShape>,
    /// The growth workload: one spare node more, which leaders may add as a voter
    /// (add-voter) or through a joint configuration (joint).
    #[arg(long, value_enum)]
    pub grow: Option<Grow>,
    /// Check-quorum: leaders step down without a quorum, followers with a leader ignore
    /// elections.
    #[arg(long)]
    pub check_quorum: bool,
    /// Nodes may compact their applied log into a snapshot at any time (InstallSnapshot).
    #[arg(long)]
    pub snapshots: bool,
    /// Keep every state, not one per renaming of the nodes (exhaustive searches only).
    #[arg(long)]
    pub no_symmetry: bool,
    /// Bug switches of the core, comma-separated (commit-old-term, forget-vote, …).
    #[arg(long, default_value = "none")]
    pub bug: Bugs,
    /// Serve stateright's web explorer on this loopback address instead of checking.
    #[arg(long, value_name = "ADDR")]
    pub explore: Option<SocketAddr>,
    /// Stop after this many seconds (the explorer too) [default: 60 for the portfolio,
    /// none for a single search].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
}

impl Args {
    /// The bounds these flags describe.
    pub fn bounds(&self) -> Bounds {
        let d = Bounds::default();
        Bounds {
            nodes: self.nodes.unwrap_or(d.nodes),
            max_term: self.max_term.unwrap_or(d.max_term),
            max_log: self.max_log.unwrap_or(d.max_log),
            max_crashes: self.max_crashes.unwrap_or(d.max_crashes),
            client_ops: self.client_ops.unwrap_or(d.client_ops),
            clients: self.clients.unwrap_or(d.clients),
            depth: match self.depth {
                Some(0) => None,
                Some(n) => Some(n),
                None => d.depth,
            },
            lossy: self.lossy,
            duplicating: self.duplicating,
            heartbeat: !self.no_heartbeat,
            pre_vote: self.pre_vote,
            bugs: self.bug,
            abstract_clock: self.abstract_clock,
            membership: self.membership,
            symmetry: !self.no_symmetry,
            walk: self.walk.unwrap_or_default(),
            grow: self.grow,
            check_quorum: self.check_quorum,
            snapshots: self.snapshots,
        }
    }

    /// Whether the flags pick nothing but bugs, a seed and a time: then the portfolio runs.
    pub fn is_portfolio(&self) -> bool {
        let Args {
            nodes,
            bfs,
            dfs,
            simulation,
            seed: _,
            depth,
            max_term,
            max_log,
            max_crashes,
            client_ops,
            clients,
            lossy,
            duplicating,
            no_heartbeat,
            pre_vote,
            abstract_clock,
            membership,
            no_symmetry,
            walk,
            grow,
            check_quorum,
            snapshots,
            bug: _,
            explore,
            timeout: _,
        } = self;
        let numbers = [nodes.is_some(), depth.is_some(), max_term.is_some()];
        let more = [
            max_log.is_some(),
            max_crashes.is_some(),
            client_ops.is_some(),
        ];
        let switches = [*bfs, *dfs, *simulation, *lossy, *duplicating, *no_heartbeat];
        let others = [*pre_vote, *abstract_clock, *membership, *no_symmetry];
        let others = [
            others[0],
            others[1],
            others[2],
            others[3],
            explore.is_some() || walk.is_some(),
        ];
        let coverage = [grow.is_some(), *check_quorum, *snapshots];
        !(numbers.iter().chain(&more).chain(&switches).chain(&others))
            .chain(&coverage)
            .any(|x| *x)
            && clients.is_none()
    }

    fn search(&self) -> Search {
        if self.dfs {
            Search::Dfs
        } else if self.simulation {
            Search::Simulation {
                seed: self.seed.unwrap_or(0),
            }
        } else {
            Search::Bfs
        }
    }
}

/// Prints the outcome: counts, rate, depth, then each counterexample as a trace.
pub fn print(outcome: &Outcome) {
    println!(
        "states explored: {}  unique: {}  states/s: {:.0}  depth: {}  time: {:.2} s{}",
        outcome.states,
        outcome.unique,
        outcome.rate(),
        outcome.depth,
        outcome.elapsed.as_secs_f64(),
        if outcome.timed_out {
            "  (stopped by --timeout)"
        } else {
            ""
        }
    );
    if outcome.starts > 0 {
        println!(
            "second phase: walks from {} kept states where an older term's entry is at risk",
            outcome.starts
        );
    }
    // The shortest counterexample in full; the others (found on other paths) by name.
    for (i, v) in outcome.violations.iter().enumerate() {
        println!(
            "VIOLATION of {} after {} steps: {}",
            v.property, v.steps, v.explanation
        );
        if i == 0 {
            print!("{}", v.trace);
        }
    }
    for m in &outcome.milestones {
        println!("reached: {m}");
    }
    if outcome.violations.is_empty() {
        if outcome.committed {
            println!("no violation; some state commits a value");
        } else {
            println!("no state commits a value: the bounds are too small for a meaningful check");
        }
    }
}

/// Runs the subcommand; the process exit code: 0 no violation, 1 a violation (or a check
/// in which nothing ever commits), 2 bad usage.
pub fn run(args: &Args) -> u8 {
    let bounds = args.bounds();
    if let Err(e) = bounds.validate() {
        eprintln!("model-check: {e}");
        return 2;
    }
    let timeout = match args.timeout {
        Some(t) if !(t > 0.0 && t.is_finite()) => {
            eprintln!("model-check: --timeout {t}: must be a positive number of seconds");
            return 2;
        }
        t => t.map(Duration::from_secs_f64),
    };
    if let Some(addr) = args.explore {
        return serve(&bounds, addr, timeout);
    }
    if args.is_portfolio() {
        return run_portfolio(args, timeout.unwrap_or(Duration::from_secs(60)));
    }
    println!(
        "model-check: {} nodes, max term {}, max log {}, {} restart(s), {} client op(s), depth {}, {}, bugs: {}{}",
        bounds.nodes,
        bounds.max_term,
        bounds.max_log,
        bounds.max_crashes,
        bounds.client_ops,
        bounds.depth.map_or("unbounded".into(), |d| d.to_string()),
        match args.search() {
            Search::Bfs => "bfs".to_string(),
            Search::Dfs => "dfs".to_string(),
            Search::Simulation { seed } => format!("simulation seed {seed}"),
        },
        if bounds.bugs.is_empty() {
            "none".to_string()
        } else {
            bounds.bugs.to_string()
        },
        if bounds.membership {
            ", membership workload"
        } else {
            ""
        }
    );
    match check(&bounds, args.search(), timeout) {
        Ok(outcome) => {
            print(&outcome);
            let vacuous = !outcome.committed && !outcome.timed_out;
            u8::from(!outcome.violations.is_empty() || vacuous)
        }
        Err(e) => {
            eprintln!("model-check: {e}");
            2
        }
    }
}

/// The portfolio: legs printed as they end, then the verdict and the replay command.
fn run_portfolio(args: &Args, budget: Duration) -> u8 {
    let seed = args.seed.unwrap_or_else(|| {
        // Any varying number will do: it is printed, and --seed replays the same legs.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map_or(1, |d| d.as_nanos() as u64) % 1_000_000
    });
    let bugs = if args.bug.is_empty() {
        "none".to_string()
    } else {
        args.bug.to_string()
    };
    println!(
        "model-check: portfolio (bfs, dfs and walks on two workers), bugs: {bugs}, budget {:.0} s, seed {seed}",
        budget.as_secs_f64()
    );
    let report = |leg: &Leg, o: &Outcome, at: Duration| {
        let verdict = match o.violations.first() {
            Some(v) => format!("VIOLATION of {}", v.property),
            None => "nothing".to_string(),
        };
        println!(
            "[{:5.1} s] {} ({}): {} states in {:.1} s, {verdict}",
            at.as_secs_f64(),
            leg.name,
            match leg.search {
                Search::Bfs => "bfs".to_string(),
                Search::Dfs => "dfs".to_string(),
                Search::Simulation { seed } => format!("seed {seed}"),
            },
            o.states,
            o.elapsed.as_secs_f64()
        );
    };
    let hunt = portfolio::hunt(args.bug, budget, seed, &report);
    println!(
        "portfolio: {} legs, {} states, {:.1} s",
        hunt.legs,
        hunt.states,
        hunt.elapsed.as_secs_f64()
    );
    match hunt.found {
        Some((leg, outcome)) => {
            println!("found by: {}", leg.name);
            print(&outcome);
            println!("replay: {}", leg.command());
            1
        }
        None if hunt.committed => {
            println!("no violation; some state commits a value");
            0
        }
        None => {
            println!("no state commits a value: the check was vacuous");
            1
        }
    }
}

/// The explorer, on loopback only, stopped by `timeout` if given.
fn serve(bounds: &Bounds, addr: SocketAddr, timeout: Option<Duration>) -> u8 {
    if !addr.ip().is_loopback() {
        eprintln!("model-check: --explore {addr}: only loopback addresses (127.0.0.0/8, ::1)");
        return 2;
    }
    // stateright's server panics if it cannot bind: find out first.
    if let Err(e) = std::net::TcpListener::bind(addr) {
        eprintln!("model-check: --explore {addr}: cannot listen: {e}");
        return 2;
    }
    println!("model-check: explorer on http://{addr}/");
    let bounds = bounds.clone();
    std::thread::spawn(move || explore(&bounds, addr));
    match timeout {
        Some(t) => std::thread::sleep(t),
        None => loop {
            std::thread::park();
        },
    }
    0
}
