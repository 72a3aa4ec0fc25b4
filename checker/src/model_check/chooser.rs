//! The scheduler of random walks: picks the kind of step first (a delivery, a timeout, a
//! crash or restart, a loss), then one step of that kind, with odds drawn anew per walk;
//! and now and then cuts one node off (its messages wait) for a while, a partition made of
//! delays alone.
//!
//! Why not stateright's uniform chooser: in a Raft state most enabled steps are deliveries,
//! so a uniform walk almost never times a node out while messages are still in flight, and
//! the deep bugs (Figure 8, stale reads after a leader change) need exactly that. Drawing the
//! odds per walk ("swarm" testing) covers both calm walks and walks full of elections.
//!
//! It only picks steps that change the state: stateright 0.31 records the index of every
//! step a walk tries, no-ops included, into a list it shrinks as it tries, and rebuilds the
//! path from those indices against the full list, so a walk that tried a no-op was replayed
//! as a different path (or the rebuild panicked). Picking a real step first keeps the
//! recorded indices exact.

use super::properties::{self, ModelCfg, RaftModel};
use super::state::Msg;
use super::trace::Action;
use raft::MessageBody;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stateright::actor::{ActorModelAction, Id};
use stateright::{Chooser, Model};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Picks steps by kind, with per-walk odds.
#[derive(Clone)]
pub struct Scheduler {
    /// Node actors (ids `0..nodes`); the others are clients.
    pub nodes: usize,
    /// The model, to tell real steps from no-ops.
    pub model: Arc<RaftModel>,
    /// The ranges the odds are drawn from.
    pub shape: WalkShape,
    /// Where walks keep the states they pass that a predicate picks, with the steps that
    /// reached them (the first phase of `WalkShape::Figure8`, `split.rs`); `None` otherwise.
    pub collect: Option<Arc<Prefixes>>,
}

/// The states walks keep: those `pick` picks, at most one per walk (so that the states kept
/// come from many walks), each with the steps that reached it. Once `enough` are kept, or
/// `outer` is set, it sets `done` (the flag of the collecting search's own `Cancel`).
pub struct Prefixes {
    pick: fn(&ModelCfg, &super::RaftState) -> bool,
    enough: usize,
    outer: properties::Cancel,
    done: Arc<AtomicBool>,
    kept: Mutex<Vec<(super::RaftState, Vec<Action>)>>,
}

impl Prefixes {
    /// Keeps up to `enough` states `pick` picks; stops the search (through `done`) then,
    /// or when `outer` is set.
    pub fn new(
        pick: fn(&ModelCfg, &super::RaftState) -> bool,
        enough: usize,
        outer: properties::Cancel,
        done: Arc<AtomicBool>,
    ) -> Prefixes {
        Prefixes {
            pick,
            enough,
            outer,
            done,
            kept: Mutex::new(Vec::new()),
        }
    }

    /// Looks at one state of a walk (reached by `path`); keeps it if it is picked and the
    /// walk gave none yet (`gave` then set).
    fn offer(&self, cfg: &ModelCfg, state: &super::RaftState, path: &[Action], gave: &mut bool) {
        if self.outer.is_set() {
            self.done.store(true, Ordering::Relaxed);
        }
        if *gave || !(self.pick)(cfg, state) {
            return;
        }
        *gave = true;
        let mut kept = self.kept.lock().expect("prefixes");
        if kept.len() < self.enough {
            kept.push((state.clone(), path.to_vec()));
        }
        if kept.len() >= self.enough {
            self.done.store(true, Ordering::Relaxed);
        }
    }

    /// The states kept so far (and forgets them).
    pub fn take(&self) -> Vec<(super::RaftState, Vec<Action>)> {
        std::mem::take(&mut *self.kept.lock().expect("prefixes"))
    }
}

/// The ranges a walk draws its odds from (per mille of steps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum WalkShape {
    /// Timeouts 3–40%, faults (losses, crashes) 0–6%, partitions changing on 0–15% of
    /// steps: mostly deliveries, for the bugs that need a calm run with clients.
    #[default]
    Swarm,
    /// The swarm's odds, plus: a delivery goes to election traffic (RequestVote and its
    /// response) first on 50–95% of steps, so leaders come and go while their
    /// AppendEntries wait, the run of Figure 8 (three leaders in turn, none replicating
    /// before the next is elected).
    Elections,
    /// The elections odds, in two phases (`split.rs`): walks from the initial state keep
    /// the states where a leader holds an uncommitted entry of an older term that another
    /// node holds a newer entry in place of (the setting of Figure 8 (c)), then the rest
    /// of the time walks start from those states.
    Figure8,
}

impl WalkShape {
    /// The ranges: (timeout, fault, repartition).
    fn odds(self) -> [std::ops::Range<u32>; 3] {
        [30..400, 0..60, 0..150]
    }
}

/// One walk's generator and odds (per mille).
pub struct Walk {
    rng: StdRng,
    timeout: u32,
    fault: u32,
    /// Chance per step of a new partition (or of healing).
    repartition: u32,
    /// Chance per delivery that election traffic goes first.
    votes_first: u32,
    /// The node whose messages wait, if any.
    cut: Option<usize>,
    /// The steps taken so far, kept only while collecting (`Scheduler::collect`).
    path: Vec<Action>,
    /// Whether this walk already gave a state to the collection (one per walk, so that
    /// the states kept come from many walks).
    gave: bool,
}

/// Whether a step delivers election traffic (RequestVote, pre-vote, or their responses).
fn is_vote(a: &Action) -> bool {
    let ActorModelAction::Deliver {
        msg: Msg::Raft(w), ..
    } = a
    else {
        return false;
    };
    matches!(
        w.decode().body,
        MessageBody::RequestVote { .. } | MessageBody::RequestVoteResponse { .. }
    )
}

impl Chooser<RaftModel> for Scheduler {
    type State = Walk;

    fn new_state(&self, seed: u64) -> Walk {
        let mut rng = StdRng::seed_from_u64(seed);
        let [timeout, fault, repartition] = self.shape.odds();
        let timeout = rng.gen_range(timeout);
        let fault = rng.gen_range(fault);
        let repartition = rng.gen_range(repartition);
        // Drawn only for this shape, so that swarm walks replay exactly as before it.
        let votes_first = match self.shape {
            WalkShape::Swarm => 0,
            WalkShape::Elections | WalkShape::Figure8 => rng.gen_range(500..950),
        };
        Walk {
            rng,
            timeout,
            fault,
            repartition,
            votes_first,
            cut: None,
            path: Vec::new(),
            gave: false,
        }
    }

    fn choose_initial_state(&self, walk: &mut Walk, initial: &[super::RaftState]) -> usize {
        // Draws only when there is a choice (the second phase of `split.rs`), so that walks
        // from the one initial state replay exactly as before.
        if initial.len() > 1 {
            walk.rng.gen_range(0..initial.len())
        } else {
            0
        }
    }

    fn choose_action(
        &self,
        walk: &mut Walk,
        state: &super::RaftState,
        actions: &[Action],
    ) -> usize {
        let kind = |a: &Action| match a {
            ActorModelAction::Deliver { .. } => 0,
            ActorModelAction::Timeout(..) => 1,
            _ => 2,
        };
        if let Some(prefixes) = &self.collect {
            prefixes.offer(self.model.cfg(), state, &walk.path, &mut walk.gave);
        }
        if walk.rng.gen_range(0..1000) < walk.repartition {
            let pick = walk.rng.gen_range(0..=self.nodes);
            walk.cut = (pick < self.nodes).then_some(pick);
        }
        let cut = walk.cut.map(Id::from);
        let kind = |a: &Action| match a {
            ActorModelAction::Deliver { src, dst, .. }
                if cut.is_some() && (Some(*src) == cut || Some(*dst) == cut) =>
            {
                3
            }
            other => kind(other),
        };
        let roll = walk.rng.gen_range(0..1000);
        let wanted = if roll < walk.timeout {
            1
        } else if roll < walk.timeout + walk.fault {
            2
        } else {
            0
        };
        let mut order: Vec<usize> = (0..actions.len()).collect();
        // Shuffle, then put the wanted kind first: the first real step of that kind wins.
        for i in (1..order.len()).rev() {
            let j = walk.rng.gen_range(0..=i);
            order.swap(i, j);
        }
        if wanted == 0 && walk.votes_first > 0 && walk.rng.gen_range(0..1000) < walk.votes_first {
            order.sort_by_key(|&i| (kind(&actions[i]) != wanted, !is_vote(&actions[i])));
        } else {
            order.sort_by_key(|&i| kind(&actions[i]) != wanted);
        }
        for i in order {
            if let Some(next) = self.model.next_state(state, actions[i].clone()) {
                properties::remember_chosen(state, &actions[i], next);
                if self.collect.is_some() {
                    walk.path.push(actions[i].clone());
                }
                return i;
            }
        }
        0
    }
}
