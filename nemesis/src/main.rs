//! `nemesis`: a Jepsen-style test of a replicated key-value store on one machine.
//!
//! `nemesis run` (the default) starts a cluster, drives clients, injects faults, checks the
//! history and prints a verdict; `nemesis bench` drives load for a throughput figure.
//! See `nemesis/README.md` for every flag, the run directory and the exit codes.

mod bench;
mod checks;
mod client;
mod faults;
mod lazyfs;
mod linear;
mod net;
mod progress;
mod recorder;
mod run;
mod rundir;
mod sut;
mod workload;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Command line of the `nemesis` binary.
#[derive(Parser, Debug)]
#[command(
    name = "nemesis",
    version,
    about = "Jepsen-style tester: start a cluster, attack it, check what clients saw",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Flags of `run` when no subcommand is given.
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a test: start the cluster, drive clients under faults, check the history (default).
    Run(RunArgs),
    /// Drive load against a freshly started cluster and report throughput and latency.
    Bench(bench::BenchArgs),
    /// Browse past runs: a local page listing every run with its verdict, date, target and
    /// faults, linking to each run's report (loopback only; Ctrl-C stops it).
    Serve(ServeArgs),
}

/// Flags of `serve`.
#[derive(Args, Debug)]
struct ServeArgs {
    /// Runs directory (default: histories/runs under the workspace root).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Address to listen on; loopback addresses only.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
}

fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let root = rundir::workspace_root().unwrap_or_else(|| PathBuf::from("."));
    let dir = a.dir.unwrap_or_else(|| root.join("histories/runs"));
    report::serve(&dir, a.addr)?;
    Ok(())
}

/// Which system to test.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// Our Raft cluster (`cluster node`).
    Raft,
    /// etcd 3.4 from PATH, through its JSON gateway.
    Etcd,
}

/// How etcd serves reads (`--etcd-reads`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtcdReads {
    /// Ranges go through a quorum round (etcd's default).
    Linearizable,
    /// Ranges with `"serializable": true`: served by the local node, possibly stale.
    Serializable,
}

/// Which workload the clients run.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// Read / write / cas over registers.
    Register,
    /// Append unique elements and read whole values.
    Append,
}

/// Which partition backend to use.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetChoice {
    /// Our cluster: the proxy (it also shapes and reorders links); etcd: iptables when root
    /// and available, else the proxy.
    Auto,
    /// Firewall rules in a chain this project owns (needs root).
    Iptables,
    /// Relays owned by the runner between every pair of nodes (no root needed).
    Proxy,
}

/// Which system a run or a benchmark starts, and how (shared by `run` and `bench`).
#[derive(Args, Debug, Clone)]
pub struct SystemArgs {
    /// System under test.
    #[arg(long, value_enum, default_value = "raft")]
    pub target: TargetKind,
    /// Path of the `cluster` binary (default: $NEMESIS_CLUSTER_BIN, a sibling of this
    /// executable, or `cargo build --release -p cluster-node` inside the workspace).
    #[arg(long)]
    pub cluster_bin: Option<PathBuf>,
    /// How etcd serves reads (`--target etcd`): linearizable, or serializable (local and
    /// possibly stale: a run under partitions should come out not linearizable).
    #[arg(long, value_enum, default_value = "linearizable")]
    pub etcd_reads: EtcdReads,
}

/// Flags of a test run.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The system under test.
    #[command(flatten)]
    pub system: SystemArgs,
    /// Number of nodes.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Number of concurrent logical client processes.
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// Length of the attack phase, in seconds (the final phase comes after it).
    #[arg(long, default_value_t = 60)]
    pub time_limit: u64,
    /// Number of keys the clients spread over.
    #[arg(long, default_value_t = 10)]
    pub keys: usize,
    /// Workload (append by default: a stale read shows as a missing element, a lost
    /// write names its element, and the checker decides long append histories quickly).
    #[arg(long, value_enum, default_value = "append")]
    pub workload: WorkloadKind,
    /// Faults to inject, comma separated (each kind is described below), or `none`.
    /// Without it: the default hunting schedule (composed, leader-aware episodes and hot
    /// keys, drawn from the seed and printed).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub faults: Option<Vec<faults::FaultKind>>,
    /// Partition backend.
    #[arg(long, value_enum, default_value = "auto")]
    pub net: NetChoice,
    /// Seed of the fault schedule and of the workload (printed; replays the same schedule).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Bug switch passed to every node (`--target raft` only), e.g. local-read, forget-vote.
    #[arg(long)]
    pub bug: Option<String>,
    /// Total client request rate limit, operations per second (0: as fast as possible).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// With --faults LIST: mean time in seconds between a fault's start and its stop, and
    /// between faults (the default schedule times its own episodes).
    #[arg(long, default_value_t = 10.0)]
    pub fault_interval: f64,
    /// Run directory (default: histories/runs/<timestamp>/ under the workspace root).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Timeout of every client request, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub request_timeout_ms: u64,
    /// Timeout of the "patient" half of the workers (odd indices), in milliseconds; 0 gives
    /// every worker --request-timeout-ms. See `workload::WorkerCtx::patient_timeout`.
    #[arg(long, default_value_t = 10_000)]
    pub patient_timeout_ms: u64,
    /// Time limit of the linearizability check, in seconds (then the verdict is unknown).
    #[arg(long, default_value_t = 60)]
    pub check_time_limit: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::Bench(args)) => bench::main(args).map(|()| run::RunVerdict::Valid),
        Some(Command::Serve(args)) => serve(args).map(|()| run::RunVerdict::Valid),
        Some(Command::Run(args)) => run::main(args),
        None => run::main(cli.run),
    };
    match outcome {
        Ok(v) => ExitCode::from(v.exit_code()),
        Err(e) => {
            eprintln!("nemesis: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
