//! Network partitions between nodes on one machine: iptables rules or runner-owned TCP relays.
//!
//! # How the runner uses this module
//! 1. At start, before anything else: [`cleanup_leftovers`] removes firewall chains left by
//!    runs that died (even by SIGKILL). It spares chains of other runs that are still alive.
//! 2. Pick a backend with [`choose`] (`--net auto|iptables|proxy`). For a target that does not
//!    bind its outgoing sockets (etcd), call [`ensure_uids`] and run node `i` under `uids[i]`,
//!    setting [`NodeNet::uid`]; our own nodes bind to their 127.x address and leave it `None`.
//! 3. [`start`] the backend with every node's address, before starting the nodes: with the
//!    proxy backend a node must be told to reach peer `b` at [`Net::peer_addr`]`(a, b)`, not at
//!    `b`'s own address.
//! 4. For each fault, build a [`Grudge`] with [`grudge`] and apply it with
//!    [`Net::partition`]; end it with [`Net::heal`]. A new partition replaces the old one.
//! 5. At exit call [`Net::cleanup`]. The backends also clean up in `Drop`, but `Drop` does not
//!    run when the process dies of a signal: the runner's SIGINT / SIGTERM handler must call
//!    [`Net::cleanup`] (or [`cleanup_leftovers`], which also removes this process's own chains)
//!    before exiting. After a SIGKILL, step 1 of the next run removes what was left.
//!
//! # Backends
//! - [`NetBackend::Iptables`] (root): DROP rules in chains this module owns (see `iptables.rs`
//!   for the exact rules and why uid-matched rules live in a separate OUTPUT chain). Packets
//!   are dropped silently, as on a real network: calls time out rather than fail fast.
//! - [`NetBackend::Proxy`] (no root): one TCP relay per ordered pair of nodes, on the source
//!   node's address; a cut closes the relay's connections and closes new ones right after
//!   accepting them, so callers see end-of-stream rather than silence. It needs a target that
//!   takes a peer address per node and per peer (our nodes do); etcd reads one shared
//!   `--initial-cluster`, so it can only be partitioned with iptables. A relay adds about
//!   15 µs per round trip on loopback (`proxy_latency` in `proxy_tests.rs`).

mod grudge;
mod iptables;
mod proxy;
mod users;

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

pub use grudge::{grudge, Grudge, PartitionKind};
pub use iptables::cleanup_leftovers;
pub use users::ensure_uids;

/// What went wrong, one variant per decision the caller makes.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A `--net` value other than `auto`, `iptables` or `proxy`.
    #[error("unknown network backend {0:?} (expected auto, iptables or proxy)")]
    UnknownBackend(String),
    /// A partition name that is not one of [`PartitionKind::ALL`].
    #[error("unknown partition kind {0:?} (expected halves, isolate-one, isolate-leader, majorities-ring or bridge)")]
    UnknownPartitionKind(String),
    /// `--net iptables` was asked for but cannot work here: use the proxy backend.
    #[error("iptables backend unavailable: {0}")]
    IptablesUnavailable(String),
    /// An external command (iptables, useradd) failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line, as run.
        command: String,
        /// Exit status and stderr, or the spawn error.
        detail: String,
    },
    /// The node list or a grudge does not fit together (duplicate id, unknown node, ...).
    #[error("bad node set: {0}")]
    BadNodes(String),
    /// A socket or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the address or path.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Runs an external command (iptables, useradd) to its end: its stdout when it exits 0,
/// else [`NetError::Command`] with the command line and the spawn error, or the exit status
/// and stderr.
fn run_command(program: &str, args: &[&str]) -> Result<String, NetError> {
    let command = format!("{program} {}", args.join(" "));
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(|e| NetError::Command {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(NetError::Command {
            command,
            detail: format!("{}: {}", out.status, stderr.trim()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// How partitions are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetBackend {
    /// Firewall rules (root only).
    Iptables,
    /// Runner-owned TCP relays between every pair of nodes (no privileges).
    Proxy,
}

impl FromStr for NetBackend {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "iptables" => Ok(NetBackend::Iptables),
            "proxy" => Ok(NetBackend::Proxy),
            _ => Err(NetError::UnknownBackend(s.to_string())),
        }
    }
}

impl std::fmt::Display for NetBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NetBackend::Iptables => "iptables",
            NetBackend::Proxy => "proxy",
        })
    }
}

/// Resolves `--net`: `auto` is iptables when running as root and `iptables -w -L -n` works,
/// else proxy; `iptables` fails with [`NetError::IptablesUnavailable`] when it cannot work.
pub fn choose(requested: &str) -> anyhow::Result<NetBackend> {
    match requested {
        "auto" => Ok(match iptables::available() {
            Ok(()) => NetBackend::Iptables,
            Err(_) => NetBackend::Proxy,
        }),
        "iptables" => {
            iptables::available()?;
            Ok(NetBackend::Iptables)
        }
        other => Ok(other.parse()?),
    }
}

/// One node as the network layer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeNet {
    /// The node id used in grudges.
    pub id: usize,
    /// The node's own loopback address (it listens there, and binds outgoing sockets to it
    /// unless `uid` is set).
    pub ip: Ipv4Addr,
    /// The port peers connect to.
    pub port: u16,
    /// Set when the node does not bind its outgoing sockets and runs under its own uid (etcd):
    /// the iptables backend then matches its packets by owner.
    pub uid: Option<u32>,
}

impl NodeNet {
    /// The node's real peer address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.port))
    }
}

/// A running partition backend. Not `Sync`: the nemesis owns it.
pub trait Net: Send {
    /// Replaces the current partition (if any) by `g`.
    fn partition(&mut self, g: &Grudge) -> anyhow::Result<()>;
    /// Removes every cut; the backend stays ready for the next partition.
    fn heal(&mut self) -> anyhow::Result<()>;
    /// The address node `from` must use to reach peer `to` (the real address for iptables, a
    /// relay for the proxy). Panics when either id was not given to [`start`].
    fn peer_addr(&self, from: usize, to: usize) -> SocketAddr;
    /// Removes everything the backend created. Idempotent; also run by `Drop`.
    fn cleanup(&mut self) -> anyhow::Result<()>;
    /// Puts `fault` on every link that `g` cuts (instead of cutting it), or lifts every link
    /// fault (`None`). False when the backend cannot shape links (iptables: without `tc
    /// netem` a firewall can only drop), and then nothing changed.
    fn link(&mut self, g: &Grudge, fault: Option<LinkFault>) -> anyhow::Result<bool> {
        let _ = (g, fault);
        Ok(false)
    }
    /// Delivers now what a reorder ([`LinkFault::Reorder`] without `cut_after`) holds on
    /// every link that `g` cuts (one way, as the reorder took them), late, on the old
    /// connections; every other fault stays in force. False when the backend cannot shape
    /// links.
    fn release(&mut self, g: &Grudge) -> anyhow::Result<bool> {
        let _ = g;
        Ok(false)
    }
}

/// A fault on a link rather than a cut (the proxy backend only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFault {
    /// Every chunk of bytes waits `base` plus up to `jitter` before it is passed on.
    Delay {
        /// Fixed part.
        base: Duration,
        /// Uniform random extra, per chunk.
        jitter: Duration,
    },
    /// Bytes are held (the relay stops reading, so they queue in the socket buffers) and
    /// released in one burst when the fault is lifted.
    Stall,
    /// Every open connection is closed now; new connections pass.
    Reset,
    /// Every open connection is taken over: the bytes its sender writes from now on are
    /// held, and after `after` its sender's side is closed, so the sender reconnects and its
    /// newer messages pass on a new connection. The held bytes are then delivered on the old
    /// connection's receiving side, which is closed after them: the receiver gets old
    /// messages after newer ones (our nodes read each inbound stream on its own task, so a
    /// late stream is stepped whenever it arrives). When: `cut_after` the first bytes of a
    /// new connection passed, and the link is then cut until healed; or, without
    /// `cut_after`, when the fault is lifted.
    Reorder {
        /// How long bytes are held before the sender's side is closed.
        after: Duration,
        /// Deliver and cut this long after a new connection first passed bytes.
        cut_after: Option<Duration>,
    },
}

impl LinkFault {
    /// The kebab-case name used in histories (`delay`, `stall`, `reset`, `reorder`).
    pub fn name(self) -> &'static str {
        match self {
            LinkFault::Delay { .. } => "delay",
            LinkFault::Stall => "stall",
            LinkFault::Reset => "reset",
            LinkFault::Reorder { .. } => "reorder",
        }
    }
}

/// Starts `backend` for `nodes`. `run_tag` names what the backend creates (the firewall
/// chains), so it should be unique per run (e.g. the run directory's timestamp).
pub fn start(
    backend: NetBackend,
    run_tag: &str,
    nodes: &[NodeNet],
) -> anyhow::Result<Box<dyn Net>> {
    check_nodes(nodes)?;
    Ok(match backend {
        NetBackend::Iptables => Box::new(iptables::Iptables::start(run_tag, nodes)?),
        NetBackend::Proxy => Box::new(proxy::Proxy::start(nodes)?),
    })
}

fn check_nodes(nodes: &[NodeNet]) -> Result<(), NetError> {
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[..i] {
            if a.id == b.id {
                return Err(NetError::BadNodes(format!(
                    "node id {} appears twice",
                    a.id
                )));
            }
            if a.addr() == b.addr() {
                return Err(NetError::BadNodes(format!(
                    "nodes {} and {} share the address {}",
                    b.id,
                    a.id,
                    a.addr()
                )));
            }
        }
    }
    Ok(())
}

/// Fails when `g` names a node that is not in `nodes`.
fn check_grudge(g: &Grudge, nodes: &[NodeNet]) -> Result<(), NetError> {
    for (to, froms) in &g.0 {
        for id in std::iter::once(to).chain(froms) {
            if !nodes.iter().any(|n| n.id == *id) {
                return Err(NetError::BadNodes(format!(
                    "grudge {g} names unknown node {id}"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: usize, last: u8, port: u16) -> NodeNet {
        NodeNet {
            id,
            ip: Ipv4Addr::new(127, 0, 9, last),
            port,
            uid: None,
        }
    }

    #[test]
    fn backends_parse_and_unknown_names_are_quoted() {
        assert_eq!(
            "iptables".parse::<NetBackend>().unwrap(),
            NetBackend::Iptables
        );
        assert_eq!("proxy".parse::<NetBackend>().unwrap(), NetBackend::Proxy);
        assert_eq!(choose("proxy").unwrap(), NetBackend::Proxy);
        let err = choose("nftables").unwrap_err();
        assert!(err.to_string().contains("\"nftables\""), "{err}");
    }

    #[test]
    fn auto_picks_iptables_exactly_when_it_works() {
        let expected = match iptables::available() {
            Ok(()) => NetBackend::Iptables,
            Err(_) => NetBackend::Proxy,
        };
        assert_eq!(choose("auto").unwrap(), expected);
        assert_eq!(choose("iptables").is_ok(), expected == NetBackend::Iptables);
    }

    #[test]
    fn duplicate_ids_and_addresses_are_rejected() {
        let err = check_nodes(&[node(1, 1, 80), node(1, 2, 80)]).unwrap_err();
        assert!(err.to_string().contains("node id 1"), "{err}");
        let err = check_nodes(&[node(1, 1, 80), node(2, 1, 80)]).unwrap_err();
        assert!(err.to_string().contains("127.0.9.1:80"), "{err}");
        check_nodes(&[node(1, 1, 80), node(2, 1, 81)]).unwrap();
    }

    #[test]
    fn grudges_naming_unknown_nodes_are_rejected() {
        let nodes = [node(1, 1, 80), node(2, 2, 80)];
        let mut g = Grudge::none(&[1, 2, 3]);
        g.0.get_mut(&3).unwrap().insert(1);
        g.0.get_mut(&1).unwrap().insert(3);
        let err = check_grudge(&g, &nodes).unwrap_err();
        assert!(err.to_string().contains("unknown node 3"), "{err}");
        check_grudge(&Grudge::none(&[1, 2]), &nodes).unwrap();
    }
}
