//! The Figure 8 walks in two phases (`WalkShape::Figure8`): walks from the initial state keep
//! the states where an older term's entry is at risk, then walks start from those states.
//!
//! Why: the commit-old-term bug shows only after a long run of rare steps: three leaders in
//! turn, none replicating its entry before the next is elected, then a leader that replicates
//! its predecessor's entry (alone) to one follower. Walks from the initial state reach the
//! middle of that run, "a leader holds an uncommitted entry of an older term while another
//! node holds a newer term's entry at the same index" (Figure 8 (c)), in about one walk in a
//! hundred, and the end of it in about one in two million walk states (BENCHMARKS.md). Each
//! walk that starts again from such a state skips the part that is already done, so the
//! second phase spends its steps where the rare part is. This is splitting (importance
//! splitting in rare-event simulation): every state kept is reachable (a walk reached it),
//! so a violation found from it is a violation of the model, and it is reported with the
//! whole path, the first phase's steps first.
//!
//! The first phase ends on a count of states kept (or half the time), the second on the
//! time left.
//!
//! The depth bound counts from where a walk starts: the second phase's walks go up to
//! `depth` steps beyond the state they start from.

use super::chooser::Prefixes;
use super::properties::{self, Cancel, ModelCfg, RaftModel, RaftState, CANCELLED};
use super::trace::Action;
use super::{run, Bounds, Run, Search, Steps};
use raft::Role;
use stateright::Model;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The first phase ends once it keeps this many states (one per walk that got there) or
/// after half the time.
///
/// Why a count rather than a share of the time: on one thread the walks, and so the states
/// kept and the second phase, are then the same for a seed whatever the load (a portfolio
/// run replays from its `--seed`), and a leg that gets little CPU still starts its second
/// phase with enough states. 32 states take about 1.5 s on one uncontended thread (about one
/// walk in a hundred gets there); 20 of 20 measured 8 s legs found the bug from them.
const ENOUGH: usize = 32;

/// Without a timeout, the first phase's cap.
const FIRST: Duration = Duration::from_secs(30);

/// Figure 8 (c): a live leader holds, above its commit index, an entry of an older term,
/// and another node holds an entry of a newer term (than that entry) at the same index.
pub fn at_risk(cfg: &ModelCfg, state: &RaftState) -> bool {
    let all: Vec<_> = properties::nodes(cfg, state).collect();
    all.iter().any(|&(l, ls, crashed)| {
        if crashed || ls.node.role() != Role::Leader {
            return false;
        }
        let log = ls.node.log();
        ((log.committed + 1)..=log.last_index()).any(|i| {
            let Some(old) = log.term(i).filter(|&t| t < ls.node.term()) else {
                return false;
            };
            all.iter()
                .any(|&(k, ks, _)| k != l && ks.node.log().term(i).is_some_and(|t| t > old))
        })
    })
}

/// Runs the two phases of walks of `model` (seeded by `seed`) within `timeout`.
pub(super) fn walks(
    model: &RaftModel,
    bounds: &Bounds,
    seed: u64,
    timeout: Option<Duration>,
    threads: usize,
) -> Run {
    let start = Instant::now();
    let first = timeout.map_or(FIRST, |t| t / 2);
    // The first phase stops through its own flag, which the collection sets once it has
    // enough states or when the caller's flag is set.
    let outer = model.cfg().cancel.clone();
    let done = Arc::new(AtomicBool::new(false));
    let prefixes = Arc::new(Prefixes::new(at_risk, ENOUGH, outer.clone(), done.clone()));
    let mut collecting = model.clone();
    collecting.inner.cfg.cancel = Cancel(Some(done));
    let search = Search::Simulation { seed };
    let mut one = run(
        collecting,
        bounds,
        search,
        Some(first),
        threads,
        Some(Arc::clone(&prefixes)),
    );
    let kept = prefixes.take();
    let stopped = outer.is_set()
        || (one.discoveries.iter())
            .any(|(name, _)| properties::SAFETY.iter().any(|(s, _)| s == name));
    // The first phase's own stop is not the caller's.
    one.discoveries
        .retain(|(name, _)| *name != CANCELLED || outer.is_set());
    let left = timeout.map(|t| t.saturating_sub(start.elapsed()));
    if kept.is_empty() || stopped || left == Some(Duration::ZERO) {
        return one;
    }
    let second = RaftModel {
        starts: Some(Arc::new(kept.iter().map(|(s, _)| s.clone()).collect())),
        ..model.clone()
    };
    let two = run(second, bounds, search, left, threads, None);
    let discoveries = (two.discoveries.into_iter())
        .map(|(name, path)| (name, from_the_start(model, &kept, path)))
        .chain(one.discoveries);
    Run {
        states: one.states + two.states,
        unique: one.unique + two.unique,
        depth: one.depth.max(two.depth),
        discoveries: discoveries.collect(),
        starts: kept.len(),
    }
}

/// A second-phase path with the first phase's steps to its first state put in front.
fn from_the_start(model: &RaftModel, kept: &[(RaftState, Vec<Action>)], path: Steps) -> Steps {
    let Some(first) = path.first().map(|(s, _)| s) else {
        return path;
    };
    let Some((_, steps)) = kept.iter().find(|(s, _)| s == first) else {
        return path;
    };
    let plain = RaftModel {
        starts: None,
        ..model.clone()
    };
    let Some(mut at) = plain.init_states().into_iter().next() else {
        return path;
    };
    let mut out = Vec::with_capacity(steps.len() + path.len());
    for a in steps {
        let Some(next) = plain.next_state(&at, a.clone()) else {
            // Cannot happen: the model is deterministic and the steps reached `first`.
            return path;
        };
        out.push((at, Some(a.clone())));
        at = next;
    }
    out.extend(path);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_check::{portfolio, WalkShape};
    use raft::Bugs;

    /// The portfolio's Figure 8 bounds, on the correct core.
    fn figure8() -> Bounds {
        let mut seeds = portfolio::SeedStream::new(0);
        let leg = portfolio::legs(Bugs::none(), &mut seeds).into_iter();
        let bounds = leg.map(|l| l.bounds).find(|b| b.walk == WalkShape::Figure8);
        bounds.expect("a Figure 8 leg")
    }

    /// The first phase keeps only states where an old entry is at risk, and each comes with
    /// the steps that reach it from the initial state.
    #[test]
    fn kept_states_are_at_risk_and_reached_by_their_steps() {
        let bounds = figure8();
        let model = bounds.model_for(Search::Simulation { seed: 1 }).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let prefixes = Arc::new(Prefixes::new(at_risk, 8, Cancel::default(), done.clone()));
        let mut collecting = model.clone();
        collecting.inner.cfg.cancel = Cancel(Some(done));
        let search = Search::Simulation { seed: 1 };
        let secs = Some(Duration::from_secs(20));
        let began = Instant::now();
        let r = run(collecting, &bounds, search, secs, 1, Some(prefixes.clone()));
        assert!(began.elapsed() < Duration::from_secs(10), "not stopped");
        let kept = prefixes.take();
        // Stopped by the collection (long before its 20 s), with as many as it asked for.
        assert_eq!(kept.len(), 8);
        assert!(r.discoveries.iter().any(|(n, _)| *n == CANCELLED));
        for (state, steps) in &kept {
            assert!(at_risk(model.cfg(), state));
            let path = from_the_start(&model, &kept, vec![(state.clone(), None)]);
            assert_eq!(path.len(), steps.len() + 1);
            assert!(&path.last().unwrap().0 == state);
            // Three elections at least: a leader of an older term, a newer one, this one.
            assert!(steps.len() >= 9, "{} steps", steps.len());
        }
    }

    /// Soundness: both phases on the correct core find nothing (and the second phase runs:
    /// three seconds leave it more than two).
    #[test]
    fn correct_core_is_clean_from_the_kept_states() {
        let bounds = figure8();
        let model = bounds.model_for(Search::Simulation { seed: 2 }).unwrap();
        let r = walks(&model, &bounds, 2, Some(Duration::from_secs(3)), 1);
        let names: Vec<_> = r.discoveries.iter().map(|(n, _)| *n).collect();
        assert!(
            !names
                .iter()
                .any(|n| properties::SAFETY.iter().any(|(s, _)| s == n)),
            "{names:?}"
        );
        assert!(r.starts > 0, "the second phase did not run");
    }
}
