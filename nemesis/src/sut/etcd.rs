//! The `etcd` target: etcd 3.4 from PATH, through its JSON gateway (REFERENCE.md §5).
//!
//! cas is a txn with a VALUE compare; append is a read and a txn on the key's
//! mod_revision, retried while other writers win the race.

use super::{NodeStatus, Target};
use crate::client::{no_response, BoxFut, Http, KvClient, Op, Outcome, PRECONDITION_FAILED};
use crate::net::NodeNet;
use anyhow::Result;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// How many times an append retries its read-then-txn when another writer got in between.
const APPEND_ATTEMPTS: usize = 20;

/// etcd nodes: client port `port`, peer port `port + 1`, on each node's own address.
pub struct Etcd {
    nodes: Vec<NodeNet>,
    token: String,
    /// member id (as etcd prints it) -> node id, learned from status answers.
    members: Arc<Mutex<BTreeMap<String, usize>>>,
    /// Reads are ranges with `"serializable": true` (`--etcd-reads serializable`).
    serializable_reads: bool,
}

impl Etcd {
    /// etcd nodes at `nodes`; `token` keeps clusters of different runs apart.
    pub fn new(nodes: Vec<NodeNet>, token: String) -> Etcd {
        Etcd {
            nodes,
            token,
            members: Arc::default(),
            serializable_reads: false,
        }
    }

    /// Reads become serializable ranges: served from the local node's state without a
    /// quorum round (etcd's documented trade: faster, possibly stale). The append's own
    /// range stays linearizable; its txn compares the revision anyway.
    pub fn with_serializable_reads(mut self) -> Etcd {
        self.serializable_reads = true;
        self
    }

    fn base(&self, id: usize) -> String {
        let n = &self.nodes[id - 1];
        format!("http://{}:{}", n.ip, n.port)
    }

    fn peer_url(n: &NodeNet) -> String {
        format!("http://{}:{}", n.ip, n.port + 1)
    }
}

impl Target for Etcd {
    fn name(&self) -> &'static str {
        "etcd"
    }

    fn nodes(&self) -> &[NodeNet] {
        &self.nodes
    }

    /// The peer map is not used: etcd derives member ids from `--initial-cluster`, which
    /// must be the same on every node, so etcd cannot be pointed at per-pair relays.
    fn command(
        &self,
        id: usize,
        data_dir: &Path,
        _peers: &BTreeMap<usize, SocketAddr>,
    ) -> Result<Command> {
        let n = &self.nodes[id - 1];
        let initial: Vec<String> = self
            .nodes
            .iter()
            .map(|m| format!("n{}={}", m.id, Self::peer_url(m)))
            .collect();
        let client = self.base(id);
        let mut cmd = Command::new("etcd");
        cmd.arg("--name")
            .arg(format!("n{id}"))
            .arg("--data-dir")
            .arg(data_dir.join("etcd"))
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(Self::peer_url(n))
            .arg("--initial-advertise-peer-urls")
            .arg(Self::peer_url(n))
            .arg("--initial-cluster")
            .arg(initial.join(","))
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg(&self.token)
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr");
        Ok(cmd)
    }

    fn client(&self, id: usize, http: Http) -> Box<dyn KvClient> {
        Box::new(EtcdClient {
            base: self.base(id),
            http,
            serializable_reads: self.serializable_reads,
        })
    }

    fn status<'a>(&'a self, id: usize, http: &'a Http) -> BoxFut<'a, Option<NodeStatus>> {
        Box::pin(async move {
            let url = format!("{}/v3/maintenance/status", self.base(id));
            let (code, body) = http.send(Method::POST, &url, Some(&json!({}))).await.ok()?;
            if code != StatusCode::OK {
                return None;
            }
            let me = body["header"]["member_id"].as_str()?.to_string();
            let leader = body["leader"].as_str().unwrap_or("0").to_string();
            let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
            members.insert(me.clone(), id);
            Some(NodeStatus {
                is_leader: me == leader,
                leader: members.get(&leader).copied(),
                commit: int(&body["raftIndex"]),
                applied: int(&body["raftAppliedIndex"]),
                last_index: None,
            })
        })
    }
}

/// etcd's gateway prints 64-bit integers as strings.
fn int(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        v => v.as_u64().unwrap_or(0),
    }
}

/// A client of one etcd node.
struct EtcdClient {
    base: String,
    http: Http,
    serializable_reads: bool,
}

/// What a range request returned: the value and its mod_revision, or absent.
type Current = Option<(String, u64)>;

impl EtcdClient {
    async fn post(&self, path: &str, body: Value) -> Result<(StatusCode, Value), Outcome> {
        let url = format!("{}{path}", self.base);
        self.http
            .send(Method::POST, &url, Some(&body))
            .await
            .map_err(|e| no_response(&Op::Write(String::new()), &e))
    }

    async fn range(&self, key: &str, serializable: bool) -> Result<Current, Outcome> {
        let mut req = json!({ "key": b64(key) });
        if serializable {
            req["serializable"] = json!(true);
        }
        let (status, body) = self
            .post("/v3/kv/range", req)
            .await
            .map_err(|o| Outcome::Fail(reason(&o)))?;
        if status != StatusCode::OK {
            return Err(Outcome::Fail(error_text(status, &body)));
        }
        parse_range(&body).map_err(Outcome::Fail)
    }

    async fn txn(&self, body: Value) -> Result<bool, Outcome> {
        let (status, resp) = self.post("/v3/kv/txn", body).await?;
        if status != StatusCode::OK {
            return Err(write_error(status, &resp));
        }
        // The gateway omits `succeeded` when it is false.
        Ok(resp["succeeded"].as_bool().unwrap_or(false))
    }

    async fn append(&self, key: &str, elem: &str) -> Outcome {
        for _ in 0..APPEND_ATTEMPTS {
            let current = match self.range(key, false).await {
                Ok(c) => c,
                Err(o) => return o,
            };
            let compare = match &current {
                Some((_, rev)) => json!({"key": b64(key), "target": "MOD",
                                         "result": "EQUAL", "mod_revision": rev.to_string()}),
                None => json!({"key": b64(key), "target": "CREATE",
                               "result": "EQUAL", "create_revision": "0"}),
            };
            let whole = format!("{}{elem}", current.map(|c| c.0).unwrap_or_default());
            let body = json!({
                "compare": [compare],
                "success": [{"request_put": {"key": b64(key), "value": b64(&whole)}}],
            });
            match self.txn(body).await {
                Ok(true) => return Outcome::Ok(Value::String(whole)),
                Ok(false) => continue,
                Err(o) => return o,
            }
        }
        Outcome::Fail(format!(
            "append lost the race {APPEND_ATTEMPTS} times in a row"
        ))
    }
}

impl KvClient for EtcdClient {
    fn invoke<'a>(&'a self, key: &'a str, op: &'a Op) -> BoxFut<'a, Outcome> {
        Box::pin(async move {
            match op {
                Op::Read => match self.range(key, self.serializable_reads).await {
                    Ok(c) => Outcome::Ok(c.map(|c| Value::String(c.0)).unwrap_or(Value::Null)),
                    Err(o) => o,
                },
                Op::Write(v) => {
                    let body = json!({"key": b64(key), "value": b64(v)});
                    match self.post("/v3/kv/put", body).await {
                        Ok((StatusCode::OK, _)) => Outcome::Ok(Value::Null),
                        Ok((status, resp)) => write_error(status, &resp),
                        Err(o) => o,
                    }
                }
                Op::Cas(e, n) => {
                    let body = json!({
                        "compare": [{"key": b64(key), "target": "VALUE",
                                     "result": "EQUAL", "value": b64(e)}],
                        "success": [{"request_put": {"key": b64(key), "value": b64(n)}}],
                    });
                    match self.txn(body).await {
                        Ok(true) => Outcome::Ok(Value::Null),
                        Ok(false) => Outcome::Fail(PRECONDITION_FAILED.into()),
                        Err(o) => o,
                    }
                }
                Op::Append(elem) => self.append(key, elem).await,
            }
        })
    }
}

fn reason(o: &Outcome) -> String {
    match o {
        Outcome::Fail(s) | Outcome::Info(s) => s.clone(),
        Outcome::Ok(_) => String::new(),
    }
}

fn error_text(status: StatusCode, body: &Value) -> String {
    let msg = body["error"]
        .as_str()
        .or(body["message"].as_str())
        .unwrap_or("");
    format!("{} {msg}", status.as_u16())
}

/// An error answer to a put or txn. etcd's gateway does not say whether a failed write
/// was proposed (a 500 "context deadline exceeded" may still commit), so only a 4xx, a
/// malformed request that never reached raft, is definite; everything else is unknown.
pub fn write_error(status: StatusCode, body: &Value) -> Outcome {
    if status.is_client_error() {
        Outcome::Fail(error_text(status, body))
    } else {
        Outcome::Info(error_text(status, body))
    }
}

/// Parses a range response: the first kv's value and mod_revision, or absent.
pub fn parse_range(body: &Value) -> Result<Current, String> {
    let Some(kv) = body["kvs"].as_array().and_then(|k| k.first()) else {
        return Ok(None);
    };
    let value = unb64(kv["value"].as_str().unwrap_or(""))
        .ok_or_else(|| format!("etcd returned a value that is not base64: {kv}"))?;
    Ok(Some((value, int(&kv["mod_revision"]))))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (etcd's gateway encodes bytes this way). Twenty lines
/// here instead of a dependency.
pub fn b64(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 into a UTF-8 string; `None` when it is not valid.
pub fn unb64(s: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_matches_known_vectors() {
        assert_eq!(b64(""), "");
        assert_eq!(b64("f"), "Zg==");
        assert_eq!(b64("fo"), "Zm8=");
        assert_eq!(b64("foo"), "Zm9v");
        assert_eq!(b64("foobar"), "Zm9vYmFy");
        for s in ["", "a", "ab", "abc", "k17", "1,2,3,", "héllo"] {
            assert_eq!(unb64(&b64(s)).as_deref(), Some(s));
        }
        assert_eq!(unb64("!!"), None);
    }

    #[test]
    fn range_answers_parse_with_string_integers() {
        let body = json!({"kvs": [{"key": b64("k"), "value": b64("1,2,"), "mod_revision": "42"}]});
        assert_eq!(parse_range(&body), Ok(Some(("1,2,".into(), 42))));
        assert_eq!(parse_range(&json!({"header": {}})), Ok(None));
    }

    #[test]
    fn only_client_errors_are_definite_for_writes() {
        let deadline = json!({"error": "context deadline exceeded", "code": 2});
        assert!(matches!(
            write_error(StatusCode::INTERNAL_SERVER_ERROR, &deadline),
            Outcome::Info(_)
        ));
        assert!(matches!(
            write_error(StatusCode::SERVICE_UNAVAILABLE, &json!({})),
            Outcome::Info(_)
        ));
        assert!(matches!(
            write_error(StatusCode::BAD_REQUEST, &json!({})),
            Outcome::Fail(_)
        ));
    }
}
