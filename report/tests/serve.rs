//! The run browser over real loopback sockets: the index lists runs with their verdicts,
//! reports are served (drawn on the fly for runs that have none), nothing outside the runs
//! directory is reachable (not even through a symlink), an idle client stalls no other, and
//! it refuses to listen beyond loopback.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A server on a free loopback port for `runs`, stopped (and joined, within 2 s) on drop.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), report::ReportError>>>,
}

impl Server {
    fn start(runs: &Path) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, runs) = (stop.clone(), runs.to_path_buf());
        let thread = std::thread::spawn(move || report::serve_on(listener, &runs, &flag));
        Server {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let t = Instant::now();
        let result = self.thread.take().map(|t| t.join());
        if !std::thread::panicking() {
            result.unwrap().unwrap().unwrap();
            assert!(t.elapsed() < Duration::from_secs(2));
        }
    }
}

fn request(addr: SocketAddr, head: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (status, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        status.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

fn get(addr: SocketAddr, path: &str) -> (String, String) {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    )
}

#[test]
fn lists_runs_serves_reports_and_stays_inside_the_runs_directory() {
    let runs = scratch("serve");
    let run = runs.join("20261126T234749Z");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::create_dir_all(runs.join("20261127T010000Z")).unwrap();
    let h = synthetic(300, 3, 2, 20);
    let mut w = histories::JsonlWriter::from_writer(Vec::new());
    for e in &h.events {
        w.write(e).unwrap();
    }
    std::fs::write(run.join("history.jsonl"), w.finish().unwrap()).unwrap();
    std::fs::write(
        run.join("results.json"),
        results_for(&h, "<i>v</i>").to_string(),
    )
    .unwrap();
    std::os::unix::fs::symlink("20261126T234749Z", runs.join("latest")).unwrap();

    let server = Server::start(&runs);
    let addr = server.addr;

    let (status, index) = get(addr, "/");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(index.contains("href=\"/runs/20261126T234749Z/report.html\""));
    assert!(index.contains("(latest)"));
    assert!(index.contains("2026-11-26 23:47:49 UTC"));
    assert!(index.contains("badge small bad\">invalid"));
    assert!(
        index.contains("<td>raft</td><td>register</td><td>kill,pause,partition</td><td>300</td>")
    );
    assert!(
        index.contains("no results"),
        "the run without results.json is listed too"
    );
    // Newest first.
    assert!(index.find("20261127T010000Z").unwrap() < index.find("20261126T234749Z").unwrap());

    let (status, page) = get(addr, "/runs/20261126T234749Z/report.html");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        embedded(&page)["timeline"]["ops"].as_array().unwrap().len(),
        300 * report::data::OP_FIELDS
    );
    let (status, json) = get(addr, "/runs/20261126T234749Z/results.json");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(json.contains("\"verdict\":\"invalid\""));
    let (_, listing) = get(addr, "/runs/20261126T234749Z/");
    assert!(listing.contains("href=\"history.jsonl\""));

    for bad in [
        "/runs/../../../etc/passwd",
        "/runs/20261126T234749Z/../results.json",
        "/runs/%2e%2e/x",
        "/runs/.hidden/",
        "/runs/20261126T234749Z/missing.txt",
        "/etc/passwd",
    ] {
        let (status, _) = get(addr, bad);
        assert_eq!(status, "HTTP/1.1 404 Not Found", "{bad}");
    }
    let (status, _) = request(addr, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");

    drop(server);
    let _ = std::fs::remove_dir_all(&runs);
}

/// Issue 15: `/runs/etclink/passwd` served `/etc/passwd`. Symlinks are followed only when
/// they resolve inside the runs directory (`latest` does).
#[test]
fn symlinks_that_leave_the_runs_directory_are_404() {
    let base = scratch("serve-links");
    let (runs, outside) = (base.join("runs"), base.join("outside"));
    let run = runs.join("20261126T234749Z");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "the secret").unwrap();
    std::fs::write(outside.join("history.jsonl"), "").unwrap();
    std::fs::write(run.join("results.json"), "{\"verdict\":\"valid\"}").unwrap();
    let link = |to: &Path, at: &Path| std::os::unix::fs::symlink(to, at).unwrap();
    link(&outside, &runs.join("out"));
    link(Path::new("/etc"), &runs.join("etclink"));
    link(&outside.join("secret.txt"), &run.join("leak.txt"));
    link(&outside.join("history.jsonl"), &run.join("history.jsonl"));
    link(Path::new("20261126T234749Z"), &runs.join("latest"));
    link(Path::new("results.json"), &run.join("same.json"));
    let server = Server::start(&runs);

    for bad in [
        "/runs/out/secret.txt",
        "/runs/out/",
        "/runs/etclink/passwd",
        "/runs/etclink/",
        "/runs/20261126T234749Z/leak.txt",
        "/runs/latest/leak.txt",
        // Drawn from a history.jsonl that is a link out of the runs directory: refused too.
        "/runs/20261126T234749Z/report.html",
    ] {
        let (status, body) = get(server.addr, bad);
        assert_eq!(status, "HTTP/1.1 404 Not Found", "{bad}: {body}");
        assert!(!body.contains("secret") && !body.contains("root:"), "{bad}");
    }
    for good in [
        "/runs/latest/results.json",
        "/runs/20261126T234749Z/same.json",
    ] {
        let (status, body) = get(server.addr, good);
        assert_eq!(status, "HTTP/1.1 200 OK", "{good}");
        assert!(body.contains("valid"), "{good}: {body}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&base);
}

/// Issue 15: connections were served one at a time, so a client that opened a connection and
/// sent nothing stalled every other for the 5 s read timeout (a browser's spare keep-alive
/// connections do exactly that).
#[test]
fn idle_connections_do_not_stall_other_clients() {
    let runs = scratch("serve-idle");
    std::fs::create_dir_all(runs.join("20261126T234749Z")).unwrap();
    let server = Server::start(&runs);
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    // Let the server accept them (it polls its listener every 50 ms).
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let (status, index) = get(server.addr, "/");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(index.contains("20261126T234749Z"));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "waited {:?} behind idle connections",
        t.elapsed()
    );
    drop(idle);
    drop(server);
    let _ = std::fs::remove_dir_all(&runs);
}

#[test]
fn refuses_addresses_beyond_loopback() {
    let runs = scratch("serve-refuse");
    let e = report::serve(&runs, "0.0.0.0:0".parse().unwrap()).unwrap_err();
    assert!(matches!(e, report::ReportError::NotLoopback(_)));
    assert!(e.to_string().contains("0.0.0.0:0"), "{e}");
}
