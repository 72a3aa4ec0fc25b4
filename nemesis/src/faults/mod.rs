//! Faults: what the nemesis can do (`Fault`), which kinds a run uses (`FaultSet`), the
//! seeded schedules (`schedule`: one kind list, `hunt`: the default) and the nemesis that
//! carries a schedule out (`nemesis`).

mod hunt;
mod nemesis;
mod schedule;

pub use hunt::{hunt, Episode, Mix};
pub use nemesis::Nemesis;
pub use schedule::{schedule, Step};

use crate::net::{LinkFault, PartitionKind};
use crate::workload::Keys;
use clap::ValueEnum;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use std::time::Duration;

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
    /// Every node (power losses only: the whole cluster loses power at once).
    All,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::One => "one",
            Who::Minority => "minority",
            Who::Majority => "majority",
            Who::Leader => "leader",
            Who::All => "all",
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
    /// Shape every link of the leader (a random node when none leads): delay, stall or
    /// reset its connections, later lift it. Proxy backend only (recorded as skipped on
    /// iptables).
    ///
    /// Why: cuts end connections cleanly or drop everything; a slow, bursty or flapping link
    /// keeps a leader half-alive, so heartbeats, elections and retransmissions interleave
    /// in orders a clean cut never produces (a burst of stale AppendEntries after a stall).
    Link(LinkFault),
    /// Cut a minority of followers off while writes go on; then kill the leader of the
    /// other side, heal, and restart it 1.5 s later (the default schedule's
    /// `lag-then-kill-leader`; see `Nemesis::kill_leader_then_heal` for why this order).
    LagThenKillLeader,
    /// Take over every link of the leader ([`LinkFault::Reorder`]: what it sends is held,
    /// then it must reconnect and its newer messages pass), deliver the held messages late
    /// on the old connections, and cut the leader off. On our cluster the fault goes by
    /// the nodes' status: the leader's links are slowed, the held messages delivered once
    /// the leader has committed past them, and the cut made only when a majority of nodes
    /// then hold less than it committed (up to three tries); see
    /// `Nemesis::reorder_then_cut`. Proxy backend only.
    ///
    /// Why: our nodes keep one stream per peer, so no kill, pause or cut ever reorders
    /// their messages. Here each follower gets the leader's older AppendEntries after the
    /// newer ones that carried its log further, with the leader cut off so it cannot
    /// repair it: a follower that truncates a log its stale AppendEntries matches
    /// (`--bug truncate-matching`) drops entries the leader committed, and the next leader
    /// comes from those followers. Why the timing: a follower ignores an AppendEntries
    /// below its commit index, so the stale ones must land after the leader committed the
    /// newer entries and before its next message tells the followers so.
    ReorderThenCutLeader,
    /// SIGKILL, then lose every write the node did not fsync (its data directory is a
    /// lazy FUSE mount, [`crate::lazyfs`]), later restart it. Only with FUSE (root and
    /// `/dev/fuse`) and our cluster.
    ///
    /// Why: a plain kill loses nothing the node wrote, since the kernel keeps it; only a
    /// power loss shows whether the node fsyncs before it acknowledges (`--bug no-fsync`).
    /// Several nodes at once (a majority) can lose an entry the cluster committed.
    PowerLoss(Who),
    /// SIGSTOP the leader and cut it off; while the others elect a new leader and commit,
    /// nothing reaches it. Then SIGKILL every other node, heal, restart them, and SIGCONT
    /// the old leader at once (the default schedule's `stale-leader`; see
    /// `Nemesis::return_stale_leader`).
    ///
    /// Why: the old leader wakes believing it still leads in its old term, and the first
    /// messages the restarted nodes hear are its heartbeats. A node that keeps its term on
    /// disk rejects them and deposes it; one that forgot its term (`--bug forget-vote`)
    /// takes the stale leader's term and answers it, so the stale leader finds a majority,
    /// commits its own old entries over the ones the cluster committed meanwhile, and
    /// serves reads that miss them.
    StaleLeader,
    /// The paper's Figure 8 with five nodes, one step at a time, moving on when the nodes'
    /// status shows a step took (see `Nemesis::figure8`): an entry of the
    /// old leader's term reaches a majority only after a newer term's entry was placed on a
    /// minority, and the node holding that newer entry is then elected by nodes that lack
    /// the newest leader's first entry. Our cluster only, and only when its nodes send one
    /// entry per AppendEntries (the run draws it, [`Mix::allow_figure8`]).
    ///
    /// Why: a leader that commits an old-term entry by counting replicas (`--bug
    /// commit-old-term`) answers its client, and the next leader overwrites the entry. A
    /// correct leader waits for its own first entry, which the last step keeps off the
    /// majority, so it acknowledges nothing there.
    Figure8,
}

impl Fault {
    /// The nemesis event name without its `start-` / `stop-` prefix.
    pub fn family(&self) -> &'static str {
        match self {
            Fault::Kill(_) => "kill",
            Fault::PowerLoss(_) => "power-loss",
            Fault::Pause(_) | Fault::PauseIsolatedLeader | Fault::StaleLeader => "pause",
            Fault::Partition(_) | Fault::LagThenKillLeader | Fault::Figure8 => "partition",
            Fault::Member(_) | Fault::SplitMembership => "member",
            Fault::Link(_) | Fault::ReorderThenCutLeader => "link",
        }
    }

    /// A short description (`kill minority`, `partition halves`).
    pub fn describe(&self) -> String {
        match self {
            Fault::Kill(w) => format!("kill {}", w.name()),
            Fault::PowerLoss(w) => format!("power loss {}", w.name()),
            Fault::Pause(w) => format!("pause {}", w.name()),
            Fault::Partition(k) => format!("partition {}", k.name()),
            Fault::PauseIsolatedLeader => "pause and isolate leader".to_string(),
            Fault::StaleLeader => "return a stale leader to restarted nodes".to_string(),
            Fault::Member(w) => format!("remove and re-add {}", w.name()),
            Fault::SplitMembership => "shrink a partitioned leader's side".to_string(),
            Fault::Link(f) => format!("{} leader's links", f.name()),
            Fault::LagThenKillLeader => "lag followers, kill the leader".to_string(),
            Fault::ReorderThenCutLeader => "reorder the leader's links, cut it off".to_string(),
            Fault::Figure8 => {
                "figure 8: an old-term entry on a majority, then overwritten".to_string()
            }
        }
    }
}

/// The link faults a schedule draws from: a fixed delay, a jittered one, a stall, a reset.
pub const LINK_FAULTS: [Fault; 4] = [
    Fault::Link(LinkFault::Delay {
        base: Duration::from_millis(150),
        jitter: Duration::ZERO,
    }),
    Fault::Link(LinkFault::Delay {
        base: Duration::from_millis(20),
        jitter: Duration::from_millis(300),
    }),
    Fault::Link(LinkFault::Stall),
    Fault::Link(LinkFault::Reset),
];

/// What a run's nemesis does: the kinds of `--faults LIST`, or, without it, the default
/// hunting schedule with the mix its seed draws.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// `--faults LIST`: one fault at a time, uniformly among the kinds listed.
    List(FaultSet),
    /// No `--faults`: episodes of composed faults, and hot keys ([`hunt`]).
    Hunt(Mix),
}

impl Plan {
    /// The plan of a run: `kinds` from `--faults` (absent: hunt), `membership` whether the
    /// target takes membership changes and has 5 nodes or more.
    pub fn new(kinds: Option<&[FaultKind]>, seed: u64, membership: bool) -> Plan {
        match kinds {
            Some(k) => Plan::List(FaultSet::of(k)),
            None => Plan::Hunt(Mix::draw(seed, membership)),
        }
    }

    /// Lets the default schedule use link faults (the backend is the proxy). No-op for a
    /// list, which has `link` or not.
    pub fn allow_links(&mut self, seed: u64) {
        if let Plan::Hunt(mix) = self {
            mix.allow_links(seed);
        }
    }

    /// Adds the figure-8 episodes in about half the runs (the target is our cluster with 5
    /// nodes: `ok`), drawn from `seed`, or keeps `--faults figure8` (left out when not
    /// `ok`); true when figure-8 faults will be played, and then our nodes must send one
    /// entry per AppendEntries, one in flight (see [`Fault::Figure8`]).
    pub fn allow_figure8(&mut self, ok: bool, seed: u64) -> bool {
        match self {
            Plan::Hunt(mix) if ok => mix.allow_figure8(seed),
            Plan::List(set) => {
                set.figure8 &= ok;
                set.figure8
            }
            Plan::Hunt(_) => false,
        }
    }

    /// Whether power losses are asked for (`--faults power-loss`, or the default schedule,
    /// which plays them when FUSE is there).
    pub fn wants_power(&self) -> bool {
        match self {
            Plan::List(set) => set.power_loss,
            Plan::Hunt(_) => true,
        }
    }

    /// Power losses can be played (`true`: the hunt gets its episodes, weight drawn from
    /// `seed`) or not (`false`: they are left out of a list).
    pub fn allow_power(&mut self, ok: bool, seed: u64) {
        match self {
            Plan::Hunt(mix) if ok => mix.allow_power(seed),
            Plan::List(set) if !ok => set.power_loss = false,
            _ => {}
        }
    }

    /// Whether a partition backend is needed.
    pub fn uses_net(&self) -> bool {
        match self {
            Plan::List(set) => set.uses_net(),
            Plan::Hunt(_) => true,
        }
    }

    /// Whether `--faults` lists `link` or `reorder`.
    pub fn uses_links(&self) -> bool {
        matches!(self, Plan::List(set) if set.link || set.reorder)
    }

    /// Whether membership changes are asked for.
    pub fn uses_member(&self) -> bool {
        match self {
            Plan::List(set) => set.uses_member(),
            Plan::Hunt(mix) => mix.weights.iter().any(|(e, _)| *e == Episode::SplitMember),
        }
    }

    /// The steps for a run of length `total` (`interval`: `--fault-interval`, lists only).
    pub fn steps(&self, seed: u64, interval: Duration, total: Duration) -> Vec<Step> {
        match self {
            Plan::List(set) => schedule(seed, *set, interval, total),
            Plan::Hunt(mix) => hunt(seed, mix, total),
        }
    }

    /// How clients pick keys among `n`: uniform for a list, the mix's hot keys for a hunt.
    pub fn keys(&self, n: usize) -> Keys {
        match self {
            Plan::List(_) => Keys::uniform(n),
            Plan::Hunt(mix) => Keys::skewed(n, mix.hot_keys, mix.hot_share),
        }
    }

    /// For the run's header, `results.json` and `summary.txt`: `none`, the kinds listed, or
    /// `hunt (` the mix `)`.
    pub fn describe(&self, kinds: Option<&[FaultKind]>) -> String {
        match (self, kinds) {
            (Plan::List(set), _) if set.is_empty() => "none".into(),
            (Plan::List(_), Some(k)) => k
                .iter()
                .filter_map(|k| k.to_possible_value())
                .map(|v| v.get_name().to_string())
                .collect::<Vec<_>>()
                .join(","),
            (Plan::List(_), None) => unreachable!("a list plan comes from --faults"),
            (Plan::Hunt(mix), _) => format!("hunt ({mix})"),
        }
    }
}

/// A kind of fault on the command line (`--faults kill,pause`).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// SIGKILL one node, a minority, a majority or the leader; restart it later.
    Kill,
    /// SIGSTOP one node, a minority or the leader; SIGCONT it later.
    Pause,
    /// Cut the network (halves, one node, the leader, a ring of majorities, a bridge).
    Partition,
    /// The composed pause-and-isolate-leader fault on its own.
    IsolateLeader,
    /// The composed stale-leader fault on its own: pause and cut off the leader, restart
    /// every other node, wake the old leader as they come back.
    StaleLeader,
    /// The composed lag-then-kill-leader fault on its own: cut a minority of followers off
    /// while writes go on, then kill the leader and one follower that kept up, heal, restart.
    Lag,
    /// Remove voters and add them back (raft target only).
    Member,
    /// Partition the leader with one follower, remove two nodes of the other side at once.
    SplitMember,
    /// Delay (fixed or jittered), stall or reset the leader's links (proxy backend only).
    Link,
    /// The composed reorder-then-cut-the-leader fault on its own (proxy backend only).
    Reorder,
    /// SIGKILL a minority, a majority or the leader and lose its unsynced writes; restart
    /// it later (root, /dev/fuse and --target raft; left out otherwise).
    PowerLoss,
    /// The composed figure-8 fault on its own (our cluster with 5 nodes only: its nodes
    /// then send one entry per AppendEntries; left out otherwise).
    Figure8,
    /// No fault at all.
    None,
}

/// The fault families a run uses (from `--faults LIST`).
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
    /// Why a token of its own: with kill, pause and partition on it is 1 of 13 choices, so
    /// a 60 s run draws it about half the time; a stale-read bug shows only under it.
    pub isolate_leader: bool,
    /// the composed stale-leader fault on its own (`stale-leader`)
    pub stale_leader: bool,
    /// the composed lag-then-kill-leader fault on its own (`lag`)
    pub lag: bool,
    /// remove a voter / add it back (`member`; our cluster only)
    pub member: bool,
    /// the composed shrink-a-partitioned-leader's-side fault on its own (`split-member`)
    pub split_member: bool,
    /// delay, stall or reset the leader's links (`link`; proxy backend only)
    pub link: bool,
    /// the composed reorder-then-cut-the-leader fault on its own (`reorder`; proxy only)
    pub reorder: bool,
    /// kill and lose unsynced writes (`power-loss`; FUSE only)
    pub power_loss: bool,
    /// the composed figure-8 fault (`figure8`; our cluster with 5 nodes only)
    pub figure8: bool,
}

impl FaultSet {
    /// The set of the kinds listed (`none` adds nothing).
    pub fn of(kinds: &[FaultKind]) -> FaultSet {
        let mut set = FaultSet::default();
        for kind in kinds {
            match kind {
                FaultKind::Kill => set.kill = true,
                FaultKind::Pause => set.pause = true,
                FaultKind::Partition => set.partition = true,
                FaultKind::IsolateLeader => set.isolate_leader = true,
                FaultKind::StaleLeader => set.stale_leader = true,
                FaultKind::Lag => set.lag = true,
                FaultKind::Member => set.member = true,
                FaultKind::SplitMember => set.split_member = true,
                FaultKind::Link => set.link = true,
                FaultKind::Reorder => set.reorder = true,
                FaultKind::PowerLoss => set.power_loss = true,
                FaultKind::Figure8 => set.figure8 = true,
                FaultKind::None => {}
            }
        }
        set
    }

    /// No fault at all.
    pub fn is_empty(&self) -> bool {
        !(self.kill
            || self.pause
            || self.partition
            || self.isolate_leader
            || self.stale_leader
            || self.lag
            || self.member
            || self.split_member
            || self.link
            || self.reorder
            || self.power_loss
            || self.figure8)
    }

    /// Whether a partition backend is needed (plain partitions or the isolating pause).
    pub fn uses_net(&self) -> bool {
        self.partition
            || self.isolate_leader
            || self.stale_leader
            || self.lag
            || self.split_member
            || self.link
            || self.reorder
            || self.figure8
    }

    /// Whether membership changes are asked for (our cluster only).
    pub fn uses_member(&self) -> bool {
        self.member || self.split_member
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
        if self.stale_leader {
            v.push(Fault::StaleLeader);
        }
        if self.lag {
            v.push(Fault::LagThenKillLeader);
        }
        if self.member {
            v.extend([Who::One, Who::Leader, Who::Minority].map(Fault::Member));
        }
        if (self.member && self.partition) || self.split_member {
            v.push(Fault::SplitMembership);
        }
        if self.link {
            v.extend(LINK_FAULTS);
        }
        if self.reorder {
            v.push(Fault::ReorderThenCutLeader);
        }
        if self.power_loss {
            v.extend([Who::Minority, Who::Majority, Who::Leader].map(Fault::PowerLoss));
        }
        if self.figure8 {
            v.push(Fault::Figure8);
        }
        v
    }
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
        Who::All => n,
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_same_seed_picks_the_same_nodes() {
        let ids = [1, 2, 3, 4, 5];
        for who in [
            Who::One,
            Who::Minority,
            Who::Majority,
            Who::Leader,
            Who::All,
        ] {
            let a = pick(who, &ids, Some(3), &mut StdRng::seed_from_u64(9));
            let b = pick(who, &ids, Some(3), &mut StdRng::seed_from_u64(9));
            assert_eq!(a, b);
            match who {
                Who::One | Who::Leader => assert_eq!(a.len(), 1),
                Who::Minority => assert!((1..=2).contains(&a.len())),
                Who::Majority => assert_eq!(a.len(), 3),
                Who::All => assert_eq!(a, ids),
            }
        }
        assert_eq!(
            pick(Who::Leader, &ids, Some(4), &mut StdRng::seed_from_u64(1)),
            [4]
        );
    }

    #[test]
    fn fault_kinds_parse_as_a_comma_separated_list() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[arg(long, value_enum, value_delimiter = ',')]
            faults: Option<Vec<FaultKind>>,
        }
        let cli = Cli::try_parse_from(["x", "--faults", "kill,isolate-leader"]).unwrap();
        let set = FaultSet::of(&cli.faults.unwrap());
        assert!(set.kill && set.isolate_leader && !set.pause);
        assert!(set.uses_net() && !set.uses_member());
        let none = Cli::try_parse_from(["x", "--faults", "none"]).unwrap();
        assert!(FaultSet::of(&none.faults.unwrap()).is_empty());
        assert!(Cli::try_parse_from(["x", "--faults", "kill,flood"]).is_err());
        assert!(Cli::try_parse_from(["x"]).unwrap().faults.is_none());
    }

    #[test]
    fn figure8_is_a_list_kind_kept_only_where_it_can_be_played() {
        let kinds = [FaultKind::Figure8];
        let set = FaultSet::of(&kinds);
        assert!(set.uses_net() && !set.is_empty());
        assert_eq!(set.choices(), vec![Fault::Figure8]);
        assert_eq!(Fault::Figure8.family(), "partition");
        let mut plan = Plan::new(Some(&kinds), 1, true);
        assert!(plan.allow_figure8(true, 1));
        let mut plan5 = Plan::new(Some(&kinds), 1, true);
        assert!(!plan5.allow_figure8(false, 1), "etcd, or not 5 nodes");
        assert_eq!(plan5, Plan::List(FaultSet::default()));
        let mut kill = Plan::new(Some(&[FaultKind::Kill]), 1, true);
        assert!(!kill.allow_figure8(true, 1));
    }
}
