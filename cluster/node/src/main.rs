//! The `cluster` binary: `cluster node …` runs one Raft key-value node, `cluster up …` starts a
//! local cluster of them and stops it on Ctrl-C.

mod up;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use cluster_node::node::{self, NodeOptions};

/// A Raft key-value store: one OS process per node, HTTP API (see cluster/API.md).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one node.
    Node(NodeArgs),
    /// Start a local cluster (one process per node on 127.0.0.1..N), print the addresses,
    /// wait for a leader, and stop every node on Ctrl-C or SIGTERM.
    Up(up::UpArgs),
}

#[derive(Args, Debug)]
struct NodeArgs {
    /// This node's id (a positive integer, unique in the cluster).
    #[arg(long)]
    id: u64,
    /// Address to serve clients, peers and admin on, e.g. 127.0.0.1:7001. Its IP is also the
    /// source address of outgoing peer connections, so firewall rules by address work.
    #[arg(long)]
    listen: SocketAddr,
    /// Another node, as ID=ADDR (repeat for each peer). ADDR may be a relay in front of the
    /// peer: incoming peers are identified by their x-raft-from header, not their address.
    #[arg(long = "peer", value_name = "ID=ADDR")]
    peers: Vec<String>,
    /// The cluster's initial voters, comma-separated (default: this node and every --peer).
    /// A node added later with /admin/add is started with the original set here.
    #[arg(long, value_delimiter = ',')]
    voters: Option<Vec<u64>>,
    /// Directory of the write-ahead log and snapshots (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// Length of one Raft tick in milliseconds.
    #[arg(long, default_value_t = 10)]
    tick_ms: u64,
    /// Election timeout in ticks (randomized in [T, 2T)).
    #[arg(long, default_value_t = 10)]
    election_ticks: u32,
    /// Leader heartbeat interval in ticks.
    #[arg(long, default_value_t = 2)]
    heartbeat_ticks: u32,
    /// Snapshot the state machine and compact the log every N applied entries (0 = never).
    #[arg(long, default_value_t = 10_000)]
    snapshot_every: u64,
    /// Do not fsync the WAL (unsafe: acknowledged writes can be lost on a machine crash).
    #[arg(long)]
    no_fsync: bool,
    /// Switch on a bug in the Raft core (repeatable): commit-old-term, forget-vote,
    /// no-log-check, local-read, early-read, unsafe-membership, truncate-matching, no-fsync.
    #[arg(long = "bug", value_name = "NAME")]
    bugs: Vec<String>,
    /// Client request deadline in milliseconds; a write not committed by then gets 504
    /// (outcome unknown).
    #[arg(long, default_value_t = 5000)]
    deadline_ms: u64,
    /// Time a client has to send a request's head, in milliseconds, idle keep-alive time
    /// included (then the connection is closed). Keep it above clients' pool idle timeouts.
    #[arg(long, default_value_t = 60_000)]
    header_timeout_ms: u64,
    /// Write logs to this file instead of stderr.
    #[arg(long)]
    log_file: Option<PathBuf>,
    /// At most this many entries per AppendEntries (the core's `max_batch`).
    #[arg(long, default_value_t = raft::Config::DEFAULT_MAX_BATCH)]
    max_append_entries: usize,
    /// At most this many unacknowledged AppendEntries per follower (the core's
    /// `max_inflight`). With `--max-append-entries 1 --max-inflight 1` a leader brings a
    /// follower up one entry per round trip, as in the paper's figures: the nemesis uses
    /// that to play Figure 8 (an old-term entry reaching a majority alone).
    #[arg(long, default_value_t = raft::Config::DEFAULT_MAX_INFLIGHT)]
    max_inflight: usize,
}

fn parse_peers(specs: &[String], me: u64) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut peers = BTreeMap::new();
    for s in specs {
        let (id, addr) = s
            .split_once('=')
            .with_context(|| format!("--peer {s:?}: expected ID=ADDR"))?;
        let id: u64 = id
            .parse()
            .ok()
            .filter(|&i| i > 0)
            .with_context(|| format!("--peer {s:?}: {id:?} is not a positive id"))?;
        if id == me {
            bail!("--peer {s:?}: that is this node's own id");
        }
        if addr.is_empty() {
            bail!("--peer {s:?}: empty address");
        }
        if peers.insert(id, addr.to_string()).is_some() {
            bail!("--peer {s:?}: id {id} given twice");
        }
    }
    Ok(peers)
}

fn init_logs(file: Option<&PathBuf>) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt().with_env_filter(filter);
    match file {
        Some(p) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("cannot open log file {}", p.display()))?;
            b.with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .init();
        }
        None => b.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

fn run_node(a: NodeArgs) -> anyhow::Result<()> {
    if a.id == 0 {
        bail!("--id must be positive");
    }
    let peers = parse_peers(&a.peers, a.id)?;
    let mut bugs = raft::Bugs::none();
    for b in &a.bugs {
        bugs = bugs.with(b.parse::<raft::Bug>()?);
    }
    init_logs(a.log_file.as_ref())?;
    let opts = NodeOptions {
        id: a.id,
        listen: a.listen,
        peers,
        voters: a.voters.map(|v| v.into_iter().collect()),
        data_dir: a.data_dir,
        tick: Duration::from_millis(a.tick_ms.max(1)),
        election_ticks: a.election_ticks,
        heartbeat_ticks: a.heartbeat_ticks,
        snapshot_every: a.snapshot_every,
        fsync: !a.no_fsync,
        bugs,
        deadline: Duration::from_millis(a.deadline_ms.max(1)),
        header_timeout: Duration::from_millis(a.header_timeout_ms.max(1)),
        max_append_entries: a.max_append_entries,
        max_inflight: a.max_inflight,
    };
    // One thread runs everything but the disk (see node/mod.rs, "One thread, fsync beside it"):
    // the event loop, every connection and every peer sender, so a request reaches the loop
    // and its answer the connection without a cross-thread wake-up. Disk work runs on the
    // blocking pool; one or two threads are all it ever uses, since the loop awaits each call.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()?;
    rt.block_on(async {
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        node::run(opts, shutdown).await
    })
    .map_err(|e| {
        tracing::error!("{e}");
        anyhow::Error::from(e)
    })
}

/// mimalloc instead of glibc's allocator: a node allocates and frees small buffers for every
/// request (HTTP heads, JSON, frames), and under C=32 writes glibc's `malloc`/`free` paths
/// were about 6% of all CPU; with mimalloc the same benchmark runs about 7% faster
/// (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Node(a) => run_node(a),
        Cmd::Up(a) => up::run(a),
    }
}
