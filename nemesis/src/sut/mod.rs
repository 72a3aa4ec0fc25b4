//! Targets: the systems under test, and the processes of one running cluster.
//!
//! A target says how to start node `i` and how to talk to it; everything else (spawning,
//! SIGKILL, SIGSTOP / SIGCONT, restart on the same data directory) is generic and lives in
//! [`Processes`]. Adding a system is one new file implementing [`Target`].

pub mod etcd;
pub mod raft;

use crate::client::{BoxFut, Http, KvClient};
use crate::lazyfs::LazyFs;
use crate::net::NodeNet;
use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one node says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// This node believes it is the leader.
    pub is_leader: bool,
    /// The leader it knows of (node id), if any.
    pub leader: Option<usize>,
    /// Its commit index.
    pub commit: u64,
    /// Its applied index.
    pub applied: u64,
    /// The last index of its log, where the target reports it (our cluster).
    pub last_index: Option<u64>,
}

/// A system under test.
pub trait Target: Send + Sync {
    /// Short name (`raft`, `etcd`).
    fn name(&self) -> &'static str;
    /// The nodes' addresses (ids 1..=n), as the partition backends see them.
    fn nodes(&self) -> &[NodeNet];
    /// The command that starts node `id` with data in `data_dir`; `peers` maps every other
    /// node id to the address this node must use to reach it.
    fn command(
        &self,
        id: usize,
        data_dir: &Path,
        peers: &BTreeMap<usize, SocketAddr>,
    ) -> Result<Command>;
    /// A client bound to node `id`.
    fn client(&self, id: usize, http: Http) -> Box<dyn KvClient>;
    /// Node `id`'s view of the cluster, or `None` when it does not answer.
    fn status<'a>(&'a self, id: usize, http: &'a Http) -> BoxFut<'a, Option<NodeStatus>>;
    /// Removes node `id` from the voters (`add` false) or makes it a voter again (`add`
    /// true), asking the nodes of `via` in turn until one answers; its address stays what
    /// every node has. Targets that cannot change membership keep this default, which
    /// refuses.
    fn set_member<'a>(
        &'a self,
        id: usize,
        add: bool,
        via: &'a [usize],
        http: &'a Http,
    ) -> BoxFut<'a, Result<MemberChange>> {
        let _ = (id, add, via, http);
        Box::pin(async move { bail!("target {} cannot change membership", self.name()) })
    }
}

/// What became of a membership change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// Committed.
    Done,
    /// Refused by the cluster as invalid (e.g. removing a node that is not a voter, adding
    /// one that is): retrying cannot help.
    Invalid(String),
    /// Not done now (no leader, another change pending, no answer, outcome unknown).
    NotNow(String),
}

/// The loopback block of one run: nodes live at `127.a.b.N`. Derived from a number unique
/// to the run (the pid) so that concurrent runs never collide on an address.
pub fn address_block(unique: u64) -> (u8, u8) {
    // 127.0.x.x is left to hand-started clusters and the cluster crate's own tests.
    let a = 10 + (unique / 250 % 240) as u8;
    let b = (unique % 250) as u8 + 1;
    (a, b)
}

/// Node addresses `127.a.b.1..=n` on `port`.
pub fn node_nets(n: usize, block: (u8, u8), port: u16, uids: Option<&[u32]>) -> Vec<NodeNet> {
    (1..=n)
        .map(|id| NodeNet {
            id,
            ip: Ipv4Addr::new(127, block.0, block.1, id as u8),
            port,
            uid: uids.and_then(|u| u.get(id - 1).copied()),
        })
        .collect()
}

/// One node process.
struct NodeProc {
    id: usize,
    child: Option<Child>,
    paused: bool,
    data_dir: PathBuf,
    log: PathBuf,
    uid: Option<u32>,
}

/// The processes of a running cluster. Dropping it kills every node it started, then
/// unmounts their lazy file systems (fields drop after `drop` has run).
pub struct Processes {
    target: Arc<dyn Target>,
    procs: Vec<NodeProc>,
    peers: BTreeMap<usize, BTreeMap<usize, SocketAddr>>,
    /// Each node's lazy mount, when power losses are on.
    mounts: BTreeMap<usize, LazyFs>,
    dir: PathBuf,
}

impl Processes {
    /// Prepares (does not start) the nodes, with data and logs under `dir`.
    /// `peer_addr(from, to)` is the address `from` uses to reach `to` (a relay under the
    /// proxy backend).
    pub fn new(
        target: Arc<dyn Target>,
        dir: &Path,
        peer_addr: impl Fn(usize, usize) -> SocketAddr,
    ) -> Result<Processes> {
        let ids: Vec<usize> = target.nodes().iter().map(|n| n.id).collect();
        let mut procs = Vec::new();
        let mut peers = BTreeMap::new();
        for n in target.nodes() {
            let data_dir = dir.join(format!("n{}", n.id));
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            if let Some(uid) = n.uid {
                // The node runs as its own user and must own its data directory.
                nix::unistd::chown(&data_dir, Some(nix::unistd::Uid::from_raw(uid)), None)
                    .with_context(|| format!("chown {} to uid {uid}", data_dir.display()))?;
            }
            let p = ids
                .iter()
                .filter(|&&j| j != n.id)
                .map(|&j| (j, peer_addr(n.id, j)))
                .collect();
            peers.insert(n.id, p);
            procs.push(NodeProc {
                id: n.id,
                child: None,
                paused: false,
                data_dir,
                log: dir.join(format!("n{}.log", n.id)),
                uid: n.uid,
            });
        }
        Ok(Processes {
            target,
            procs,
            peers,
            mounts: BTreeMap::new(),
            dir: dir.to_path_buf(),
        })
    }

    /// Mounts a lazy file system on every node's data directory, backed by `nN.backing`
    /// beside it (before the nodes start). On failure, unmounts what it mounted.
    pub fn mount_lazy(&mut self) -> Result<()> {
        for p in &self.procs {
            let backing = self.dir.join(format!("n{}.backing", p.id));
            match LazyFs::mount(&p.data_dir, &backing) {
                Ok(m) => {
                    self.mounts.insert(p.id, m);
                }
                Err(e) => {
                    self.mounts.clear();
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// SIGKILLs node `id` and loses every write it did not fsync (its mount must exist).
    /// Returns the number of files rolled back.
    pub fn power_loss(&mut self, id: usize) -> Result<usize> {
        self.kill(id)?;
        let m = self
            .mounts
            .get(&id)
            .with_context(|| format!("power loss of n{id} without a lazy mount"))?;
        Ok(m.drop_unsynced()?)
    }

    /// The target.
    pub fn target(&self) -> &Arc<dyn Target> {
        &self.target
    }

    /// Node ids.
    pub fn ids(&self) -> Vec<usize> {
        self.procs.iter().map(|p| p.id).collect()
    }

    fn proc_mut(&mut self, id: usize) -> Result<&mut NodeProc> {
        self.procs
            .iter_mut()
            .find(|p| p.id == id)
            .with_context(|| format!("no node {id}"))
    }

    /// Starts (or restarts, on the same data directory) node `id`.
    pub fn start(&mut self, id: usize) -> Result<()> {
        let mut cmd = {
            let p = self.procs.iter().find(|p| p.id == id).context("no node")?;
            self.target.command(id, &p.data_dir, &self.peers[&id])?
        };
        let p = self.proc_mut(id)?;
        if p.child.is_some() {
            return Ok(());
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p.log)
            .with_context(|| format!("opening {}", p.log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(uid) = p.uid {
            cmd.uid(uid);
        }
        // SAFETY: prctl is async-signal-safe; this runs in the child between fork and exec.
        // The node dies with the runner even if the runner is SIGKILLed, so no orphan keeps
        // a port or a paused state. (It runs after the uid change, which would clear it.)
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                    .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting node {id}: {cmd:?}"))?;
        p.child = Some(child);
        p.paused = false;
        Ok(())
    }

    /// Starts every node.
    pub fn start_all(&mut self) -> Result<()> {
        for id in self.ids() {
            self.start(id)?;
        }
        Ok(())
    }

    /// SIGKILLs node `id` and reaps it. A node that is not running is left alone.
    pub fn kill(&mut self, id: usize) -> Result<()> {
        let p = self.proc_mut(id)?;
        if let Some(mut child) = p.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            child.wait().context("reaping a killed node")?;
        }
        p.paused = false;
        Ok(())
    }

    /// SIGSTOPs node `id`.
    pub fn pause(&mut self, id: usize) -> Result<()> {
        let p = self.proc_mut(id)?;
        if let Some(child) = &p.child {
            kill(Pid::from_raw(child.id() as i32), Signal::SIGSTOP)?;
            p.paused = true;
        }
        Ok(())
    }

    /// SIGCONTs node `id`.
    pub fn resume(&mut self, id: usize) -> Result<()> {
        let p = self.proc_mut(id)?;
        if let Some(child) = &p.child {
            kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT)?;
        }
        p.paused = false;
        Ok(())
    }

    /// Nodes whose process exited by itself (not killed by us), with their exit status.
    pub fn crashed(&mut self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for p in &mut self.procs {
            if let Some(child) = &mut p.child {
                if let Ok(Some(status)) = child.try_wait() {
                    out.push((p.id, status.to_string()));
                    p.child = None;
                }
            }
        }
        out
    }

    /// Resumes every paused node and starts every stopped one.
    pub fn revive_all(&mut self) -> Result<()> {
        for id in self.ids() {
            self.resume(id)?;
            self.start(id)?;
        }
        Ok(())
    }

    /// Kills every node this cluster started.
    pub fn stop_all(&mut self) {
        for id in self.ids() {
            let _ = self.kill(id);
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Asks every node for its status and returns the leader most nodes agree on.
pub async fn find_leader(target: &dyn Target, http: &Http) -> Option<usize> {
    let mut votes: BTreeMap<usize, usize> = BTreeMap::new();
    for n in target.nodes() {
        if let Some(s) = target.status(n.id, http).await {
            if s.is_leader {
                return Some(n.id);
            }
            if let Some(l) = s.leader {
                *votes.entry(l).or_default() += 1;
            }
        }
    }
    votes.into_iter().max_by_key(|&(_, c)| c).map(|(l, _)| l)
}

/// Asks nodes `ids` for their status in turn, a round every `every`, until one satisfies
/// `done` (that node and its status), or `limit` has passed (`None`).
pub async fn poll_status(
    target: &dyn Target,
    ids: &[usize],
    http: &Http,
    (limit, every): (Duration, Duration),
    done: impl Fn(&NodeStatus) -> bool,
) -> Option<(usize, NodeStatus)> {
    let deadline = Instant::now() + limit;
    loop {
        for &id in ids {
            if let Some(s) = target.status(id, http).await.filter(|s| done(s)) {
                return Some((id, s));
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits until some node is leader, up to `limit`.
pub async fn wait_for_leader(target: &dyn Target, http: &Http, limit: Duration) -> Result<usize> {
    let ids: Vec<usize> = target.nodes().iter().map(|n| n.id).collect();
    let every = Duration::from_millis(200);
    match poll_status(target, &ids, http, (limit, every), |s| s.is_leader).await {
        Some((id, _)) => Ok(id),
        None => bail!("no leader elected within {limit:?}"),
    }
}

/// Waits (up to `limit`) until every node has applied what the leader had committed when
/// the wait began. Returns the nodes that did not catch up.
pub async fn wait_for_catch_up(target: &dyn Target, http: &Http, limit: Duration) -> Vec<usize> {
    let deadline = Instant::now() + limit;
    let mut goal = 0;
    for n in target.nodes() {
        if let Some(s) = target.status(n.id, http).await {
            if s.is_leader {
                goal = s.commit;
            }
        }
    }
    loop {
        let mut behind = Vec::new();
        for n in target.nodes() {
            match target.status(n.id, http).await {
                Some(s) if s.applied >= goal => {}
                _ => behind.push(n.id),
            }
        }
        if behind.is_empty() || Instant::now() > deadline {
            return behind;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Finds the `cluster` binary: `explicit`, `$NEMESIS_CLUSTER_BIN`, a sibling of this
/// executable (or of its parent directory, for test binaries in `deps/`), else builds it
/// with cargo when run inside the workspace.
pub fn find_cluster_bin(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        bail!("--cluster-bin {} is not a file", p.display());
    }
    if let Some(p) = std::env::var_os("NEMESIS_CLUSTER_BIN") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!("NEMESIS_CLUSTER_BIN={} is not a file", p.display());
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let p = dir.join("cluster");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    let Some(root) = crate::rundir::workspace_root() else {
        bail!("cannot find the `cluster` binary: pass --cluster-bin or set NEMESIS_CLUSTER_BIN");
    };
    eprintln!("nemesis: building the cluster binary (cargo build --release -p cluster-node)");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "cluster"])
        .current_dir(&root)
        .status()
        .context("running cargo build -p cluster-node")?;
    if !status.success() {
        bail!("cargo build --release -p cluster-node failed ({status})");
    }
    let p = root.join("target/release/cluster");
    if !p.is_file() {
        bail!("cargo built the cluster but {} is missing", p.display());
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_blocks_differ_per_run_and_avoid_127_0() {
        let a = address_block(4242);
        let b = address_block(4243);
        assert_ne!(a, b);
        for u in [0, 1, 249, 250, 65_535, u64::from(u32::MAX)] {
            let (x, y) = address_block(u);
            assert!(x >= 10 && y >= 1, "{u} -> {x}.{y}");
        }
        let nets = node_nets(3, (20, 7), 7001, None);
        assert_eq!(nets[2].ip, Ipv4Addr::new(127, 20, 7, 3));
        assert_eq!(nets[2].id, 3);
    }
}
