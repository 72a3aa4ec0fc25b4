//! The default hunt: a portfolio of searches sharing one time budget, so that a user who
//! does not know which bug they wrote needs no flags to find it.
//!
//! Each bug of the core shows in a different corner of the model (BENCHMARKS.md lists the
//! shape each needs): short paths through a crash (BFS at the default bounds), a stale read
//! after two client operations (DFS or walks with two operations), a stale AppendEntries
//! delivered twice (walks on a duplicating network), Figure 8 (walks up to term 4 without
//! heartbeats or clients, delivering election traffic first, then walking again from the
//! states where an older term's entry is at risk: `WalkShape::Figure8`, `split.rs`),
//! unsafe membership changes (walks with the membership workload). Short coverage legs run
//! the optional parts of the protocol (check-quorum with pre-vote, snapshots, adding a
//! voter, joint consensus). The portfolio is those shapes, run as legs of a few seconds
//! each on two workers until the budget runs out or a leg finds a violation; the Figure 8
//! leg, the rarest find, runs first and twice per round.
//!
//! Why two workers of one thread each, rather than one search on two threads: stateright
//! 0.31 starts every simulation thread from the same seed, so two threads repeat each
//! other's walks; two legs side by side each make full use of their core. The BFS and DFS
//! legs are the exception (two threads: see `hunt`), so the first seconds run three threads
//! on two cores.
//!
//! Why legs of a few seconds: a random walk loses nothing by being cut (each walk starts
//! afresh from the initial state), and rounds of short legs share the time fairly. When one
//! leg finds a violation, the other worker's leg is cancelled (see `properties::Cancel`).
//! Every leg draws its own seed from the portfolio's seed and prints it, and the leg that
//! finds a violation prints the exact command that replays it.

use super::properties::Cancel;
use super::{check_cancellable, Bounds, Grow, Outcome, Search, WalkShape};
use clap::ValueEnum;
use raft::Bugs;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One search of the portfolio: a shape of the model, how to search it, for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leg {
    /// What the shape is for.
    pub name: &'static str,
    /// The model's bounds.
    pub bounds: Bounds,
    /// The search, with its seed for walks.
    pub search: Search,
    /// The longest this leg runs.
    pub slice: Duration,
}

impl Leg {
    /// The command line that runs this leg alone (and replays what it found).
    pub fn command(&self) -> String {
        let d = Bounds::default();
        let b = &self.bounds;
        let mut out = String::from("checker model-check");
        let mut flag = |text: String| {
            out.push(' ');
            out.push_str(&text);
        };
        if !b.bugs.is_empty() {
            flag(format!("--bug {}", b.bugs));
        }
        match self.search {
            Search::Bfs => flag("--bfs".into()),
            Search::Dfs => flag("--dfs".into()),
            Search::Simulation { seed } => flag(format!("--simulation --seed {seed}")),
        }
        let numbers = [
            ("nodes", b.nodes as u64, d.nodes as u64),
            ("max-term", b.max_term, d.max_term),
            ("max-log", b.max_log, d.max_log),
            (
                "max-crashes",
                u64::from(b.max_crashes),
                u64::from(d.max_crashes),
            ),
            ("client-ops", b.client_ops as u64, d.client_ops as u64),
            ("clients", b.clients as u64, d.clients as u64),
        ];
        for (name, value, default) in numbers {
            if value != default {
                flag(format!("--{name} {value}"));
            }
        }
        if b.depth != d.depth {
            flag(format!("--depth {}", b.depth.unwrap_or(0)));
        }
        if let Some(g) = b.grow {
            flag(format!(
                "--grow {}",
                g.to_possible_value().expect("named").get_name()
            ));
        }
        if b.walk != d.walk {
            flag(format!(
                "--walk {}",
                b.walk.to_possible_value().expect("named").get_name()
            ));
        }
        let switches = [
            ("lossy", b.lossy),
            ("duplicating", b.duplicating),
            ("no-heartbeat", !b.heartbeat),
            ("pre-vote", b.pre_vote),
            ("abstract-clock", b.abstract_clock),
            ("membership", b.membership),
            ("no-symmetry", !b.symmetry),
            ("check-quorum", b.check_quorum),
            ("snapshots", b.snapshots),
        ];
        for (name, on) in switches {
            if on {
                flag(format!("--{name}"));
            }
        }
        out
    }
}

/// One round of walks, a leg per shape, for bug switches `bugs`, with seeds from `seeds`.
pub fn legs(bugs: Bugs, seeds: &mut SeedStream) -> Vec<Leg> {
    let base = Bounds {
        bugs,
        ..Bounds::default()
    };
    let deep = Bounds {
        max_term: 3,
        max_log: 3,
        depth: Some(60),
        ..base.clone()
    };
    let secs = Duration::from_secs;
    let mut walk = |name, bounds, slice| Leg {
        name,
        bounds,
        search: Search::Simulation { seed: seeds.draw() },
        slice: secs(slice),
    };
    // Why these odds: the two deep shapes need a stale message to stay away for many steps
    // (a leader's AppendEntries in Figure 8, an old AppendEntries delivered again for
    // truncate-matching); a lossy network lets a walk drop it, which found both 3 to 5
    // times sooner than waiting for it to be delivered late (BENCHMARKS.md).
    let figure8 = Bounds {
        max_term: 4,
        max_log: 2,
        max_crashes: 0,
        client_ops: 0,
        heartbeat: false,
        lossy: true,
        depth: Some(40),
        walk: WalkShape::Figure8,
        ..deep.clone()
    };
    const FIGURE8: &str = "walks, Figure 8 (terms to 4, lossy, no heartbeat, no client, elections \
         first, then from the states where an older term's entry is at risk)";
    // Why Figure 8 twice per round, 8 s each: it is the rarest find. Walks from the initial
    // state needed about two million walk states per find (BENCHMARKS.md); the two-phase
    // shape (`split.rs`) finds it about half a second into its second phase, which starts
    // after a fifth of the leg (1.6 s), in every one of 20 measured one-thread 8 s legs.
    // Every other switch shows within the first slice or two of its own shape (BFS, two
    // client operations, the membership workload), which the shorter Figure 8 legs reach
    // sooner than the 15 s legs before them did.
    vec![
        walk(FIGURE8, figure8.clone(), 8),
        walk(
            "walks, two client operations",
            Bounds {
                client_ops: 2,
                ..deep.clone()
            },
            4,
        ),
        walk(
            "walks, membership workload",
            Bounds {
                max_log: 4,
                max_crashes: 0,
                membership: true,
                depth: Some(40),
                ..deep.clone()
            },
            2,
        ),
        // Coverage: the optional parts of the protocol, in short legs (each is clean on the
        // correct core; a bug switch may still show through them).
        walk(
            "walks, check-quorum and pre-vote",
            Bounds {
                check_quorum: true,
                pre_vote: true,
                ..deep.clone()
            },
            2,
        ),
        walk(
            "walks, snapshots and InstallSnapshot",
            Bounds {
                max_log: 4,
                client_ops: 2,
                snapshots: true,
                depth: Some(40),
                ..deep.clone()
            },
            2,
        ),
        walk(
            "walks, adding a voter through a joint configuration",
            Bounds {
                max_log: 4,
                max_crashes: 0,
                grow: Some(Grow::Joint),
                depth: Some(40),
                ..deep.clone()
            },
            2,
        ),
        walk(FIGURE8, figure8, 8),
        walk(
            "walks, adding a voter",
            Bounds {
                max_log: 4,
                max_crashes: 0,
                grow: Some(Grow::AddVoter),
                depth: Some(40),
                ..deep.clone()
            },
            2,
        ),
        walk(
            "walks, duplicating lossy network",
            Bounds {
                duplicating: true,
                lossy: true,
                depth: Some(40),
                ..deep
            },
            6,
        ),
    ]
}

/// The exhaustive legs: BFS at the default bounds (complete there), then DFS deeper.
pub fn exhaustive(bugs: Bugs) -> Vec<Leg> {
    let base = Bounds {
        bugs,
        ..Bounds::default()
    };
    vec![
        Leg {
            name: "bfs, default bounds",
            bounds: base.clone(),
            search: Search::Bfs,
            slice: Duration::from_secs(20),
        },
        Leg {
            name: "dfs, two client operations, terms to 3, depth 20",
            bounds: Bounds {
                client_ops: 2,
                max_term: 3,
                max_log: 3,
                depth: Some(20),
                ..base
            },
            search: Search::Dfs,
            slice: Duration::from_secs(3),
        },
    ]
}

/// Seeds for the walks, drawn from one seed (splitmix64), so a whole portfolio run
/// replays from `--seed`.
pub struct SeedStream(u64);

impl SeedStream {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> SeedStream {
        SeedStream(seed)
    }

    /// The next seed (kept below 2^53 so it reads well and survives any JSON tool).
    pub fn draw(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) >> 11
    }
}

/// What the portfolio found.
#[derive(Debug)]
pub struct Hunt {
    /// The leg that found a violation, with its outcome (the first find wins).
    pub found: Option<(Leg, Outcome)>,
    /// Legs run.
    pub legs: usize,
    /// States generated over all legs.
    pub states: usize,
    /// Whether some leg committed a value.
    pub committed: bool,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs the portfolio for `bugs` within `budget` on two workers; `seed` draws the walks'
/// seeds. `report` is called as each leg ends (for progress lines).
pub fn hunt(
    bugs: Bugs,
    budget: Duration,
    seed: u64,
    report: &(dyn Fn(&Leg, &Outcome, Duration) + Sync),
) -> Hunt {
    let start = Instant::now();
    let deadline = start + budget;
    let mut seeds = SeedStream::new(seed);
    // First the BFS (on one worker), the first round of walks and the DFS (on the other).
    let mut first: VecDeque<Leg> = exhaustive(bugs).into();
    let dfs = first.pop_back().expect("a dfs leg");
    first.extend(legs(bugs, &mut seeds));
    first.push_back(dfs);
    let queue = Mutex::new((first, seeds));
    let stop = Arc::new(AtomicBool::new(false));
    let found: Mutex<Option<(Leg, Outcome)>> = Mutex::new(None);
    let (legs_run, states) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let committed = AtomicBool::new(false);
    let next_leg = || -> Leg {
        let mut q = queue.lock().expect("queue");
        let (legs_left, seeds) = &mut *q;
        if legs_left.is_empty() {
            // Another round of walks, with fresh seeds.
            legs_left.extend(legs(bugs, seeds));
        }
        legs_left.pop_front().expect("a round has legs")
    };
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let now = Instant::now();
                if stop.load(Ordering::SeqCst) || now + Duration::from_millis(200) >= deadline {
                    return;
                }
                let mut leg = next_leg();
                leg.slice = leg.slice.min(deadline - now);
                // stateright 0.31's BFS and DFS notice their timeout only when a thread
                // asks for more work, which one thread alone never does: they get two.
                let threads = if matches!(leg.search, Search::Simulation { .. }) {
                    1
                } else {
                    2
                };
                let cancel = Cancel(Some(Arc::clone(&stop)));
                let outcome =
                    check_cancellable(&leg.bounds, leg.search, Some(leg.slice), threads, cancel)
                        .expect("the portfolio's bounds are valid");
                legs_run.fetch_add(1, Ordering::SeqCst);
                states.fetch_add(outcome.states, Ordering::SeqCst);
                if outcome.committed {
                    committed.store(true, Ordering::SeqCst);
                }
                report(&leg, &outcome, start.elapsed());
                if !outcome.violations.is_empty() {
                    stop.store(true, Ordering::SeqCst);
                    found.lock().expect("found").get_or_insert((leg, outcome));
                    return;
                }
            });
        }
    });
    Hunt {
        found: found.into_inner().expect("found"),
        legs: legs_run.into_inner(),
        states: states.into_inner(),
        committed: committed.into_inner(),
        elapsed: start.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Bug;

    #[test]
    fn a_leg_prints_the_flags_that_rebuild_it() {
        let mut seeds = SeedStream::new(7);
        let all = legs(Bugs::only(Bug::CommitOldTerm), &mut seeds);
        let fig8 = all.iter().find(|l| l.name.contains("Figure 8")).unwrap();
        let Search::Simulation { seed } = fig8.search else {
            panic!("a walk")
        };
        assert_eq!(
            fig8.command(),
            format!(
                "checker model-check --bug commit-old-term --simulation --seed {seed} \
                 --max-term 4 --max-crashes 0 --client-ops 0 --depth 40 --walk figure8 \
                 --lossy --no-heartbeat"
            )
        );
        assert_eq!(
            exhaustive(Bugs::none())[0].command(),
            "checker model-check --bfs"
        );
    }

    /// The printed command, parsed by the real flags, rebuilds the leg exactly.
    #[test]
    fn every_leg_command_parses_back_to_the_leg() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: crate::model_check::cli::Args,
        }
        let bugs = Bugs::only(Bug::TruncateMatching);
        let all = exhaustive(bugs)
            .into_iter()
            .chain(legs(bugs, &mut SeedStream::new(3)));
        for leg in all {
            let cmd = leg.command();
            let words = cmd.split(' ').skip(1);
            let cli = <Cli as clap::Parser>::try_parse_from(words).expect("parses");
            assert_eq!(cli.args.bounds(), leg.bounds, "{cmd}");
            assert!(!cli.args.is_portfolio(), "{cmd}");
        }
    }

    #[test]
    fn seeds_differ_and_replay() {
        let a: Vec<u64> = {
            let mut s = SeedStream::new(1);
            (0..4).map(|_| s.draw()).collect()
        };
        let mut s = SeedStream::new(1);
        assert_eq!(a, (0..4).map(|_| s.draw()).collect::<Vec<_>>());
        assert!(a.windows(2).all(|w| w[0] != w[1]));
        assert!(a.iter().all(|&x| x < 1 << 53));
    }
}
