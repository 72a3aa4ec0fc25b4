//! The event loop: one task owns the Raft core, the storage and the state machine; channels
//! feed it ticks, peer messages, client requests and admin requests.
//!
//! Concurrency choices, and why:
//! - **One owner, no locks.** The core, the WAL and the KV map live in one task ([`Driver`]),
//!   so no lock guards Raft state and nothing is ever held across an `.await`. HTTP handlers
//!   talk to it through an `mpsc` channel and get answers through `oneshot`s.
//! - **Batching.** Each turn of the loop takes one event, then drains whatever else is already
//!   queued (up to [`MAX_DRAIN`]), and only then asks the core for its `Ready`. Every proposal
//!   that arrived while the previous fsync ran therefore lands in one `Ready`, one WAL write
//!   and one `fdatasync` (group commit), and one AppendEntries per follower.
//! - **One thread, fsync beside it.** The node runs on a current-thread runtime: the loop, every
//!   HTTP connection and every peer sender share one thread, so handing a request to the loop
//!   and its answer back is a local task wake-up, not a cross-thread futex wake. Disk work (the
//!   WAL write and fsync, snapshots) goes to the blocking pool with [`Driver::on_disk`]; while
//!   the loop awaits it the same thread keeps reading requests into the channel, which is what
//!   fills the next group commit. The loop must wait anyway: nothing it does next may precede
//!   durability. Measured with the early answers below, C=32 writes ran at 9.2k-9.6k ops/s on
//!   this runtime against 7.5k-8.5k on a two-worker multi-thread one (BENCHMARKS.md).
//! - **Answer what is already durable first.** See [`Driver::handle_ready`]: committed entries
//!   this node has already fsynced are applied and answered before the new batch's fsync.
//! - **Leader appends in parallel with its own fsync** (Raft dissertation §10.2.1, as etcd
//!   does): a leader's AppendEntries, heartbeats and snapshots are queued *before* its local
//!   fsync. Safe because the follower acknowledgements that could commit those entries are
//!   stepped into the core only on a later turn of this same loop, after the fsync returned;
//!   votes and every other message still wait for the fsync.
//! - **Deadlines.** Each waiting client has a deadline; an expired write is answered
//!   [`ErrorKind::Unknown`](crate::api::ErrorKind) (it may still commit), an expired read
//!   the same. The loop answers in its own terms (`api::ErrorKind`); `http.rs` alone turns
//!   them into HTTP statuses.

mod admin;
mod pending;
mod recovery;
mod snapshot;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::{Bugs, Config, EntryKind, Message, MessageBody, Ready, Role};
use tokio::sync::mpsc;

use crate::api::{Answer, ApiError, ClientOp, Input, Refusal, StatusInfo};
use crate::codec;
use crate::http::{self, Shared};
use crate::kv::{Command, Kv, Outcome};
use crate::storage::{self, Storage, StorageError};
use crate::transport::Transport;
use pending::{Expiry, PendingRead, PendingWrite};
use recovery::{recover, stage_ready};

/// Most inputs taken from the channel per turn before the core is asked for work.
const MAX_DRAIN: usize = 4096;

/// Everything a node needs to start.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// This node's id.
    pub id: u64,
    /// Address to serve on (its IP is also the source of outgoing peer connections).
    pub listen: SocketAddr,
    /// The other nodes' addresses (possibly relays).
    pub peers: BTreeMap<u64, String>,
    /// The cluster's initial voters (default: this node and every peer).
    pub voters: Option<BTreeSet<u64>>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Length of one tick.
    pub tick: Duration,
    /// Election timeout in ticks.
    pub election_ticks: u32,
    /// Heartbeat interval in ticks.
    pub heartbeat_ticks: u32,
    /// Snapshot and compact every this many applied entries (0 = never).
    pub snapshot_every: u64,
    /// fsync the WAL.
    pub fsync: bool,
    /// Core bug switches.
    pub bugs: Bugs,
    /// Client request deadline.
    pub deadline: Duration,
    /// Time a client has to send a request's head (idle keep-alive time included).
    pub header_timeout: Duration,
    /// At most this many entries per AppendEntries (zero is refused by the core).
    pub max_append_entries: usize,
    /// At most this many unacknowledged AppendEntries per follower (zero is refused).
    pub max_inflight: usize,
}

/// Why the node stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The data directory could not be read or written.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The core refused the configuration or the persisted state.
    #[error("raft core refused to start: {0}")]
    Start(String),
    /// The WAL holds an entry the node cannot decode.
    #[error("entry {index} in the WAL does not decode: {source}")]
    BadEntry {
        /// Its index.
        index: u64,
        /// Why.
        source: codec::CodecError,
    },
    /// A snapshot (from disk or from the leader) does not decode.
    #[error("snapshot at index {index} does not decode: {why}")]
    BadSnapshot {
        /// Its index.
        index: u64,
        /// Why.
        why: String,
    },
    /// The listen address is taken or not local.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The loop's state (see the module docs).
struct Driver {
    node: raft::Node,
    /// `None` only while [`Driver::on_disk`] has it on the blocking pool.
    storage: Option<Storage>,
    kv: Kv,
    transport: Arc<Transport>,
    shared: Arc<Shared>,
    addr: String,
    writes: BTreeMap<u64, PendingWrite>,
    reads: HashMap<u64, PendingRead>,
    /// Reads confirmed at an index not yet applied.
    confirmed: Vec<(u64, u64)>,
    expiry: VecDeque<(Instant, Expiry)>,
    next_ctx: u64,
    next_request: u64,
    snapshot_every: u64,
    deadline: Duration,
    /// The (term, role, leader) last seen by [`Driver::on_leadership_change`].
    leadership_seen: Option<(u64, raft::Role, Option<u64>)>,
}

/// Runs a node until `shutdown` resolves.
pub async fn run(
    opts: NodeOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), NodeError> {
    storage::owner::claim(&opts.data_dir, opts.id)?;
    let (storage, rec) = Storage::open(
        &opts.data_dir,
        storage::Options {
            // BUG: `no-fsync` writes the WAL but never makes it durable (bugs.rs).
            fsync: opts.fsync && !opts.bugs.contains(raft::Bug::NoFsync),
            ..storage::Options::default()
        },
    )?;
    if rec.torn_bytes > 0 {
        tracing::warn!(bytes = rec.torn_bytes, "dropped a torn WAL tail");
    }
    let (persisted, kv) = recover(&storage, rec.snapshot_data)?;
    let voters = opts
        .voters
        .clone()
        .unwrap_or_else(|| opts.peers.keys().copied().chain([opts.id]).collect());
    let mut cfg = Config::new(opts.id, voters);
    cfg.election_ticks = opts.election_ticks;
    cfg.heartbeat_ticks = opts.heartbeat_ticks;
    cfg.bugs = opts.bugs;
    cfg.max_batch = opts.max_append_entries;
    cfg.max_inflight = opts.max_inflight;
    // Seeded from the clock: nodes restarted together must not draw the same timeouts.
    cfg.seed = opts.id ^ rand::random::<u64>();
    let node = raft::Node::new(cfg, persisted).map_err(|e| NodeError::Start(e.to_string()))?;

    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| NodeError::Bind {
            addr: opts.listen,
            source,
        })?;
    let own_ip = opts.listen.ip();
    let (tx, rx) = mpsc::channel(8192);
    let mut peers = opts.peers.clone();
    for (id, a) in &kv.peers {
        if *id != opts.id {
            peers.entry(*id).or_insert_with(|| a.clone());
        }
    }
    let transport = Arc::new(Transport::new(opts.id, own_ip));
    for (id, a) in &peers {
        transport.set_peer(*id, a.clone());
    }
    let shared = Arc::new(Shared::new(
        opts.id,
        own_ip,
        peers,
        tx,
        transport.clone(),
        opts.deadline,
    ));
    let server = tokio::spawn(http::serve(listener, shared.clone(), opts.header_timeout));
    tracing::info!(id = opts.id, listen = %opts.listen, applied = kv.applied, "node started");
    let mut driver = Driver {
        node,
        storage: Some(storage),
        kv,
        transport,
        shared,
        addr: opts.listen.to_string(),
        writes: BTreeMap::new(),
        reads: HashMap::new(),
        confirmed: Vec::new(),
        expiry: VecDeque::new(),
        next_ctx: 1,
        next_request: 1,
        snapshot_every: opts.snapshot_every,
        deadline: opts.deadline,
        leadership_seen: None,
    };
    let res = driver.run(rx, opts.tick, shutdown).await;
    server.abort();
    tracing::info!(id = opts.id, "node stopped");
    res
}

impl Driver {
    async fn run(
        &mut self,
        mut rx: mpsc::Receiver<Input>,
        tick: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), NodeError> {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => return Ok(()),
                _ = ticker.tick() => self.node.tick(),
                input = rx.recv() => match input {
                    Some(i) => self.on_input(i),
                    None => return Ok(()),
                },
            }
            for _ in 0..MAX_DRAIN {
                match rx.try_recv() {
                    Ok(i) => self.on_input(i),
                    Err(_) => break,
                }
            }
            self.expire(Instant::now());
            // A Ready's advance can make more work (e.g. entries committed by our own append
            // in a single-voter cluster); a few rounds settle it without starving the inputs.
            for _ in 0..4 {
                if !self.node.has_ready() {
                    break;
                }
                let rd = self.node.ready();
                self.handle_ready(rd).await?;
            }
            self.on_leadership_change();
        }
    }

    /// On each change of term, role or known leader: a new term fails the requests
    /// forwarded to an older term's leader now rather than at the deadline (the old leader
    /// may be paused, its kernel still ACKing), and every change is logged with the commit
    /// and last index at that moment (what an operator, or a nemesis run's analysis, reads
    /// first).
    fn on_leadership_change(&mut self) {
        let now = (self.node.term(), self.node.role(), self.node.leader());
        if self.leadership_seen != Some(now) {
            if self.leadership_seen.map(|(term, _, _)| term) != Some(now.0) {
                self.transport.new_term(now.2);
            }
            self.leadership_seen = Some(now);
            let log = self.node.log();
            tracing::info!(
                term = now.0,
                role = ?now.1,
                leader = ?now.2,
                commit = log.committed,
                last_index = log.last_index(),
                "leadership"
            );
        }
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Peer { from, body } => self.on_peer(from, &body),
            Input::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Input::Client { op, reply } => match op {
                ClientOp::Read { key } => self.on_read(key, reply),
                ClientOp::Write(cmd) => self.on_write(cmd, reply),
            },
            Input::Admin { op, reply } => self.on_admin(op, reply),
        }
    }

    fn on_peer(&mut self, from: u64, body: &[u8]) {
        let msgs = match raft::decode_messages(body) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(from, "undecodable peer body dropped: {e}");
                return;
            }
        };
        for m in msgs {
            if m.from != from {
                tracing::warn!(from, claimed = m.from, "message with a forged sender");
                continue;
            }
            if let Err(e) = self.node.step(m) {
                tracing::debug!(from, "step refused: {e}");
            }
        }
    }

    fn status(&self) -> StatusInfo {
        let s = self.node.status();
        StatusInfo {
            id: s.id,
            role: s.role.name().to_string(),
            term: s.term,
            leader: s.leader,
            commit: s.commit,
            applied: self.kv.applied,
            last_index: s.last_index,
            voters: s.voters.union(&s.outgoing).copied().collect(),
            learners: s.learners.into_iter().collect(),
            addr: self.addr.clone(),
        }
    }

    fn send(&self, m: Message) {
        self.transport.send(m);
    }

    /// The driver contract: persist, send, apply, answer, advance.
    async fn handle_ready(&mut self, mut rd: Ready) -> Result<(), NodeError> {
        let hs_term = rd.hard_state.as_ref().map(|h| h.term);
        let term_durable = hs_term.is_none_or(|t| t == self.storage().state().hard_state.term);
        if self.node.role() == Role::Leader && term_durable {
            let (early, late): (Vec<Message>, Vec<Message>) =
                std::mem::take(&mut rd.messages).into_iter().partition(|m| {
                    matches!(
                        m.body,
                        MessageBody::AppendEntries { .. }
                            | MessageBody::Heartbeat { .. }
                            | MessageBody::InstallSnapshot { .. }
                    )
                });
            for m in early {
                self.send(m);
            }
            rd.messages = late;
        }
        // Entries already durable here and committed by a quorum are answered before this
        // Ready's own fsync, not after it: the acknowledgements that committed them usually
        // arrive while the previous fsync runs, in the same Ready as the next batch of
        // proposals, and waiting for that batch's fsync would add a whole disk flush to every
        // write's latency. Only this Ready's new entries need the flush; applying doesn't
        // send anything, and the messages that report new state still wait for it below.
        if term_durable && rd.snapshot.is_none() && rd.truncate_from.is_none() {
            // (`apply` skips what it has seen, so the loop after the fsync takes the rest.)
            let durable = self.storage().state().last_index();
            for e in rd
                .committed_entries
                .iter()
                .take_while(|e| e.index <= durable)
            {
                self.apply(e);
            }
            for r in std::mem::take(&mut rd.read_states) {
                self.confirmed.push((r.ctx, r.index));
            }
            self.answer_reads();
        }
        self.persist(&rd).await?;
        for m in std::mem::take(&mut rd.messages) {
            self.send(m);
        }
        if let Some(s) = &rd.snapshot {
            self.restore(s)?;
        }
        for e in &rd.committed_entries {
            self.apply(e);
        }
        for r in &rd.read_states {
            self.confirmed.push((r.ctx, r.index));
        }
        self.answer_reads();
        for ctx in &rd.dropped_reads {
            if let Some(r) = self.reads.remove(ctx) {
                let e = ApiError::unavailable("leadership lost");
                let _ = r.reply.send(Err(Refusal::Error(e)));
            }
        }
        for p in &rd.dropped_proposals {
            self.resolve(p.index, p.term, |_| {
                Err(ApiError::unavailable(
                    "proposal lost to another leader's entry (not applied)",
                ))
            });
        }
        for p in &rd.unknown_proposals {
            self.resolve(p.index, p.term, |_| {
                Err(ApiError::unknown(
                    "proposal covered by a snapshot; outcome unknown",
                ))
            });
        }
        self.node.advance(rd);
        self.maybe_snapshot().await?;
        Ok(())
    }

    /// Persists a `Ready`: snapshot, truncation, hard state, entries, then one fsync.
    ///
    /// The hard state is staged *before* the entries (the core's contract lists it after;
    /// both land in the same write and fsync, so only a torn write tells them apart). A
    /// SIGKILL can cut a large `write` at a page boundary, and recovery keeps the intact
    /// prefix: with this order, a prefix holding entries of a new term also holds that term,
    /// so the core never finds its log ahead of its term (`TermBehindLog`) on restart. A
    /// prefix that holds the hard state but not the entries only has a commit index beyond
    /// the log, which the core clamps.
    async fn persist(&mut self, rd: &Ready) -> Result<(), NodeError> {
        if let Some(s) = &rd.snapshot {
            self.install_snapshot(s).await?;
        }
        if stage_ready(self.storage_mut(), rd)? {
            self.on_disk(Storage::sync).await?;
        } else {
            // Page-cache write of a commit-index hint: microseconds, not worth a thread hop.
            self.storage_mut().write_unsynced()?;
        }
        Ok(())
    }

    fn storage(&self) -> &Storage {
        self.storage
            .as_ref()
            .expect("storage is back after every on_disk")
    }

    fn storage_mut(&mut self) -> &mut Storage {
        self.storage
            .as_mut()
            .expect("storage is back after every on_disk")
    }

    /// Runs blocking disk work on the blocking pool and waits for it, leaving the runtime's
    /// one thread free for connections meanwhile (see the module docs).
    async fn on_disk<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Storage) -> T + Send + 'static,
    ) -> T {
        let mut st = self.storage.take().expect("on_disk calls do not overlap");
        let (st, out) = tokio::task::spawn_blocking(move || {
            let out = f(&mut st);
            (st, out)
        })
        .await
        .expect("disk work does not panic");
        self.storage = Some(st);
        out
    }

    fn apply(&mut self, e: &raft::Entry) {
        if e.index <= self.kv.applied {
            return;
        }
        self.kv.applied = e.index;
        let answer = match &e.kind {
            EntryKind::Normal(data) => match Command::decode(data) {
                Ok((_, cmd)) => {
                    if let Command::SetPeer { id, addr } = &cmd {
                        self.learn_peer(*id, addr);
                    }
                    match self.kv.apply(cmd) {
                        Outcome::Done => Answer::Done,
                        Outcome::CasFailed(v) => Answer::CasFailed(v),
                        Outcome::Appended(v) => Answer::Appended(v),
                    }
                }
                Err(err) => {
                    // Every node skips it alike, so the replicas stay identical.
                    tracing::error!(index = e.index, "committed command does not decode: {err}");
                    Answer::Done
                }
            },
            EntryKind::NoOp => Answer::Done,
            EntryKind::ConfChange(c) => {
                tracing::info!(index = e.index, change = ?c, "membership change committed");
                Answer::Index(e.index)
            }
        };
        self.resolve(e.index, e.term, |admin| {
            Ok(if admin {
                Answer::Index(e.index)
            } else {
                answer
            })
        });
    }
}
