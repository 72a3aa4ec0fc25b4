//! Clients: a keep-alive HTTP client with a timeout on every request, the operations a
//! workload invokes, and how a response becomes `ok`, `fail` or `info`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A boxed future, so that targets can be used as trait objects.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One operation on one key, as a workload invokes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Read the whole value.
    Read,
    /// Overwrite the value.
    Write(String),
    /// Compare-and-set: `(expected, new)`.
    Cas(String, String),
    /// Append a string to the value.
    Append(String),
}

impl Op {
    /// The history's `f`.
    pub fn f(&self) -> histories::F {
        match self {
            Op::Read => histories::F::Read,
            Op::Write(_) => histories::F::Write,
            Op::Cas(..) => histories::F::Cas,
            Op::Append(_) => histories::F::Append,
        }
    }

    /// The invocation's value in the history (`null` for a read, `[expected, new]` for cas).
    pub fn value(&self) -> Value {
        match self {
            Op::Read => Value::Null,
            Op::Write(v) | Op::Append(v) => Value::String(v.clone()),
            Op::Cas(e, n) => serde_json::json!([e, n]),
        }
    }

    /// Whether the operation can change state (reads cannot, so a failed read is `fail`).
    pub fn mutates(&self) -> bool {
        !matches!(self, Op::Read)
    }
}

/// The `fail` reason of a cas whose comparison failed, the same for every target: the
/// statistics count it as an answer (the cluster was available), not as an outage.
pub const PRECONDITION_FAILED: &str = "precondition failed";

/// What a client learned about one operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It happened. For a read: the value read (`null` if absent); for an append: the
    /// whole value after it, when the server says; otherwise `null`.
    Ok(Value),
    /// It definitely did not happen (the reason is kept for the statistics).
    Fail(String),
    /// It may or may not have happened.
    Info(String),
}

/// A client bound to one node of a target. One per logical process, so a process's
/// keep-alive connection is its own.
pub trait KvClient: Send + Sync {
    /// Invokes `op` on `key` and classifies the result.
    fn invoke<'a>(&'a self, key: &'a str, op: &'a Op) -> BoxFut<'a, Outcome>;
}

/// Why an HTTP exchange produced no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The connection could not be opened: the request was never sent.
    #[error("connect to {0} failed: {1}")]
    Connect(String, String),
    /// No complete response within the timeout: the request may have been processed.
    #[error("no response from {0} within {1:?}")]
    Timeout(String, Duration),
    /// The exchange broke after the request may have been sent (reset, bad body).
    #[error("request to {0} broke: {1}")]
    Broken(String, String),
}

/// A keep-alive HTTP/1.1 client with a deadline on every request.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Http {
    /// A client whose requests each time out after `timeout`.
    pub fn new(timeout: Duration) -> Http {
        let mut connector = HttpConnector::new();
        // A connect that times out never sent the request, so it is a definite failure;
        // giving it its own shorter deadline lets us tell it apart from a lost response.
        connector.set_connect_timeout(Some(timeout / 2));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .build(connector);
        Http { client, timeout }
    }

    /// Sends one request with an optional JSON body; returns the status and the JSON body
    /// (`null` when the body is empty or not JSON).
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), HttpError> {
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(url)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| HttpError::Connect(url.to_string(), e.to_string()))?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                if e.is_connect() {
                    HttpError::Connect(url.to_string(), e.to_string())
                } else {
                    HttpError::Broken(url.to_string(), e.to_string())
                }
            })?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| HttpError::Broken(url.to_string(), e.to_string()))?
                .to_bytes();
            let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
            Ok((status, json))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(HttpError::Timeout(url.to_string(), self.timeout)),
        }
    }
}

/// The outcome of an exchange that produced no response: a read has no effect, so it
/// failed; a write that was never sent failed; any other write is unknown.
pub fn no_response(op: &Op, err: &HttpError) -> Outcome {
    match err {
        HttpError::Connect(..) => Outcome::Fail(err.to_string()),
        _ if !op.mutates() => Outcome::Fail(err.to_string()),
        _ => Outcome::Info(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_response_is_info_for_writes_and_fail_for_reads() {
        let t = HttpError::Timeout("u".into(), Duration::from_secs(1));
        let b = HttpError::Broken("u".into(), "reset".into());
        let c = HttpError::Connect("u".into(), "refused".into());
        let w = Op::Write("1".into());
        assert!(matches!(no_response(&w, &t), Outcome::Info(_)));
        assert!(matches!(no_response(&w, &b), Outcome::Info(_)));
        assert!(matches!(no_response(&w, &c), Outcome::Fail(_)));
        assert!(matches!(no_response(&Op::Read, &t), Outcome::Fail(_)));
        assert!(matches!(
            no_response(&Op::Append("x".into()), &t),
            Outcome::Info(_)
        ));
    }

    #[test]
    fn history_values_follow_jepsen() {
        assert_eq!(Op::Read.value(), Value::Null);
        assert_eq!(
            Op::Cas("1".into(), "2".into()).value(),
            serde_json::json!(["1", "2"])
        );
    }
}
