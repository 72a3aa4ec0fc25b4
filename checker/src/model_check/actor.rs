//! The stateright actors: a Raft node driving the real `raft::Node`, and a client with a script.
//!
//! The node actor is an ordinary driver of the core's public API and follows its driver
//! contract (persist, send, apply, answer, advance) inside one stateright step, so a step is
//! atomic: a crash happens between steps, never between persisting and sending. What the node
//! persists goes out through `Out::save` and comes back through `on_start` after a `Recover`.

use super::register::{Op, Ret, Value};
use raft::{ConfChange, Config, Entry, EntryKind, Message, Node, PersistedState, Ready, Role};
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A protocol message on the model's network, kept encoded with the core's own codec.
///
/// Why bytes: stateright needs `Ord` on messages (to sort actions) and hashes every message
/// of every state; the core's `Message` is neither `Ord` nor small. The encoding is compact,
/// canonical (one encoding per message) and ordered, and decoding it is cheap.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Wire(pub Vec<u8>);

impl Wire {
    /// Encodes a core message.
    pub fn encode(m: &Message) -> Wire {
        let mut buf = Vec::with_capacity(32);
        m.encode(&mut buf);
        Wire(buf)
    }

    /// Decodes it again; the model only ever holds bytes it encoded itself.
    pub fn decode(&self) -> Message {
        Message::decode(&self.0).expect("the model only carries messages it encoded")
    }
}

impl fmt::Debug for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::trace::describe_message(&self.decode()))
    }
}

/// What travels between actors.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Msg {
    /// Node to node: a Raft message.
    Raft(Wire),
    /// Client to every node: operation number `seq` of the client's script.
    Request {
        /// The operation's position in the client's script.
        seq: u8,
        /// The operation.
        op: Op,
    },
    /// Node to client: the outcome of operation `seq`.
    Reply {
        /// The operation's position in the client's script.
        seq: u8,
        /// Its result.
        ret: Ret,
    },
}

/// A node's timers. Durations mean nothing to the checker (any set timer may fire at any
/// moment), which models arbitrary clock drift between nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// A follower or candidate stops waiting for a leader: tick until it campaigns.
    Election,
    /// A leader's heartbeat interval elapsed: tick until it sends heartbeats.
    Heartbeat,
    /// A leader's administrator wants a membership change (only with the membership
    /// workload): remove the highest-numbered other voter.
    Membership,
}

/// A safety monitor that fired inside a step (the properties read it from the state).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Broken {
    /// A leader's log lost or changed an entry while it stayed leader of the same term.
    LeaderRewrote {
        /// The term.
        term: u64,
        /// The first index that changed.
        index: u64,
    },
    /// A node's committed entry at `index` changed term (re-applied something else).
    CommitChanged {
        /// The index.
        index: u64,
        /// The term first committed there.
        was: u64,
        /// The term now committed there.
        now: u64,
    },
    /// The core panicked on an input (an internal assertion fired).
    Panic(String),
    /// The core refused to restart from what this node had persisted.
    Restart(String),
}

/// Knowledge the properties need that no single state shows: what this node ever committed
/// and which terms it ever led. A history variable in TLA+'s sense. It rides in the saved
/// storage so a crash does not erase it; the core never reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ghost {
    /// Bit `t` set: this node was leader in term `t` (terms are bounded far below 64).
    pub led: u64,
    /// For index `i + 1`: (the committed entry's term, this node's term when it learned
    /// the commit). An entry committed while the node was in term `c` must be in the log of
    /// every leader of a term above `c` (leader completeness).
    pub committed: Vec<(u64, u64)>,
    /// A monitor that fired, if any.
    pub broken: Option<Broken>,
}

/// What a node has on stable storage: the core's persisted state, its boot count, and the
/// ghost. Shared (`Arc`) and hashed once, because stateright clones and hashes every
/// actor's storage for every state.
#[derive(Clone, PartialEq)]
pub struct Disk {
    data: Arc<DiskData>,
    fp: u64,
}

/// The contents of a [`Disk`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DiskData {
    /// What the core reads back on restart.
    pub persisted: PersistedState,
    /// How many times the node restarted from this disk.
    pub boots: u8,
    /// The history variables.
    pub ghost: Ghost,
}

impl Disk {
    fn new(data: DiskData) -> Disk {
        let fp = hash_of(&data);
        Disk {
            data: Arc::new(data),
            fp,
        }
    }

    /// The contents.
    pub fn data(&self) -> &DiskData {
        &self.data
    }
}

impl Hash for Disk {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fp.hash(state);
    }
}

impl fmt::Debug for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.data.persisted;
        write!(
            f,
            "Disk {{ term: {}, vote: {:?}, commit: {}, entries: {}, boots: {} }}",
            p.hard_state.term,
            p.hard_state.vote,
            p.hard_state.commit,
            p.entries.len(),
            self.data.boots
        )
    }
}

/// Step 3 of the driver contract: snapshot, truncation, entries, hard state.
fn persist(p: &mut PersistedState, rd: &Ready) {
    if let Some(snap) = &rd.snapshot {
        p.entries.clear();
        p.snapshot = Some(snap.clone());
    }
    if let Some(from) = rd.truncate_from {
        p.entries.retain(|e| e.index < from);
    }
    p.entries.extend(rd.entries.iter().cloned());
    if let Some(hs) = &rd.hard_state {
        p.hard_state = hs.clone();
    }
}

/// The replicated state machine: one register plus, per client, the last operation applied
/// and its result, so a command proposed twice (the client asks every node) applies once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Machine {
    /// The register.
    pub value: Value,
    /// Per client: (seq, result) of its last applied operation.
    pub sessions: Vec<Option<(u8, Ret)>>,
}

impl Machine {
    fn new(clients: usize) -> Machine {
        Machine {
            value: 0,
            sessions: vec![None; clients],
        }
    }

    /// Applies a client command once; the result to report, `None` for an older duplicate.
    fn apply(&mut self, client: usize, seq: u8, op: Op) -> Option<Ret> {
        match self.sessions.get(client).copied().flatten() {
            Some((last, ret)) if last == seq => return Some(ret),
            Some((last, _)) if last > seq => return None,
            _ => {}
        }
        let ret = super::register::apply(&mut self.value, op);
        if let Some(s) = self.sessions.get_mut(client) {
            *s = Some((seq, ret));
        }
        Some(ret)
    }
}

/// Encodes a client command as entry data: client, seq, then the operation.
fn encode_command(client: usize, seq: u8, op: Op) -> Vec<u8> {
    let (tag, a, b) = match op {
        Op::Write(v) => (0, v, 0),
        Op::Read => (1, 0, 0),
        Op::Cas { from, to } => (2, from, to),
    };
    vec![client as u8, seq, tag, a, b]
}

/// The inverse of [`encode_command`].
pub fn decode_command(data: &[u8]) -> Option<(usize, u8, Op)> {
    let [client, seq, tag, a, b] = data else {
        return None;
    };
    let op = match tag {
        0 => Op::Write(*a),
        1 => Op::Read,
        2 => Op::Cas { from: *a, to: *b },
        _ => return None,
    };
    Some((*client as usize, *seq, op))
}

/// A ReadIndex context naming the client and the operation (never 0).
fn read_ctx(client: usize, seq: u8) -> u64 {
    1 + (client as u64) * 256 + u64::from(seq)
}

fn from_read_ctx(ctx: u64) -> (usize, u8) {
    let c = ctx - 1;
    ((c / 256) as usize, (c % 256) as u8)
}

/// A node actor's state: the core, the state machine, the disk it writes, the ghost.
#[derive(Clone)]
pub struct NodeState {
    /// The Raft core.
    pub node: Node,
    /// The applied state machine (volatile: rebuilt from the log after a restart).
    pub machine: Machine,
    /// What it has persisted (the same value stateright keeps as its storage).
    pub disk: Disk,
    /// History variables.
    pub ghost: Ghost,
    fp: u64,
}

impl PartialEq for NodeState {
    fn eq(&self, other: &Self) -> bool {
        self.fp == other.fp
    }
}

impl Hash for NodeState {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fp.hash(state);
    }
}

impl fmt::Debug for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::trace::describe_node(self))
    }
}

/// A client's state: how many operations of its script have completed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientState {
    /// Operations completed (the next one in flight, if any).
    pub done: u8,
}

/// An actor's state. Not boxed: stateright keeps each actor's state behind an `Arc`.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Hash)]
pub enum State {
    /// A Raft node.
    Node(NodeState),
    /// A client.
    Client(ClientState),
}

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
    /// Leave the core's clock fields out of its fingerprint (see [`fingerprint_node`]).
    pub abstract_clock: bool,
    /// The membership workload: a leader may propose removing a voter at any time.
    pub membership: bool,
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

fn hash_of<T: Hash>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

/// The fields of the core's state that are its clock: the model replaces ticks by timer
/// events that fire at any time, so two nodes differing only there behave alike.
///
/// Why a projection of `Debug`: the core derives `Hash` over every field, clock included,
/// and `election_elapsed`, `randomized_timeout` and the generator's state count how often a
/// timeout was reset, which differs between paths to the same logical state and multiplied
/// the state space. The core's fields are private, so the only faithful view of the rest
/// is its `Debug` output. With check-quorum off (the model's setting) none of these fields
/// changes what the node does next, except how many ticks a timer event takes. `cfg` is
/// constant per actor.
///
/// Measured (3 nodes, 1 restart, 1 write, BFS to depth 9): the projection saves 15% of the
/// states but formatting costs 40% more time per state, so it is off by default
/// (`--abstract-clock` turns it on). It pays off only in deeper searches with many elections.
const CLOCK_FIELDS: [&str; 6] = [
    "cfg",
    "election_elapsed",
    "heartbeat_elapsed",
    "randomized_timeout",
    "rng",
    "recent_active",
];

/// The fingerprint of a core: all of its state (its derived `Hash`), or with
/// `abstract_clock` all but [`CLOCK_FIELDS`].
pub fn fingerprint_node(node: &Node, abstract_clock: bool) -> u64 {
    if !abstract_clock {
        return hash_of(node);
    }
    let text = format!("{node:?}");
    let mut h = DefaultHasher::new();
    for part in without_fields(&text, &CLOCK_FIELDS) {
        h.write(part.as_bytes());
    }
    h.finish()
}

/// The pieces of a `Debug` rendering left after removing `name: value` for each name.
fn without_fields<'a>(text: &'a str, names: &[&str]) -> Vec<&'a str> {
    let bytes = text.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let at_field = i >= 2 && (&bytes[i - 2..i] == b"{ " || &bytes[i - 2..i] == b", ");
        let name = at_field
            .then(|| {
                names.iter().find(|n| {
                    bytes[i..].starts_with(n.as_bytes()) && bytes[i + n.len()..].starts_with(b": ")
                })
            })
            .flatten();
        let Some(name) = name else {
            i += 1;
            continue;
        };
        parts.push(&text[start..i]);
        // Skip the value: up to the next ',' or closing bracket at depth 0, and the ", ".
        let mut j = i + name.len() + 2;
        let mut depth = 0i32;
        while j < bytes.len() {
            match bytes[j] {
                b'{' | b'[' | b'(' => depth += 1,
                b'}' | b']' | b')' if depth == 0 => break,
                b'}' | b']' | b')' => depth -= 1,
                b',' if depth == 0 => break,
                b'"' => {
                    j += 1;
                    while j < bytes.len() && bytes[j] != b'"' {
                        j += usize::from(bytes[j] == b'\\') + 1;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        if bytes[j..].starts_with(b", ") {
            j += 2;
        }
        start = j;
        i = j;
    }
    parts.push(&text[start..]);
    parts
}

impl NodeState {
    fn seal(&mut self, abstract_clock: bool) {
        let mut h = DefaultHasher::new();
        fingerprint_node(&self.node, abstract_clock).hash(&mut h);
        self.machine.hash(&mut h);
        self.disk.fp.hash(&mut h);
        self.ghost.hash(&mut h);
        self.fp = h.finish();
    }
}

type NodeOut = Out<RaftActor>;

impl NodeActor {
    fn start(&self, storage: &Option<Disk>, o: &mut NodeOut) -> NodeState {
        let (data, boots) = match storage {
            Some(d) => (d.data().clone(), d.data().boots.saturating_add(1)),
            None => (DiskData::default(), 0),
        };
        let persisted = storage.as_ref().map(|d| d.data().persisted.clone());
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
            machine: Machine::new(self.clients),
            disk: Disk::new(DiskData { boots, ..data }),
            ghost,
            fp: 0,
        };
        self.drive(&mut s, o);
        // Always saved at start, so the boot count (which bounds crashes) is on the disk.
        o.save(s.disk.clone());
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
        let mut s = before.clone();
        let mut out = Out::new();
        let leader_log = (s.node.role() == Role::Leader).then(|| (s.node.term(), terms(&s.node)));
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
                s = before.clone();
                s.ghost.broken.get_or_insert(Broken::Panic(text));
                out = Out::new();
            }
        }
        if let Some((term, old)) = leader_log {
            check_append_only(&mut s, term, &old);
        }
        s.seal(self.abstract_clock);
        if s.fp == before.fp && out.is_empty() {
            return;
        }
        self.set_timers(&s, &mut out);
        o.append(&mut out);
        *state = Cow::Owned(State::Node(s));
    }

    /// The driver contract, steps 2–7, until the core has nothing more.
    fn drive(&self, s: &mut NodeState, o: &mut NodeOut) {
        let mut data: Option<DiskData> = None;
        while s.node.has_ready() {
            let rd = s.node.ready();
            if rd.hard_state.is_some()
                || rd.snapshot.is_some()
                || rd.truncate_from.is_some()
                || !rd.entries.is_empty()
            {
                let d = data.get_or_insert_with(|| s.disk.data().clone());
                persist(&mut d.persisted, &rd);
            }
            for m in &rd.messages {
                o.send(Id::from((m.to - 1) as usize), Msg::Raft(Wire::encode(m)));
            }
            if rd.snapshot.is_some() {
                // The model never compacts, so no snapshot is ever installed.
                s.machine = Machine::new(self.clients);
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
        if data.is_some() || s.ghost != s.disk.data().ghost {
            let mut d = data.unwrap_or_else(|| s.disk.data().clone());
            d.ghost = s.ghost.clone();
            s.disk = Disk::new(d);
            o.save(s.disk.clone());
        }
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

    fn client_id(&self, client: usize) -> Id {
        Id::from(self.nodes + client)
    }

    fn set_timers(&self, s: &NodeState, o: &mut NodeOut) {
        // Only with the workload on, so the default model emits exactly what it did before.
        if self.membership {
            if s.node.role() == Role::Leader && removable(&s.node).is_some() {
                o.set_timer(Timer::Membership, stateright::actor::model_timeout());
            } else {
                o.cancel_timer(Timer::Membership);
            }
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

/// The voter the membership workload removes next: the highest-numbered voter of the
/// node's latest configuration other than itself.
///
/// Why removals only, one fixed choice: two removals from three voters already leave
/// configurations whose quorums do not overlap ({1,2,3} then {1}), which is all the
/// `unsafe-membership` switch needs to show, and a fixed choice adds one step per leader
/// instead of one per voter to the branching.
fn removable(node: &Node) -> Option<u64> {
    let me = node.status().id;
    node.log()
        .membership()
        .all_voters()
        .into_iter()
        .rev()
        .find(|&v| v != me)
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

/// Leader append-only (Figure 3): a leader never overwrites or deletes its entries.
fn check_append_only(s: &mut NodeState, term: u64, old: &[u64]) {
    if s.node.role() != Role::Leader || s.node.term() != term {
        return;
    }
    let now = terms(&s.node);
    if let Some(i) = (0..old.len()).find(|&i| now.get(i) != Some(&old[i])) {
        s.ghost.broken.get_or_insert(Broken::LeaderRewrote {
            term,
            index: s.node.log().first_index() + i as u64,
        });
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
            Some(&(was, _)) if was != term => {
                s.ghost.broken.get_or_insert(Broken::CommitChanged {
                    index,
                    was,
                    now: term,
                });
            }
            Some(_) => {}
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
    type Storage = Disk;

    fn on_start(&self, _id: Id, storage: &Option<Disk>, o: &mut Out<Self>) -> State {
        match self {
            RaftActor::Node(a) => State::Node(a.start(storage, o)),
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
            Timer::Election => a.handle(state, o, |s, _| {
                s.node.role() != Role::Leader && tick_until_ready(&mut s.node, limit)
            }),
            Timer::Heartbeat => a.handle(state, o, |s, _| {
                s.node.role() == Role::Leader && tick_until_ready(&mut s.node, limit)
            }),
            // The correct core refuses while no entry of the term is committed or another
            // change is pending: then nothing changes and the timer stays set.
            Timer::Membership => a.handle(state, o, |s, _| {
                s.node.role() == Role::Leader
                    && removable(&s.node)
                        .is_some_and(|v| s.node.propose_conf_change(ConfChange::Remove(v)).is_ok())
            }),
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
    fn clock_fields_are_cut_out_of_debug_text() {
        let text = "Node { cfg: Config { id: 1, voters: {1, 2} }, term: 2, rng: Rng { state: 7 }, \
                    progress: {1: Progress { matched: 3, recent_active: true }}, election_elapsed: 4 }";
        let kept: String = without_fields(text, &CLOCK_FIELDS).concat();
        assert_eq!(
            kept,
            "Node { term: 2, progress: {1: Progress { matched: 3, }}, }"
        );
    }

    #[test]
    fn commands_round_trip() {
        for op in [Op::Write(3), Op::Read, Op::Cas { from: 1, to: 2 }] {
            assert_eq!(decode_command(&encode_command(2, 5, op)), Some((2, 5, op)));
        }
        assert_eq!(from_read_ctx(read_ctx(1, 3)), (1, 3));
    }
}
