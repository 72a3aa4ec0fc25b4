//! Bad input never crashes a node: random methods, paths, headers and bodies against a
//! running single-node cluster all get well-formed HTTP answers, and the node keeps serving.

mod common;

use std::time::Duration;

use common::{parse_response, raw, request, Cluster};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

/// A single-node cluster on its own 127.0.`block`.0 block (dropped, and killed, at the end
/// of the test that made it).
fn cluster(tag: &str, block: u8) -> (String, Cluster) {
    let c = Cluster::start(tag, block, 1, &[]);
    c.wait_leader(Duration::from_secs(10));
    (c.nodes[0].addr.clone(), c)
}

fn check_alive(addr: &str) {
    let (st, _) = request(addr, "GET", "/status", None).expect("node stopped answering");
    assert_eq!(st, 200);
}

/// Every error answer is JSON with an error message and a definite flag.
fn check_error_body(status: u16, body: &[u8]) {
    if status >= 400 {
        let v: Value = serde_json::from_slice(body)
            .unwrap_or_else(|e| panic!("{status} with a non-JSON body {body:?}: {e}"));
        assert!(v["error"].is_string(), "{v}");
        assert!(v["definite"].is_boolean(), "{v}");
    }
}

#[test]
fn oversized_bodies_get_413() {
    let (addr, _c) = cluster("big", 14);
    let addr = &addr;
    let big = "x".repeat(2 << 20);
    let body = json!({ "value": big }).to_string();
    let req = format!(
        "PUT /kv/big HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let resp = raw(addr, req.as_bytes()).unwrap();
    let (st, b) = parse_response(&resp).expect("well-formed answer");
    assert_eq!(st, 413);
    check_error_body(st, &b);
    // Chunked, without a declared length: the limit still holds.
    let mut chunked = String::from("PUT /kv/big HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n");
    for _ in 0..20 {
        chunked.push_str(&format!("{:x}\r\n{}\r\n", 100_000, "y".repeat(100_000)));
    }
    chunked.push_str("0\r\n\r\n");
    let resp = raw(addr, chunked.as_bytes()).unwrap();
    assert_eq!(parse_response(&resp).expect("well-formed answer").0, 413);
    check_alive(addr);
}

#[test]
fn documented_errors_have_their_statuses() {
    let (addr, _c) = cluster("errors", 15);
    let addr = &addr;
    let cases: Vec<(&str, &str, Option<Value>, u16)> = vec![
        ("GET", "/nowhere", None, 404),
        ("GET", "/kv/a/b/c", None, 404),
        ("DELETE", "/kv/a", None, 405),
        ("GET", "/kv/a/cas", None, 405),
        ("POST", "/status", None, 405),
        ("PUT", "/kv/a", Some(json!({"value": 3})), 400),
        ("PUT", "/kv/a", Some(json!({"valeu": "x"})), 400),
        ("PUT", "/kv/a", Some(json!(["x"])), 400),
        ("POST", "/kv/a/cas", Some(json!({"new": "x"})), 400),
        (
            "POST",
            "/kv/a/cas",
            Some(json!({"expected": 1, "new": "x"})),
            400,
        ),
        ("GET", "/kv/", None, 400),
        ("GET", "/kv/%zz", None, 400),
        ("POST", "/admin/add", Some(json!({"id": "x"})), 400),
        ("POST", "/raft/stream", None, 400),
        ("POST", "/raft", None, 404),
    ];
    for (m, p, b, want) in cases {
        let (st, body) =
            request(addr, m, p, b.as_ref()).unwrap_or_else(|| panic!("{m} {p}: no answer"));
        assert_eq!(st, want, "{m} {p} {b:?}: {body}");
        assert_eq!(body["definite"], json!(true), "{m} {p}");
    }
    // Messages from unknown node ids are refused.
    let req = "POST /raft/stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-raft-from: 9\r\nContent-Length: 0\r\n\r\n";
    let (st, _) = parse_response(&raw(addr, req.as_bytes()).unwrap()).unwrap();
    assert_eq!(st, 403);
    check_alive(addr);
}

/// The peer stream (`POST /raft/stream`) refuses unknown senders (403), malformed frames
/// (400) and oversized frames (413), and the node keeps serving.
#[test]
fn peer_streams_refuse_unknown_ids_and_bad_frames() {
    // Node 2 is known (so its streams are read) but not a voter (so node 1 leads alone).
    let c = Cluster::start(
        "stream",
        21,
        1,
        &["--peer", "2=127.0.21.2:1", "--voters", "1"],
    );
    c.wait_leader(Duration::from_secs(10));
    let addr = &c.nodes[0].addr;
    let stream = |from: u64, body: &[u8]| {
        let mut req = format!(
            "POST /raft/stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-raft-from: {from}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        let resp = raw(addr, &req).expect("an answer");
        let (st, b) = parse_response(&resp).expect("well-formed answer");
        check_error_body(st, &b);
        st
    };
    let frame = |payload: &[u8]| {
        let mut f = (payload.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(payload);
        f
    };
    assert_eq!(stream(9, &[]), 403, "unknown sender");
    assert_eq!(stream(1, &[]), 403, "a node's own id");
    assert_eq!(stream(2, &[]), 204, "an empty stream ends cleanly");
    assert_eq!(
        stream(2, &frame(&[77, 0, 0, 0, 0])),
        400,
        "unknown section tag"
    );
    assert_eq!(
        stream(2, &frame(&[2, 9, 0, 0, 0, 1])),
        400,
        "section longer than its frame"
    );
    assert_eq!(
        stream(2, &frame(&[1, 0, 0])[..6]),
        400,
        "stream ends inside a frame"
    );
    assert_eq!(
        stream(2, &(64u32 << 20).to_le_bytes()),
        413,
        "frame over the limit"
    );
    // Undecodable Raft messages in a well-formed frame are dropped, not fatal.
    assert_eq!(stream(2, &frame(&[1, 2, 0, 0, 0, 0xff, 0xff])), 204);
    check_alive(addr);
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_string()),
        Just("PUT".to_string()),
        Just("POST".to_string()),
        Just("DELETE".to_string()),
        Just("PATCH".to_string()),
        "[A-Z]{1,8}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/kv/k".to_string()),
        Just("/kv/k/cas".to_string()),
        Just("/kv/k/append".to_string()),
        Just("/status".to_string()),
        Just("/admin/add".to_string()),
        Just("/admin/remove".to_string()),
        Just("/admin/joint".to_string()),
        Just("/raft".to_string()),
        Just("/raft/stream".to_string()),
        "/[a-z%0-9/]{0,20}",
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        Just(br#"{"value":"v"}"#.to_vec()),
        Just(br#"{"expected":null,"new":"n"}"#.to_vec()),
        Just(br#"{"id":7,"addr":"127.0.14.7:1","learner":true}"#.to_vec()),
        "\\{\"[a-z]{1,8}\":(null|[0-9]{1,3}|\"[a-z]{0,4}\"|\\[\\]|true)\\}"
            .prop_map(|s| s.into_bytes()),
    ]
}

fn send(
    addr: &str,
    m: &str,
    p: &str,
    b: &[u8],
    raft_from: Option<u64>,
) -> Result<(), TestCaseError> {
    let mut req = format!(
        "{m} {p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        b.len()
    )
    .into_bytes();
    if let Some(f) = raft_from {
        req.extend_from_slice(format!("x-raft-from: {f}\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(b);
    let resp = raw(addr, &req).unwrap();
    let (st, body) = parse_response(&resp).unwrap_or_else(|| {
        panic!(
            "malformed answer to {m} {p}: {:?}",
            String::from_utf8_lossy(&resp)
        )
    });
    prop_assert!((200..600).contains(&st));
    prop_assert!(
        st < 500 || st == 503 || st == 504,
        "server error {st} for {m} {p}"
    );
    check_error_body(st, &body);
    Ok(())
}

#[test]
fn random_requests_get_well_formed_answers_and_the_node_keeps_serving() {
    let (addr, _c) = cluster("fuzz", 16);
    let mut runner = TestRunner::new(Config {
        cases: 300,
        ..Config::default()
    });
    let strategy = (method(), path(), body(), proptest::option::of(0u64..4));
    runner
        .run(&strategy, |(m, p, b, raft_from)| {
            send(&addr, &m, &p, &b, raft_from)
        })
        .unwrap();
    let garbage = prop::collection::vec(any::<u8>(), 0..300);
    runner
        .run(&garbage, |bytes| {
            let _ = raw(&addr, &bytes);
            Ok(())
        })
        .unwrap();
    check_alive(&addr);
    let (st, _) = request(&addr, "PUT", "/kv/after", Some(&json!({"value": "ok"}))).unwrap();
    assert_eq!(st, 200);
    assert_eq!(
        request(&addr, "GET", "/kv/after", None).unwrap().1,
        json!({"value": "ok"})
    );
}
