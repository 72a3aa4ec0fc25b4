//! Partition shapes (Jepsen's "grudges"): which node refuses traffic from which.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::Rng;

use super::NetError;

/// The shape of a network partition, chosen by the nemesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionKind {
    /// A random split into a minority (`n / 2` nodes) and a majority.
    Halves,
    /// One random node cut off from all others.
    IsolateOne,
    /// The leader cut off from all others (a random node when the leader is unknown).
    IsolateLeader,
    /// Every node sees a majority, and no two nodes see the same majority.
    MajoritiesRing,
    /// Two halves that cannot talk, plus one node that sees both sides.
    Bridge,
}

impl PartitionKind {
    /// Every kind, in a fixed order (for `--partitions all` and for tests).
    pub const ALL: [PartitionKind; 5] = [
        PartitionKind::Halves,
        PartitionKind::IsolateOne,
        PartitionKind::IsolateLeader,
        PartitionKind::MajoritiesRing,
        PartitionKind::Bridge,
    ];

    /// The kebab-case name used on the command line and in histories.
    pub fn name(self) -> &'static str {
        match self {
            PartitionKind::Halves => "halves",
            PartitionKind::IsolateOne => "isolate-one",
            PartitionKind::IsolateLeader => "isolate-leader",
            PartitionKind::MajoritiesRing => "majorities-ring",
            PartitionKind::Bridge => "bridge",
        }
    }
}

impl fmt::Display for PartitionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PartitionKind {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PartitionKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| NetError::UnknownPartitionKind(s.to_string()))
    }
}

/// Node id -> the set of nodes whose traffic it must not receive.
///
/// Every node of the partitioned cluster is a key (with an empty set when it sees everyone),
/// and the relation is symmetric: `b ∈ g[a]` exactly when `a ∈ g[b]`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Grudge(pub BTreeMap<usize, BTreeSet<usize>>);

impl Grudge {
    /// A grudge that cuts nothing between `nodes`.
    pub fn none(nodes: &[usize]) -> Grudge {
        Grudge(nodes.iter().map(|&n| (n, BTreeSet::new())).collect())
    }

    /// A grudge among `nodes` that cuts `node` off from every other one.
    pub fn isolating(nodes: &[usize], node: usize) -> Grudge {
        let mut g = Grudge::none(nodes);
        isolate(&mut g, node);
        g
    }

    /// True when `to` must not receive traffic from `from`.
    pub fn cuts(&self, from: usize, to: usize) -> bool {
        self.0.get(&to).is_some_and(|s| s.contains(&from))
    }

    /// True when nothing is cut.
    pub fn is_empty(&self) -> bool {
        self.0.values().all(BTreeSet::is_empty)
    }

    /// Every ordered pair `(from, to)` whose traffic is dropped, in a fixed order.
    pub fn cut_pairs(&self) -> Vec<(usize, usize)> {
        let mut pairs = Vec::new();
        for (&to, froms) in &self.0 {
            for &from in froms {
                pairs.push((from, to));
            }
        }
        pairs
    }

    /// The nodes `node` can hear from, itself included.
    pub fn view(&self, node: usize) -> BTreeSet<usize> {
        let empty = BTreeSet::new();
        let cut = self.0.get(&node).unwrap_or(&empty);
        self.0
            .keys()
            .copied()
            .filter(|n| !cut.contains(n))
            .collect()
    }

    /// Adds a symmetric cut between every node of `a` and every node of `b` (for hand-made
    /// partitions; nodes not yet keys are added).
    pub fn cut_between(&mut self, a: &[usize], b: &[usize]) {
        for &x in a {
            for &y in b {
                if x != y {
                    self.0.entry(x).or_default().insert(y);
                    self.0.entry(y).or_default().insert(x);
                }
            }
        }
    }

    /// The components when the views form a clean partition of `members` (everyone in a
    /// component sees exactly that component), else `None`.
    fn components(&self, members: &BTreeSet<usize>) -> Option<Vec<BTreeSet<usize>>> {
        let mut comps: Vec<BTreeSet<usize>> = Vec::new();
        for &n in members {
            let view: BTreeSet<usize> = self.view(n).intersection(members).copied().collect();
            let consistent = view
                .iter()
                .all(|&m| self.view(m).intersection(members).eq(view.iter()));
            if !consistent {
                return None;
            }
            if !comps.contains(&view) {
                comps.push(view);
            }
        }
        Some(comps)
    }
}

fn fmt_set(f: &mut fmt::Formatter<'_>, set: &BTreeSet<usize>) -> fmt::Result {
    let items: Vec<String> = set.iter().map(usize::to_string).collect();
    write!(f, "{{{}}}", items.join(","))
}

fn fmt_components(f: &mut fmt::Formatter<'_>, comps: &[BTreeSet<usize>]) -> fmt::Result {
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            f.write_str(" | ")?;
        }
        fmt_set(f, c)?;
    }
    Ok(())
}

/// Reads `{1,2} | {3,4,5}` for a clean partition, `{1,2} | {4,5} bridged by {3}` for a bridge,
/// and each node's view (`1 sees {1,2,5}; 2 sees {1,2,3}; ...`) for anything else (a ring).
impl fmt::Display for Grudge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: BTreeSet<usize> = self.0.keys().copied().collect();
        if let Some(comps) = self.components(&all) {
            return fmt_components(f, &comps);
        }
        let bridges: BTreeSet<usize> = all
            .iter()
            .copied()
            .filter(|&n| self.view(n) == all)
            .collect();
        let rest: BTreeSet<usize> = all.difference(&bridges).copied().collect();
        if !bridges.is_empty() {
            if let Some(comps) = self.components(&rest) {
                fmt_components(f, &comps)?;
                f.write_str(" bridged by ")?;
                return fmt_set(f, &bridges);
            }
        }
        for (i, &n) in all.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{n} sees ")?;
            fmt_set(f, &self.view(n))?;
        }
        Ok(())
    }
}

/// Builds a symmetric grudge of shape `kind` over `nodes` (ids need not be contiguous).
///
/// `leader` is used only by [`PartitionKind::IsolateLeader`]; when it is `None` or not one of
/// `nodes`, a random node is isolated instead. With fewer than two nodes nothing can be cut and
/// the grudge is empty; every kind with three or more nodes cuts something.
pub fn grudge(
    kind: PartitionKind,
    nodes: &[usize],
    leader: Option<usize>,
    rng: &mut impl Rng,
) -> Grudge {
    let mut g = Grudge::none(nodes);
    let mut shuffled: Vec<usize> = g.0.keys().copied().collect();
    if shuffled.len() < 2 {
        return g;
    }
    shuffled.shuffle(rng);
    match kind {
        PartitionKind::Halves => {
            let (minority, majority) = shuffled.split_at(shuffled.len() / 2);
            g.cut_between(minority, majority);
        }
        PartitionKind::IsolateOne => isolate(&mut g, shuffled[0]),
        PartitionKind::IsolateLeader => {
            let target = leader
                .filter(|l| g.0.contains_key(l))
                .unwrap_or(shuffled[0]);
            isolate(&mut g, target);
        }
        PartitionKind::MajoritiesRing => majorities_ring(&mut g, &shuffled),
        PartitionKind::Bridge => {
            let (bridge, rest) = shuffled.split_first().expect("at least two nodes");
            let (left, right) = rest.split_at(rest.len() / 2);
            g.cut_between(left, right);
            debug_assert!(g.0[bridge].is_empty());
        }
    }
    g
}

fn isolate(g: &mut Grudge, node: usize) {
    let others: Vec<usize> = g.0.keys().copied().filter(|&n| n != node).collect();
    g.cut_between(&[node], &others);
}

/// Jepsen's majorities ring gives each node the window of a majority centred on it in a random
/// ring; for an even majority that window is lopsided, so the grudge is not symmetric. Here a
/// node instead sees the nodes within ring distance `d`, with `d` the smallest distance whose
/// window `2d + 1` holds a majority: symmetric by construction, every view is a majority, and
/// views are distinct because their centres are. When that window already covers the whole
/// ring (3 nodes), a path is used instead: the two ends see only their neighbour, which is the
/// only symmetric cut of 3 nodes that gives everyone a distinct majority.
fn majorities_ring(g: &mut Grudge, ring: &[usize]) {
    let n = ring.len();
    let majority = n / 2 + 1;
    let d = majority / 2; // smallest d with 2d + 1 >= majority
    if 2 * d + 1 >= n {
        if n >= 3 {
            // Path ring[0] - ring[1] - ... - ring[n-1]: cut every non-adjacent pair.
            for i in 0..n {
                for j in (i + 2)..n {
                    g.cut_between(&[ring[i]], &[ring[j]]);
                }
            }
        }
        return;
    }
    for i in 0..n {
        for j in (i + 1)..n {
            let dist = (j - i).min(n - (j - i));
            if dist > d {
                g.cut_between(&[ring[i]], &[ring[j]]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn ids(n: usize) -> Vec<usize> {
        (1..=n).collect()
    }

    fn assert_symmetric(g: &Grudge) {
        for (a, cut) in &g.0 {
            assert!(!cut.contains(a), "{a} cuts itself in {g:?}");
            for b in cut {
                assert!(g.cuts(*a, *b), "{b} cuts {a} but not back in {g:?}");
            }
        }
    }

    /// Runs `check` on many seeded grudges of `kind` over 3, 5 and 7 nodes.
    fn for_sizes(kind: PartitionKind, leader: Option<usize>, check: impl Fn(usize, &Grudge)) {
        for n in [3, 5, 7] {
            for seed in 0..50 {
                let g = grudge(kind, &ids(n), leader, &mut StdRng::seed_from_u64(seed));
                assert_eq!(g.0.keys().copied().collect::<Vec<_>>(), ids(n));
                assert_symmetric(&g);
                assert!(!g.is_empty(), "{kind} on {n} nodes cut nothing");
                check(n, &g);
            }
        }
    }

    fn component_sizes(g: &Grudge) -> Vec<usize> {
        let all = g.0.keys().copied().collect();
        let mut sizes: Vec<usize> = g
            .components(&all)
            .unwrap_or_else(|| panic!("not a clean partition: {g}"))
            .iter()
            .map(BTreeSet::len)
            .collect();
        sizes.sort();
        sizes
    }

    #[test]
    fn halves_split_into_minority_and_majority() {
        for_sizes(PartitionKind::Halves, None, |n, g| {
            assert_eq!(component_sizes(g), vec![n / 2, n - n / 2]);
        });
    }

    #[test]
    fn isolate_one_leaves_a_single_node_alone() {
        for_sizes(PartitionKind::IsolateOne, None, |n, g| {
            assert_eq!(component_sizes(g), vec![1, n - 1]);
        });
    }

    #[test]
    fn isolate_leader_isolates_the_given_leader() {
        for_sizes(PartitionKind::IsolateLeader, Some(2), |n, g| {
            assert_eq!(g.view(2), BTreeSet::from([2]));
            assert_eq!(g.0[&2].len(), n - 1);
            assert_eq!(component_sizes(g), vec![1, n - 1]);
        });
    }

    #[test]
    fn isolate_leader_without_a_known_leader_isolates_someone() {
        for_sizes(PartitionKind::IsolateLeader, None, |n, g| {
            assert_eq!(component_sizes(g), vec![1, n - 1]);
        });
        for_sizes(PartitionKind::IsolateLeader, Some(99), |n, g| {
            assert_eq!(component_sizes(g), vec![1, n - 1]);
        });
    }

    #[test]
    fn majorities_ring_gives_everyone_a_distinct_majority() {
        for_sizes(PartitionKind::MajoritiesRing, None, |n, g| {
            let views: Vec<BTreeSet<usize>> = ids(n).into_iter().map(|x| g.view(x)).collect();
            for v in &views {
                assert!(v.len() > n / 2, "minority view {v:?} in {g}");
            }
            let distinct: BTreeSet<&BTreeSet<usize>> = views.iter().collect();
            assert_eq!(distinct.len(), n, "two nodes share a view in {g}");
            assert!(g.components(&ids(n).into_iter().collect()).is_none());
        });
    }

    #[test]
    fn bridge_joins_two_halves_through_one_node() {
        for_sizes(PartitionKind::Bridge, None, |n, g| {
            let all: BTreeSet<usize> = ids(n).into_iter().collect();
            let bridges: Vec<usize> = ids(n).into_iter().filter(|&x| g.view(x) == all).collect();
            assert_eq!(bridges.len(), 1, "{g}");
            let rest: BTreeSet<usize> = all.iter().copied().filter(|x| *x != bridges[0]).collect();
            let mut sizes: Vec<usize> = g
                .components(&rest)
                .unwrap()
                .iter()
                .map(|c| c.len())
                .collect();
            sizes.sort();
            assert_eq!(sizes, vec![(n - 1) / 2, n - 1 - (n - 1) / 2]);
        });
    }

    #[test]
    fn seeds_replay_the_same_grudge() {
        for kind in PartitionKind::ALL {
            let a = grudge(kind, &ids(5), None, &mut StdRng::seed_from_u64(7));
            let b = grudge(kind, &ids(5), None, &mut StdRng::seed_from_u64(7));
            assert_eq!(a, b);
        }
    }

    #[test]
    fn too_few_nodes_cut_nothing() {
        for kind in PartitionKind::ALL {
            let mut rng = StdRng::seed_from_u64(1);
            assert_eq!(grudge(kind, &[4], Some(4), &mut rng).cut_pairs(), []);
            assert_eq!(grudge(kind, &[], None, &mut rng).cut_pairs(), []);
        }
    }

    #[test]
    fn display_reads_as_components() {
        let mut g = Grudge::none(&ids(5));
        g.cut_between(&[1, 2], &[3, 4, 5]);
        assert_eq!(g.to_string(), "{1,2} | {3,4,5}");
        let mut b = Grudge::none(&ids(5));
        b.cut_between(&[1, 2], &[4, 5]);
        assert_eq!(b.to_string(), "{1,2} | {4,5} bridged by {3}");
        let mut r = Grudge::none(&ids(3));
        r.cut_between(&[1], &[3]);
        assert_eq!(r.to_string(), "{1} | {3} bridged by {2}");
        let mut ring = Grudge::none(&ids(5));
        majorities_ring(&mut ring, &ids(5));
        assert_eq!(
            ring.to_string(),
            "1 sees {1,2,5}; 2 sees {1,2,3}; 3 sees {2,3,4}; 4 sees {3,4,5}; 5 sees {1,4,5}"
        );
        assert_eq!(Grudge::none(&ids(3)).to_string(), "{1,2,3}");
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in PartitionKind::ALL {
            assert_eq!(kind.to_string().parse::<PartitionKind>().unwrap(), kind);
        }
        let err = "halfs".parse::<PartitionKind>().unwrap_err();
        assert!(err.to_string().contains("halfs"), "{err}");
    }
}
