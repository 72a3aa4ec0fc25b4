//! The nemesis: carries out a schedule's steps against the node processes and the network,
//! recording each fault as a `start-…` / `stop-…` pair of nemesis events.

mod figure8;
mod reorder;

use super::{pick, Fault, Step, Who};
use crate::client::Http;
use crate::net::{self, Grudge, LinkFault, Net};
use crate::recorder::Recorder;
use crate::sut::{find_leader, poll_status, MemberChange, NodeStatus, Processes};
use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    Unlink,
    /// The lagging nodes, and whether every link is delayed too.
    KillLeaderThenHeal(Vec<usize>, bool),
    HealLink,
    /// The paused, cut-off old leader.
    ReturnStaleLeader(usize),
}

/// How long the nemesis keeps asking for a membership change before it gives up.
const MEMBER_PATIENCE: Duration = Duration::from_secs(10);

/// How long the split fault keeps asking its cut-off leader for the two removals.
///
/// Why shorter: a correct leader on the minority side can never commit them, so the full
/// patience only spent 10 s of every split fault (20 s with the re-adds) waiting for a
/// refusal; a leader with the bug takes both removals at once, well within 2 s.
const SPLIT_PATIENCE: Duration = Duration::from_secs(2);

/// How long the leader killed by the lag fault stays down after the heal.
const LAG_RESTART_AFTER: Duration = Duration::from_millis(1500);

/// The delay on every link during the lag fault (proxy backend only).
///
/// Why 60 ms: a relay passes one chunk per delay, so a follower hears its leader about once
/// a delay; at 150 ms (tried first) that is past the 100-200 ms election timeout, and the
/// followers deposed every leader before the kill.
const LAG_DELAY_MS: u64 = 60;
const LAG_DELAY: LinkFault = LinkFault::Delay {
    base: Duration::from_millis(LAG_DELAY_MS),
    jitter: Duration::ZERO,
};

/// How long the lag fault's delays outlast the heal: the election and the new leader's
/// first slow round trips (see `kill_leader_then_heal`).
const DELAY_AFTER_HEAL: Duration = Duration::from_millis(1000);

/// Why a link fault was skipped, in its nemesis event.
const NO_LINK_SHAPING: &str = "this partition backend cannot shape links (proxy only)";

/// Time between two rounds of status polls (the figure-8 and reorder faults).
const STATUS_POLL: Duration = Duration::from_millis(2);

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

    /// The end of the lag fault: kill the leader of the side that did not lag (while the
    /// lagging nodes are still cut off) and one of the followers that kept up, heal 0.3 s
    /// later, restart both 1.5 s after that. Records `start-kill` (leader), `start-kill`
    /// (follower), `stop-partition`, `stop-kill` (both) in that order.
    ///
    /// Why take a follower that kept up away: with it gone, the nodes still up are one that
    /// kept up and the lagging ones, and a majority needs all of them. A correct cluster
    /// elects the one that kept up (the lagging ones vote for it, it refuses them); a
    /// candidate that ignores the election restriction wins two times in three instead of
    /// one in two. And the new leader's first commit needs every lagging node caught up,
    /// while a read is confirmed by one round of heartbeats: a longer window for a read
    /// that does not wait for that commit.
    ///
    /// Why kill it rather than pause it: a paused node holds every request sent to it until
    /// the client gives up (1 s, 10 s for the patient half), and clients that fail over round
    /// the ring all end up there: in the runs with a pause, no client reached the new leader
    /// until about 1.3 s after the kill, past the window above. A killed node refuses
    /// connections, so clients move on at once and reach the new leader as it is elected.
    ///
    /// Why kill before healing: the election then happens with the lagging nodes back and
    /// the leader gone, so they are needed for every majority. A candidate that ignores the
    /// election restriction can win with a log that misses committed entries; a correct new
    /// leader must first bring a lagging node up to date before its first entry commits,
    /// which widens the window in which a read that does not wait for it is stale.
    ///
    /// `delayed` (every link delayed by [`LAG_DELAY_MS`] since the fault began, proxy
    /// only): the leader is cut off as it is killed, so the messages its links still carry
    /// are dropped, and the delays stay [`DELAY_AFTER_HEAL`] after the heal. Why: with every
    /// link slow, a follower learns that an entry is committed a full delay after the
    /// leader acknowledged it, so the leader dies with its last ~60 ms of acknowledged
    /// writes unknown to the next leader as committed; that leader then needs one slow round
    /// trip to confirm a read (any two followers answer a heartbeat) but at least two to
    /// commit its first entry (a lagging follower must be caught up first). A read served
    /// in between without waiting for that commit (`--bug early-read`) misses those writes.
    async fn kill_leader_then_heal(&self, lag: &[usize], delayed: bool) -> Result<()> {
        let http = Http::new(Duration::from_millis(300));
        let target = lock(&self.cluster).target().clone();
        let victim = find_leader(target.as_ref(), &http)
            .await
            .filter(|l| !lag.contains(l));
        let ids = lock(&self.cluster).ids();
        if let Some(l) = victim {
            if let (true, Some(net)) = (delayed, &self.net) {
                let mut g = Grudge::isolating(&ids, l);
                let rest: Vec<usize> = ids.iter().copied().filter(|i| !lag.contains(i)).collect();
                g.cut_between(lag, &rest);
                lock(net).partition(&g)?;
            }
            lock(&self.cluster).kill(l)?;
            self.recorder.nemesis(
                "start-kill",
                json!({"who": "leader", "nodes": [l], "after": "lag"}),
            );
        }
        // The first (lowest id) follower that kept up; no draw, so the schedule's seeded
        // choices stay as they were.
        let kept_up =
            victim.and_then(|l| ids.iter().copied().find(|&i| i != l && !lag.contains(&i)));
        if let Some(u) = kept_up {
            lock(&self.cluster).kill(u)?;
            self.recorder.nemesis(
                "start-kill",
                json!({"who": "follower that kept up", "nodes": [u], "after": "lag"}),
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut waited = Duration::ZERO;
        if let Some(net) = &self.net {
            match victim {
                Some(l) if delayed => lock(net).partition(&Grudge::isolating(&ids, l))?,
                _ => lock(net).heal()?,
            }
        }
        self.recorder
            .nemesis("stop-partition", json!({"nodes": lag, "kind": "lag"}));
        if let (true, Some(net), Some(_)) = (delayed, &self.net, victim) {
            tokio::time::sleep(DELAY_AFTER_HEAL).await;
            waited = DELAY_AFTER_HEAL;
            lock(net).heal()?;
        }
        if let Some(l) = victim {
            tokio::time::sleep(LAG_RESTART_AFTER.saturating_sub(waited)).await;
            lock(&self.cluster).start(l)?;
            self.recorder.nemesis("stop-kill", json!({"nodes": [l]}));
        }
        if let Some(u) = kept_up {
            lock(&self.cluster).start(u)?;
            self.recorder.nemesis("stop-kill", json!({"nodes": [u]}));
        }
        lock(&self.current).clear();
        Ok(())
    }

    /// The end of the stale-leader fault: SIGKILL every node but the paused old leader
    /// `old`, heal, restart them, SIGCONT `old` right away. Records `start-kill` and
    /// `stop-kill` for the others (the caller records `stop-pause`).
    ///
    /// Why in this order: the old leader must wake before a new leader among the restarted
    /// nodes is elected, so that its heartbeats are the first thing they hear (their own
    /// election takes 100-200 ms after they start, its heartbeats go out every 20 ms); it
    /// must not wake before they are down, or the messages of the new term queued for it
    /// would depose it at once. A correct node restarts in the newest term it saw and
    /// refuses the old leader, which steps down; a node that forgot its term follows it.
    async fn return_stale_leader(&self, old: usize) -> Result<Value> {
        let others: Vec<usize> = lock(&self.cluster)
            .ids()
            .into_iter()
            .filter(|&i| i != old)
            .collect();
        self.each(&others, Processes::kill)?;
        self.recorder.nemesis(
            "start-kill",
            json!({"who": "all but the old leader", "nodes": others}),
        );
        if let Some(net) = &self.net {
            lock(net).heal()?;
        }
        self.each(&others, Processes::start)?;
        self.recorder
            .nemesis("stop-kill", json!({ "nodes": others }));
        lock(&self.cluster).resume(old)?;
        Ok(json!({ "nodes": [old], "isolated": true, "stale": true }))
    }

    /// SIGSTOPs node `l`, then cuts it off from every other node; returns `l`.
    fn pause_and_cut_off(&self, l: usize) -> Result<usize> {
        let g = Grudge::isolating(&lock(&self.cluster).ids(), l);
        lock(&self.cluster).pause(l)?;
        lock(self.net()?).partition(&g)?;
        Ok(l)
    }

    /// The partition backend, which every fault that cuts or shapes links needs.
    fn net(&self) -> Result<&Arc<Mutex<Box<dyn Net>>>> {
        self.net
            .as_ref()
            .context("a partition or link fault without a partition backend")
    }

    /// Applies `f` (kill, pause, restart, resume) to each of `nodes`.
    fn each(&self, nodes: &[usize], f: impl Fn(&mut Processes, usize) -> Result<()>) -> Result<()> {
        let mut c = lock(&self.cluster);
        nodes.iter().try_for_each(|&n| f(&mut c, n))
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
                self.each(&nodes, Processes::kill)?;
                (
                    Undo::Restart(nodes.clone()),
                    json!({"who": who.name(), "nodes": nodes}),
                )
            }
            Fault::PowerLoss(who) => {
                let mut nodes = pick(who, &ids, leader, rng);
                // A majority always takes the leader with it. Why: a leader that stays up
                // repairs the followers' logs from its own, so what they lost comes back;
                // without it, nodes that lost their logs (and votes) elect one of their
                // own, which misses entries the cluster committed.
                if let (Who::Majority, Some(l)) = (who, leader) {
                    if !nodes.contains(&l) {
                        nodes[0] = l;
                        nodes.sort_unstable();
                    }
                }
                // Every node goes down before any loses its unsynced writes, as in one
                // power cut: a node still up for the few milliseconds a rollback takes
                // could acknowledge, or grant a vote, after its peers lost theirs.
                self.each(&nodes, Processes::kill)?;
                let mut files = 0;
                for &n in &nodes {
                    files += lock(&self.cluster).power_loss(n)?;
                }
                (
                    Undo::Restart(nodes.clone()),
                    json!({"who": who.name(), "nodes": nodes, "files_rolled_back": files}),
                )
            }
            Fault::Pause(who) => {
                let nodes = pick(who, &ids, leader, rng);
                self.each(&nodes, Processes::pause)?;
                (
                    Undo::Resume(nodes.clone()),
                    json!({"who": who.name(), "nodes": nodes}),
                )
            }
            Fault::PauseIsolatedLeader => {
                let l = self.pause_and_cut_off(pick(Who::Leader, &ids, leader, rng)[0])?;
                (
                    Undo::ResumeThenHeal(vec![l]),
                    json!({"who": "leader", "nodes": [l], "isolated": true}),
                )
            }
            Fault::StaleLeader => {
                let l = self.pause_and_cut_off(pick(Who::Leader, &ids, leader, rng)[0])?;
                (
                    Undo::ReturnStaleLeader(l),
                    json!({"who": "leader", "nodes": [l], "isolated": true, "stale": true}),
                )
            }
            Fault::Member(who) => {
                let nodes = pick(who, &ids, leader, rng);
                let outcome = self
                    .change_members(&nodes, false, None, MEMBER_PATIENCE)
                    .await?;
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
                let net = self.net()?;
                lock(net).partition(&g)?;
                let mut nodes = rest[..2].to_vec();
                nodes.sort_unstable();
                let outcome = self
                    .change_members(&nodes, false, Some(side), SPLIT_PATIENCE)
                    .await?;
                (
                    Undo::HealThenReadd(nodes.clone()),
                    json!({"split": true, "nodes": nodes, "grudge": grudge_json(&g), "removed": outcome}),
                )
            }
            Fault::Link(f) => {
                let nodes = pick(Who::Leader, &ids, leader, rng);
                let g = Grudge::isolating(&ids, nodes[0]);
                let net = self.net()?;
                let mut value =
                    json!({"kind": f.name(), "nodes": nodes, "grudge": grudge_json(&g)});
                if let LinkFault::Delay { base, jitter } = f {
                    value["delay_ms"] = json!(base.as_millis() as u64);
                    value["jitter_ms"] = json!(jitter.as_millis() as u64);
                }
                if !lock(net).link(&g, Some(f))? {
                    value["skipped"] = json!(NO_LINK_SHAPING);
                }
                (Undo::Unlink, value)
            }
            Fault::ReorderThenCutLeader => self.reorder_then_cut(&ids, leader, rng).await?,
            Fault::LagThenKillLeader => {
                let mut followers: Vec<usize> =
                    ids.iter().copied().filter(|&i| Some(i) != leader).collect();
                followers.shuffle(rng);
                let mut lag: Vec<usize> = followers
                    .into_iter()
                    .take(((ids.len() - 1) / 2).max(1))
                    .collect();
                lag.sort_unstable();
                let rest: Vec<usize> = ids.iter().copied().filter(|i| !lag.contains(i)).collect();
                let mut g = Grudge::none(&ids);
                g.cut_between(&lag, &rest);
                let net = self.net()?;
                lock(net).partition(&g)?;
                // Every link delayed too, where the backend shapes links: see
                // `kill_leader_then_heal` for what that widens.
                let mut all = Grudge::none(&ids);
                all.cut_between(&ids, &ids);
                let delayed = lock(net).link(&all, Some(LAG_DELAY))?;
                (
                    Undo::KillLeaderThenHeal(lag.clone(), delayed),
                    json!({"kind": "lag", "nodes": lag, "grudge": grudge_json(&g), "delay_ms": if delayed { LAG_DELAY_MS } else { 0 }}),
                )
            }
            Fault::Figure8 => self.figure8(&ids, leader, rng).await?,
            Fault::Partition(kind) => {
                let g = net::grudge(kind, &ids, leader, rng);
                let net = self.net()?;
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
            Undo::KillLeaderThenHeal(lag, delayed) => {
                return self.kill_leader_then_heal(&lag, delayed).await
            }
            Undo::Restart(nodes) => {
                self.each(&nodes, Processes::start)?;
                json!({ "nodes": nodes })
            }
            Undo::ReturnStaleLeader(old) => self.return_stale_leader(old).await?,
            Undo::Resume(nodes) => {
                self.each(&nodes, Processes::resume)?;
                json!({ "nodes": nodes })
            }
            Undo::ResumeThenHeal(nodes) => {
                self.each(&nodes, Processes::resume)?;
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
                let outcome = self
                    .change_members(&nodes, true, None, MEMBER_PATIENCE)
                    .await?;
                json!({ "nodes": nodes, "added": outcome })
            }
            Undo::HealLink => {
                if let Some(net) = &self.net {
                    let mut net = lock(net);
                    net.link(&Grudge::none(&lock(&self.cluster).ids()), None)?;
                    net.heal()?;
                }
                Value::Null
            }
            Undo::Unlink => {
                if let Some(net) = &self.net {
                    lock(net).link(&Grudge::none(&lock(&self.cluster).ids()), None)?;
                }
                Value::Null
            }
            Undo::HealThenReadd(nodes) => {
                if let Some(net) = &self.net {
                    lock(net).heal()?;
                }
                let outcome = self
                    .change_members(&nodes, true, None, MEMBER_PATIENCE)
                    .await?;
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
    /// Node `id`'s status, or `None` when it does not answer within 200 ms.
    pub(super) async fn status_of(&self, id: usize) -> Option<NodeStatus> {
        let target = lock(&self.cluster).target().clone();
        target
            .status(id, &Http::new(Duration::from_millis(200)))
            .await
    }

    /// Polls the status of `ids` in turn every [`STATUS_POLL`] until one satisfies `done` (that
    /// node and its status), or `limit` has passed (`None`).
    pub(super) async fn poll(
        &self,
        ids: &[usize],
        limit: Duration,
        done: impl Fn(&NodeStatus) -> bool,
    ) -> Option<(usize, NodeStatus)> {
        let target = lock(&self.cluster).target().clone();
        let http = Http::new(Duration::from_millis(200));
        poll_status(target.as_ref(), ids, &http, (limit, STATUS_POLL), done).await
    }

    /// Asks the cluster to remove (`add` false) or re-add every node of `ids`, all at once
    /// (one request each, concurrently), through the nodes of `via` (default: every other
    /// node, then the node itself); returns each one's outcome, in order.
    async fn change_members(
        &self,
        ids: &[usize],
        add: bool,
        via: Option<Vec<usize>>,
        patience: Duration,
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
            tasks.spawn(async move { (i, change_member(target, id, add, via, patience).await) });
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
/// `patience` while it cannot now (no leader, another change pending). Returns what
/// became of it, for the nemesis event: `done`, `invalid: …` or `gave up: …`.
async fn change_member(
    target: Arc<dyn crate::sut::Target>,
    id: usize,
    add: bool,
    via: Vec<usize>,
    patience: Duration,
) -> Result<String> {
    let http = Http::new(Duration::from_secs(6));
    let until = Instant::now() + patience;
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
