//! The schedule of `--faults LIST`: alternating quiet and faulty periods of seeded length,
//! each step one fault drawn uniformly from the kinds listed.

use super::{Fault, FaultSet};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// One step of the schedule: wait `wait`, start `fault`, hold it for `hold`, stop it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Quiet time before the fault starts.
    pub wait: Duration,
    /// How long the fault lasts.
    pub hold: Duration,
    /// The fault.
    pub fault: Fault,
}

/// The schedule for a run of length `total`: alternating quiet and faulty periods, each
/// uniformly between half and one and a half `interval`. It depends only on its arguments,
/// so `--seed` replays it.
pub fn schedule(seed: u64, set: FaultSet, interval: Duration, total: Duration) -> Vec<Step> {
    let choices = set.choices();
    if choices.is_empty() || interval.is_zero() {
        return Vec::new();
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let span = |rng: &mut StdRng| interval.mul_f64(rng.gen_range(0.5..1.5));
    let mut steps = Vec::new();
    let mut t = Duration::ZERO;
    while t < total {
        let wait = span(&mut rng);
        let hold = span(&mut rng);
        let fault = *choices.choose(&mut rng).expect("choices is not empty");
        t += wait + hold;
        steps.push(Step { wait, hold, fault });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::faults::FaultKind as K;
    use std::collections::BTreeSet;

    fn of(kinds: &[K]) -> FaultSet {
        FaultSet::of(kinds)
    }

    fn all() -> FaultSet {
        of(&[K::Kill, K::Pause, K::Partition])
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let i = Duration::from_secs(5);
        let t = Duration::from_secs(120);
        let a = schedule(7, all(), i, t);
        assert_eq!(a, schedule(7, all(), i, t));
        assert_ne!(a, schedule(8, all(), i, t));
        let total: Duration = a.iter().map(|s| s.wait + s.hold).sum();
        assert!(total >= t, "the schedule covers the run");
        for s in &a {
            assert!(s.wait >= i / 2 && s.wait <= i * 3 / 2);
        }
        let families: BTreeSet<&str> = a.iter().map(|s| s.fault.family()).collect();
        assert_eq!(
            families.len(),
            3,
            "all families appear in 120 s: {families:?}"
        );
    }

    #[test]
    fn only_chosen_families_are_scheduled() {
        let kills = schedule(
            1,
            of(&[K::Kill]),
            Duration::from_secs(1),
            Duration::from_secs(60),
        );
        assert!(kills.iter().all(|s| matches!(s.fault, Fault::Kill(_))));
        assert!(schedule(
            1,
            of(&[K::None]),
            Duration::from_secs(1),
            Duration::from_secs(60)
        )
        .is_empty());
    }

    #[test]
    fn isolate_leader_alone_schedules_only_the_composed_fault() {
        let set = of(&[K::IsolateLeader]);
        assert!(!set.is_empty() && set.uses_net());
        let steps = schedule(3, set, Duration::from_secs(3), Duration::from_secs(60));
        assert!(!steps.is_empty());
        assert!(steps.iter().all(|s| s.fault == Fault::PauseIsolatedLeader));
        // Added to the full mix it is not listed twice.
        let both = of(&[K::Pause, K::Partition, K::IsolateLeader]);
        let n = both
            .choices()
            .iter()
            .filter(|f| **f == Fault::PauseIsolatedLeader)
            .count();
        assert_eq!(n, 1);
        assert!(all().uses_net());
        assert!(!of(&[K::Kill, K::Pause]).uses_net());
    }

    #[test]
    fn lag_and_stale_leader_alone_schedule_only_their_composed_fault() {
        for (kind, fault) in [
            (K::Lag, Fault::LagThenKillLeader),
            (K::StaleLeader, Fault::StaleLeader),
        ] {
            let set = of(&[kind]);
            assert!(!set.is_empty() && set.uses_net(), "{kind:?}");
            let steps = schedule(3, set, Duration::from_secs(3), Duration::from_secs(60));
            assert!(!steps.is_empty());
            assert!(steps.iter().all(|s| s.fault == fault), "{kind:?}");
            assert!(!all().choices().contains(&fault), "{kind:?} is opt-in");
        }
    }

    #[test]
    fn member_is_opt_in_and_removes_one_node_the_leader_or_a_minority() {
        assert!(!all()
            .choices()
            .iter()
            .any(|f| matches!(f, Fault::Member(_))));
        let set = of(&[K::Member]);
        assert!(!set.is_empty() && !set.uses_net());
        let steps = schedule(5, set, Duration::from_secs(2), Duration::from_secs(60));
        let whos: BTreeSet<&str> = steps
            .iter()
            .map(|s| match s.fault {
                Fault::Member(w) => w.name(),
                other => panic!("{other:?} scheduled for --faults member"),
            })
            .collect();
        assert_eq!(whos, BTreeSet::from(["leader", "minority", "one"]));
        assert_eq!(steps[0].fault.family(), "member");
    }

    #[test]
    fn split_member_needs_partitions_and_joins_the_member_and_partition_mix() {
        let set = of(&[K::SplitMember]);
        assert!(set.uses_net());
        assert_eq!(set.choices(), vec![Fault::SplitMembership]);
        let both = of(&[K::Member, K::Partition]).choices();
        assert_eq!(
            both.iter()
                .filter(|f| **f == Fault::SplitMembership)
                .count(),
            1
        );
        assert!(!of(&[K::Member]).choices().contains(&Fault::SplitMembership));
        assert_eq!(Fault::SplitMembership.family(), "member");
    }

    #[test]
    fn the_e2e_link_seed_draws_link_faults_of_several_shapes_and_kills() {
        // tests/e2e.rs runs `--faults link,kill --fault-interval 1.5 --seed 11` for 15 s.
        let steps = schedule(
            11,
            of(&[K::Link, K::Kill]),
            Duration::from_secs_f64(1.5),
            Duration::from_secs(15),
        );
        let mut t = Duration::ZERO;
        let mut started = Vec::new();
        for s in &steps {
            t += s.wait;
            if t < Duration::from_secs(15) {
                started.push(s.fault.describe());
            }
            t += s.hold;
        }
        let links: BTreeSet<&String> = started.iter().filter(|d| d.contains("links")).collect();
        assert!(links.len() >= 3, "{started:?}");
        let kills = started.iter().filter(|d| d.starts_with("kill")).count();
        assert!(kills >= 2, "{started:?}");
    }
}
