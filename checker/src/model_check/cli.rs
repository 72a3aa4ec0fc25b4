//! `checker model-check`: the command line of the model check (flags, report, exit code).

use super::{check, explore, Bounds, Outcome, Search};
use raft::Bugs;
use std::net::SocketAddr;
use std::time::Duration;

/// Arguments of `checker model-check`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Raft nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Breadth-first search (the default): complete within the depth bound.
    #[arg(long, group = "search")]
    pub bfs: bool,
    /// Depth-first search: little memory, not complete under a depth bound.
    #[arg(long, group = "search")]
    pub dfs: bool,
    /// Seeded random walks (use --seed, --timeout and --depth).
    #[arg(long, group = "search")]
    pub simulation: bool,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Check every state within this many steps (0: no bound).
    #[arg(long, default_value_t = 8)]
    pub depth: usize,
    /// Highest term explored.
    #[arg(long, default_value_t = 2)]
    pub max_term: u64,
    /// Longest log explored.
    #[arg(long, default_value_t = 2)]
    pub max_log: u64,
    /// Node restarts in total.
    #[arg(long, default_value_t = 1)]
    pub max_crashes: u32,
    /// Client operations in total (write, read, cas, read, … per client).
    #[arg(long, default_value_t = 1)]
    pub client_ops: usize,
    /// Clients.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
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
    /// Leave the core's clock fields (elapsed ticks, timeout draws) out of the state's
    /// identity: fewer states, slower per state.
    #[arg(long)]
    pub abstract_clock: bool,
    /// The membership workload: leaders may propose removing a voter at any time (needed
    /// for `--bug unsafe-membership` to show).
    #[arg(long)]
    pub membership: bool,
    /// Bug switches of the core, comma-separated (commit-old-term, forget-vote, …).
    #[arg(long, default_value = "none")]
    pub bug: Bugs,
    /// Serve stateright's web explorer on this loopback address instead of checking.
    #[arg(long, value_name = "ADDR")]
    pub explore: Option<SocketAddr>,
    /// Stop after this many seconds (the explorer too).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
}

impl Args {
    /// The bounds these flags describe.
    pub fn bounds(&self) -> Bounds {
        Bounds {
            nodes: self.nodes,
            max_term: self.max_term,
            max_log: self.max_log,
            max_crashes: self.max_crashes,
            client_ops: self.client_ops,
            clients: self.clients,
            depth: (self.depth > 0).then_some(self.depth),
            lossy: self.lossy,
            duplicating: self.duplicating,
            heartbeat: !self.no_heartbeat,
            pre_vote: self.pre_vote,
            bugs: self.bug,
            abstract_clock: self.abstract_clock,
            membership: self.membership,
        }
    }

    fn search(&self) -> Search {
        if self.dfs {
            Search::Dfs
        } else if self.simulation {
            Search::Simulation { seed: self.seed }
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
