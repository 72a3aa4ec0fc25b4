//! A test run: start the cluster, drive clients while the nemesis attacks, heal and read
//! every key, check the history, write `results.json` and `summary.txt`.

use crate::checks::{self, Stats};
use crate::client::{Http, Op, Outcome};
use crate::faults::{Nemesis, Plan};
use crate::lazyfs;
use crate::linear::{self, Linearizability};
use crate::net::{self, Net, NetBackend};
use crate::recorder::Recorder;
use crate::sut::{self, etcd::Etcd, raft::Raft, Processes, Target};
use crate::workload::{self, append::Append, register::Register, Generator, WorkerCtx};
use crate::{rundir, EtcdReads, NetChoice, RunArgs, SystemArgs, TargetKind, WorkloadKind};
use anyhow::{bail, Context, Result};
use checker::append::AppendReport;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The outcome of a run, and its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunVerdict {
    /// Every check passed (exit 0).
    Valid,
    /// A check found a violation (exit 1).
    Invalid,
    /// Some check could not decide (exit 3).
    Unknown,
}

impl RunVerdict {
    /// 0 valid, 1 invalid, 3 unknown (2 is an error, decided in `main`).
    pub fn exit_code(self) -> u8 {
        match self {
            RunVerdict::Valid => 0,
            RunVerdict::Invalid => 1,
            RunVerdict::Unknown => 3,
        }
    }
}

/// Client port of every node (each node has its own address, so ports can repeat).
pub fn client_port(t: TargetKind) -> u16 {
    match t {
        TargetKind::Raft => 7001,
        TargetKind::Etcd => 2379,
    }
}

/// Picks the partition backend. `auto`: the proxy for our cluster, iptables for etcd when
/// root with a working iptables (else the proxy, which etcd then refuses).
///
/// Why the proxy by default for our cluster: it cuts links as iptables does (closing them
/// rather than dropping packets), and it can also delay, stall and reorder them; iptables
/// can only drop, and only a reordering exposes a follower that truncates a matching log
/// (`--bug truncate-matching`), since our nodes keep one stream per peer. etcd cannot sit
/// behind it (one shared `--initial-cluster`).
pub fn choose_backend(choice: NetChoice, target: TargetKind) -> Result<NetBackend> {
    net::choose(match (choice, target) {
        (NetChoice::Iptables, _) => "iptables",
        (NetChoice::Proxy, _) | (NetChoice::Auto, TargetKind::Raft) => "proxy",
        (NetChoice::Auto, TargetKind::Etcd) => "auto",
    })
}

/// Builds a target's nodes on a loopback block of their own.
pub fn make_target(
    system: &SystemArgs,
    n: usize,
    uids: Option<&[u32]>,
    bug: Option<String>,
    one_entry: bool,
) -> Result<Arc<dyn Target>> {
    let (kind, cluster_bin) = (system.target, system.cluster_bin.as_deref());
    if n == 0 || n > 200 {
        bail!("--nodes {n}: must be between 1 and 200");
    }
    let block = sut::address_block(u64::from(std::process::id()));
    let nodes = sut::node_nets(n, block, client_port(kind), uids);
    Ok(match kind {
        TargetKind::Raft => {
            let raft = Raft::new(sut::find_cluster_bin(cluster_bin)?, nodes, bug);
            Arc::new(if one_entry {
                raft.one_entry_appends()
            } else {
                raft
            })
        }
        TargetKind::Etcd => {
            if bug.is_some() {
                bail!("--bug applies to --target raft only");
            }
            let etcd = Etcd::new(nodes, format!("nemesis-{}", std::process::id()));
            match system.etcd_reads {
                EtcdReads::Linearizable => Arc::new(etcd),
                EtcdReads::Serializable => Arc::new(etcd.with_serializable_reads()),
            }
        }
    })
}

/// Runs the test described by `args`.
pub fn main(args: RunArgs) -> Result<RunVerdict> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(run(args))
}

/// Everything the run holds that must be torn down whatever happens.
struct Rig {
    cluster: Arc<Mutex<Processes>>,
    net: Option<Arc<Mutex<Box<dyn Net>>>>,
}

impl Rig {
    fn teardown(&self) {
        lock(&self.cluster).stop_all();
        if let Some(n) = &self.net {
            if let Err(e) = lock(n).cleanup() {
                eprintln!("nemesis: network cleanup failed: {e:#}");
            }
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn run(args: RunArgs) -> Result<RunVerdict> {
    if args.concurrency == 0 || args.keys == 0 || args.time_limit == 0 {
        bail!("--concurrency, --keys and --time-limit must be at least 1");
    }
    let seed = args.seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        t.as_nanos() as u64 ^ u64::from(std::process::id()) << 32
    });
    let membership = args.system.target == TargetKind::Raft && args.nodes >= 5;
    let mut faults = Plan::new(args.faults.as_deref(), seed, membership);
    if faults.uses_member() && args.system.target != TargetKind::Raft {
        bail!(
            "--faults member / split-member: membership changes are implemented for --target raft only (etcd needs a member's data wiped and the process restarted to rejoin)"
        );
    }
    let dir = rundir::create(args.run_dir.as_deref())?;
    println!("nemesis: seed {seed}; run directory {}", dir.display());

    // Every run, whatever its faults or backend: a DROP rule left by a run that was
    // SIGKILLed mid-partition would cut this run's nodes too, and a `--faults none` run is
    // the one a user reaches for to see whether the cluster works at all. Without root or
    // iptables there is nothing to remove and this returns at once.
    net::cleanup_leftovers().context("removing firewall rules left by an earlier run")?;
    let backend = match faults.uses_net() {
        true => Some(choose_backend(args.net, args.system.target)?),
        false => None,
    };
    if backend == Some(NetBackend::Proxy) {
        faults.allow_links(seed);
    } else if faults.uses_links() {
        bail!("--faults link: only the proxy backend shapes links; add --net proxy");
    }
    if args.system.target == TargetKind::Etcd && backend == Some(NetBackend::Proxy) {
        bail!("etcd cannot run behind the proxy backend (its member ids come from one shared --initial-cluster); use --net iptables as root");
    }
    // etcd connects from 127.0.0.1 whatever its listen address, so its cuts match the
    // sending process's uid (REFERENCE.md §3); our nodes bind their own address.
    let needs_uids = args.system.target == TargetKind::Etcd;
    let uids = match backend {
        Some(NetBackend::Iptables) if needs_uids => Some(net::ensure_uids(args.nodes)?),
        _ => None,
    };
    // Figure 8 needs five nodes: the old leader and one follower, the node that wins the
    // term in between, and two that fall behind.
    let one_entry = faults.allow_figure8(
        args.system.target == TargetKind::Raft && args.nodes == 5,
        seed,
    );
    if one_entry {
        println!("nemesis: figure-8 episodes drawn: our nodes send one entry per AppendEntries, one in flight");
    }
    let target = make_target(
        &args.system,
        args.nodes,
        uids.as_deref(),
        args.bug.clone(),
        one_entry,
    )?;
    let tag = format!("nm{}", std::process::id());
    let net = match backend {
        Some(b) => Some(net::start(b, &tag, target.nodes())?),
        None => None,
    };
    let direct: BTreeMap<usize, SocketAddr> = target
        .nodes()
        .iter()
        .map(|n| (n.id, SocketAddr::new(n.ip.into(), n.port)))
        .collect();
    let cluster = Processes::new(target.clone(), &dir, |from, to| match &net {
        Some(n) => n.peer_addr(from, to),
        None => direct[&to],
    })?;
    let mut cluster = cluster;
    if faults.wants_power() {
        let power = power_mounts(&mut cluster, args.system.target, &dir);
        faults.allow_power(power, seed);
    }
    let faults_text = faults.describe(args.faults.as_deref());
    let rig = Rig {
        cluster: Arc::new(Mutex::new(cluster)),
        net: net.map(|n| Arc::new(Mutex::new(n))),
    };
    lock(&rig.cluster).start_all()?;
    let http = Http::new(Duration::from_millis(500));
    let leader = sut::wait_for_leader(target.as_ref(), &http, Duration::from_secs(30))
        .await
        .with_context(|| format!("starting the cluster (node logs in {})", dir.display()))?;
    println!(
        "nemesis: {} nodes of {} up, leader n{leader}; {} clients for {} s, faults: {}",
        args.nodes,
        target.name(),
        args.concurrency,
        args.time_limit,
        faults_text
    );

    let recorder = Arc::new(Recorder::new(Some(&dir.join("history.jsonl")))?);
    let stop = Arc::new(AtomicBool::new(false));
    let interrupted = Arc::new(AtomicBool::new(false));
    spawn_signal_watch(stop.clone(), interrupted.clone())?;

    let total = Duration::from_secs(args.time_limit);
    let deadline = Instant::now() + total;
    let attack = attack(
        &args,
        &rig,
        target.clone(),
        recorder.clone(),
        stop.clone(),
        seed,
        faults,
        deadline,
    )
    .await;

    let mut notes = Vec::new();
    let crashed = lock(&rig.cluster).crashed();
    for (id, status) in &crashed {
        notes.push(format!(
            "node n{id} exited by itself ({status}); see n{id}.log"
        ));
    }
    let mut final_reads = BTreeMap::new();
    if let Err(e) = &attack {
        notes.push(format!("the attack stopped early: {e:#}"));
    }
    if !interrupted.load(Ordering::Relaxed) {
        final_phase(
            &rig,
            target.as_ref(),
            &recorder,
            &args,
            &mut notes,
            &mut final_reads,
        )
        .await;
    }
    rig.teardown();
    drop(rig);

    let report = check_and_report(
        &args,
        (seed, &faults_text),
        &dir,
        &recorder,
        notes,
        final_reads,
        interrupted.load(Ordering::Relaxed),
    )?;
    attack?;
    if interrupted.load(Ordering::Relaxed) {
        bail!("interrupted; partial results in {}", dir.display());
    }
    Ok(report)
}

/// Mounts the nodes' lazy file systems when power losses can be played (root, /dev/fuse,
/// our cluster), after unmounting mounts of ours left under the runs directory by a run
/// that died. Returns whether power losses are on; says once why not.
fn power_mounts(cluster: &mut Processes, target: TargetKind, dir: &std::path::Path) -> bool {
    let why_not = if target != TargetKind::Raft {
        "power-loss left out: only our cluster runs on the lazy file system".to_string()
    } else if !lazyfs::available() {
        "power-loss left out: it needs root and /dev/fuse".to_string()
    } else {
        for m in lazyfs::unmount_leftovers(dir.parent().unwrap_or(dir)) {
            println!(
                "nemesis: unmounted {} (left by an earlier run)",
                m.display()
            );
        }
        match cluster.mount_lazy() {
            Ok(()) => return true,
            Err(e) => format!("power-loss left out: mounting FUSE failed: {e:#}"),
        }
    };
    println!("nemesis: {why_not}");
    false
}

/// Sets `stop` (and `interrupted`) on SIGINT or SIGTERM, so that the run heals the
/// network, kills its nodes and writes what it has.
fn spawn_signal_watch(stop: Arc<AtomicBool>, interrupted: Arc<AtomicBool>) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("\nnemesis: interrupted: healing, stopping nodes, writing what we have");
        interrupted.store(true, Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
    });
    Ok(())
}

/// The attack phase: workers, nemesis and progress line until the deadline or a stop.
#[allow(clippy::too_many_arguments)]
async fn attack(
    args: &RunArgs,
    rig: &Rig,
    target: Arc<dyn Target>,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    seed: u64,
    faults: Plan,
    deadline: Instant,
) -> Result<()> {
    let interval = if args.rate > 0.0 {
        Duration::from_secs_f64(args.concurrency as f64 / args.rate)
    } else {
        Duration::ZERO
    };
    let ctx = Arc::new(WorkerCtx {
        target: target.clone(),
        recorder: recorder.clone(),
        concurrency: args.concurrency,
        interval,
        timeout: Duration::from_millis(args.request_timeout_ms),
        patient_timeout: (args.patient_timeout_ms > 0)
            .then(|| Duration::from_millis(args.patient_timeout_ms)),
        stop: stop.clone(),
        deadline,
    });
    let keys = faults.keys(args.keys);
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for i in 0..args.concurrency {
        let gen: Box<dyn Generator> = match args.workload {
            WorkloadKind::Register => Box::new(Register::new(keys.clone())),
            WorkloadKind::Append => Box::new(Append::new(keys.clone(), next.clone())),
        };
        workers.push(tokio::spawn(workload::run_worker(
            ctx.clone(),
            i,
            gen,
            seed,
        )));
    }
    let current = Arc::new(Mutex::new(String::new()));
    let progress_stop = Arc::new(AtomicBool::new(false));
    let progress = tokio::spawn(crate::progress::run(
        recorder.clone(),
        Duration::from_secs(args.time_limit),
        current.clone(),
        progress_stop.clone(),
    ));
    let steps = faults.steps(
        seed,
        Duration::from_secs_f64(args.fault_interval.max(0.1)),
        Duration::from_secs(args.time_limit),
    );
    let nemesis = Nemesis {
        cluster: rig.cluster.clone(),
        net: rig.net.clone(),
        recorder: recorder.clone(),
        current,
        stop: stop.clone(),
    };
    let result = nemesis.run(steps, seed, deadline).await;
    if result.is_err() {
        stop.store(true, Ordering::Relaxed);
    }
    for w in workers {
        let _ = w.await;
    }
    progress_stop.store(true, Ordering::Relaxed);
    let _ = progress.await;
    result
}

/// How long the final reads may take in all. Why a bound: a cluster that no longer serves
/// (a bug can wedge it) would otherwise cost ten attempts of a request timeout per key,
/// minutes with many keys; one that serves reads every key in well under a second.
const FINAL_READS: Duration = Duration::from_secs(20);

/// Heal, resume, restart, wait for a leader and catch-up (bounded), read every key (bounded).
async fn final_phase(
    rig: &Rig,
    target: &dyn Target,
    recorder: &Recorder,
    args: &RunArgs,
    notes: &mut Vec<String>,
    final_reads: &mut BTreeMap<String, Value>,
) {
    if let Some(n) = &rig.net {
        if let Err(e) = lock(n).heal() {
            notes.push(format!("final heal failed: {e:#}"));
        }
    }
    if let Err(e) = lock(&rig.cluster).revive_all() {
        notes.push(format!("final restart failed: {e:#}"));
    }
    recorder.nemesis("final-phase", json!("heal, resume and restart every node"));
    let http = Http::new(Duration::from_millis(500));
    if let Err(e) = sut::wait_for_leader(target, &http, Duration::from_secs(30)).await {
        notes.push(format!("after healing: {e}"));
    }
    let behind = sut::wait_for_catch_up(target, &http, Duration::from_secs(30)).await;
    if !behind.is_empty() {
        let mut views = Vec::new();
        for &id in &behind {
            views.push(format!("n{id}: {:?}", target.status(id, &http).await));
        }
        notes.push(format!(
            "nodes {behind:?} had not caught up after 30 s ({})",
            views.join("; ")
        ));
    }
    // Final reads use process ids far above any worker's, one per key.
    let base = 1u64 << 40;
    let ids: Vec<usize> = target.nodes().iter().map(|n| n.id).collect();
    let timeout = Duration::from_millis(args.request_timeout_ms.max(2000));
    let until = Instant::now() + FINAL_READS;
    let keys = workload::key_names(args.keys);
    for (i, key) in keys.iter().enumerate() {
        if Instant::now() >= until {
            notes.push(format!(
                "final reads stopped after {} s: {} of {} keys not read",
                FINAL_READS.as_secs(),
                keys.len() - i,
                keys.len()
            ));
            break;
        }
        let mut value = None;
        for attempt in 0..10 {
            if attempt > 0 && Instant::now() >= until {
                break;
            }
            let node = ids[(i + attempt) % ids.len()];
            let client = target.client(node, Http::new(timeout));
            let p = base + i as u64;
            if let Outcome::Ok(v) =
                workload::invoke_recorded(recorder, client.as_ref(), p, key, &Op::Read).await
            {
                value = Some(v);
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        match value {
            Some(v) => {
                final_reads.insert(key.clone(), v);
            }
            None => notes.push(format!("no successful final read of {key}")),
        }
    }
}

/// Everything `results.json` holds.
#[derive(Serialize)]
struct Results {
    verdict: RunVerdict,
    seed: u64,
    target: String,
    workload: String,
    bug: Option<String>,
    nodes: usize,
    concurrency: usize,
    time_limit_s: u64,
    faults: String,
    run_dir: PathBuf,
    interrupted: bool,
    linearizability: Linearizability,
    append: Option<AppendReport>,
    stats: Stats,
    final_reads: BTreeMap<String, Value>,
    notes: Vec<String>,
}

#[allow(clippy::too_many_arguments)]
fn check_and_report(
    args: &RunArgs,
    (seed, faults_text): (u64, &str),
    dir: &Path,
    recorder: &Recorder,
    notes: Vec<String>,
    final_reads: BTreeMap<String, Value>,
    interrupted: bool,
) -> Result<RunVerdict> {
    let history = histories::History::from_events(recorder.events())
        .context("the recorded history is malformed (a runner bug)")?;
    let stats = checks::stats(&history);
    let lin = linear::check(&history, Duration::from_secs(args.check_time_limit));
    let append =
        (args.workload == WorkloadKind::Append).then(|| checker::append::check_append(&history));
    let mut verdict = match lin.verdict {
        checker::Verdict::Linearizable => RunVerdict::Valid,
        checker::Verdict::NotLinearizable => RunVerdict::Invalid,
        checker::Verdict::Unknown => RunVerdict::Unknown,
    };
    if let Some(a) = &append {
        if !a.valid() {
            verdict = RunVerdict::Invalid;
        } else if !a.keys_without_final_read.is_empty() && verdict == RunVerdict::Valid {
            verdict = RunVerdict::Unknown;
        }
    }
    let results = Results {
        verdict,
        seed,
        target: format!("{:?}", args.system.target).to_lowercase(),
        workload: format!("{:?}", args.workload).to_lowercase(),
        bug: args.bug.clone(),
        nodes: args.nodes,
        concurrency: args.concurrency,
        time_limit_s: args.time_limit,
        faults: faults_text.to_string(),
        run_dir: dir.to_path_buf(),
        interrupted,
        linearizability: lin,
        append,
        stats,
        final_reads,
        notes,
    };
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    let summary = summary(&results);
    std::fs::write(dir.join("summary.txt"), &summary)?;
    // The HTML report; failing to write it never changes the run's verdict.
    let page = report::run_report(&history, &serde_json::to_value(&results)?);
    if let Err(e) = report::write(&dir.join("report.html"), &page) {
        eprintln!("nemesis: no report.html: {e}");
    }
    print!("{summary}");
    Ok(verdict)
}

fn summary(r: &Results) -> String {
    let mut s = String::new();
    let verdict = match r.verdict {
        RunVerdict::Valid => "VALID",
        RunVerdict::Invalid => "INVALID",
        RunVerdict::Unknown => "UNKNOWN",
    };
    s += &format!(
        "target {} ({} nodes{}), workload {}, {} clients, {} s, faults {}, seed {}\n",
        r.target,
        r.nodes,
        r.bug
            .as_ref()
            .map(|b| format!(", bug {b}"))
            .unwrap_or_default(),
        r.workload,
        r.concurrency,
        r.time_limit_s,
        r.faults,
        r.seed
    );
    s += &format!("operations: {}\n", r.stats.operations);
    for (f, c) in &r.stats.by_f {
        s += &format!(
            "  {f:<7} ok {:>6}  fail {:>6}  info {:>6}{}\n",
            c.ok,
            c.fail,
            c.info,
            if c.compare_failed > 0 {
                format!("  ({} fails: cas comparison)", c.compare_failed)
            } else {
                String::new()
            }
        );
    }
    s += "availability (answered / completed) per fault window:\n";
    for w in &r.stats.windows {
        s += &format!(
            "  {:>7.1}s-{:>6.1}s {:<10} {:>5.1}%  {:>7.1} ok/s  {}\n",
            w.start_s,
            w.end_s,
            w.fault,
            w.availability * 100.0,
            w.ok_per_s,
            if w.detail.is_null() {
                String::new()
            } else {
                w.detail.to_string()
            }
        );
    }
    let lin = &r.linearizability;
    s += &format!(
        "linearizability: {} over {} keys ({:.1} s)\n",
        lin.verdict, lin.keys_checked, lin.seconds
    );
    if let Some(e) = &lin.error {
        s += &format!("  could not check: {e}\n");
    }
    // Keys left unfinished because another key failed first are noise next to that failure.
    let undecided_matters = lin.verdict == checker::Verdict::Unknown;
    for p in lin
        .problems
        .iter()
        .filter(|p| undecided_matters && p.get("reason").is_some())
    {
        s += &format!("  key {} undecided: {}\n", p["key"], p["reason"]);
    }
    // A counterexample over long append values can run to megabytes: results.json has it
    // whole, the summary the beginning.
    for e in lin.explanations.iter().take(3) {
        let cut: String = e.chars().take(3000).collect();
        let more = if cut.len() < e.len() {
            "\n  ... (whole text in results.json)"
        } else {
            ""
        };
        s += &format!("{cut}{more}\n");
    }
    if let Some(a) = &r.append {
        s += &format!(
            "append: {} acknowledged appends over {} keys, {} anomalies\n",
            a.acknowledged,
            a.keys,
            a.anomalies.len()
        );
        for an in a.anomalies.iter().take(20) {
            s += &format!("  {}\n", serde_json::to_string(an).unwrap_or_default());
        }
    }
    for n in &r.notes {
        s += &format!("note: {n}\n");
    }
    s += &format!(
        "verdict: {verdict}\nrun directory: {}\n",
        r.run_dir.display()
    );
    s
}
