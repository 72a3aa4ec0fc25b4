//! The HTTP server: routes client, status, admin and peer requests, reads bodies under the
//! 1 MiB limit, turns every bad input into a 4xx JSON error, and forwards client requests from
//! a follower to the leader.
//!
//! Concurrency: one tokio task per TCP connection (hyper's HTTP/1 server with keep-alive).
//! A handler never touches Raft state: it parses, sends an [`Input`] over the event loop's
//! channel with a oneshot for the answer, and awaits it. The only shared state is [`Shared`]:
//! immutable fields plus the peer address table behind a `std::sync::RwLock` that is only
//! held for a lookup, never across an `.await`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::api::{self, Answer, ApiError, ClientOp, ErrorKind, Input, Refusal, BODY_LIMIT};
use crate::parse_errors::JsonParseErrors;
use crate::transport::Transport;
use crate::wire::{self, RAFT_FROM};

/// Header naming the node that forwarded a client request (it is never forwarded twice).
pub const FORWARDED_FROM: &str = "x-forwarded-from";

/// State shared by every connection task.
pub struct Shared {
    /// This node's id.
    pub id: u64,
    /// Addresses of the other nodes by id (peer addresses: possibly relays).
    pub peers: RwLock<BTreeMap<u64, String>>,
    /// The event loop's input.
    pub tx: mpsc::Sender<Input>,
    /// The peer links, which also carry forwarded client requests.
    pub transport: Arc<Transport>,
    /// Keep-alive client for forwarding, its sockets bound to this node's IP.
    pub forward: Client<HttpConnector, Full<Bytes>>,
    /// How long a client request may take before it is answered 504.
    pub deadline: Duration,
}

impl Shared {
    /// Builds the shared state; forwarded requests leave from `own_ip`.
    pub fn new(
        id: u64,
        own_ip: IpAddr,
        peers: BTreeMap<u64, String>,
        tx: mpsc::Sender<Input>,
        transport: Arc<Transport>,
        deadline: Duration,
    ) -> Shared {
        let mut conn = HttpConnector::new();
        conn.set_local_address(Some(own_ip));
        conn.set_nodelay(true);
        conn.set_connect_timeout(Some(Duration::from_secs(1)));
        let forward = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(conn);
        Shared {
            id,
            peers: RwLock::new(peers),
            tx,
            transport,
            forward,
            deadline,
        }
    }

    /// The address of peer `id`, if known.
    pub fn peer_addr(&self, id: u64) -> Option<String> {
        self.peers.read().unwrap().get(&id).cloned()
    }
}

/// Accepts connections forever, one task each. A client gets `header_timeout` to send each
/// request's head, idle time before it included (hyper's timer starts as soon as it waits for
/// a head), so the timeout must exceed the idle time of clients' connection pools (30 s for
/// the nemesis's and for this node's own forwarding client): then a pool always closes an
/// idle connection before the node does, and never sends on one the node is closing.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, header_timeout: Duration) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(shared.clone(), req));
            let _ = http1::Builder::new()
                .keep_alive(true)
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(JsonParseErrors::new(stream)), svc)
                .await;
        });
    }
}

type Resp = Response<Full<Bytes>>;

fn json_response(status: StatusCode, body: &Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The HTTP status of each kind of error: the one place the node turns its own terms into
/// status codes (`cluster/API.md` lists them for clients).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Unavailable | ErrorKind::NotLeader => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Unknown => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
    }
}

fn error_response(e: &ApiError) -> Resp {
    json_response(status_of(e.kind), &e.body())
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    Ok(match route(&shared, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    })
}

fn method_not_allowed(m: &Method, path: &str, allowed: &str) -> ApiError {
    ApiError::new(
        ErrorKind::MethodNotAllowed,
        format!("method {m} not allowed on {path} (use {allowed})"),
    )
}

async fn route(shared: &Arc<Shared>, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let path = req.uri().path().to_string();
    let m = req.method().clone();
    if path == "/raft/stream" {
        if m != Method::POST {
            return Err(method_not_allowed(&m, &path, "POST"));
        }
        return peer_stream(shared, req).await;
    }
    if path == "/status" {
        if m != Method::GET {
            return Err(method_not_allowed(&m, &path, "GET"));
        }
        let (reply, rx) = oneshot::channel();
        send(shared, Input::Status { reply }).await?;
        let st = rx.await.map_err(|_| stopping())?;
        return Ok(json_response(StatusCode::OK, &json!(st)));
    }
    if let Some(which) = path.strip_prefix("/admin/") {
        if !matches!(which, "add" | "remove" | "joint") {
            return Err(not_found(&path));
        }
        if m != Method::POST {
            return Err(method_not_allowed(&m, &path, "POST"));
        }
        let forwarded = req.headers().contains_key(FORWARDED_FROM);
        let body = read_body(req).await?;
        let op = api::parse_admin(which, &body)?;
        let (reply, rx) = oneshot::channel();
        send(shared, Input::Admin { op, reply }).await?;
        return answer(shared, rx, &m, &path, body, forwarded, true).await;
    }
    let Some(rest) = path.strip_prefix("/kv/") else {
        return Err(not_found(&path));
    };
    let segs: Vec<&str> = rest.split('/').collect();
    let (key, verb) = match segs.as_slice() {
        [k] => (*k, None),
        [k, v @ ("cas" | "append")] => (*k, Some(*v)),
        _ => return Err(not_found(&path)),
    };
    match verb {
        None if m != Method::GET && m != Method::PUT => {
            return Err(method_not_allowed(&m, &path, "GET or PUT"))
        }
        Some(_) if m != Method::POST => return Err(method_not_allowed(&m, &path, "POST")),
        _ => {}
    }
    let key = api::decode_key(key)?;
    let forwarded = req.headers().contains_key(FORWARDED_FROM);
    let is_read = m == Method::GET;
    let body = if is_read {
        Bytes::new()
    } else {
        read_body(req).await?
    };
    let op = match (verb, is_read) {
        (None, true) => ClientOp::Read { key },
        (None, false) => api::parse_put(key, &body)?,
        (Some("cas"), _) => api::parse_cas(key, &body)?,
        _ => api::parse_append(key, &body)?,
    };
    let (reply, rx) = oneshot::channel();
    send(shared, Input::Client { op, reply }).await?;
    answer(shared, rx, &m, &path, body, forwarded, !is_read).await
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(ErrorKind::NotFound, format!("unknown path {path:?}"))
}

fn stopping() -> ApiError {
    ApiError::unavailable("node stopping")
}

async fn send(shared: &Shared, input: Input) -> Result<(), ApiError> {
    shared.tx.send(input).await.map_err(|_| stopping())
}

/// Reads a body under [`BODY_LIMIT`] (413 above it).
async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let too_big = || {
        ApiError::new(
            ErrorKind::TooLarge,
            format!("request body over the limit of {BODY_LIMIT} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(too_big());
    }
    match Limited::new(req.into_body(), BODY_LIMIT).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_big()),
        Err(e) => Err(ApiError::bad_request(format!(
            "could not read the body: {e}"
        ))),
    }
}

/// The sender of peer messages, from `x-raft-from`: 400 without it, 403 for an unknown id.
fn peer_id(shared: &Shared, req: &Request<Incoming>) -> Result<u64, ApiError> {
    let from = req
        .headers()
        .get(RAFT_FROM)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| ApiError::bad_request(format!("missing or bad {RAFT_FROM} header")))?;
    if from == shared.id || shared.peer_addr(from).is_none() {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            format!("messages from unknown node id {from} refused"),
        ));
    }
    Ok(from)
}

fn no_content() -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// `POST /raft/stream`: a known peer's long-lived stream of frames (see `wire.rs`), each
/// handled as soon as it is whole: Raft messages go to the event loop, forwarded client
/// requests too (their answers go back on this node's own stream to the peer), answers to
/// this node's forwarded requests to their waiting clients. Answered only when the stream
/// ends: 204 if it ended between frames, 400 inside one or on a malformed frame, 413 for a
/// frame over the limit. A refusal carries [`wire::FRAMES_DONE`], the number of frames
/// handled before it, so the sender knows which forwarded requests were never seen.
async fn peer_stream(shared: &Arc<Shared>, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let mut done = 0u64;
    match read_stream(shared, req, &mut done).await {
        Ok(()) => Ok(no_content()),
        Err(e) => {
            let mut r = error_response(&e);
            r.headers_mut()
                .insert(wire::FRAMES_DONE, HeaderValue::from(done));
            Ok(r)
        }
    }
}

/// Reads a peer stream to its end, counting in `done` the frames handed on. A frame counts
/// as soon as it is handed on, even if handing it failed half way (the node stopping): what
/// it held may have been seen, so its forwarded requests stay of unknown outcome.
async fn read_stream(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    done: &mut u64,
) -> Result<(), ApiError> {
    let from = peer_id(shared, &req)?;
    let mut body = req.into_body();
    let mut buf = BytesMut::new();
    let mut assembler = wire::Assembler::default();
    let refused = |e: wire::WireError| {
        let kind = match e {
            wire::WireError::TooLarge(_) | wire::WireError::AssembledTooLarge(_) => {
                ErrorKind::TooLarge
            }
            wire::WireError::Malformed { .. } => ErrorKind::BadRequest,
        };
        ApiError::new(kind, format!("peer stream from {from}: {e}"))
    };
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request(format!("peer stream from {from} broke: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing for us
        };
        buf.extend_from_slice(&data);
        while let Some(len) = wire::frame_len(&buf).map_err(refused)? {
            if buf.len() < 4 + len {
                break;
            }
            buf.advance(4);
            let whole = assembler
                .push(buf.split_to(len).freeze())
                .map_err(refused)?;
            *done += 1;
            if let Some(frame) = whole {
                on_frame(shared, from, frame).await?;
            }
        }
    }
    if !buf.is_empty() || assembler.is_partial() {
        return Err(ApiError::bad_request(format!(
            "peer stream from {from} ended inside a frame ({} bytes left)",
            buf.len()
        )));
    }
    Ok(())
}

async fn on_frame(shared: &Arc<Shared>, from: u64, frame: wire::Frame) -> Result<(), ApiError> {
    for (id, res) in frame.answers {
        shared.transport.resolve(id, res);
    }
    if let Some(body) = frame.raft {
        send(shared, Input::Peer { from, body }).await?;
    }
    for (id, op) in frame.forwards {
        let (reply, rx) = oneshot::channel();
        send(shared, Input::Client { op, reply }).await?;
        let transport = shared.transport.clone();
        tokio::spawn(async move {
            let res = rx.await.unwrap_or_else(|_| {
                Err(Refusal::Error(ApiError::unknown(
                    "the leader stopped while the request was in flight",
                )))
            });
            transport.answer(from, id, res);
        });
    }
    Ok(())
}

/// Turns the event loop's answer into a response, forwarding to the leader if need be (never
/// twice): a client operation (handed back by the loop) over the peer stream, an admin
/// request over HTTP.
async fn answer(
    shared: &Arc<Shared>,
    rx: oneshot::Receiver<Result<Answer, Refusal>>,
    m: &Method,
    path: &str,
    body: Bytes,
    forwarded: bool,
    is_write: bool,
) -> Result<Resp, ApiError> {
    let res = rx.await.map_err(|_| {
        if is_write {
            ApiError::unknown("node stopped while the request was in flight")
        } else {
            stopping()
        }
    })?;
    match res {
        Ok(a) => Ok(success(a)),
        Err(Refusal::Error(e)) => Err(e),
        Err(Refusal::NotLeader { leader, op }) => {
            let addr = leader.and_then(|l| shared.peer_addr(l));
            match (leader, addr) {
                (Some(leader), Some(addr)) if !forwarded => match op {
                    Some(op) => forward_op(shared, leader, op, &addr).await,
                    None => forward(shared, m, path, body, &addr, is_write).await,
                },
                (_, addr) => Err(not_leader(addr)),
            }
        }
    }
}

fn not_leader(addr: Option<String>) -> ApiError {
    ApiError {
        kind: ErrorKind::NotLeader,
        message: if addr.is_some() {
            "not the leader".into()
        } else {
            "no leader known".into()
        },
        leader: addr,
    }
}

/// Forwards a client operation to the leader over the peer stream and waits for its answer
/// (see `wire.rs`). Not queued at all: definite; no answer by the deadline: unknown.
async fn forward_op(
    shared: &Shared,
    leader: u64,
    op: ClientOp,
    addr: &str,
) -> Result<Resp, ApiError> {
    let with_leader = |mut e: ApiError| {
        e.leader = Some(addr.to_string());
        e
    };
    let Some((id, rx)) = shared.transport.forward(leader, op) else {
        return Err(with_leader(ApiError::unavailable(
            "leader unreachable (its queue is full)",
        )));
    };
    match tokio::time::timeout(shared.deadline, rx).await {
        Ok(Ok(Ok(a))) => Ok(success(a)),
        Ok(Ok(Err(Refusal::Error(e)))) => Err(with_leader(e)),
        // The leader we forwarded to has lost leadership; never forward twice.
        Ok(Ok(Err(Refusal::NotLeader { leader, .. }))) => {
            Err(not_leader(leader.and_then(|l| shared.peer_addr(l))))
        }
        Ok(Err(_)) => Err(with_leader(ApiError::unknown(
            "node stopped while a forwarded request was in flight",
        ))),
        Err(_) => {
            shared.transport.cancel_forward(id);
            Err(with_leader(ApiError::unknown(
                "deadline passed while forwarding to the leader",
            )))
        }
    }
}

fn success(a: Answer) -> Resp {
    match a {
        Answer::Value(v) => json_response(StatusCode::OK, &json!({ "value": v })),
        Answer::Done => json_response(StatusCode::OK, &json!({})),
        Answer::Appended(v) => json_response(StatusCode::OK, &json!({ "value": v })),
        Answer::Index(i) => json_response(StatusCode::OK, &json!({ "index": i })),
        Answer::CasFailed(v) => json_response(
            StatusCode::CONFLICT,
            &json!({"error": "precondition failed", "definite": true, "value": v, "leader": null}),
        ),
    }
}

/// Forwards a client request to the leader and relays its answer. A failure to connect is
/// definite (the leader never saw the request); any later failure is unknown for a write.
async fn forward(
    shared: &Shared,
    m: &Method,
    path: &str,
    body: Bytes,
    addr: &str,
    is_write: bool,
) -> Result<Resp, ApiError> {
    let with_leader = |mut e: ApiError| {
        e.leader = Some(addr.to_string());
        e
    };
    let req = Request::builder()
        .method(m.clone())
        .uri(format!("http://{addr}{path}"))
        .header(CONTENT_TYPE, "application/json")
        .header(FORWARDED_FROM, shared.id.to_string())
        .body(Full::new(body))
        .map_err(|e| with_leader(ApiError::bad_request(format!("cannot forward: {e}"))))?;
    let sent = tokio::time::timeout(shared.deadline, shared.forward.request(req)).await;
    let resp = match sent {
        Ok(Ok(r)) => r,
        Ok(Err(e)) if e.is_connect() => {
            return Err(with_leader(ApiError::unavailable(format!(
                "leader unreachable: {e}"
            ))))
        }
        Ok(Err(e)) if is_write => {
            return Err(with_leader(ApiError::unknown(format!(
                "forwarding failed: {e}"
            ))))
        }
        Ok(Err(e)) => {
            return Err(with_leader(ApiError::unavailable(format!(
                "forwarding a read failed: {e}"
            ))))
        }
        Err(_) => {
            return Err(with_leader(ApiError::unknown(
                "deadline passed while forwarding to the leader",
            )))
        }
    };
    let status = resp.status();
    let body = match tokio::time::timeout(shared.deadline, resp.into_body().collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        _ => {
            return Err(with_leader(ApiError::unknown(
                "the leader's answer was cut short",
            )))
        }
    };
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statuses `cluster/API.md` promises, kind by kind (the end-to-end tests pin most of
    /// them again through real requests).
    #[test]
    fn each_kind_has_the_documented_status() {
        let want = [
            (ErrorKind::Unavailable, 503),
            (ErrorKind::NotLeader, 503),
            (ErrorKind::Unknown, 504),
            (ErrorKind::BadRequest, 400),
            (ErrorKind::Forbidden, 403),
            (ErrorKind::NotFound, 404),
            (ErrorKind::MethodNotAllowed, 405),
            (ErrorKind::TooLarge, 413),
        ];
        assert_eq!(want.len(), ErrorKind::ALL.len());
        for (kind, status) in want {
            assert_eq!(status_of(kind).as_u16(), status, "{kind:?}");
        }
    }

    #[test]
    fn an_error_response_carries_the_status_and_the_json_body() {
        let mut e = ApiError::unavailable("leadership lost");
        e.leader = Some("127.0.0.2:7000".into());
        let r = error_response(&e);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(
            e.body(),
            json!({"error": "leadership lost", "definite": true, "leader": "127.0.0.2:7000"})
        );
    }
}
