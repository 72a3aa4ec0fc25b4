//! The model's states and messages: what a node actor holds (the core, its state machine,
//! what it saved, its history variables), what a client holds, and what travels between
//! them. Below the actors; nothing here drives the core.

use super::register::{self, Op, RegisterHistory, Ret, Value};
use super::workload::Grow;
use raft::testkit::{Disk, Safety};
use raft::{Message, Node, Role};
use stateright::actor::{ActorModelAction, Envelope, Id};
use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The action type of the model.
pub type Action = ActorModelAction<Msg, Timer, ()>;

/// A protocol message on the model's network, kept encoded with the core's own codec.
///
/// Why bytes: stateright needs `Ord` on messages (to sort actions) and hashes every message
/// of every state; the core's `Message` is neither `Ord` nor small. The encoding is compact,
/// canonical (one encoding per message) and ordered, and decoding it is cheap. Shared
/// (`Arc`): a message stays in the network for many steps, and every state carrying it
/// shares one copy.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Wire(pub Arc<[u8]>);

impl Wire {
    /// Encodes a core message.
    pub fn encode(m: &Message) -> Wire {
        let mut buf = Vec::with_capacity(32);
        m.encode(&mut buf);
        Wire(buf.into())
    }

    /// Decodes it again; the model only ever holds bytes it encoded itself.
    pub fn decode(&self) -> Message {
        Message::decode(&self.0).expect("the model only carries messages it encoded")
    }
}

impl fmt::Debug for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.decode(), f)
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
    /// A leader's administrator adds the spare node (only with the growth workload).
    Grow(Grow),
    /// The driver compacts the applied log into a snapshot (only with snapshots on).
    Compact,
}

/// A safety monitor that fired inside a step (the properties read it from the state).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Broken {
    /// A property checked within the step: a leader rewrote its own entry (leader
    /// append-only), or a node's committed entry changed term (state machine safety).
    Safety(Safety),
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
    /// This node installed a snapshot a leader sent (for the coverage milestones).
    pub installed: bool,
}

/// What a node has on stable storage: the test kit's disk, its boot count, and the ghost.
/// Shared (`Arc`) and hashed once, because stateright clones and hashes every actor's
/// storage for every state.
#[derive(Clone, PartialEq)]
pub struct Storage {
    data: Arc<StorageData>,
    fp: u64,
}

/// The contents of a [`Storage`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct StorageData {
    /// What the core persisted (and, on a lazy disk, what it wrote but did not sync).
    pub disk: Disk,
    /// How many times the node restarted from this storage.
    pub boots: u8,
    /// The history variables.
    pub ghost: Ghost,
}

impl Storage {
    pub(super) fn new(data: StorageData) -> Storage {
        let fp = hash_of(&data);
        Storage {
            data: Arc::new(data),
            fp,
        }
    }

    /// Its identity (a hash of the contents).
    pub(super) fn fingerprint(&self) -> u64 {
        self.fp
    }

    /// The contents.
    pub fn data(&self) -> &StorageData {
        &self.data
    }
}

impl Hash for Storage {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fp.hash(state);
    }
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.data.disk.current();
        write!(
            f,
            "Storage {{ term: {}, vote: {:?}, commit: {}, entries: {}, unsynced: {}, boots: {} }}",
            p.hard_state.term,
            p.hard_state.vote,
            p.hard_state.commit,
            p.entries.len(),
            self.data.disk.has_unsynced(),
            self.data.boots
        )
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
    pub(super) fn new(clients: usize) -> Machine {
        Machine {
            value: 0,
            sessions: vec![None; clients],
        }
    }

    /// Applies a client command once; the result to report, `None` for an older duplicate.
    pub(super) fn apply(&mut self, client: usize, seq: u8, op: Op) -> Option<Ret> {
        match self.sessions.get(client).copied().flatten() {
            Some((last, ret)) if last == seq => return Some(ret),
            Some((last, _)) if last > seq => return None,
            _ => {}
        }
        let ret = register::apply(&mut self.value, op);
        if let Some(s) = self.sessions.get_mut(client) {
            *s = Some((seq, ret));
        }
        Some(ret)
    }
}

/// Encodes a client command as entry data: client, seq, then the operation.
pub(super) fn encode_command(client: usize, seq: u8, op: Op) -> Vec<u8> {
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
pub(super) fn read_ctx(client: usize, seq: u8) -> u64 {
    1 + (client as u64) * 256 + u64::from(seq)
}

/// The inverse of [`read_ctx`].
pub(super) fn from_read_ctx(ctx: u64) -> (usize, u8) {
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
    /// What it has saved (the same value stateright keeps as its storage).
    pub storage: Storage,
    /// History variables.
    pub ghost: Ghost,
    /// The state's identity (see [`NodeState::seal`]).
    pub(super) fp: u64,
    /// Whether `fp` leaves the core's clock out.
    pub(super) abstract_clock: bool,
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

/// One node, briefly: role, term, vote, log terms, commit, register value.
impl fmt::Debug for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.node.status();
        let role = match st.role {
            Role::Follower => "F",
            Role::PreCandidate => "P",
            Role::Candidate => "C",
            Role::Leader => "L",
        };
        let log: Vec<String> = (self.node.log().all_entries().iter())
            .map(|e| e.term.to_string())
            .collect();
        let vote = st.vote.map_or("-".into(), |v| format!("n{v}"));
        write!(
            f,
            "{role} t{} vote={vote} log=[{}] commit={} value={}",
            st.term,
            log.join(","),
            st.commit,
            self.machine.value
        )
    }
}

/// A client's state: how many operations of its script have completed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientState {
    /// Operations completed (the next one in flight, if any).
    pub done: u8,
}

/// An actor's state.
///
/// Why the node behind its own `Arc` although stateright keeps each actor's state behind
/// one: stateright allocates a fresh `Arc` for every state a step produces, while the
/// model hands out shared node states (see `intern.rs`), so that the many global states in
/// which a node is in the same local state hold one copy of it.
#[derive(Clone, Debug, PartialEq, Hash)]
pub enum State {
    /// A Raft node.
    Node(Arc<NodeState>),
    /// A client.
    Client(ClientState),
}

pub(super) fn hash_of<T: Hash>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

impl NodeState {
    /// Computes the state's identity after a step: the core (all of it, or with
    /// `abstract_clock` all but its clock, see `Node::hash_without_clock`), the state
    /// machine, the storage and the ghost.
    pub(super) fn seal(&mut self, abstract_clock: bool) {
        self.abstract_clock = abstract_clock;
        let mut h = DefaultHasher::new();
        if abstract_clock {
            self.node.hash_without_clock(&mut h);
        } else {
            self.node.hash(&mut h);
        }
        self.machine.hash(&mut h);
        self.storage.fp.hash(&mut h);
        self.ghost.hash(&mut h);
        self.fp = h.finish();
    }

    /// The hash of what does not name a node: role, term, whether the vote is for itself,
    /// log terms, commit, register, boots and the ghost's terms. Equal for two nodes that
    /// are renamings of each other (the converse need not hold: ties are broken by trying
    /// every order, see `symmetry.rs`).
    pub(super) fn shape(&self) -> u64 {
        let mut h = DefaultHasher::new();
        let st = self.node.status();
        (st.role, st.term, st.vote.map(|v| v == st.id), st.commit).hash(&mut h);
        for e in self.node.log().all_entries() {
            e.term.hash(&mut h);
        }
        (self.machine.value, self.storage.data().boots).hash(&mut h);
        (self.ghost.led, &self.ghost.committed).hash(&mut h);
        h.finish()
    }
}

/// A client sent a request: the invocation, recorded once although the request goes to
/// every node (on the copy to the first node).
pub fn record_send(
    history: &RegisterHistory,
    nodes: usize,
    env: Envelope<&Msg>,
) -> Option<RegisterHistory> {
    let Msg::Request { op, .. } = env.msg else {
        return None;
    };
    if env.dst != Id::from(0) {
        return None;
    }
    Some(history.invoke(usize::from(env.src) - nodes, *op))
}

/// A reply reached a client: the return, if it is the one the client waits for.
pub fn record_receive(
    history: &RegisterHistory,
    nodes: usize,
    env: Envelope<&Msg>,
) -> Option<RegisterHistory> {
    let Msg::Reply { seq, ret } = env.msg else {
        return None;
    };
    let client = usize::from(env.dst).checked_sub(nodes)?;
    history.ret(client, *seq, *ret)
}

/// The state machine as snapshot bytes: the register, then per client whether it has a
/// session, its last seq and the result (tag, value).
pub(super) fn encode_machine(m: &Machine) -> Vec<u8> {
    use super::register::Ret;
    let mut out = vec![m.value];
    for s in &m.sessions {
        match s {
            None => out.extend([0, 0, 0, 0]),
            Some((seq, ret)) => {
                let (tag, v) = match ret {
                    Ret::WriteOk => (0, 0),
                    Ret::ReadOk(v) => (1, *v),
                    Ret::CasOk => (2, 0),
                    Ret::CasFail => (3, 0),
                };
                out.extend([1, *seq, tag, v]);
            }
        }
    }
    out
}

/// The inverse of [`encode_machine`]; `None` for bytes it did not write.
pub(super) fn decode_machine(data: &[u8]) -> Option<Machine> {
    use super::register::Ret;
    let (&value, rest) = data.split_first()?;
    if rest.len() % 4 != 0 {
        return None;
    }
    let mut sessions = Vec::new();
    for c in rest.chunks(4) {
        sessions.push(match c {
            [0, ..] => None,
            [1, seq, tag, v] => {
                let ret = match tag {
                    0 => Ret::WriteOk,
                    1 => Ret::ReadOk(*v),
                    2 => Ret::CasOk,
                    3 => Ret::CasFail,
                    _ => return None,
                };
                Some((*seq, ret))
            }
            _ => return None,
        });
    }
    Some(Machine { value, sessions })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_check::register::{Op, Ret};

    #[test]
    fn a_machine_round_trips_through_its_snapshot() {
        let mut m = Machine::new(2);
        m.apply(0, 0, Op::Write(1));
        m.apply(1, 1, Op::Cas { from: 1, to: 11 });
        assert_eq!(m.sessions[1], Some((1, Ret::CasOk)));
        assert_eq!(decode_machine(&encode_machine(&m)), Some(m));
        assert_eq!(decode_machine(&[]), None);
        assert_eq!(decode_machine(&[0, 1, 0]), None);
    }
}
