//! The `raft` target: our cluster (`cluster node`), through the HTTP API of `cluster/API.md`.

use super::{MemberChange, NodeStatus, Target};
use crate::client::{no_response, BoxFut, Http, KvClient, Op, Outcome, PRECONDITION_FAILED};
use crate::net::NodeNet;
use anyhow::Result;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Our Raft key-value cluster.
pub struct Raft {
    bin: PathBuf,
    nodes: Vec<NodeNet>,
    bug: Option<String>,
    one_entry: bool,
}

impl Raft {
    /// A cluster of `nodes` run from `bin`, with an optional bug switch on every node.
    pub fn new(bin: PathBuf, nodes: Vec<NodeNet>, bug: Option<String>) -> Raft {
        Raft {
            bin,
            nodes,
            bug,
            one_entry: false,
        }
    }

    /// The same cluster, its nodes started with `--max-append-entries 1 --max-inflight 1`:
    /// a leader brings a follower up one entry per round trip (the figure-8 episodes).
    pub fn one_entry_appends(mut self) -> Raft {
        self.one_entry = true;
        self
    }

    fn base(&self, id: usize) -> String {
        let n = &self.nodes[id - 1];
        format!("http://{}:{}", n.ip, n.port)
    }
}

impl Target for Raft {
    fn name(&self) -> &'static str {
        "raft"
    }

    fn nodes(&self) -> &[NodeNet] {
        &self.nodes
    }

    fn command(
        &self,
        id: usize,
        data_dir: &Path,
        peers: &BTreeMap<usize, SocketAddr>,
    ) -> Result<Command> {
        let n = &self.nodes[id - 1];
        let mut cmd = Command::new(&self.bin);
        cmd.arg("node")
            .arg("--id")
            .arg(id.to_string())
            .arg("--listen")
            .arg(format!("{}:{}", n.ip, n.port))
            .arg("--data-dir")
            .arg(data_dir);
        for (p, addr) in peers {
            cmd.arg("--peer").arg(format!("{p}={addr}"));
        }
        if let Some(bug) = &self.bug {
            cmd.arg("--bug").arg(bug);
        }
        if self.one_entry {
            cmd.args(["--max-append-entries", "1", "--max-inflight", "1"]);
        }
        Ok(cmd)
    }

    fn client(&self, id: usize, http: Http) -> Box<dyn KvClient> {
        Box::new(RaftClient {
            base: self.base(id),
            http,
        })
    }

    fn status<'a>(&'a self, id: usize, http: &'a Http) -> BoxFut<'a, Option<NodeStatus>> {
        Box::pin(async move {
            let url = format!("{}/status", self.base(id));
            let (code, body) = http.send(Method::GET, &url, None).await.ok()?;
            if code != StatusCode::OK {
                return None;
            }
            Some(NodeStatus {
                is_leader: body["role"] == "leader",
                leader: body["leader"].as_u64().map(|l| l as usize),
                commit: body["commit"].as_u64().unwrap_or(0),
                applied: body["applied"].as_u64().unwrap_or(0),
                last_index: body["last_index"].as_u64(),
            })
        })
    }

    fn set_member<'a>(
        &'a self,
        id: usize,
        add: bool,
        via: &'a [usize],
        http: &'a Http,
    ) -> BoxFut<'a, Result<MemberChange>> {
        Box::pin(async move {
            let path = if add { "add" } else { "remove" };
            let body = json!({ "id": id });
            let mut last = String::from("no node answered");
            // Any node forwards admin requests to the leader.
            for &n in via {
                let url = format!("{}/admin/{path}", self.base(n));
                match http.send(Method::POST, &url, Some(&body)).await {
                    Ok((StatusCode::OK, _)) => return Ok(MemberChange::Done),
                    Ok((StatusCode::BAD_REQUEST, b)) => {
                        return Ok(MemberChange::Invalid(b["error"].to_string()))
                    }
                    Ok((code, b)) => last = format!("n{n}: {code} {}", b["error"]),
                    Err(e) => last = format!("n{n}: {e}"),
                }
            }
            Ok(MemberChange::NotNow(last))
        })
    }
}

/// A client of one node of our cluster.
struct RaftClient {
    base: String,
    http: Http,
}

impl KvClient for RaftClient {
    fn invoke<'a>(&'a self, key: &'a str, op: &'a Op) -> BoxFut<'a, Outcome> {
        Box::pin(async move {
            let kv = format!("{}/kv/{key}", self.base);
            let (method, url, body) = match op {
                Op::Read => (Method::GET, kv, None),
                Op::Write(v) => (Method::PUT, kv, Some(json!({ "value": v }))),
                Op::Cas(e, n) => (
                    Method::POST,
                    format!("{kv}/cas"),
                    Some(json!({"expected": e, "new": n})),
                ),
                Op::Append(v) => (
                    Method::POST,
                    format!("{kv}/append"),
                    Some(json!({ "value": v })),
                ),
            };
            match self.http.send(method, &url, body.as_ref()).await {
                Ok((status, body)) => classify(op, status, &body),
                Err(e) => no_response(op, &e),
            }
        })
    }
}

/// Maps a response of our API to an outcome (`cluster/API.md`, "Errors"): the body's
/// `definite` flag decides between `fail` and `info`; without one, a 4xx or 503 is
/// definite (rejected before proposal) and anything else is unknown. A read that did not
/// succeed is `fail` whatever the status: it changed nothing.
pub fn classify(op: &Op, status: StatusCode, body: &Value) -> Outcome {
    if status == StatusCode::OK {
        return match op {
            Op::Read | Op::Append(_) => Outcome::Ok(body.get("value").cloned().unwrap_or_default()),
            _ => Outcome::Ok(Value::Null),
        };
    }
    let msg = format!(
        "{} {}",
        status.as_u16(),
        body.get("error").and_then(Value::as_str).unwrap_or("")
    );
    if !op.mutates() {
        return Outcome::Fail(msg);
    }
    if status == StatusCode::CONFLICT && matches!(op, Op::Cas(..)) {
        return Outcome::Fail(PRECONDITION_FAILED.into());
    }
    let definite = match body.get("definite").and_then(Value::as_bool) {
        Some(d) => d,
        None => status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE,
    };
    if definite {
        Outcome::Fail(msg)
    } else {
        Outcome::Info(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w() -> Op {
        Op::Write("1".into())
    }

    #[test]
    fn success_carries_the_value_read() {
        let ok = classify(&Op::Read, StatusCode::OK, &json!({"value": "7"}));
        assert_eq!(ok, Outcome::Ok(json!("7")));
        let absent = classify(&Op::Read, StatusCode::OK, &json!({"value": null}));
        assert_eq!(absent, Outcome::Ok(Value::Null));
        let app = classify(
            &Op::Append("x,".into()),
            StatusCode::OK,
            &json!({"value": "a,x,"}),
        );
        assert_eq!(app, Outcome::Ok(json!("a,x,")));
        assert_eq!(
            classify(&w(), StatusCode::OK, &json!({})),
            Outcome::Ok(Value::Null)
        );
    }

    #[test]
    fn definite_flag_decides_fail_or_info() {
        let cas = Op::Cas("1".into(), "2".into());
        let pre = json!({"error": "precondition failed", "definite": true, "value": "3"});
        assert_eq!(
            classify(&cas, StatusCode::CONFLICT, &pre),
            Outcome::Fail(PRECONDITION_FAILED.into())
        );
        let unknown = json!({"error": "timeout", "definite": false, "leader": null});
        assert!(matches!(
            classify(&w(), StatusCode::GATEWAY_TIMEOUT, &unknown),
            Outcome::Info(_)
        ));
        let no_leader = json!({"error": "no leader", "definite": true, "leader": null});
        assert!(matches!(
            classify(&w(), StatusCode::SERVICE_UNAVAILABLE, &no_leader),
            Outcome::Fail(_)
        ));
    }

    #[test]
    fn without_a_flag_only_rejections_are_definite() {
        assert!(matches!(
            classify(&w(), StatusCode::BAD_REQUEST, &Value::Null),
            Outcome::Fail(_)
        ));
        assert!(matches!(
            classify(&w(), StatusCode::INTERNAL_SERVER_ERROR, &Value::Null),
            Outcome::Info(_)
        ));
        assert!(matches!(
            classify(&w(), StatusCode::BAD_GATEWAY, &Value::Null),
            Outcome::Info(_)
        ));
    }

    #[test]
    fn a_failed_read_is_always_fail() {
        let unknown = json!({"error": "timeout", "definite": false});
        assert!(matches!(
            classify(&Op::Read, StatusCode::GATEWAY_TIMEOUT, &unknown),
            Outcome::Fail(_)
        ));
    }
}
