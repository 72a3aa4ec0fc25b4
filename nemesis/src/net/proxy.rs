//! The proxy backend: a TCP relay per ordered pair of nodes, which the nemesis can cut.
//!
//! Node `a` reaches peer `b` at the relay `(a, b)`, which listens on `a`'s own address (port
//! chosen by the OS, so every pair has its own listen address) and forwards each connection to
//! `b`'s real address from a socket bound to `a`'s address, so `b` still sees `a` as the
//! source. Cutting a pair closes the relay's open connections and closes every new one as soon
//! as it is accepted; healing lets connections through again.
//!
//! A relay can also shape its link instead of cutting it ([`LinkFault`]): delay every chunk
//! it copies, stall (stop copying until the fault is lifted, then pass everything queued at
//! once), reset (close the open connections, let new ones through), or reorder (hold what
//! each open connection carries, close its sender's side so the sender reconnects, and
//! deliver the held bytes on the old receiving side when the fault is lifted).
//!
//! Threads, not tokio: the [`super::Net`] trait is synchronous, a cluster has at most a few
//! dozen relays with a few connections each, and a blocking copy loop per direction adds no
//! scheduling hop between a read and its write. Each relay has one accept thread; each
//! connection has two copy threads that end when either side closes or the pair is cut.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{check_grudge, Grudge, LinkFault, Net, NetError, NodeNet};

/// How long a relay waits for the target node to accept before giving up on a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A relay's shared state, changed by the nemesis and read by the relay threads.
#[derive(Default)]
struct State {
    cut: bool,
    stopping: bool,
    /// A delay or stall in force (a reset is done at once and not kept).
    link: Option<LinkFault>,
    next_id: u64,
    /// Open connections (client side, target side), kept to shut them down on a cut.
    conns: BTreeMap<u64, (TcpStream, TcpStream)>,
    /// Connections taken over by a reorder: the bytes their client sent since, to be
    /// written to their target side when the fault is lifted.
    held: BTreeMap<u64, Vec<u8>>,
    /// Armed by a reorder with a `cut_after` once the old connections are closed: the next
    /// new connection to pass bytes starts the clock for the late delivery and the cut.
    cut_armed: Option<Duration>,
}

struct Shared {
    from_ip: Ipv4Addr,
    target: SocketAddr,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A copy thread that panicked leaves consistent data behind: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the cut flag; on a cut, closes every open connection.
    fn set_cut(&self, cut: bool) {
        let mut st = self.lock();
        st.cut = cut;
        if cut {
            close_all(&mut st);
        }
    }
}

/// What a copy thread must do before passing on a chunk, given the relay's state now.
enum Gate {
    Pass,
    Wait(Duration),
    Hold,
    Close,
}

impl Shared {
    /// Sets or lifts a link fault; a reset closes the open connections now, a reorder
    /// takes them over; lifting delivers what reorders held.
    fn set_link(self: &Arc<Self>, fault: Option<LinkFault>) {
        let mut st = self.lock();
        match fault {
            Some(LinkFault::Reset) => close_all(&mut st),
            Some(LinkFault::Reorder { after, cut_after }) => {
                let ids: Vec<u64> = st.conns.keys().copied().collect();
                for id in ids {
                    st.held.insert(id, Vec::new());
                }
                drop(st);
                // The sender's side closes only after `after`, so the held bytes are what
                // it wrote in that time; the copy thread then sees the end of its client's
                // stream on a connection marked held and leaves the target side open.
                let shared = self.clone();
                let _ = std::thread::Builder::new()
                    .name("relay-reorder".into())
                    .spawn(move || {
                        std::thread::sleep(after);
                        let mut st = shared.lock();
                        for id in st.held.keys() {
                            if let Some((client, _)) = st.conns.get(id) {
                                let _ = client.shutdown(Shutdown::Both);
                            }
                        }
                        st.cut_armed = cut_after;
                    });
            }
            Some(f) => st.link = Some(f),
            None => {
                st.link = None;
                st.cut_armed = None;
                let late = take_late(&mut st);
                drop(st);
                deliver_late(late);
            }
        }
    }

    /// After a new connection passed bytes: if a reorder armed its cut, waits `cut_after`,
    /// delivers the held bytes, and cuts the link (until healed).
    fn passed(self: &Arc<Self>) {
        let Some(wait) = self.lock().cut_armed.take() else {
            return;
        };
        let shared = self.clone();
        let _ = std::thread::Builder::new()
            .name("relay-reorder-cut".into())
            .spawn(move || {
                std::thread::sleep(wait);
                shared.release();
                shared.set_cut(true);
            });
    }

    /// Delivers the bytes a reorder held, on their old connections.
    fn release(&self) {
        let late = take_late(&mut self.lock());
        deliver_late(late);
    }

    /// Whether connection `id`'s client bytes are being held; if so, keeps `bytes`.
    fn hold(&self, id: u64, bytes: &[u8]) -> bool {
        match self.lock().held.get_mut(&id) {
            Some(buf) => {
                buf.extend_from_slice(bytes);
                true
            }
            None => false,
        }
    }

    fn is_held(&self, id: u64) -> bool {
        self.lock().held.contains_key(&id)
    }
}

/// The held bytes of every reordered connection, each with its target side (when still
/// open); forgets them.
fn take_late(st: &mut State) -> Vec<(Vec<u8>, Option<TcpStream>)> {
    std::mem::take(&mut st.held)
        .into_iter()
        .map(|(id, bytes)| {
            let target = st.conns.get(&id).and_then(|(_, t)| t.try_clone().ok());
            (bytes, target)
        })
        .collect()
}

/// Writes each reordered connection's held bytes to its receiving side, then closes it.
///
/// A write timeout, because a paused receiver would otherwise block the nemesis once the
/// socket buffer is full; what does not fit by then is lost, as on a link that died.
fn deliver_late(late: Vec<(Vec<u8>, Option<TcpStream>)>) {
    for (bytes, target) in late {
        let Some(mut target) = target else { continue };
        let _ = target.set_write_timeout(Some(Duration::from_secs(1)));
        let _ = target.write_all(&bytes);
        let _ = target.shutdown(Shutdown::Both);
    }
}

impl Shared {
    fn gate(&self, noise: &mut u64) -> Gate {
        let st = self.lock();
        if st.cut || st.stopping {
            return Gate::Close;
        }
        match st.link {
            None | Some(LinkFault::Reset) | Some(LinkFault::Reorder { .. }) => Gate::Pass,
            Some(LinkFault::Stall) => Gate::Hold,
            Some(LinkFault::Delay { base, jitter }) => {
                // xorshift: jitter needs no reproducibility (thread timing already has none).
                *noise ^= *noise << 13;
                *noise ^= *noise >> 7;
                *noise ^= *noise << 17;
                let extra = jitter.as_micros() as u64;
                let extra = if extra == 0 { 0 } else { *noise % extra };
                Gate::Wait(base + Duration::from_micros(extra))
            }
        }
    }
}

fn close_all(st: &mut State) {
    st.held.clear();
    st.cut_armed = None;
    for (client, target) in std::mem::take(&mut st.conns).values() {
        let _ = client.shutdown(Shutdown::Both);
        let _ = target.shutdown(Shutdown::Both);
    }
}

struct Relay {
    listen: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Relay {
    fn start(from: &NodeNet, to: &NodeNet) -> Result<Relay, NetError> {
        let listener = TcpListener::bind((from.ip, 0)).map_err(|source| NetError::Io {
            what: format!("binding a relay on {}", from.ip),
            source,
        })?;
        let listen = listener.local_addr().map_err(|source| NetError::Io {
            what: "relay address".into(),
            source,
        })?;
        let shared = Arc::new(Shared {
            from_ip: from.ip,
            target: to.addr(),
            state: Mutex::default(),
        });
        let accept = std::thread::Builder::new()
            .name(format!("relay-{}-{}", from.id, to.id))
            .spawn({
                let shared = shared.clone();
                move || accept_loop(listener, shared)
            })
            .map_err(|source| NetError::Io {
                what: "spawning a relay thread".into(),
                source,
            })?;
        Ok(Relay {
            listen,
            shared,
            accept: Some(accept),
        })
    }

    /// Closes every connection and ends the accept thread. Idempotent.
    fn stop(&mut self) {
        let Some(handle) = self.accept.take() else {
            return;
        };
        {
            let mut st = self.shared.lock();
            st.stopping = true;
            close_all(&mut st);
        }
        // Wake the blocking accept; it sees `stopping` and returns.
        let _ = TcpStream::connect_timeout(&self.listen, CONNECT_TIMEOUT);
        let _ = handle.join();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        let st = shared.lock();
        if st.stopping {
            return;
        }
        let cut = st.cut;
        drop(st);
        match accepted {
            // A cut pair closes new connections at once.
            Ok((_client, _)) if cut => {}
            Ok((client, _)) => {
                let shared = shared.clone();
                // Connecting to the target may take a while: not on the accept thread.
                let _ = std::thread::Builder::new()
                    .name("relay-conn".into())
                    .spawn(move || relay(client, shared));
            }
            // Out of file descriptors or similar: back off instead of spinning.
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.bind(&SocketAddr::from((src, 0)).into())?;
    sock.connect_timeout(&dst.into(), CONNECT_TIMEOUT)?;
    let stream: TcpStream = sock.into();
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Carries one connection until either side closes it or the pair is cut.
fn relay(client: TcpStream, shared: Arc<Shared>) {
    let Ok(target) = connect_from(shared.from_ip, shared.target) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let (Ok(client2), Ok(target2)) = (client.try_clone(), target.try_clone()) else {
        return;
    };
    let id = {
        // Checked under the lock that `set_cut` holds, so a cut cannot miss this connection.
        let mut st = shared.lock();
        if st.cut || st.stopping {
            return;
        }
        st.next_id += 1;
        let id = st.next_id;
        match (client.try_clone(), target.try_clone()) {
            (Ok(c), Ok(t)) => st.conns.insert(id, (c, t)),
            _ => return,
        };
        id
    };
    let back = std::thread::Builder::new()
        .name("relay-back".into())
        .spawn({
            let shared = shared.clone();
            move || copy(target2, client2, &shared, id * 2 + 1, None)
        });
    copy(client, target, &shared, id * 2, Some(id));
    if let Ok(handle) = back {
        let _ = handle.join();
    }
    shared.lock().conns.remove(&id);
}

/// Copies `from` to `to` until end of stream, then half-closes `to`; on an error closes both.
/// Each chunk passes the relay's [`Gate`] first (`seed`: the delay jitter's). `held`: the
/// connection's id when this is its client-to-target direction, which a reorder can take
/// over (its chunks are then kept, and `to` is left open for their late delivery).
fn copy(
    mut from: TcpStream,
    mut to: TcpStream,
    shared: &Arc<Shared>,
    seed: u64,
    held: Option<u64>,
) {
    let mut buf = [0u8; 16 * 1024];
    let mut noise = seed | 1;
    let taken_over = |shared: &Shared| held.is_some_and(|id| shared.is_held(id));
    loop {
        match from.read(&mut buf) {
            Ok(0) if taken_over(shared) => return,
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) if held.is_some_and(|id| shared.hold(id, &buf[..n])) => {}
            Ok(n) => {
                if !pass_gate(shared, &mut noise) || to.write_all(&buf[..n]).is_err() {
                    break;
                }
                if held.is_some() {
                    shared.passed();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) if taken_over(shared) => return,
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Waits as the relay's link fault says; false when the connection must close instead.
fn pass_gate(shared: &Shared, noise: &mut u64) -> bool {
    loop {
        match shared.gate(noise) {
            Gate::Pass => return true,
            Gate::Close => return false,
            Gate::Wait(d) => {
                std::thread::sleep(d);
                return true;
            }
            // Not a condition variable: a stall lasts seconds, a 5 ms poll costs nothing.
            Gate::Hold => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// A running set of relays (see the module docs).
pub(crate) struct Proxy {
    nodes: Vec<NodeNet>,
    relays: BTreeMap<(usize, usize), Relay>,
}

impl Proxy {
    pub(crate) fn start(nodes: &[NodeNet]) -> Result<Proxy, NetError> {
        let mut proxy = Proxy {
            nodes: nodes.to_vec(),
            relays: BTreeMap::new(),
        };
        for from in nodes {
            for to in nodes.iter().filter(|n| n.id != from.id) {
                // On error `proxy` drops here and stops the relays already started.
                proxy
                    .relays
                    .insert((from.id, to.id), Relay::start(from, to)?);
            }
        }
        Ok(proxy)
    }

    fn node(&self, id: usize) -> &NodeNet {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("peer_addr: unknown node {id} in {:?}", self.nodes))
    }
}

impl Net for Proxy {
    fn partition(&mut self, g: &Grudge) -> anyhow::Result<()> {
        check_grudge(g, &self.nodes)?;
        for (&(a, b), relay) in &self.relays {
            // One relay carries both directions of its connections, so it is cut when either
            // direction is (grudges are symmetric anyway).
            relay.shared.set_cut(g.cuts(a, b) || g.cuts(b, a));
        }
        Ok(())
    }

    fn heal(&mut self) -> anyhow::Result<()> {
        self.relays.values().for_each(|r| {
            r.shared.set_cut(false);
            r.shared.set_link(None);
        });
        Ok(())
    }

    fn peer_addr(&self, from: usize, to: usize) -> SocketAddr {
        self.node(from);
        match self.relays.get(&(from, to)) {
            Some(relay) => relay.listen,
            None => self.node(to).addr(),
        }
    }

    fn cleanup(&mut self) -> anyhow::Result<()> {
        self.relays.values_mut().for_each(Relay::stop);
        Ok(())
    }

    fn link(&mut self, g: &Grudge, fault: Option<LinkFault>) -> anyhow::Result<bool> {
        check_grudge(g, &self.nodes)?;
        for (&(a, b), relay) in &self.relays {
            match fault {
                None => relay.shared.set_link(None),
                // A reorder is one-way: it takes over what `a` sends to `b` when `b` must
                // not hear `a`, and leaves `b`'s answers to `a` alone.
                Some(f @ LinkFault::Reorder { .. }) if g.cuts(a, b) => {
                    relay.shared.set_link(Some(f))
                }
                Some(LinkFault::Reorder { .. }) => {}
                Some(f) if g.cuts(a, b) || g.cuts(b, a) => relay.shared.set_link(Some(f)),
                Some(_) => {}
            }
        }
        Ok(true)
    }

    fn release(&mut self, g: &Grudge) -> anyhow::Result<bool> {
        check_grudge(g, &self.nodes)?;
        for (&(a, b), relay) in &self.relays {
            if g.cuts(a, b) {
                relay.shared.release();
            }
        }
        Ok(true)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.relays.values_mut().for_each(Relay::stop);
    }
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
