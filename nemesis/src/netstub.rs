//! Stand-in for `net/` (partition backends, written by another engineer) with its agreed
//! interface, so the runner compiles before it lands. Partitions fail with a clear error.

use anyhow::{bail, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};

/// A partition backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetBackend {
    /// Firewall rules.
    Iptables,
    /// Relays.
    Proxy,
}

/// A node as the backends see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNet {
    /// Node id.
    pub id: usize,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its port.
    pub port: u16,
    /// Its own OS user, for targets that do not bind outgoing sockets.
    pub uid: Option<u32>,
}

/// Partition shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionKind {
    /// Random halves.
    Halves,
    /// One random node alone.
    IsolateOne,
    /// The leader alone.
    IsolateLeader,
    /// Each node sees a majority, no two the same.
    MajoritiesRing,
    /// Two halves joined by one node.
    Bridge,
}

/// node -> nodes whose traffic it must not receive.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grudge(pub BTreeMap<usize, BTreeSet<usize>>);

/// Computes a grudge (stand-in: isolates the first node).
pub fn grudge(
    _kind: PartitionKind,
    nodes: &[usize],
    _leader: Option<usize>,
    _rng: &mut impl rand::Rng,
) -> Grudge {
    let mut g = BTreeMap::new();
    if let Some(&first) = nodes.first() {
        g.insert(first, nodes[1..].iter().copied().collect());
    }
    Grudge(g)
}

/// A running partition backend.
pub trait Net: Send {
    /// Applies a grudge.
    fn partition(&mut self, g: &Grudge) -> Result<()>;
    /// Removes every cut.
    fn heal(&mut self) -> Result<()>;
    /// The address `from` uses to reach `to`.
    fn peer_addr(&self, from: usize, to: usize) -> SocketAddr;
    /// Removes everything the backend set up.
    fn cleanup(&mut self) -> Result<()>;
}

/// Picks iptables when root, else the proxy.
pub fn choose_auto() -> NetBackend {
    if nix::unistd::geteuid().is_root() {
        NetBackend::Iptables
    } else {
        NetBackend::Proxy
    }
}

struct Direct(Vec<NodeNet>);

impl Net for Direct {
    fn partition(&mut self, _g: &Grudge) -> Result<()> {
        bail!("partition backends (nemesis/src/net/) have not landed yet")
    }
    fn heal(&mut self) -> Result<()> {
        Ok(())
    }
    fn peer_addr(&self, _from: usize, to: usize) -> SocketAddr {
        let n = &self.0[to - 1];
        SocketAddr::new(n.ip.into(), n.port)
    }
    fn cleanup(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Starts a backend (stand-in: direct addresses, no partitions).
pub fn start(_backend: NetBackend, _run_tag: &str, nodes: &[NodeNet]) -> Result<Box<dyn Net>> {
    Ok(Box::new(Direct(nodes.to_vec())))
}

/// Removes leftovers of crashed runs (stand-in: nothing to remove).
pub fn cleanup_leftovers() -> Result<()> {
    Ok(())
}

/// Per-node users (stand-in: none available).
pub fn ensure_uids(_n: usize) -> Result<Vec<u32>> {
    bail!("per-node users come with nemesis/src/net/, which has not landed yet")
}
