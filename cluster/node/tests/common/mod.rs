//! Test harness: node processes of the real binary on 127.0.N.x addresses, and a tiny
//! blocking HTTP client.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("cluster-it-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One node process.
pub struct Proc {
    pub id: u64,
    pub addr: String,
    pub args: Vec<String>,
    pub child: Option<Child>,
}

impl Proc {
    pub fn start(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(env!("CARGO_BIN_EXE_cluster"))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn node");
        self.child = Some(child);
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A node outlives no test: a test that panics before `kill` would otherwise leave it running.
impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of node processes; every process is killed on drop.
pub struct Cluster {
    pub nodes: Vec<Proc>,
    pub dir: TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
    }
}

/// A port that is free on `ip` right now.
fn free_port(ip: &str) -> u16 {
    let l = std::net::TcpListener::bind(format!("{ip}:0")).unwrap();
    l.local_addr().unwrap().port()
}

impl Cluster {
    /// `n` nodes on 127.0.`block`.1..n, with extra flags for every node.
    pub fn start(tag: &str, block: u8, n: u64, extra: &[&str]) -> Cluster {
        let dir = TempDir::new(tag);
        let port = free_port(&format!("127.0.{block}.1"));
        let addr = |i: u64| format!("127.0.{block}.{i}:{port}");
        let mut nodes = Vec::new();
        for i in 1..=n {
            let mut args: Vec<String> = vec![
                "node".into(),
                "--id".into(),
                i.to_string(),
                "--listen".into(),
                addr(i),
                "--data-dir".into(),
                dir.0.join(format!("node-{i}")).display().to_string(),
                "--log-file".into(),
                dir.0.join(format!("node-{i}.log")).display().to_string(),
            ];
            for j in (1..=n).filter(|&j| j != i) {
                args.push("--peer".into());
                args.push(format!("{j}={}", addr(j)));
            }
            args.extend(extra.iter().map(|s| s.to_string()));
            nodes.push(Proc {
                id: i,
                addr: addr(i),
                args,
                child: None,
            });
        }
        for p in &mut nodes {
            p.start();
        }
        Cluster { nodes, dir }
    }

    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// Waits until some node reports itself leader; returns its index in `nodes`.
    pub fn wait_leader(&self, within: Duration) -> usize {
        let until = Instant::now() + within;
        while Instant::now() < until {
            for (i, n) in self.nodes.iter().enumerate() {
                if n.child.is_none() {
                    continue;
                }
                if let Some((200, s)) = request(&n.addr, "GET", "/status", None) {
                    if s["role"] == "leader" {
                        return i;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let logs: Vec<String> = (1..=self.nodes.len())
            .map(|i| {
                std::fs::read_to_string(self.dir.0.join(format!("node-{i}.log")))
                    .unwrap_or_default()
            })
            .collect();
        panic!(
            "no leader within {within:?}; logs:\n{}",
            logs.join("\n----\n")
        );
    }

    pub fn log(&self, i: u64) -> String {
        std::fs::read_to_string(self.dir.0.join(format!("node-{i}.log"))).unwrap_or_default()
    }
}

/// Sends raw bytes and returns the raw answer (until the server closes or 3 s pass).
pub fn raw(addr: &str, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let sa: SocketAddr = addr.parse().unwrap();
    let mut s = TcpStream::connect_timeout(&sa, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(7)))?;
    s.set_write_timeout(Some(Duration::from_secs(3)))?;
    // The server may answer (413) and close before reading everything: ignore write errors.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Ok(out)
}

/// Parses an HTTP/1.1 response with a Content-Length body: (status, body).
pub fn parse_response(bytes: &[u8]) -> Option<(u16, Vec<u8>)> {
    let text_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..text_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if parts.next()? != "HTTP/1.1" {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    let mut len = 0usize;
    for l in lines {
        let (k, v) = l.split_once(':')?;
        if k.eq_ignore_ascii_case("content-length") {
            len = v.trim().parse().ok()?;
        }
    }
    let body = bytes.get(text_end + 4..text_end + 4 + len)?.to_vec();
    Some((status, body))
}

/// One request with `Connection: close`; `None` if no complete response came back.
pub fn request(addr: &str, method: &str, path: &str, body: Option<&Value>) -> Option<(u16, Value)> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let resp = raw(addr, req.as_bytes()).ok()?;
    let (status, body) = parse_response(&resp)?;
    let v = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).ok()?
    };
    Some((status, v))
}

/// `PUT /kv/{key}` with `{"value": v}`.
pub fn put(addr: &str, key: &str, v: &str) -> Option<(u16, Value)> {
    request(
        addr,
        "PUT",
        &format!("/kv/{key}"),
        Some(&serde_json::json!({ "value": v })),
    )
}

/// Sends `sig` (`-STOP`, `-CONT`, ...) to process `pid` with kill(1).
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}
