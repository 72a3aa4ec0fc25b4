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
use crate::wire::{self, FrameBuilder, RAFT_FROM};

/// Messages queued per peer before new ones are dropped.
const QUEUE: usize = 4096;
/// Most messages per frame.
const MAX_BATCH: usize = 64;
/// A frame takes no further message once it holds this many bytes. The core bounds one
/// AppendEntries by bytes too (`max_append_bytes`), so a frame stays near this size unless a
/// single message is larger (one entry near the body limit, a snapshot), which then goes
/// alone, in pieces if it is over the frame limit (`wire::pieces`).
const FRAME_BYTES: usize = 256 << 10;
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
    /// The number of the frame that carried it on the current stream to `to`, once sent.
    frame: Option<u64>,
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
                frame: None,
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
        let e = ApiError::unavailable("leader unreachable (request never sent)");
        self.resolve(id, Err(Refusal::Error(e)));
    }

    /// A newer term began and `leader` (if known) leads it: requests forwarded to any other
    /// node will get no answer from a leader of the term they were sent in (a paused or cut-off
    /// leader keeps them; its kernel may even have acknowledged them), so they fail now
    /// instead of at the deadline. A write may still be committed by a later leader: unknown
    /// outcome; a read changes nothing: a failure. Requests to `leader` itself (re-elected)
    /// still get its answer.
    pub fn new_term(&self, leader: Option<u64>) {
        for f in self.take_where(|f| Some(f.to) != leader) {
            let e = if f.is_write {
                ApiError::unknown("a new term began after the request was forwarded to the leader")
            } else {
                ApiError::unavailable("a new term began after the read was forwarded to the leader")
            };
            let _ = f.reply.send(Err(Refusal::Error(e)));
        }
    }

    /// Removes and returns the forwarded requests `pred` picks.
    fn take_where(&self, pred: impl Fn(&Forwarded) -> bool) -> Vec<Forwarded> {
        let mut map = self.forwards.lock().unwrap();
        let ids: Vec<u64> = map
            .iter()
            .filter(|(_, f)| pred(f))
            .map(|(id, _)| *id)
            .collect();
        ids.iter().filter_map(|id| map.remove(id)).collect()
    }

    /// Records that forwarded requests `ids` left in frame `frame` of the current stream.
    fn sent_in(&self, ids: &[u64], frame: u64) {
        let mut map = self.forwards.lock().unwrap();
        for id in ids {
            if let Some(f) = map.get_mut(id) {
                f.frame = Some(frame);
            }
        }
    }

    /// The stream to `to` ended: every request sent on it is still waiting for an answer that
    /// will not come. If the peer refused the stream after handling `done` frames, requests
    /// sent in later frames were never seen: definitely not applied. The others may or may
    /// not have arrived: writes get an unknown outcome, reads a failure. Requests still
    /// queued stay: they go on the next stream (or fail as never sent).
    fn connection_lost(&self, to: u64, done: Option<u64>) {
        for f in self.take_where(|f| f.to == to && f.frame.is_some()) {
            let frame = f.frame.unwrap_or(0);
            let e = if done.is_some_and(|d| frame >= d) {
                ApiError::unavailable(
                    "the leader refused the connection before reading the request (not applied)",
                )
            } else if f.is_write {
                ApiError::unknown("connection to the leader lost after forwarding")
            } else {
                ApiError::unavailable("connection to the leader lost")
            };
            let _ = f.reply.send(Err(Refusal::Error(e)));
        }
    }
}

/// A rough count of the bytes `m` takes in a frame, for [`FRAME_BYTES`].
fn weight(m: &Message) -> usize {
    match &m.body {
        raft::MessageBody::AppendEntries { entries, .. } => {
            entries.iter().map(|e| e.payload_len() + 32).sum::<usize>() + 64
        }
        raft::MessageBody::InstallSnapshot { snapshot } => snapshot.data.len() + 64,
        _ => 64,
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
        // Frames written on this stream, numbered as the receiver counts them.
        let mut written = 0u64;
        let done = loop {
            tokio::select! {
                res = &mut answer => {
                    break match res {
                        Ok(resp) => {
                            tracing::warn!(to, status = %resp.status(), "peer closed the stream");
                            resp.headers()
                                .get(wire::FRAMES_DONE)
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse::<u64>().ok())
                        }
                        Err(e) => {
                            tracing::debug!(to, "peer connection lost: {e}");
                            None
                        }
                    };
                }
                first = rx.recv() => {
                    let Some(first) = first else { return };
                    backoff = Duration::from_millis(10);
                    let (frame, forwarded) = batch(first, &mut rx);
                    let parts = wire::pieces(frame);
                    let n = parts.len() as u64;
                    if n == 1 {
                        let part = parts.into_iter().next().expect("one part");
                        if frames.try_send(part).is_err() {
                            tracing::trace!(to, "peer stream not draining, batch dropped");
                            for id in forwarded {
                                t.unsent(id);
                            }
                            continue;
                        }
                    } else {
                        // The pieces of one frame go back to back, so wait for room rather
                        // than drop one of them; a broken stream ends the wait.
                        for part in parts {
                            if frames.send(part).await.is_err() {
                                break;
                            }
                        }
                    }
                    written += n;
                    t.sent_in(&forwarded, written - 1);
                }
            }
        };
        t.connection_lost(to, done);
        // Refused or broken: wait a little so a peer that refuses at once is not hammered.
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

/// Takes `first` and whatever else is queued, up to [`MAX_BATCH`] items or [`FRAME_BYTES`],
/// into one frame; returns it and the ids of the requests it forwards.
fn batch(first: Outgoing, rx: &mut mpsc::Receiver<Outgoing>) -> (bytes::Bytes, Vec<u64>) {
    let mut msgs = Vec::new();
    let mut raft_bytes = 0;
    let mut forwarded = Vec::new();
    let mut b = FrameBuilder::default();
    let mut next = Some(first);
    let mut taken = 0;
    while let Some(item) = next.take() {
        match item {
            Outgoing::Raft(m) => {
                raft_bytes += weight(&m);
                msgs.push(m);
            }
            Outgoing::Forward { id, op } => {
                b.forward(id, &op);
                forwarded.push(id);
            }
            Outgoing::Answer { id, res } => b.answer(id, &res),
        }
        taken += 1;
        if taken < MAX_BATCH && raft_bytes + b.len() < FRAME_BYTES {
            next = rx.try_recv().ok();
        }
    }
    let raft = (!msgs.is_empty()).then(|| raft::encode_messages(&msgs));
    (b.finish(raft), forwarded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ErrorKind;
    use crate::kv::Command;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

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

    /// A fake peer's read of the stream's request head, and with `body` of the first bytes
    /// after it too; stops early if the connection ends.
    async fn read_head(s: &mut TcpStream, body: bool) {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let head_end = seen.windows(4).position(|w| w == b"\r\n\r\n");
            if head_end.is_some_and(|at| !body || seen.len() > at + 4) {
                return;
            }
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[tokio::test]
    async fn a_forward_to_an_unknown_peer_is_never_queued() {
        let t = Arc::new(Transport::new(1, "127.0.0.1".parse().unwrap()));
        assert!(t.forward(7, write_op()).is_none());
    }

    /// Forwards a write from node 1 to node 2 at `addr`; the error its client gets.
    async fn forward_write_to(addr: String) -> ApiError {
        let t = Arc::new(Transport::new(1, "127.0.0.1".parse().unwrap()));
        t.set_peer(2, addr);
        let (_, rx) = t.forward(2, write_op()).expect("queued");
        outcome(rx).await
    }

    /// Forwards a write to a fake peer on loopback that `peer` plays on the one connection
    /// it accepts; the error the forwarding client gets.
    async fn forward_write_to_fake_peer<F>(
        peer: impl FnOnce(TcpStream) -> F + Send + 'static,
    ) -> ApiError
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            peer(s).await;
        });
        forward_write_to(addr.to_string()).await
    }

    #[tokio::test]
    async fn a_forward_that_never_left_fails_definitely() {
        // A port nothing listens on: every connect is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = forward_write_to(format!("127.0.0.1:{port}")).await;
        assert!(e.definite(), "{e:?}");
    }

    #[tokio::test]
    async fn a_forwarded_write_whose_connection_breaks_is_unknown() {
        // A peer that reads the stream until the first frame (the forwarded request) has
        // arrived after the request head, then hangs up without answering.
        let e = forward_write_to_fake_peer(|mut s| async move {
            read_head(&mut s, true).await;
        })
        .await;
        assert!(
            !e.definite(),
            "a write that may have arrived is unknown: {e:?}"
        );
        assert_eq!(e.kind, ErrorKind::Unknown);
    }

    /// The leader refused the stream (here: after reading the frame with the forwarded
    /// request, as a peer refuses an unknown sender or a bad frame) and says it handled no
    /// frame: the write was never seen, so its client learns it definitely failed
    /// (unavailable), not that its outcome is unknown.
    #[tokio::test]
    async fn a_forward_the_leader_refused_unread_is_definite() {
        use tokio::io::AsyncWriteExt;
        let e = forward_write_to_fake_peer(|mut s| async move {
            read_head(&mut s, false).await;
            let body = br#"{"error":"refused","definite":true,"leader":null}"#;
            let head = format!(
                "HTTP/1.1 403 Forbidden\r\n{}: 0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                wire::FRAMES_DONE,
                body.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(body).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        })
        .await;
        assert!(e.definite(), "a refused, unread write is definite: {e:?}");
        assert_eq!(e.kind, ErrorKind::Unavailable);
    }
}
