//! Peer transport: one persistent HTTP/1 connection per peer, its socket bound to this node's
//! own IP, fed by a bounded send queue; messages are batched into `POST /raft` bodies.
//!
//! Concurrency: the event loop never waits on the network. [`Transport::send`] does a
//! `try_send` on the peer's queue and drops the message when the queue is full or the peer is
//! unreachable: Raft retransmits (heartbeats, append retries), so loss costs latency, never
//! safety, while blocking the loop on a slow peer would stall the whole node. Each peer task
//! drains everything queued into one request body, so under load one round trip carries many
//! messages and the number of in-flight requests per peer stays one.
//!
//! Why bind: over loopback an unbound socket gets source 127.0.0.1 whatever the destination,
//! so firewall rules written by node address (`-s 127.0.0.2 -d 127.0.0.3`) would match
//! nothing (REFERENCE.md §3). Binding to `own_ip:0` before connecting fixes the source.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use raft::Message;
use tokio::net::TcpSocket;
use tokio::sync::mpsc;

use crate::http::RAFT_FROM;

/// Messages queued per peer before new ones are dropped.
const QUEUE: usize = 4096;
/// Most messages per request. The core caps AppendEntries at `max_batch` entries, so a batch
/// of small key-value commands stays well under the receiver's 1 MiB body limit.
const MAX_BATCH: usize = 64;
/// How long one request may take before the connection is considered dead.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

struct Peer {
    addr: String,
    tx: mpsc::Sender<Message>,
}

/// The set of outgoing peer links.
pub struct Transport {
    id: u64,
    own_ip: IpAddr,
    peers: Mutex<BTreeMap<u64, Peer>>,
}

impl Transport {
    /// A transport for node `id` whose sockets leave from `own_ip`.
    pub fn new(id: u64, own_ip: IpAddr) -> Transport {
        Transport {
            id,
            own_ip,
            peers: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds (or re-addresses) a peer and starts its sender task. Must run inside a runtime.
    pub fn set_peer(&self, id: u64, addr: String) {
        let mut peers = self.peers.lock().unwrap();
        if peers.get(&id).is_some_and(|p| p.addr == addr) {
            return;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(sender(self.id, self.own_ip, id, addr.clone(), rx));
        // Replacing the old entry drops its sender, which ends the old task.
        peers.insert(id, Peer { addr, tx });
    }

    /// Stops sending to a peer.
    pub fn remove_peer(&self, id: u64) {
        self.peers.lock().unwrap().remove(&id);
    }

    /// Queues a message; drops it if the queue is full or the peer is unknown. Encoding
    /// happens in the peer's sender task, off the event loop.
    pub fn send(&self, msg: Message) {
        if let Some(p) = self.peers.lock().unwrap().get(&msg.to) {
            if p.tx.try_send(msg).is_err() {
                tracing::trace!("peer queue full, message dropped");
            }
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
    let s = tokio::time::timeout(Duration::from_secs(1), sock.connect(target))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))??;
    Ok(s)
}

/// One peer's sender: connect (with backoff), then send batches until the queue closes.
async fn sender(me: u64, own_ip: IpAddr, to: u64, addr: String, mut rx: mpsc::Receiver<Message>) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let stream = match connect(own_ip, &addr).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(to, %addr, "connect failed: {e}");
                // Stale messages are worthless after a backoff: Raft will send fresh ones.
                while rx.try_recv().is_ok() {}
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
        backoff = Duration::from_millis(10);
        tracing::debug!(to, %addr, "connected");
        loop {
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let body = raft::encode_messages(&batch);
            let req = Request::post("/raft")
                .header(hyper::header::HOST, addr.as_str())
                .header(RAFT_FROM, me.to_string())
                .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
                .body(Full::new(Bytes::from(body)))
                .expect("static request parts are valid");
            match tokio::time::timeout(REQUEST_TIMEOUT, req_tx.send_request(req)).await {
                Ok(Ok(resp)) if resp.status().is_success() => {}
                Ok(Ok(resp)) => {
                    tracing::warn!(to, status = %resp.status(), "peer refused messages");
                }
                _ => {
                    tracing::debug!(to, "peer connection lost");
                    break;
                }
            }
        }
    }
}
