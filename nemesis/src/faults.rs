//! The fault schedule (seeded) and the nemesis that carries it out: kill / restart,
//! pause / resume, partition / heal, remove / re-add a voter, each recorded as a pair of
//! nemesis events.

use crate::client::Http;
use crate::net::{self, Grudge, Net, PartitionKind};
use crate::recorder::Recorder;
use crate::sut::{find_leader, MemberChange, Processes};
use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which nodes a kill or pause hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// One random node.
    One,
    /// A random minority (at least one node).
    Minority,
    /// A random majority.
    Majority,
    /// The current leader.
    Leader,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::One => "one",
            Who::Minority => "minority",
            Who::Majority => "majority",
            Who::Leader => "leader",
        }
    }
}

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL, later restart on the same data directory.
    Kill(Who),
    /// SIGSTOP, later SIGCONT.
    Pause(Who),
    /// Cut the network, later heal it.
    Partition(PartitionKind),
    /// SIGSTOP the leader and cut it off; later SIGCONT it while still cut off, and heal a
    /// second later. (Only when both pauses and partitions are on.)
    ///
    /// Why: a leader that wakes up alone still believes it leads until its check-quorum
    /// timer fires, and the requests parked at it are answered in that window. A read served
    /// there without a quorum round (a stale-read bug) then misses writes the new leader
    /// committed during the pause. Without the cut, the new leader's messages, queued while
    /// it slept, depose it before it answers anyone.
    PauseIsolatedLeader,
    /// Remove nodes from the voters (one at random, the leader, or a minority at once),
    /// later add them back.
    ///
    /// Why: membership changes are where Raft implementations most often go wrong (a
    /// configuration used too late, two changes in flight, a removed leader that keeps
    /// leading). The removed nodes keep running, so their clients keep talking to them while
    /// the rest of the cluster no longer counts them. A minority is removed with one request
    /// per node, all at once: a correct cluster takes one change at a time and refuses the
    /// others until it is committed (they are retried), one that lets two single-server
    /// changes overlap can end with two majorities that do not intersect.
    Member(Who),
    /// Cut the leader and one follower off from the rest, then ask the leader to remove two
    /// nodes of the other side, both at once; heal, then add them back. (Only when both
    /// membership changes and partitions are on.)
    ///
    /// Why: the leader's side is a minority of the old configuration, so a correct leader
    /// can commit neither removal, and refuses the second while the first is pending. A
    /// leader that takes both at once uses a configuration in which its side is a majority
    /// and commits there, while the other side, a majority of the old configuration, elects
    /// a leader of its own: two leaders committing at once (`--bug unsafe-membership`).
    SplitMembership,
}

impl Fault {
    /// The nemesis event name without its `start-` / `stop-` prefix.
    pub fn family(&self) -> &'static str {
        match self {
            Fault::Kill(_) => "kill",
            Fault::Pause(_) | Fault::PauseIsolatedLeader => "pause",
            Fault::Partition(_) => "partition",
            Fault::Member(_) | Fault::SplitMembership => "member",
        }
    }

    /// A short description (`kill minority`, `partition halves`).
    pub fn describe(&self) -> String {
        match self {
            Fault::Kill(w) => format!("kill {}", w.name()),
            Fault::Pause(w) => format!("pause {}", w.name()),
            Fault::Partition(k) => format!("partition {}", k.name()),
            Fault::PauseIsolatedLeader => "pause and isolate leader".to_string(),
            Fault::Member(w) => format!("remove and re-add {}", w.name()),
            Fault::SplitMembership => "shrink a partitioned leader's side".to_string(),
        }
    }
}

/// The fault families a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultSet {
    /// kill / restart
    pub kill: bool,
    /// pause / resume
    pub pause: bool,
    /// partition / heal
    pub partition: bool,
    /// the composed pause-and-isolate-leader fault on its own (`isolate-leader`)
    ///
    /// Why a token of its own: with all faults on it is 1 of 13 choices, so a 60 s run
    /// draws it about half the time; a stale-read bug shows only under it (README, Faults).
    pub isolate_leader: bool,
    /// remove a voter / add it back (`member`; our cluster only, not in the default set)
    pub member: bool,
    /// the composed shrink-a-partitioned-leader's-side fault on its own (`split-member`)
    pub split_member: bool,
}

impl FaultSet {
    /// Parses `kill,pause,partition,isolate-leader,member,split-member` (any subset) or
    /// `none`.
    pub fn parse(s: &str) -> Result<FaultSet> {
        let mut set = FaultSet::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "none" => {}
                "kill" => set.kill = true,
                "pause" => set.pause = true,
                "partition" => set.partition = true,
                "isolate-leader" => set.isolate_leader = true,
                "member" => set.member = true,
                "split-member" => set.split_member = true,
                other => bail!(
                    "--faults: unknown fault {other:?} in {s:?} (expected kill, pause, partition, isolate-leader, member, split-member or none)"
                ),
            }
        }
        Ok(set)
    }

    /// No fault at all.
    pub fn is_empty(&self) -> bool {
        !(self.kill
            || self.pause
            || self.partition
            || self.isolate_leader
            || self.member
            || self.split_member)
    }

    /// Whether a partition backend is needed (plain partitions or the isolating pause).
    pub fn uses_net(&self) -> bool {
        self.partition || self.isolate_leader || self.split_member
    }

    fn choices(&self) -> Vec<Fault> {
        let mut v = Vec::new();
        if self.kill {
            v.extend([Who::One, Who::Minority, Who::Majority, Who::Leader].map(Fault::Kill));
        }
        if self.pause {
            v.extend([Who::One, Who::Minority, Who::Leader].map(Fault::Pause));
        }
        if self.partition {
            v.extend(PartitionKind::ALL.map(Fault::Partition));
        }
        if (self.pause && self.partition) || self.isolate_leader {
            v.push(Fault::PauseIsolatedLeader);
        }
        if self.member {
            v.extend([Who::One, Who::Leader, Who::Minority].map(Fault::Member));
        }
        if (self.member && self.partition) || self.split_member {
            v.push(Fault::SplitMembership);
        }
        v
    }
}

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

/// The nodes `who` designates among `ids`, given the current leader.
pub fn pick(who: Who, ids: &[usize], leader: Option<usize>, rng: &mut StdRng) -> Vec<usize> {
    let mut shuffled = ids.to_vec();
    shuffled.shuffle(rng);
    let n = ids.len();
    let count = match who {
        Who::One => 1,
        Who::Minority => rng.gen_range(1..=((n - 1) / 2).max(1)),
        Who::Majority => n / 2 + 1,
        Who::Leader => {
            return leader
                .into_iter()
                .chain(shuffled.first().copied())
                .take(1)
                .collect()
        }
    };
    let mut v: Vec<usize> = shuffled.into_iter().take(count).collect();
    v.sort_unstable();
    v
}

/// What the nemesis shares with the runner.
pub struct Nemesis {
    /// Node processes.
    pub cluster: Arc<Mutex<Processes>>,
    /// Partition backend (absent when partitions are off).
    pub net: Option<Arc<Mutex<Box<dyn Net>>>>,
    /// The history.
    pub recorder: Arc<Recorder>,
    /// The fault in force, for the progress line.
    pub current: Arc<Mutex<String>>,
    /// Set to end the schedule early.
    pub stop: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What an active fault has done, so that it can be undone.
enum Undo {
    Restart(Vec<usize>),
    Resume(Vec<usize>),
    Heal,
    ResumeThenHeal(Vec<usize>),
    Readd(Vec<usize>),
    HealThenReadd(Vec<usize>),
}

/// How long the nemesis keeps asking for a membership change before it gives up.
const MEMBER_PATIENCE: Duration = Duration::from_secs(10);

impl Nemesis {
    /// Runs `steps` until `deadline` (or a stop request), ending any fault in force.
    pub async fn run(&self, steps: Vec<Step>, seed: u64, deadline: Instant) -> Result<()> {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x6e656d65);
        let http = Http::new(Duration::from_millis(500));
        for step in steps {
            if !self.sleep_until(Instant::now() + step.wait, deadline).await {
                break;
            }
            let leader = {
                let target = lock(&self.cluster).target().clone();
                find_leader(target.as_ref(), &http).await
            };
            let undo = self.start(step.fault, leader, &mut rng).await?;
            let _ = self.sleep_until(Instant::now() + step.hold, deadline).await;
            self.finish(step.fault, undo).await?;
            if self.stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                break;
            }
        }
        Ok(())
    }

    /// Sleeps until `until`, or until `deadline` or a stop request. False if cut short.
    async fn sleep_until(&self, until: Instant, deadline: Instant) -> bool {
        while Instant::now() < until {
            if self.stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    async fn start(&self, fault: Fault, leader: Option<usize>, rng: &mut StdRng) -> Result<Undo> {
        let ids = lock(&self.cluster).ids();
        let (undo, value) = match fault {
            Fault::Kill(who) => {
                let nodes = pick(who, &ids, leader, rng);
                let mut c = lock(&self.cluster);
                for &n in &nodes {
                    c.kill(n)?;
                }
                (
                    Undo::Restart(nodes.clone()),
                    json!({"who": who.name(), "nodes": nodes}),
                )
            }
            Fault::Pause(who) => {
                let nodes = pick(who, &ids, leader, rng);
                let mut c = lock(&self.cluster);
                for &n in &nodes {
                    c.pause(n)?;
                }
                (
                    Undo::Resume(nodes.clone()),
                    json!({"who": who.name(), "nodes": nodes}),
                )
            }
            Fault::PauseIsolatedLeader => {
                let nodes = pick(Who::Leader, &ids, leader, rng);
                let others: Vec<usize> =
                    ids.iter().copied().filter(|i| !nodes.contains(i)).collect();
                let mut g = Grudge::none(&ids);
                g.cut_between(&nodes, &others);
                lock(&self.cluster).pause(nodes[0])?;
                let net = self
                    .net
                    .as_ref()
                    .context("partition fault without a backend")?;
                lock(net).partition(&g)?;
                (
                    Undo::ResumeThenHeal(nodes.clone()),
                    json!({"who": "leader", "nodes": nodes, "isolated": true}),
                )
            }
            Fault::Member(who) => {
                let nodes = pick(who, &ids, leader, rng);
                let outcome = self.change_members(&nodes, false, None).await?;
                (
                    Undo::Readd(nodes.clone()),
                    json!({"who": who.name(), "nodes": nodes, "removed": outcome}),
                )
            }
            Fault::SplitMembership if leader.is_none() || ids.len() < 5 => (
                // Needs a leader, and two nodes on each side besides it.
                Undo::Readd(Vec::new()),
                json!({"split": true, "nodes": [], "skipped": "no leader known, or under 5 nodes"}),
            ),
            Fault::SplitMembership => {
                let l = leader.expect("checked above");
                let mut others: Vec<usize> = ids.iter().copied().filter(|&i| i != l).collect();
                others.shuffle(rng);
                let side = vec![l, others[0]];
                let rest: Vec<usize> = others[1..].to_vec();
                let mut g = Grudge::none(&ids);
                g.cut_between(&side, &rest);
                let net = self
                    .net
                    .as_ref()
                    .context("partition fault without a backend")?;
                lock(net).partition(&g)?;
                let mut nodes = rest[..2].to_vec();
                nodes.sort_unstable();
                let outcome = self.change_members(&nodes, false, Some(side)).await?;
                (
                    Undo::HealThenReadd(nodes.clone()),
                    json!({"split": true, "nodes": nodes, "grudge": grudge_json(&g), "removed": outcome}),
                )
            }
            Fault::Partition(kind) => {
                let g = net::grudge(kind, &ids, leader, rng);
                let net = self
                    .net
                    .as_ref()
                    .context("partition fault without a backend")?;
                // With fewer than two nodes there is nothing to cut.
                if !g.is_empty() {
                    lock(net).partition(&g)?;
                }
                (
                    Undo::Heal,
                    json!({"kind": kind.name(), "grudge": grudge_json(&g)}),
                )
            }
        };
        *lock(&self.current) = format!("{} {}", fault.describe(), nodes_of(&value));
        self.recorder
            .nemesis(&format!("start-{}", fault.family()), value);
        Ok(undo)
    }

    async fn finish(&self, fault: Fault, undo: Undo) -> Result<()> {
        let value = match undo {
            Undo::Restart(nodes) => {
                let mut c = lock(&self.cluster);
                for &n in &nodes {
                    c.start(n)?;
                }
                json!({ "nodes": nodes })
            }
            Undo::Resume(nodes) => {
                let mut c = lock(&self.cluster);
                for &n in &nodes {
                    c.resume(n)?;
                }
                json!({ "nodes": nodes })
            }
            Undo::ResumeThenHeal(nodes) => {
                {
                    let mut c = lock(&self.cluster);
                    for &n in &nodes {
                        c.resume(n)?;
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                if let Some(net) = &self.net {
                    lock(net).heal()?;
                }
                json!({ "nodes": nodes, "isolated": true })
            }
            Undo::Heal => {
                if let Some(net) = &self.net {
                    lock(net).heal()?;
                }
                Value::Null
            }
            Undo::Readd(nodes) => {
                // Always asked, even if the removal looked refused: a removal whose answer
                // was lost may still have committed, and adding a voter back is harmless
                // (the cluster refuses it as invalid).
                let outcome = self.change_members(&nodes, true, None).await?;
                json!({ "nodes": nodes, "added": outcome })
            }
            Undo::HealThenReadd(nodes) => {
                if let Some(net) = &self.net {
                    lock(net).heal()?;
                }
                let outcome = self.change_members(&nodes, true, None).await?;
                json!({ "nodes": nodes, "added": outcome, "split": true })
            }
        };
        lock(&self.current).clear();
        self.recorder
            .nemesis(&format!("stop-{}", fault.family()), value);
        Ok(())
    }
}

impl Nemesis {
    /// Asks the cluster to remove (`add` false) or re-add every node of `ids`, all at once
    /// (one request each, concurrently), through the nodes of `via` (default: every other
    /// node, then the node itself); returns each one's outcome, in order.
    async fn change_members(
        &self,
        ids: &[usize],
        add: bool,
        via: Option<Vec<usize>>,
    ) -> Result<Vec<String>> {
        let (target, all) = {
            let c = lock(&self.cluster);
            (c.target().clone(), c.ids())
        };
        let mut tasks = tokio::task::JoinSet::new();
        for (i, &id) in ids.iter().enumerate() {
            let target = target.clone();
            let via = via.clone().unwrap_or_else(|| {
                all.iter()
                    .copied()
                    .filter(|&n| n != id)
                    .chain([id])
                    .collect()
            });
            tasks.spawn(async move { (i, change_member(target, id, add, via).await) });
        }
        let mut out = vec![String::new(); ids.len()];
        while let Some(done) = tasks.join_next().await {
            let (i, res) = done.context("a membership change task panicked")?;
            out[i] = res?;
        }
        Ok(out)
    }
}

/// Asks the cluster to remove (`add` false) or re-add node `id`, retrying for
/// [`MEMBER_PATIENCE`] while it cannot now (no leader, another change pending). Returns what
/// became of it, for the nemesis event: `done`, `invalid: …` or `gave up: …`.
async fn change_member(
    target: Arc<dyn crate::sut::Target>,
    id: usize,
    add: bool,
    via: Vec<usize>,
) -> Result<String> {
    let http = Http::new(Duration::from_secs(6));
    let until = Instant::now() + MEMBER_PATIENCE;
    loop {
        match target.set_member(id, add, &via, &http).await? {
            MemberChange::Done => return Ok("done".into()),
            MemberChange::Invalid(why) => return Ok(format!("invalid: {why}")),
            MemberChange::NotNow(why) if Instant::now() >= until => {
                return Ok(format!("gave up: {why}"))
            }
            MemberChange::NotNow(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn nodes_of(v: &Value) -> String {
    match v["nodes"].as_array() {
        Some(a) => a
            .iter()
            .map(|n| format!("n{n}"))
            .collect::<Vec<_>>()
            .join(","),
        None => String::new(),
    }
}

/// A grudge as JSON: `{"1": [2, 3], ...}` (node: nodes it does not hear from).
pub fn grudge_json(g: &Grudge) -> Value {
    let m: serde_json::Map<String, Value> =
        g.0.iter()
            .map(|(k, v)| (k.to_string(), json!(v.iter().collect::<BTreeSet<_>>())))
            .collect();
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> FaultSet {
        FaultSet::parse("kill,pause,partition").unwrap()
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
    fn the_same_seed_picks_the_same_nodes() {
        let ids = [1, 2, 3, 4, 5];
        for who in [Who::One, Who::Minority, Who::Majority, Who::Leader] {
            let a = pick(who, &ids, Some(3), &mut StdRng::seed_from_u64(9));
            let b = pick(who, &ids, Some(3), &mut StdRng::seed_from_u64(9));
            assert_eq!(a, b);
            match who {
                Who::One | Who::Leader => assert_eq!(a.len(), 1),
                Who::Minority => assert!((1..=2).contains(&a.len())),
                Who::Majority => assert_eq!(a.len(), 3),
            }
        }
        assert_eq!(
            pick(Who::Leader, &ids, Some(4), &mut StdRng::seed_from_u64(1)),
            [4]
        );
    }

    #[test]
    fn only_chosen_families_are_scheduled() {
        let kills = schedule(
            1,
            FaultSet::parse("kill").unwrap(),
            Duration::from_secs(1),
            Duration::from_secs(60),
        );
        assert!(kills.iter().all(|s| matches!(s.fault, Fault::Kill(_))));
        assert!(schedule(
            1,
            FaultSet::parse("none").unwrap(),
            Duration::from_secs(1),
            Duration::from_secs(60)
        )
        .is_empty());
        assert!(FaultSet::parse("kill,flood").is_err());
    }

    #[test]
    fn isolate_leader_alone_schedules_only_the_composed_fault() {
        let set = FaultSet::parse("isolate-leader").unwrap();
        assert!(!set.is_empty() && set.uses_net());
        let steps = schedule(3, set, Duration::from_secs(3), Duration::from_secs(60));
        assert!(!steps.is_empty());
        assert!(steps.iter().all(|s| s.fault == Fault::PauseIsolatedLeader));
        // Added to the full mix it is not listed twice.
        let both = FaultSet::parse("pause,partition,isolate-leader").unwrap();
        let n = both
            .choices()
            .iter()
            .filter(|f| **f == Fault::PauseIsolatedLeader)
            .count();
        assert_eq!(n, 1);
        assert!(all().uses_net());
        assert!(!FaultSet::parse("kill,pause").unwrap().uses_net());
    }

    #[test]
    fn member_is_opt_in_and_removes_one_node_the_leader_or_a_minority() {
        assert!(!all()
            .choices()
            .iter()
            .any(|f| matches!(f, Fault::Member(_))));
        let set = FaultSet::parse("member").unwrap();
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
        let set = FaultSet::parse("split-member").unwrap();
        assert!(set.uses_net());
        assert_eq!(set.choices(), vec![Fault::SplitMembership]);
        let both = FaultSet::parse("member,partition").unwrap().choices();
        assert_eq!(
            both.iter()
                .filter(|f| **f == Fault::SplitMembership)
                .count(),
            1
        );
        assert!(!FaultSet::parse("member")
            .unwrap()
            .choices()
            .contains(&Fault::SplitMembership));
        assert_eq!(Fault::SplitMembership.family(), "member");
    }
}
