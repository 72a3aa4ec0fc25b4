//! `cluster up`: starts N node processes of this same binary on 127.0.0.1..N, prints their
//! addresses, waits for a leader, and stops exactly the processes it started (by PID) on
//! Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// `cluster up` flags.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// Number of nodes (node i listens on 127.0.0.i).
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Port every node listens on (each on its own loopback address).
    #[arg(long, default_value_t = 7001)]
    base_port: u16,
    /// Directory for the nodes' data and logs (default: a new directory under the system
    /// temporary directory). Node i uses DIR/node-i and logs to DIR/node-i.log.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Switch on a Raft core bug in every node (repeatable; see `cluster node --help`).
    #[arg(long = "bug", value_name = "NAME")]
    bugs: Vec<String>,
    /// Do not fsync the WAL (benchmarks of everything but the disk).
    #[arg(long)]
    no_fsync: bool,
}

/// Node i's address.
fn addr(i: u64, port: u16) -> String {
    format!("127.0.0.{i}:{port}")
}

/// Blocking `GET /status` over a plain socket (the launcher has no runtime).
fn status(addr: &str) -> Option<serde_json::Value> {
    use std::io::{Read, Write};
    let sa: std::net::SocketAddr = addr.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&sa, Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    write!(
        s,
        "GET /status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let body = buf.split_once("\r\n\r\n")?.1;
    serde_json::from_str(body).ok()
}

fn stop_all(children: &mut [(u64, Child)]) {
    for (_, c) in children.iter() {
        let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
    }
    let until = Instant::now() + Duration::from_secs(3);
    for (i, c) in children.iter_mut() {
        while Instant::now() < until {
            if let Ok(Some(_)) = c.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(None) = c.try_wait() {
            eprintln!("node {i} did not stop on SIGTERM; killing it");
            let _ = c.kill();
        }
        let _ = c.wait();
    }
}

/// Runs the launcher until Ctrl-C / SIGTERM.
pub fn run(a: UpArgs) -> anyhow::Result<()> {
    if a.nodes == 0 || a.nodes > 254 {
        bail!("--nodes must be between 1 and 254, got {}", a.nodes);
    }
    let dir = match a.data_dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("cluster-up-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook(stop.clone())?;
    let mut children: Vec<(u64, Child)> = Vec::new();
    for i in 1..=a.nodes {
        let mut cmd = Command::new(&exe);
        cmd.arg("node")
            .args(["--id", &i.to_string()])
            .args(["--listen", &addr(i, a.base_port)])
            .arg("--data-dir")
            .arg(dir.join(format!("node-{i}")))
            .arg("--log-file")
            .arg(dir.join(format!("node-{i}.log")));
        for j in (1..=a.nodes).filter(|&j| j != i) {
            cmd.args(["--peer", &format!("{j}={}", addr(j, a.base_port))]);
        }
        for b in &a.bugs {
            cmd.args(["--bug", b]);
        }
        if a.no_fsync {
            cmd.arg("--no-fsync");
        }
        match cmd.spawn() {
            Ok(c) => children.push((i, c)),
            Err(e) => {
                stop_all(&mut children);
                bail!("cannot start node {i}: {e}");
            }
        }
        println!(
            "node {i}: http://{}  (log: {})",
            addr(i, a.base_port),
            dir.join(format!("node-{i}.log")).display()
        );
    }
    println!("data: {}", dir.display());
    let started = Instant::now();
    let mut announced = false;
    while !stop.load(Ordering::SeqCst) {
        let dead = children
            .iter_mut()
            .find_map(|(i, c)| c.try_wait().ok().flatten().map(|st| (*i, st)));
        if let Some((i, st)) = dead {
            eprintln!("node {i} exited ({st}); see its log");
            stop_all(&mut children);
            bail!("node {i} exited");
        }
        if !announced {
            let leader = (1..=a.nodes)
                .filter_map(|i| status(&addr(i, a.base_port)))
                .find(|s| s["role"] == "leader");
            if let Some(s) = leader {
                println!(
                    "leader: node {} at http://{} (term {}). Ctrl-C stops the cluster.",
                    s["id"],
                    s["addr"].as_str().unwrap_or("?"),
                    s["term"]
                );
                announced = true;
            } else if started.elapsed() > Duration::from_secs(10) {
                eprintln!("no leader after 10 s; still waiting (see the node logs)");
                announced = true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("stopping {} nodes", children.len());
    stop_all(&mut children);
    Ok(())
}

/// Sets `stop` on SIGINT or SIGTERM.
fn signal_hook(stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    static STOP: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    extern "C" fn on_signal(_: i32) {
        if let Some(s) = STOP.get() {
            s.store(true, Ordering::SeqCst);
        }
    }
    let _ = STOP.set(stop);
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        sigaction(Signal::SIGINT, &act).context("sigaction SIGINT")?;
        sigaction(Signal::SIGTERM, &act).context("sigaction SIGTERM")?;
    }
    Ok(())
}
