//! Hostile HTTP and misplaced data (issue 15, item 6): the HTTP library's own error answers
//! carry the documented JSON body, a client that never finishes a request head is cut off,
//! and a node refuses another node's data directory.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{parse_response, raw, request, Cluster};
use serde_json::Value;

fn json_error(resp: &[u8]) -> (u16, Value) {
    let (status, body) = parse_response(resp)
        .unwrap_or_else(|| panic!("no well-formed answer: {:?}", String::from_utf8_lossy(resp)));
    let v: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "{status} with a non-JSON body {:?}: {e}",
            String::from_utf8_lossy(&body)
        )
    });
    assert!(v["error"].is_string(), "{v}");
    assert_eq!(v["definite"], true, "{v}");
    (status, v)
}

#[test]
fn errors_the_http_library_answers_carry_the_json_error_body() {
    let c = Cluster::start("lib-errors", 34, 1, &[]);
    c.wait_leader(Duration::from_secs(10));
    let addr = &c.nodes[0].addr;
    let resp = raw(addr, b"NOT A REQUEST LINE\r\n\r\n").unwrap();
    assert_eq!(json_error(&resp).0, 400);
    let long_key = format!("GET /kv/{} HTTP/1.1\r\nHost: x\r\n\r\n", "k".repeat(70_000));
    let resp = raw(addr, long_key.as_bytes()).unwrap();
    let (status, v) = json_error(&resp);
    assert_eq!(status, 414);
    assert!(v["error"].as_str().unwrap().contains("65534"), "{v}");
    let big_head = format!(
        "GET /kv/a HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "h".repeat(2 << 20)
    );
    let resp = raw(addr, big_head.as_bytes()).unwrap();
    assert_eq!(json_error(&resp).0, 431);
    // A key just under the request line's limit works.
    let key = "k".repeat(65_000);
    let body = r#"{"value":"v"}"#;
    let put = format!(
        "PUT /kv/{key} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let resp = raw(addr, put.as_bytes()).unwrap();
    assert_eq!(parse_response(&resp).map(|(s, _)| s), Some(200));
}

#[test]
fn a_client_that_never_finishes_its_request_head_is_cut_off() {
    let c = Cluster::start("slow-head", 35, 1, &["--header-timeout-ms", "300"]);
    c.wait_leader(Duration::from_secs(10));
    let mut s = TcpStream::connect(&c.nodes[0].addr).unwrap();
    s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(_) => {}
        Err(e) => panic!("connection still open after {:?}: {e}", start.elapsed()),
    }
    assert!(start.elapsed() < Duration::from_secs(3));
    // The node still serves.
    assert_eq!(
        request(&c.nodes[0].addr, "GET", "/status", None).map(|(s, _)| s),
        Some(200)
    );
}

/// Runs `cluster node` on `dir` as node `id` (with `extra` flags) until it exits or 2 s
/// pass: `Some(stderr)` if it exited with an error, `None` if it was still running (then it
/// is killed).
fn start_on(dir: &std::path::Path, id: u64, listen: &str, extra: &[&str]) -> Option<String> {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cluster"))
        .args(["node", "--id", &id.to_string(), "--listen", listen])
        .args(extra)
        .arg("--data-dir")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(!st.success());
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return Some(err);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn a_node_refuses_another_nodes_data_directory() {
    let dir = common::TempDir::new("data-dir-id");
    let data = dir.0.join("node-1");
    let listen = "127.0.36.1:0";
    assert_eq!(
        start_on(&data, 1, listen, &[]),
        None,
        "node 1 starts on a fresh dir"
    );
    let err = start_on(&data, 2, listen, &[]).expect("node 2 must refuse node 1's directory");
    assert!(
        err.contains("node 1") && err.contains("--id 2"),
        "unclear message: {err}"
    );
    // A directory from before the id file keeps working, and gets the file.
    let id_file = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().is_some_and(|n| n == "node-id"))
        .expect("the id is stored in the data directory");
    std::fs::remove_file(&id_file).unwrap();
    assert_eq!(
        start_on(&data, 1, listen, &[]),
        None,
        "an old directory still works"
    );
    assert!(id_file.exists());
}

/// The replication limits reach the core: zero is refused at start, naming the limit.
#[test]
fn a_node_refuses_zero_replication_limits() {
    let dir = common::TempDir::new("zero-limits");
    for (flag, field) in [
        ("--max-inflight", "max_inflight"),
        ("--max-append-entries", "max_batch"),
    ] {
        let err = start_on(&dir.0.join(flag), 1, "127.0.36.2:0", &[flag, "0"])
            .unwrap_or_else(|| panic!("{flag} 0 must be refused"));
        assert!(err.contains(field), "{flag} 0: {err}");
    }
}
