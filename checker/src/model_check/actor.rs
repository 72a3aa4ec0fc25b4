//! The stateright actors: a Raft node driving the real `raft::Node`, and a client with a script.
//!
//! The node actor is an ordinary driver of the core's public API and follows its driver
//! contract (persist, send, apply, answer, advance) inside one stateright step, so a step is
//! atomic: a crash happens between steps, never between persisting and sending. What the node
//! persists goes out through `Out::save` and comes back through `on_start` after a `Recover`.
//!
//! With the `no-fsync` bug switch the node's disk is lazy (the test kit's `Disk::lazy`):
//! what a step persists is only written, and becomes durable when one of the node's timers
//! next fires (a background flush); a crash before that loses it.

use super::intern;
use super::register::{Op, Ret};
use super::state::{
    decode_command, encode_command, from_read_ctx, read_ctx, Broken, ClientState, Machine, Msg,
    NodeState, State, Storage, StorageData, Timer, Wire,
};
use super::workload::{self, growth, removable, Grow};
use raft::testkit::{self, Disk};
use raft::{Bug, ConfChange, Config, Entry, EntryKind, Node, NodeId, Role};
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;
use std::sync::Arc;

/// How a node actor runs its core.
#[derive(Clone, Debug)]
pub struct NodeActor {
    /// The core's configuration (id = actor index + 1).
    pub config: Config,
    /// Number of node actors (clients come after them).
    pub nodes: usize,
    /// Number of client actors.
    pub clients: usize,
    /// Whether leaders get a heartbeat timer.
    pub heartbeat: bool,
    /// Leave the core's clock out of its fingerprint (see `Node::hash_without_clock`).
    pub abstract_clock: bool,
    /// The membership workload: a leader may propose removing a voter at any time.
    pub membership: bool,
    /// Share equal node states, storages and messages (exhaustive searches; see
    /// `intern.rs`).
    pub intern: bool,
    /// The growth workload: a leader may propose adding the spare node (the last node id).
    pub grow: Option<Grow>,
    /// A node may compact its applied log into a snapshot at any time.
    pub snapshots: bool,
}

/// A client with its script of operations.
#[derive(Clone, Debug)]
pub struct ClientActor {
    /// Number of node actors (the ids of the nodes are `0..nodes`).
    pub nodes: usize,
    /// The operations, issued one after another.
    pub script: Vec<Op>,
}

/// The one actor type of the model.
#[derive(Clone, Debug)]
pub enum RaftActor {
    /// A Raft node.
    Node(NodeActor),
    /// A client.
    Client(ClientActor),
}

type NodeOut = Out<RaftActor>;

impl NodeActor {
    fn start(&self, storage: &Option<Storage>, o: &mut NodeOut) -> NodeState {
        let (mut data, boots) = match storage {
            Some(d) => (d.data().clone(), d.data().boots.saturating_add(1)),
            None => (
                StorageData {
                    disk: Disk::new(self.config.bugs.contains(Bug::NoFsync)),
                    ..StorageData::default()
                },
                0,
            ),
        };
        // A restart follows a crash: what was written but not synced is gone.
        data.disk.crash();
        let persisted = storage.is_some().then(|| data.disk.persisted());
        // The driver restores its state machine from the snapshot it persisted, if any.
        let snapshot = persisted.as_ref().and_then(|p| p.snapshot.as_ref());
        let machine = snapshot
            .and_then(|snap| super::state::decode_machine(&snap.data))
            .unwrap_or_else(|| Machine::new(self.clients));
        let mut ghost = data.ghost.clone();
        let node = match Node::new(self.config.clone(), persisted) {
            Ok(n) => n,
            Err(e) => {
                ghost.broken.get_or_insert(Broken::Restart(e.to_string()));
                Node::new(self.config.clone(), None).expect("the model's config is valid")
            }
        };
        let mut s = NodeState {
            node,
            machine,
            storage: self.store(StorageData { boots, ..data }),
            ghost,
            fp: 0,
            abstract_clock: false,
        };
        self.drive(&mut s, o);
        // Always saved at start, so the boot count (which bounds crashes) is on the disk.
        o.save(s.storage.clone());
        self.set_timers(&s, o);
        s.seal(self.abstract_clock);
        s
    }

    /// Runs `input` on a copy of the node and drives it; leaves `state` borrowed (a no-op,
    /// so stateright keeps the message) when nothing changed.
    fn handle(
        &self,
        state: &mut Cow<State>,
        o: &mut NodeOut,
        input: impl FnOnce(&mut NodeState, &mut NodeOut) -> bool,
    ) {
        let State::Node(before) = &**state else {
            return;
        };
        let mut s = NodeState::clone(before);
        let mut out = Out::new();
        let leader_log = (s.node.role() == Role::Leader)
            .then(|| (s.node.term(), s.node.log().first_index(), terms(&s.node)));
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let acted = input(&mut s, &mut out);
            if acted {
                self.drive(&mut s, &mut out);
            }
            acted
        }));
        match run {
            Ok(false) => return,
            Ok(true) => {}
            Err(panic) => {
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                s = NodeState::clone(before);
                s.ghost.broken.get_or_insert(Broken::Panic(text));
                out = Out::new();
            }
        }
        if let Some((term, first, old)) = leader_log {
            check_append_only(&mut s, term, first, &old);
        }
        s.seal(self.abstract_clock);
        if s.fp == before.fp && out.is_empty() {
            return;
        }
        self.set_timers(&s, &mut out);
        o.append(&mut out);
        *state = Cow::Owned(State::Node(self.share(s)));
    }

    /// The driver contract, steps 2–7, until the core has nothing more.
    fn drive(&self, s: &mut NodeState, o: &mut NodeOut) {
        let mut data: Option<StorageData> = None;
        while s.node.has_ready() {
            let rd = s.node.ready();
            if rd.hard_state.is_some()
                || rd.snapshot.is_some()
                || rd.truncate_from.is_some()
                || !rd.entries.is_empty()
            {
                let d = data.get_or_insert_with(|| s.storage.data().clone());
                d.disk.persist(&rd);
            }
            for m in &rd.messages {
                o.send(Id::from((m.to - 1) as usize), Msg::Raft(self.wire(m)));
            }
            if let Some(snap) = &rd.snapshot {
                s.ghost.installed = true;
                // InstallSnapshot: the state machine becomes the leader's.
                s.machine = super::state::decode_machine(&snap.data)
                    .unwrap_or_else(|| Machine::new(self.clients));
            }
            for e in &rd.committed_entries {
                self.apply(s, e, o);
            }
            for r in &rd.read_states {
                let (client, seq) = from_read_ctx(r.ctx);
                let ret = Ret::ReadOk(s.machine.value);
                o.send(self.client_id(client), Msg::Reply { seq, ret });
            }
            s.node.advance(rd);
        }
        record_ghost(s);
        if data.is_some() || s.ghost != s.storage.data().ghost {
            let mut d = data.unwrap_or_else(|| s.storage.data().clone());
            d.ghost = s.ghost.clone();
            s.storage = self.store(d);
            o.save(s.storage.clone());
        }
    }

    /// The background flush of a lazy disk (`no-fsync`): what was written becomes durable.
    /// True if there was something to flush.
    fn flush(&self, s: &mut NodeState, o: &mut NodeOut) -> bool {
        if !s.storage.data().disk.has_unsynced() {
            return false;
        }
        let mut d = s.storage.data().clone();
        d.disk.sync();
        s.storage = self.store(d);
        o.save(s.storage.clone());
        true
    }

    /// The compaction workload: the applied log becomes a snapshot, persisted before the
    /// prefix goes (step 8 of the driver contract). True if the log was compacted.
    fn compact(&self, s: &mut NodeState, o: &mut NodeOut) -> bool {
        let applied = s.node.log().applied;
        let Ok(snap) = s
            .node
            .compact(applied, super::state::encode_machine(&s.machine))
        else {
            return false;
        };
        let mut d = s.storage.data().clone();
        d.disk.install_own_snapshot(snap);
        s.storage = self.store(d);
        o.save(s.storage.clone());
        true
    }

    /// Applies one committed entry; the leader that proposed it answers the client.
    fn apply(&self, s: &mut NodeState, e: &Entry, o: &mut NodeOut) {
        let EntryKind::Normal(data) = &e.kind else {
            return;
        };
        let Some((client, seq, op)) = decode_command(data) else {
            return;
        };
        let ret = s.machine.apply(client, seq, op);
        // Only the leader of the entry's term created it, so it is the proposer.
        let proposer = s.node.role() == Role::Leader && s.node.term() == e.term;
        if let (Some(ret), true) = (ret, proposer) {
            o.send(self.client_id(client), Msg::Reply { seq, ret });
        }
    }

    /// The node state as the model keeps it (shared when `intern`).
    pub(super) fn share(&self, s: NodeState) -> Arc<NodeState> {
        if self.intern {
            intern::node(s)
        } else {
            Arc::new(s)
        }
    }

    fn store(&self, d: StorageData) -> Storage {
        let s = Storage::new(d);
        if self.intern {
            intern::storage(s)
        } else {
            s
        }
    }

    fn wire(&self, m: &raft::Message) -> Wire {
        let w = Wire::encode(m);
        if self.intern {
            intern::wire(w)
        } else {
            w
        }
    }

    /// The id of the spare node of the growth workload: the last node.
    fn spare(&self) -> NodeId {
        self.nodes as NodeId
    }

    fn client_id(&self, client: usize) -> Id {
        Id::from(self.nodes + client)
    }

    fn set_timers(&self, s: &NodeState, o: &mut NodeOut) {
        // Only with the workload on, so the default model emits exactly what it did before.
        let mut when = |timer: Timer, on: bool| {
            if on {
                o.set_timer(timer, stateright::actor::model_timeout());
            } else {
                o.cancel_timer(timer);
            }
        };
        if self.membership {
            let leads = s.node.role() == Role::Leader;
            when(Timer::Membership, leads && removable(&s.node).is_some());
        }
        if let Some(g) = self.grow {
            when(Timer::Grow(g), growth(&s.node, g, self.spare()).is_some());
        }
        if self.snapshots {
            when(Timer::Compact, workload::can_compact(&s.node));
        }
        if s.node.role() == Role::Leader {
            o.cancel_timer(Timer::Election);
            if self.heartbeat {
                o.set_timer(Timer::Heartbeat, stateright::actor::model_timeout());
            }
        } else {
            o.cancel_timer(Timer::Heartbeat);
            o.set_timer(Timer::Election, stateright::actor::model_timeout());
        }
    }

    fn on_request(&self, s: &mut NodeState, client: usize, seq: u8, op: Op) -> bool {
        match op {
            Op::Read => s.node.read_index(read_ctx(client, seq)).is_ok(),
            _ => s.node.propose(encode_command(client, seq, op)).is_ok(),
        }
    }
}

/// Ticks until the core has something to do (a campaign, a heartbeat), at most `limit`
/// times; false if nothing happened.
fn tick_until_ready(node: &mut Node, limit: u32) -> bool {
    for _ in 0..limit {
        node.tick();
        if node.has_ready() {
            return true;
        }
    }
    false
}

fn terms(node: &Node) -> Vec<u64> {
    node.log().all_entries().iter().map(|e| e.term).collect()
}

/// Leader append-only (Figure 3): a leader never overwrites or deletes its entries. `old`
/// holds the terms of its entries from `first` on before the step; what a compaction in
/// the step moved into the snapshot is not compared.
fn check_append_only(s: &mut NodeState, term: u64, first: u64, old: &[u64]) {
    if s.node.role() != Role::Leader || s.node.term() != term {
        return;
    }
    let (id, now_first) = (s.node.status().id, s.node.log().first_index());
    let compacted = (now_first.saturating_sub(first) as usize).min(old.len());
    let old = &old[compacted..];
    if let Err(broken) = testkit::append_only(id, term, now_first, old, &terms(&s.node)) {
        s.ghost.broken.get_or_insert(Broken::Safety(broken));
    }
}

/// Updates the history variables after a step.
fn record_ghost(s: &mut NodeState) {
    let node = &s.node;
    if node.role() == Role::Leader && node.term() < 64 {
        s.ghost.led |= 1 << node.term();
    }
    let commit = node.status().commit;
    let log = node.log();
    for index in 1..=commit {
        let Some(term) = log.term(index) else {
            continue;
        };
        let i = (index - 1) as usize;
        match s.ghost.committed.get(i) {
            Some(&(was, _)) => {
                if let Err(broken) = testkit::applied_same(node.status().id, index, &term, &was) {
                    s.ghost.broken.get_or_insert(Broken::Safety(broken));
                }
            }
            None if i == s.ghost.committed.len() => s.ghost.committed.push((term, node.term())),
            None => {}
        }
    }
}

impl Actor for RaftActor {
    type Msg = Msg;
    type State = State;
    type Timer = Timer;
    type Random = ();
    type Storage = Storage;

    fn on_start(&self, _id: Id, storage: &Option<Storage>, o: &mut Out<Self>) -> State {
        match self {
            RaftActor::Node(a) => {
                let s = a.start(storage, o);
                State::Node(a.share(s))
            }
            RaftActor::Client(c) => {
                if let Some(&op) = c.script.first() {
                    for n in 0..c.nodes {
                        o.send(Id::from(n), Msg::Request { seq: 0, op });
                    }
                }
                State::Client(ClientState { done: 0 })
            }
        }
    }

    fn on_msg(&self, id: Id, state: &mut Cow<State>, src: Id, msg: Msg, o: &mut Out<Self>) {
        match (self, msg) {
            (RaftActor::Node(a), Msg::Raft(w)) => {
                let m = w.decode();
                a.handle(state, o, |s, _| s.node.step(m).is_ok());
            }
            (RaftActor::Node(a), Msg::Request { seq, op }) => {
                let client = usize::from(src) - a.nodes;
                a.handle(state, o, |s, _| a.on_request(s, client, seq, op));
            }
            (RaftActor::Client(c), Msg::Reply { seq, .. }) => {
                let State::Client(cs) = &**state else {
                    return;
                };
                if seq != cs.done {
                    return;
                }
                let done = cs.done + 1;
                if let Some(&op) = c.script.get(usize::from(done)) {
                    for n in 0..c.nodes {
                        o.send(Id::from(n), Msg::Request { seq: done, op });
                    }
                }
                *state = Cow::Owned(State::Client(ClientState { done }));
            }
            _ => {
                let _ = id;
            }
        }
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<State>, timer: &Timer, o: &mut Out<Self>) {
        let RaftActor::Node(a) = self else {
            return;
        };
        let limit = 2 * a.config.election_ticks + 1;
        match timer {
            Timer::Election => a.handle(state, o, |s, out| {
                let flushed = a.flush(s, out);
                (s.node.role() != Role::Leader && tick_until_ready(&mut s.node, limit)) || flushed
            }),
            Timer::Heartbeat => a.handle(state, o, |s, out| {
                let flushed = a.flush(s, out);
                (s.node.role() == Role::Leader && tick_until_ready(&mut s.node, limit)) || flushed
            }),
            // The correct core refuses while no entry of the term is committed or another
            // change is pending: then nothing changes and the timer stays set.
            Timer::Membership => a.handle(state, o, |s, _| {
                s.node.role() == Role::Leader
                    && removable(&s.node)
                        .is_some_and(|v| s.node.propose_conf_change(ConfChange::Remove(v)).is_ok())
            }),
            // Refused while the leader has not committed an entry of its term or another
            // change is pending (the correct core): then the timer stays set.
            Timer::Grow(g) => a.handle(state, o, |s, _| {
                growth(&s.node, *g, a.spare())
                    .is_some_and(|cc| s.node.propose_conf_change(cc).is_ok())
            }),
            Timer::Compact => a.handle(state, o, |s, out| a.compact(s, out)),
        }
    }

    fn name(&self) -> String {
        match self {
            RaftActor::Node(a) => format!("n{}", a.config.id),
            RaftActor::Client(_) => "client".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        for op in [Op::Write(3), Op::Read, Op::Cas { from: 1, to: 2 }] {
            assert_eq!(decode_command(&encode_command(2, 5, op)), Some((2, 5, op)));
        }
        assert_eq!(from_read_ctx(read_ctx(1, 3)), (1, 3));
    }
}
