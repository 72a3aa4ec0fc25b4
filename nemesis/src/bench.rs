//! `nemesis bench`: start a target cluster, drive C keep-alive clients as fast as they go
//! for T seconds, stop it, report throughput and latency quantiles.

use crate::client::{Http, Op, Outcome};
use crate::run::make_target;
use crate::sut::{self, Processes};
use crate::SystemArgs;
use anyhow::{bail, Context, Result};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Flags of `nemesis bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// The system to measure.
    #[command(flatten)]
    pub system: SystemArgs,
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Concurrent clients, each with its own keep-alive connection.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Measurement length, seconds.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Number of keys.
    #[arg(long, default_value_t = 100)]
    pub keys: usize,
    /// Fraction of operations that are (linearizable) reads, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.0)]
    pub reads: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Directory for node data and logs (default: a fresh directory under the system temp
    /// dir, removed afterwards).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Timeout of every request, milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub request_timeout_ms: u64,
    /// Where the clients connect: spread over every node, or all on the leader.
    #[arg(long, value_enum, default_value = "all")]
    pub clients_at: ClientsAt,
}

/// Placement of the benchmark's clients.
///
/// Both systems forward a write sent to a follower to their leader, one more hop each way, so
/// `all` measures what clients that know no leader see, and `leader` each system at its best.
/// A comparison between systems is fair only at the same placement.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientsAt {
    /// Client `i` on node `i mod N` (the leader gets its share; the rest are forwarded).
    All,
    /// Every client on the node that was leader when the measurement began.
    Leader,
}

impl ClientsAt {
    /// The node client `i` connects to, given the nodes and the leader's id.
    fn node_of(self, i: usize, nodes: &[crate::net::NodeNet], leader: usize) -> usize {
        match self {
            ClientsAt::All => nodes[i % nodes.len()].id,
            ClientsAt::Leader => leader,
        }
    }
}

/// The figures of one benchmark.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BenchReport {
    /// `raft` or `etcd`.
    pub target: String,
    /// Nodes.
    pub nodes: usize,
    /// Clients.
    pub concurrency: usize,
    /// Read fraction.
    pub reads: f64,
    /// Where the clients were.
    pub clients_at: ClientsAt,
    /// Seconds measured.
    pub duration_s: f64,
    /// Successful operations.
    pub ok: u64,
    /// Operations that failed or timed out.
    pub errors: u64,
    /// Successful operations per second.
    pub ops_per_s: f64,
    /// Latency quantiles of successful operations, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// The `q` quantile (nearest rank) of sorted latencies, in ms.
pub fn quantile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

/// Runs the benchmark.
pub fn main(args: BenchArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.reads) {
        bail!("--reads {}: must be between 0 and 1", args.reads);
    }
    if args.concurrency == 0 || args.keys == 0 || args.duration == 0 {
        bail!("--concurrency, --keys and --duration must be at least 1");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (dir, temporary) = match &args.data_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("nemesis-bench-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir)?;
    let report = rt.block_on(bench(&args, &dir));
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let r = report?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} {} nodes, C={} (clients at {}), reads {:.0}%, {:.1} s: {:.0} ops/s ({} ok, {} errors); latency ms p50 {:.2} p99 {:.2} p999 {:.2} max {:.2}",
            r.target, r.nodes, r.concurrency, format!("{:?}", r.clients_at).to_lowercase(),
            r.reads * 100.0, r.duration_s,
            r.ops_per_s, r.ok, r.errors, r.p50_ms, r.p99_ms, r.p999_ms, r.max_ms
        );
    }
    Ok(())
}

async fn bench(args: &BenchArgs, dir: &std::path::Path) -> Result<BenchReport> {
    let target = make_target(&args.system, args.nodes, None, None, false)?;
    let direct: Vec<_> = target
        .nodes()
        .iter()
        .map(|n| std::net::SocketAddr::new(n.ip.into(), n.port))
        .collect();
    let mut cluster = Processes::new(target.clone(), dir, |_, to| direct[to - 1])?;
    cluster.start_all()?;
    let http = Http::new(Duration::from_millis(500));
    let leader = sut::wait_for_leader(target.as_ref(), &http, Duration::from_secs(30))
        .await
        .with_context(|| format!("starting the cluster (logs in {})", dir.display()))?;
    let timeout = Duration::from_millis(args.request_timeout_ms);
    let start = Instant::now();
    let end = start + Duration::from_secs(args.duration);
    let mut tasks = Vec::new();
    for i in 0..args.concurrency {
        let node = args.clients_at.node_of(i, target.nodes(), leader);
        let client = target.client(node, Http::new(timeout));
        let (keys, reads) = (args.keys, args.reads);
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(i as u64);
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut n = 0u64;
            while Instant::now() < end {
                let key = format!("k{}", rng.gen_range(0..keys));
                let op = if rng.gen_bool(reads) {
                    Op::Read
                } else {
                    n += 1;
                    Op::Write(format!("{i}-{n}"))
                };
                let t0 = Instant::now();
                match client.invoke(&key, &op).await {
                    Outcome::Ok(_) => lat.push(t0.elapsed()),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    cluster.stop_all();
    lat.sort_unstable();
    Ok(BenchReport {
        target: target.name().to_string(),
        nodes: args.nodes,
        concurrency: args.concurrency,
        reads: args.reads,
        clients_at: args.clients_at,
        duration_s: secs,
        ok: lat.len() as u64,
        errors,
        ops_per_s: lat.len() as f64 / secs,
        p50_ms: quantile(&lat, 0.5),
        p99_ms: quantile(&lat, 0.99),
        p999_ms: quantile(&lat, 0.999),
        max_ms: quantile(&lat, 1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_spread_over_every_node_or_all_sit_on_the_leader() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let parse = |extra: &[&str]| {
            let argv = ["bench"].iter().chain(extra).copied();
            Cli::try_parse_from(argv).map(|c| c.bench.clients_at)
        };
        assert_eq!(parse(&[]).unwrap(), ClientsAt::All);
        assert_eq!(
            parse(&["--clients-at", "leader"]).unwrap(),
            ClientsAt::Leader
        );
        assert!(parse(&["--clients-at", "followers"]).is_err());

        let nodes = sut::node_nets(3, sut::address_block(7), 7001, None);
        let on =
            |at: ClientsAt| -> Vec<usize> { (0..6).map(|i| at.node_of(i, &nodes, 2)).collect() };
        assert_eq!(on(ClientsAt::All), [1, 2, 3, 1, 2, 3]);
        assert_eq!(on(ClientsAt::Leader), [2; 6]);
    }

    #[test]
    fn quantiles_use_nearest_rank() {
        let l: Vec<Duration> = (1..=1000).map(Duration::from_millis).collect();
        assert_eq!(quantile(&l, 0.5), 500.0);
        assert_eq!(quantile(&l, 0.99), 990.0);
        assert_eq!(quantile(&l, 0.999), 999.0);
        assert_eq!(quantile(&l, 1.0), 1000.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
