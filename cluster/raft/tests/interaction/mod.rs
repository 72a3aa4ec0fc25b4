//! The scenario environment: nodes, their disks, a message queue, partitions, and the
//! command interpreter that prints a protocol trace.

use raft::sim::StateMachine;
use raft::testkit::Disk;
use raft::{Bugs, ConfChange, Config, EntryKind, Message, Node, NodeId, Ready};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

struct Peer {
    node: Option<Node>,
    config: Config,
    disk: Disk,
    sm: StateMachine,
}

#[derive(Default)]
struct Env {
    peers: BTreeMap<NodeId, Peer>,
    queue: Vec<Message>,
    /// Partition groups; empty when healed.
    groups: Vec<BTreeSet<NodeId>>,
    out: String,
}

/// Replays a scenario file and returns it with the actual traces.
pub fn run_script(text: &str) -> Result<String, String> {
    let mut env = Env::default();
    let mut result = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(cmd) = line.strip_prefix("> ") {
            // Skip the old trace: everything up to the next blank line.
            while lines.peek().is_some_and(|l| !l.is_empty()) {
                lines.next();
            }
            env.out.clear();
            env.command(cmd.trim())
                .map_err(|e| format!("command `{cmd}`: {e}"))?;
            result += line;
            result.push('\n');
            result += &env.out;
            if env.out.is_empty() {
                result += "ok\n";
            }
        } else {
            result += line;
            result.push('\n');
        }
    }
    Ok(result)
}

fn parse_id(s: &str) -> Result<NodeId, String> {
    s.parse().map_err(|_| format!("bad node id {s:?}"))
}

fn parse_ids(s: &str) -> Result<Vec<NodeId>, String> {
    s.split(',').map(parse_id).collect()
}

fn options(args: &[&str]) -> BTreeMap<String, String> {
    args.iter()
        .filter_map(|a| a.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Env {
    fn command(&mut self, cmd: &str) -> Result<(), String> {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let (name, args) = words.split_first().ok_or("empty command")?;
        let node_arg =
            || -> Result<NodeId, String> { parse_id(args.first().ok_or("need a node id")?) };
        match *name {
            "add-nodes" => self.add_nodes(args),
            "campaign" => {
                let id = node_arg()?;
                self.with(id, |n| n.campaign())
            }
            "tick" => {
                let id = node_arg()?;
                let count: u32 = args
                    .get(1)
                    .map_or(Ok(1), |c| c.parse())
                    .map_err(|_| "bad count")?;
                self.with(id, |n| (0..count).for_each(|_| n.tick()))
            }
            "tick-election" => {
                let id = node_arg()?;
                // Ticks until the timeout fires (at most 2T ticks, the longest timeout).
                self.with(id, |n| {
                    let t = n.config().election_ticks * 2;
                    for _ in 0..t {
                        n.tick();
                        if n.has_ready() {
                            break;
                        }
                    }
                })
            }
            "tick-heartbeat" => {
                let id = node_arg()?;
                self.with(id, |n| {
                    for _ in 0..n.config().heartbeat_ticks {
                        n.tick();
                    }
                })
            }
            "propose" => {
                let id = node_arg()?;
                let data = args.get(1).ok_or("need data")?;
                let count: u64 = args
                    .get(2)
                    .map_or(Ok(1), |c| c.parse())
                    .map_err(|_| "bad count")?;
                for k in 1..=count {
                    let bytes = if count == 1 {
                        data.to_string()
                    } else {
                        format!("{data}{k}")
                    };
                    let mut res = Ok(0);
                    self.with(id, |n| res = n.propose(bytes.into_bytes()).map(|p| p.index))?;
                    if count == 1 || res.is_err() || k == count {
                        self.report(res.map(|i| format!("proposed at index {i}")))?;
                    }
                }
                Ok(())
            }
            "read-index" => {
                let id = node_arg()?;
                let ctx: u64 = args
                    .get(1)
                    .ok_or("need ctx")?
                    .parse()
                    .map_err(|_| "bad ctx")?;
                let mut res = Ok(());
                self.with(id, |n| res = n.read_index(ctx))?;
                self.report(res.map(|_| String::new()))
            }
            "conf-change" => self.conf_change(args),
            "compact" => {
                let id = node_arg()?;
                let peer = self.peers.get_mut(&id).ok_or("no such node")?;
                let node = peer.node.as_mut().ok_or("node is down")?;
                let applied = node.status().applied;
                match node.compact(applied, peer.sm.encode()) {
                    Ok(snap) => {
                        let _ = writeln!(
                            self.out,
                            "{id} compacted to {}@{}",
                            snap.meta.index, snap.meta.term
                        );
                        peer.disk.install_own_snapshot(snap);
                    }
                    Err(e) => {
                        let _ = writeln!(self.out, "error: {e}");
                    }
                }
                Ok(())
            }
            "process-ready" => {
                for id in parse_ids(args.first().ok_or("need node ids")?)? {
                    self.process_ready(id);
                }
                Ok(())
            }
            "deliver-msgs" => {
                let o = options(args);
                self.deliver(
                    o.get("from").map(|s| parse_id(s)).transpose()?,
                    o.get("to").map(|s| parse_id(s)).transpose()?,
                    false,
                );
                Ok(())
            }
            "drop-msgs" => {
                let o = options(args);
                self.deliver(
                    o.get("from").map(|s| parse_id(s)).transpose()?,
                    o.get("to").map(|s| parse_id(s)).transpose()?,
                    true,
                );
                Ok(())
            }
            "stabilize" => {
                self.stabilize();
                Ok(())
            }
            "crash" => {
                let id = node_arg()?;
                self.peers.get_mut(&id).ok_or("no such node")?.node = None;
                Ok(())
            }
            "restart" => {
                let id = node_arg()?;
                let peer = self.peers.get_mut(&id).ok_or("no such node")?;
                let node = Node::new(peer.config.clone(), Some(peer.disk.persisted()))
                    .map_err(|e| e.to_string())?;
                peer.sm = StateMachine::restore(peer.disk.current().snapshot.as_ref());
                let st = node.status();
                let _ = writeln!(
                    self.out,
                    "{id} restarted: term={} vote={:?} commit={} last={}",
                    st.term, st.vote, st.commit, st.last_index
                );
                peer.node = Some(node);
                Ok(())
            }
            "partition" => {
                let spec = args.first().ok_or("need groups like 1,2/3")?;
                self.groups = spec
                    .split('/')
                    .map(|g| parse_ids(g).map(|v| v.into_iter().collect()))
                    .collect::<Result<_, _>>()?;
                Ok(())
            }
            "heal" => {
                self.groups.clear();
                Ok(())
            }
            "status" => {
                let ids: Vec<NodeId> = match args.first() {
                    Some(a) => parse_ids(a)?,
                    None => self.peers.keys().copied().collect(),
                };
                for id in ids {
                    self.print_status(id);
                }
                Ok(())
            }
            "log" => {
                let id = node_arg()?;
                let node = self
                    .peers
                    .get(&id)
                    .and_then(|p| p.node.as_ref())
                    .ok_or("node is down")?;
                let meta = node.log().snapshot_meta();
                let mut line = format!("{id} log: snapshot={}@{}", meta.index, meta.term);
                for e in node.log().all_entries() {
                    let _ = write!(line, " | {e}");
                }
                let _ = writeln!(self.out, "{line}");
                Ok(())
            }
            other => Err(format!("unknown command {other:?}")),
        }
    }

    fn add_nodes(&mut self, args: &[&str]) -> Result<(), String> {
        let k: u64 = args
            .first()
            .ok_or("need a count")?
            .parse()
            .map_err(|_| "bad count")?;
        let o = options(args);
        let first = self.peers.keys().last().copied().unwrap_or(0) + 1;
        let voters: Vec<NodeId> = match o.get("voters") {
            Some(v) => parse_ids(v)?,
            None => (first..first + k).collect(),
        };
        for id in first..first + k {
            let mut c = Config::new(id, voters.iter().copied());
            c.pre_vote = o.get("pre-vote").is_none_or(|v| v == "true");
            c.check_quorum = o.get("check-quorum").is_none_or(|v| v == "true");
            if let Some(b) = o.get("bugs") {
                c.bugs = b.parse::<Bugs>().map_err(|e| e.to_string())?;
            }
            if let Some(b) = o.get("max-batch") {
                c.max_batch = b.parse().map_err(|_| "bad max-batch")?;
            }
            if let Some(b) = o.get("max-inflight") {
                c.max_inflight = b.parse().map_err(|_| "bad max-inflight")?;
            }
            let node = Node::new(c.clone(), None).map_err(|e| e.to_string())?;
            self.peers.insert(
                id,
                Peer {
                    node: Some(node),
                    config: c,
                    disk: Disk::default(),
                    sm: StateMachine::default(),
                },
            );
        }
        Ok(())
    }

    fn conf_change(&mut self, args: &[&str]) -> Result<(), String> {
        let id = parse_id(args.first().ok_or("need a node id")?)?;
        let kind = args.get(1).ok_or("need a change")?;
        let arg = args.get(2).copied().unwrap_or("");
        let change = match *kind {
            "add-voter" => ConfChange::AddVoter(parse_id(arg)?),
            "add-learner" => ConfChange::AddLearner(parse_id(arg)?),
            "remove" => ConfChange::Remove(parse_id(arg)?),
            "joint" => ConfChange::EnterJoint {
                voters: parse_ids(arg)?.into_iter().collect(),
                learners: BTreeSet::new(),
                auto_leave: args.get(3) != Some(&"manual"),
            },
            "leave" => ConfChange::LeaveJoint,
            other => return Err(format!("unknown change {other:?}")),
        };
        let mut res = Ok(0);
        self.with(id, |n| res = n.propose_conf_change(change).map(|p| p.index))?;
        self.report(res.map(|i| format!("proposed at index {i}")))
    }

    fn report<E: std::fmt::Display>(&mut self, res: Result<String, E>) -> Result<(), String> {
        match res {
            Ok(s) if s.is_empty() => {}
            Ok(s) => {
                let _ = writeln!(self.out, "{s}");
            }
            Err(e) => {
                let _ = writeln!(self.out, "error: {e}");
            }
        }
        Ok(())
    }

    /// Runs `f` on a running node (inputs only: Ready is processed by explicit commands).
    fn with(&mut self, id: NodeId, f: impl FnOnce(&mut Node)) -> Result<(), String> {
        let peer = self
            .peers
            .get_mut(&id)
            .ok_or_else(|| format!("no node {id}"))?;
        let node = peer
            .node
            .as_mut()
            .ok_or_else(|| format!("node {id} is down"))?;
        f(node);
        Ok(())
    }

    fn print_status(&mut self, id: NodeId) {
        let Some(node) = self.peers.get(&id).and_then(|p| p.node.as_ref()) else {
            let _ = writeln!(self.out, "{id}: down");
            return;
        };
        let st = node.status();
        let _ = writeln!(
            self.out,
            "{id}: {} term={} leader={} commit={} applied={} last={} {}",
            st.role.name(),
            st.term,
            st.leader.map_or("-".to_string(), |l| l.to_string()),
            st.commit,
            st.applied,
            st.last_index,
            node.membership()
        );
    }

    /// The driver contract for one node: persist, queue messages, apply, advance. Prints
    /// what the Ready held.
    fn process_ready(&mut self, id: NodeId) -> bool {
        let Some(peer) = self.peers.get_mut(&id) else {
            return false;
        };
        let Some(node) = peer.node.as_mut() else {
            return false;
        };
        if !node.has_ready() {
            return false;
        }
        let rd: Ready = node.ready();
        let out = &mut self.out;
        let _ = writeln!(out, "{id} Ready:");
        if let Some(hs) = &rd.hard_state {
            let vote = hs.vote.map_or("-".to_string(), |v| v.to_string());
            let _ = writeln!(
                out,
                "  HardState term={} vote={vote} commit={}",
                hs.term, hs.commit
            );
        }
        if let Some(s) = &rd.snapshot {
            let _ = writeln!(
                out,
                "  Snapshot {}@{} {}",
                s.meta.index, s.meta.term, s.meta.membership
            );
        }
        if let Some(t) = rd.truncate_from {
            let _ = writeln!(out, "  Truncate from {t}");
        }
        if !rd.entries.is_empty() {
            let es: Vec<String> = rd.entries.iter().map(|e| e.to_string()).collect();
            let _ = writeln!(out, "  Entries: {}", es.join(", "));
        }
        if !rd.committed_entries.is_empty() {
            let es: Vec<String> = rd.committed_entries.iter().map(|e| e.to_string()).collect();
            let _ = writeln!(out, "  Committed: {}", es.join(", "));
        }
        for m in &rd.messages {
            let _ = writeln!(out, "  {m}");
        }
        for r in &rd.read_states {
            let _ = writeln!(out, "  ReadState ctx={} index={}", r.ctx, r.index);
        }
        for c in &rd.dropped_reads {
            let _ = writeln!(out, "  DroppedRead ctx={c}");
        }
        if !rd.dropped_proposals.is_empty() {
            let ps: Vec<String> = rd
                .dropped_proposals
                .iter()
                .map(|p| format!("{}@{}", p.index, p.term))
                .collect();
            let _ = writeln!(out, "  DroppedProposals: {}", ps.join(", "));
        }
        peer.disk.persist(&rd);
        self.queue.extend(rd.messages.iter().cloned());
        if let Some(s) = &rd.snapshot {
            peer.sm = StateMachine::restore(Some(s));
        }
        for e in &rd.committed_entries {
            peer.sm.applied = e.index;
            if let EntryKind::Normal(_) = e.kind {
                peer.sm.commands.push((e.index, 0));
            }
        }
        node.advance(rd);
        true
    }

    fn cut(&self, a: NodeId, b: NodeId) -> bool {
        !self.groups.is_empty() && !self.groups.iter().any(|g| g.contains(&a) && g.contains(&b))
    }

    /// Delivers (or drops) the queued messages matching the filters, in order.
    fn deliver(&mut self, from: Option<NodeId>, to: Option<NodeId>, drop: bool) -> usize {
        let queue = std::mem::take(&mut self.queue);
        let mut delivered = 0;
        for m in queue {
            let matches = from.is_none_or(|f| f == m.from) && to.is_none_or(|t| t == m.to);
            if !matches {
                self.queue.push(m);
                continue;
            }
            let down = self.peers.get(&m.to).is_none_or(|p| p.node.is_none());
            if drop || self.cut(m.from, m.to) || down {
                let _ = writeln!(self.out, "dropped: {m}");
                continue;
            }
            let node = self
                .peers
                .get_mut(&m.to)
                .and_then(|p| p.node.as_mut())
                .expect("running");
            if let Err(e) = node.step(m) {
                let _ = writeln!(self.out, "step error: {e}");
            }
            delivered += 1;
        }
        delivered
    }

    fn stabilize(&mut self) {
        for _ in 0..1000 {
            let ids: Vec<NodeId> = self.peers.keys().copied().collect();
            let mut busy = false;
            for id in ids {
                busy |= self.process_ready(id);
            }
            busy |= self.deliver(None, None, false) > 0;
            if !busy && self.queue.is_empty() {
                return;
            }
        }
        let _ = writeln!(self.out, "did not stabilize in 1000 rounds");
    }
}
