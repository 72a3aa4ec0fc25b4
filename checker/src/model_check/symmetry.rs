//! Symmetry reduction over node ids: of the states that differ only by the names of the
//! nodes, the search keeps one, the representative.
//!
//! The nodes of the model are interchangeable: they start alike (the same initial voters,
//! the same seed), the core prefers no id over another (`raft::testkit::Relabel` has the
//! test), the network is unordered and each client sends to every node. So a state and its
//! renaming have renamed futures, and a violation reachable from one is reachable from the
//! other (the properties name no particular node). Keeping one per class divides the states
//! by up to `nodes!` (6 for three nodes).
//!
//! The representative: sort the nodes by what they look like with names left out
//! (`NodeState::shape`, whether crashed, their timers), rename them in that order, and when
//! some nodes look alike try every order among them and keep the renaming with the smallest
//! fingerprint. Only the renaming must be exact for soundness; a coarse sort only makes the
//! reduction smaller.
//!
//! Where it does not apply: the membership workload picks the voter to remove by id (not
//! symmetric), and a state in which a monitor fired (its explanation names nodes) is kept as
//! it is. Renamings are remembered per thread (`intern.rs`), so each node state is renamed
//! once per permutation.

use super::intern::{self, Perm};
use super::register::RegisterHistory;
use super::state::{Msg, NodeState, State, Storage, StorageData, Wire};
use raft::testkit::Relabel;
use raft::NodeId;
use stateright::actor::{ActorModelState, Id};
use stateright::{Rewrite, RewritePlan};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use super::actor::RaftActor;

type ModelState = ActorModelState<RaftActor, RegisterHistory>;

/// The renaming a plan stands for, as a key for the tables of renamings.
fn perm_of<S>(plan: &RewritePlan<Id, S>) -> Perm {
    let mut p = [0u8; 5];
    for (i, slot) in p.iter_mut().enumerate() {
        *slot = usize::from(plan.rewrite(&Id::from(i))) as u8;
    }
    p
}

/// The node-id map of a plan (ids are actor indices + 1).
fn id_map<S>(plan: &RewritePlan<Id, S>) -> impl Fn(NodeId) -> NodeId + '_ {
    |id| usize::from(plan.rewrite(&Id::from((id - 1) as usize))) as NodeId + 1
}

impl Rewrite<Id> for Msg {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        match self {
            Msg::Raft(w) => Msg::Raft(intern::renamed_wire(w, perm_of(plan), || {
                Wire::encode(&w.decode().relabel(&id_map(plan)))
            })),
            other => other.clone(),
        }
    }
}

impl Rewrite<Id> for Storage {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        intern::renamed_storage(self, perm_of(plan), || {
            let d = self.data();
            Storage::new(StorageData {
                disk: d.disk.relabel(&id_map(plan)),
                boots: d.boots,
                ghost: d.ghost.clone(),
            })
        })
    }
}

impl Rewrite<Id> for State {
    fn rewrite<S>(&self, plan: &RewritePlan<Id, S>) -> Self {
        match self {
            State::Node(ns) => State::Node(intern::renamed_node(ns, perm_of(plan), || {
                let map = id_map(plan);
                let mut r = NodeState {
                    node: ns.node.relabel(&map),
                    machine: ns.machine.clone(),
                    storage: ns.storage.rewrite(plan),
                    ghost: ns.ghost.clone(),
                    fp: 0,
                    abstract_clock: ns.abstract_clock,
                };
                r.seal(ns.abstract_clock);
                r
            })),
            State::Client(c) => State::Client(c.clone()),
        }
    }
}

impl Rewrite<Id> for RegisterHistory {
    /// Clients are never renamed, and the history names only clients.
    fn rewrite<S>(&self, _: &RewritePlan<Id, S>) -> Self {
        self.clone()
    }
}

/// The renaming of `state` by `perm` (node `i` becomes node `perm[i]`; clients stay).
fn rename(state: &ModelState, nodes: usize, perm: &[usize]) -> ModelState {
    let actors = state.actor_states.len();
    let full: Vec<usize> = (0..actors)
        .map(|i| if i < nodes { perm[i] } else { i })
        .collect();
    let plan = RewritePlan::new(full.clone(), |id: &Id, s: &Vec<usize>| {
        let i = usize::from(*id);
        Id::from(s.get(i).copied().unwrap_or(i))
    });
    fn reindex<T: Rewrite<Id> + Clone, S>(
        v: &[T],
        full: &[usize],
        plan: &RewritePlan<Id, S>,
    ) -> Vec<T> {
        let mut out = v.to_vec();
        for (i, x) in v.iter().enumerate() {
            out[full[i]] = x.rewrite(plan);
        }
        out
    }
    ModelState {
        actor_states: reindex(&state.actor_states, &full, &plan),
        network: state.network.rewrite(&plan),
        timers_set: reindex(&state.timers_set, &full, &plan),
        random_choices: reindex(&state.random_choices, &full, &plan),
        crashed: reindex(&state.crashed, &full, &plan),
        history: state.history.clone(),
        actor_storages: reindex(&state.actor_storages, &full, &plan),
    }
}

/// What node `i` looks like with names left out (see the module docs).
fn shape(state: &ModelState, i: usize) -> Option<u64> {
    let State::Node(ns) = &*state.actor_states[i] else {
        return None;
    };
    if ns.ghost.broken.is_some() {
        return None;
    }
    let mut h = DefaultHasher::new();
    ns.shape().hash(&mut h);
    state.crashed[i].hash(&mut h);
    let mut timers: Vec<_> = state.timers_set[i].iter().collect();
    timers.sort();
    timers.hash(&mut h);
    Some(h.finish())
}

/// Every permutation of `0..n` (n ≤ 5), each as `perm[i]` = new index of `i`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for at in 0..n {
            let mut q: Vec<usize> = p.iter().map(|&x| x + usize::from(x >= at)).collect();
            q.push(at);
            out.push(q);
        }
    }
    out
}

/// The representative of `state`'s class: see the module docs.
pub fn representative(state: &ModelState, nodes: usize) -> ModelState {
    let mut shapes = Vec::with_capacity(nodes);
    for i in 0..nodes {
        match shape(state, i) {
            Some(s) => shapes.push(s),
            None => return state.clone(),
        }
    }
    // The renamings that put the nodes in order of shape (among equal shapes, any order).
    let mut sorted: Vec<u64> = shapes.clone();
    sorted.sort_unstable();
    let fits = |perm: &[usize]| (0..nodes).all(|i| sorted[perm[i]] == shapes[i]);
    let mut best: Option<(u64, ModelState)> = None;
    for perm in permutations(nodes).into_iter().filter(|p| fits(p)) {
        let renamed = if perm.iter().enumerate().all(|(i, &p)| i == p) {
            state.clone()
        } else {
            rename(state, nodes, &perm)
        };
        let fp = super::state::hash_of(&renamed);
        if best.as_ref().is_none_or(|(b, _)| fp < *b) {
            best = Some((fp, renamed));
        }
    }
    best.map(|(_, s)| s).unwrap_or_else(|| state.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_check::state::hash_of;

    #[test]
    fn permutations_are_all_there_once() {
        let all = permutations(3);
        assert_eq!(all.len(), 6);
        let distinct: std::collections::BTreeSet<_> = all.iter().cloned().collect();
        assert_eq!(distinct.len(), 6);
        assert!(all.iter().all(|p| {
            let mut q = p.clone();
            q.sort();
            q == vec![0, 1, 2]
        }));
        assert_eq!(permutations(5).len(), 120);
    }

    /// Along walks of the model (crashes, elections, a client write), every renaming of a
    /// state has the same representative as the state, and the same verdict on every
    /// property: the representative is a function of the class, and renaming keeps what
    /// the properties see.
    #[test]
    fn every_renaming_of_a_state_has_its_representative() {
        use crate::model_check::properties::SAFETY;
        use crate::model_check::{Bounds, Search};
        use stateright::Model;
        let bounds = Bounds {
            max_term: 3,
            max_log: 3,
            client_ops: 2,
            ..Bounds::default()
        };
        let model = bounds.model_for(Search::Bfs).unwrap();
        assert!(model.symmetry);
        let (inner, cfg) = (&model.inner, model.cfg());
        let mut checked = 0;
        for walk in 0..6u64 {
            let mut s = inner.init_states().remove(0);
            for step in 0..40u64 {
                let rep = hash_of(&representative(&s, 3));
                for perm in permutations(3) {
                    let r = rename(&s, 3, &perm);
                    assert_eq!(
                        hash_of(&representative(&r, 3)),
                        rep,
                        "walk {walk} step {step}"
                    );
                    for (name, check) in SAFETY {
                        assert_eq!(check(cfg, &r).is_some(), check(cfg, &s).is_some(), "{name}");
                    }
                    checked += 1;
                }
                let mut actions = Vec::new();
                inner.actions(&s, &mut actions);
                let next: Vec<_> = (actions.into_iter())
                    .filter_map(|a| inner.next_state(&s, a))
                    .filter(|n| Model::within_boundary(inner, n))
                    .collect();
                if next.is_empty() {
                    break;
                }
                let pick = (walk * 31 + step * 17 + walk * step) as usize % next.len();
                s = next[pick].clone();
            }
        }
        assert!(checked > 500, "{checked}");
    }
}
