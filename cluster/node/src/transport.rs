//! Peer transport: one long-lived stream per peer, its socket bound to this node's own IP,
//! fed by a bounded send queue; messages are batched into length-prefixed frames of one
//! `POST /raft/stream` request body that lasts as long as the connection.
//!
//! Concurrency: the event loop never waits on the network. [`Transport::send`] does a
//! `try_send` on the peer's queue and drops the message when the queue is full or the peer is
//! unreachable: Raft retransmits (heartbeats, append retries), so loss costs latency, never
//! safety, while blocking the loop on a slow peer would stall the whole node. Each peer task
//! drains everything queued into one frame, so under load one write carries many messages.
//!
//! Why a stream and not a request per batch: a request needs an answer before the next one
//! may go (HTTP/1 has one request in flight per connection), so every batch cost two more
//! socket writes and reads, two more wake-ups, and a round trip of waiting before the next
//! AppendEntries could leave. Measured under C=32 writes, dropping those answers cut a
//! follower's system calls per batch by more than half (BENCHMARKS.md). Nothing is lost by
//! it: Raft's own responses already travel on the stream in the other direction, and a dead
//! peer is noticed by TCP itself ([`STALL_TIMEOUT`], `TCP_USER_TIMEOUT`), after which the
//! task reconnects with backoff.
//!
//! Why bind: over loopback an unbound socket gets source 127.0.0.1 whatever the destination,
//! so firewall rules written by node address (`-s 127.0.0.2 -d 127.0.0.3`) would match
//! nothing (REFERENCE.md §3). Binding to `own_ip:0` before connecting fixes the source.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame};
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use raft::Message;
use tokio::net::TcpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::api::{Answer, ApiError, ClientOp, Refusal};
use crate::http::RAFT_FROM;
use crate::wire::FrameBuilder;

/// Messages queued per peer before new ones are dropped.
const QUEUE: usize = 4096;
/// Most messages per frame. The core caps AppendEntries at `max_batch` entries, so a frame
/// of small key-value commands stays well under the receiver's 1 MiB frame limit.
const MAX_BATCH: usize = 64;
/// Frames waiting for the socket before new ones are dropped (a stopped or partitioned peer).
const FRAMES: usize = 64;
/// How long sent data may stay unacknowledged by the peer's TCP before the connection is
/// dropped and made anew (`TCP_USER_TIMEOUT`): a partitioned peer's connection would
/// otherwise wait out TCP's exponential retransmission backoff after the partition heals.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(2);

/// What a peer's queue carries; the sender task batches any mix of them into one frame.
enum Outgoing {
    Raft(Message),
    /// A client request this node forwards to the peer (its leader).
    Forward {
        id: u64,
        op: ClientOp,
    },
    /// This node's (the leader's) answer to a request the peer forwarded.
    Answer {
        id: u64,
        res: Result<Answer, Refusal>,
    },
}

struct Peer {
    addr: String,
    tx: mpsc::Sender<Outgoing>,
}

/// A forwarded request waiting for the leader's answer.
struct Forwarded {
    to: u64,
    is_write: bool,
    reply: oneshot::Sender<Result<Answer, Refusal>>,
}

/// The answer to a forwarded request, or why there is none.
pub type ForwardReply = oneshot::Receiver<Result<Answer, Refusal>>;

/// The set of outgoing peer links, and the requests forwarded over them.
pub struct Transport {
    id: u64,
    own_ip: IpAddr,
    peers: Mutex<BTreeMap<u64, Peer>>,
    forwards: Mutex<HashMap<u64, Forwarded>>,
    next_forward: AtomicU64,
}

impl Transport {
    /// A transport for node `id` whose sockets leave from `own_ip`.
    pub fn new(id: u64, own_ip: IpAddr) -> Transport {
        Transport {
            id,
            own_ip,
            peers: Mutex::new(BTreeMap::new()),
            forwards: Mutex::new(HashMap::new()),
            next_forward: AtomicU64::new(1),
        }
    }

    /// Adds (or re-addresses) a peer and starts its sender task. Must run inside a runtime.
    pub fn set_peer(self: &Arc<Self>, id: u64, addr: String) {
        let mut peers = self.peers.lock().unwrap();
        if peers.get(&id).is_some_and(|p| p.addr == addr) {
            return;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(sender(self.clone(), id, addr.clone(), rx));
        // Replacing the old entry drops its sender, which ends the old task.
        peers.insert(id, Peer { addr, tx });
    }

    /// Stops sending to a peer.
    pub fn remove_peer(&self, id: u64) {
        self.peers.lock().unwrap().remove(&id);
    }

    fn queue(&self, to: u64, item: Outgoing) -> bool {
        match self.peers.lock().unwrap().get(&to) {
            Some(p) => p.tx.try_send(item).is_ok(),
            None => false,
        }
    }

    /// Queues a message; drops it if the queue is full or the peer is unknown. Encoding
    /// happens in the peer's sender task, off the event loop.
    pub fn send(&self, msg: Message) {
        if !self.queue(msg.to, Outgoing::Raft(msg)) {
            tracing::trace!("peer queue full or peer unknown, message dropped");
        }
    }

    /// Forwards a client request to peer `to` (the leader). `None`: it could not even be
    /// queued, so the leader will never see it (a definite failure).
    pub fn forward(&self, to: u64, op: ClientOp) -> Option<(u64, ForwardReply)> {
        let id = self.next_forward.fetch_add(1, Ordering::Relaxed);
        let (reply, rx) = oneshot::channel();
        let is_write = matches!(op, ClientOp::Write(_));
        self.forwards.lock().unwrap().insert(
            id,
            Forwarded {
                to,
                is_write,
                reply,
            },
        );
        if self.queue(to, Outgoing::Forward { id, op }) {
            Some((id, rx))
        } else {
            self.forwards.lock().unwrap().remove(&id);
            None
        }
    }

    /// Stops waiting for forwarded request `id` (its deadline passed).
    pub fn cancel_forward(&self, id: u64) {
        self.forwards.lock().unwrap().remove(&id);
    }

    /// Sends the answer to request `id` forwarded by peer `to`; dropped like any message if
    /// the peer is unreachable (its client then learns nothing: an unknown outcome).
    pub fn answer(&self, to: u64, id: u64, res: Result<Answer, Refusal>) {
        if !self.queue(to, Outgoing::Answer { id, res }) {
            tracing::trace!(to, "answer to a forwarded request dropped");
        }
    }

    /// Hands the leader's answer to the client waiting for forwarded request `id`.
    pub fn resolve(&self, id: u64, res: Result<Answer, Refusal>) {
        if let Some(f) = self.forwards.lock().unwrap().remove(&id) {
            let _ = f.reply.send(res);
        }
    }

    /// Fails forwarded request `id`, which never left this node: definitely not applied.
    fn unsent(&self, id: u64) {
        let e = ApiError::definite(
            hyper::StatusCode::SERVICE_UNAVAILABLE,
            "leader unreachable (request never sent)",
        );
        self.resolve(id, Err(Refusal::Error(e)));
    }

    /// The stream to `to` broke: every request forwarded to it may or may not have reached
    /// it, and its answer will not come back. Writes get an unknown outcome, reads a failure.
    fn connection_lost(&self, to: u64) {
        let lost: Vec<Forwarded> = {
            let mut map = self.forwards.lock().unwrap();
            let ids: Vec<u64> = map
                .iter()
                .filter(|(_, f)| f.to == to)
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| map.remove(id)).collect()
        };
        for f in lost {
            let e = if f.is_write {
                ApiError::unknown("connection to the leader lost after forwarding")
            } else {
                ApiError::definite(
                    hyper::StatusCode::SERVICE_UNAVAILABLE,
                    "connection to the leader lost",
                )
            };
            let _ = f.reply.send(Err(Refusal::Error(e)));
        }
    }
}

async fn connect(own_ip: IpAddr, addr: &str) -> std::io::Result<tokio::net::TcpStream> {
    let target: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(_) => tokio::net::lookup_host(addr)
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{addr} resolves to nothing")))?,
    };
    let sock = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if own_ip.is_ipv4() == target.is_ipv4() {
        sock.bind(SocketAddr::new(own_ip, 0))?;
    }
    sock.set_nodelay(true)?;
    nix::sys::socket::setsockopt(
        &sock,
        nix::sys::socket::sockopt::TcpUserTimeout,
        &(STALL_TIMEOUT.as_millis() as u32),
    )
    .map_err(std::io::Error::from)?;
    let s = tokio::time::timeout(Duration::from_secs(1), sock.connect(target))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))??;
    Ok(s)
}

/// The body of a peer stream: each item of the channel is one frame; the body ends when the
/// sender drops its end.
struct FrameBody(mpsc::Receiver<Bytes>);

impl Body for FrameBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|f| f.map(|b| Ok(Frame::data(b))))
    }
}

/// One peer's sender: connect (with backoff), open the stream, then write a frame per batch
/// until the connection fails (reconnect) or the queue closes (peer removed: stop).
async fn sender(t: Arc<Transport>, to: u64, addr: String, mut rx: mpsc::Receiver<Outgoing>) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let stream = match connect(t.own_ip, &addr).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(to, %addr, "connect failed: {e}");
                // Stale messages are worthless after a backoff: Raft will send fresh ones.
                // Forwarded requests among them never left: their clients learn so now.
                while let Ok(item) = rx.try_recv() {
                    if let Outgoing::Forward { id, .. } = item {
                        t.unsent(id);
                    }
                }
                if rx.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            }
        };
        let Ok((mut req_tx, conn)) = http1::handshake(TokioIo::new(stream)).await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let (frames, body) = mpsc::channel(FRAMES);
        let req = Request::post("/raft/stream")
            .header(hyper::header::HOST, addr.as_str())
            .header(RAFT_FROM, t.id.to_string())
            .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
            .body(FrameBody(body))
            .expect("static request parts are valid");
        // The answer comes only when the stream ends: early means the peer refused it or
        // the connection broke.
        let answer = req_tx.send_request(req);
        tokio::pin!(answer);
        tracing::debug!(to, %addr, "connected");
        loop {
            tokio::select! {
                res = &mut answer => {
                    match res {
                        Ok(resp) => tracing::warn!(to, status = %resp.status(), "peer closed the stream"),
                        Err(e) => tracing::debug!(to, "peer connection lost: {e}"),
                    }
                    break;
                }
                first = rx.recv() => {
                    let Some(first) = first else { return };
                    backoff = Duration::from_millis(10);
                    let mut items = vec![first];
                    while items.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(m) => items.push(m),
                            Err(_) => break,
                        }
                    }
                    let mut msgs = Vec::new();
                    let mut forwarded = Vec::new();
                    let mut b = FrameBuilder::default();
                    for item in items {
                        match item {
                            Outgoing::Raft(m) => msgs.push(m),
                            Outgoing::Forward { id, op } => {
                                b.forward(id, &op);
                                forwarded.push(id);
                            }
                            Outgoing::Answer { id, res } => b.answer(id, &res),
                        }
                    }
                    let raft = (!msgs.is_empty()).then(|| raft::encode_messages(&msgs));
                    if frames.try_send(b.finish(raft)).is_err() {
                        tracing::trace!(to, "peer stream not draining, batch dropped");
                        for id in forwarded {
                            t.unsent(id);
                        }
                    }
                }
            }
        }
        t.connection_lost(to);
        // Refused or broken: wait a little so a peer that refuses at once is not hammered.
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::Command;
    use tokio::io::AsyncReadExt;

    fn write_op() -> ClientOp {
        ClientOp::Write(Command::Put {
            key: "k".into(),
            value: "v".into(),
        })
    }

    async fn outcome(rx: ForwardReply) -> ApiError {
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(Err(Refusal::Error(e)))) => e,
            other => panic!("expected an error answer, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_forward_to_an_unknown_peer_is_never_queued() {
        let t = Arc::new(Transport::new(1, "127.0.0.1".parse().unwrap()));
        assert!(t.forward(7, write_op()).is_none());
    }

    #[tokio::test]
    async fn a_forward_that_never_left_fails_definitely() {
        // A port nothing listens on: every connect is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = Arc::new(Transport::new(1, "127.0.0.1".parse().unwrap()));
        t.set_peer(2, format!("127.0.0.1:{port}"));
        let (_, rx) = t.forward(2, write_op()).expect("queued");
        let e = outcome(rx).await;
        assert!(e.definite, "{e:?}");
    }

    #[tokio::test]
    async fn a_forwarded_write_whose_connection_breaks_is_unknown() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A peer that reads the stream until the first frame (the forwarded request) has
        // arrived after the request head, then hangs up without answering.
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let body_started = seen
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .is_some_and(|at| seen.len() > at + 4);
                if body_started {
                    break;
                }
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
        });
        let t = Arc::new(Transport::new(1, "127.0.0.1".parse().unwrap()));
        t.set_peer(2, addr.to_string());
        let (_, rx) = t.forward(2, write_op()).expect("queued");
        let e = outcome(rx).await;
        assert!(
            !e.definite,
            "a write that may have arrived is unknown: {e:?}"
        );
        assert_eq!(e.status, hyper::StatusCode::GATEWAY_TIMEOUT);
    }
}
