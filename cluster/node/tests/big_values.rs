//! Big values (issue 15, item 1): values near the body limit, a follower paused through
//! megabytes of writes, and a snapshot larger than one peer frame must never stall the cluster.

mod common;

use std::time::{Duration, Instant};

use common::{request, Cluster};
use serde_json::{json, Value};

fn put(addr: &str, key: &str, v: &str) -> Option<(u16, Value)> {
    request(
        addr,
        "PUT",
        &format!("/kv/{key}"),
        Some(&json!({ "value": v })),
    )
}

fn status(addr: &str) -> Option<Value> {
    match request(addr, "GET", "/status", None) {
        Some((200, s)) => Some(s),
        _ => None,
    }
}

/// Retries a small write through any node until one acknowledges it.
fn small_write_succeeds(c: &Cluster, key: &str, within: Duration) {
    let until = Instant::now() + within;
    while Instant::now() < until {
        for a in c.addrs() {
            if let Some((200, _)) = put(&a, key, "small") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no small write succeeded within {within:?}");
}

/// Waits until node `i` (an index into `c.nodes`) has applied everything the leader has
/// committed; returns how long it took.
fn caught_up(c: &Cluster, leader: usize, i: usize, within: Duration) -> Duration {
    let start = Instant::now();
    let target = status(&c.nodes[leader].addr).expect("leader status")["commit"]
        .as_u64()
        .unwrap();
    while start.elapsed() < within {
        if let Some(s) = status(&c.nodes[i].addr) {
            if s["applied"].as_u64().unwrap() >= target {
                return start.elapsed();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let last = status(&c.nodes[i].addr);
    panic!(
        "node {} did not apply index {target} within {within:?} (status {last:?}); its log:\n{}\nleader's log:\n{}",
        i + 1,
        c.log(i as u64 + 1),
        c.log(leader as u64 + 1)
    );
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

fn follower(leader: usize) -> usize {
    (leader + 1) % 3
}

#[test]
fn four_concurrent_megabyte_puts_get_200_or_413_and_the_cluster_keeps_going() {
    let c = Cluster::start("big-puts", 31, 3, &[]);
    let leader = c.wait_leader(Duration::from_secs(10));
    let addr = c.nodes[leader].addr.clone();
    let value = "v".repeat(1_000_000);
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let (addr, value) = (addr.clone(), value.clone());
            std::thread::spawn(move || put(&addr, &format!("big{i}"), &value))
        })
        .collect();
    for t in threads {
        let got = t.join().unwrap();
        let status = got.as_ref().map(|(s, _)| *s);
        assert!(
            matches!(status, Some(200 | 413)),
            "a 1 MB PUT got {got:?}; leader log:\n{}",
            c.log(leader as u64 + 1)
        );
    }
    // Through a follower as well: the forward carries the whole value.
    let via = &c.nodes[follower(leader)].addr;
    let got = put(via, "big-via-follower", &value).map(|(s, _)| s);
    assert!(matches!(got, Some(200 | 413)), "{got:?}");
    small_write_succeeds(&c, "after", Duration::from_secs(5));
    for i in 0..3 {
        caught_up(&c, leader, i, Duration::from_secs(15));
    }
}

#[test]
fn a_follower_paused_through_three_megabytes_of_writes_catches_up() {
    let c = Cluster::start("big-pause", 32, 3, &[]);
    let leader = c.wait_leader(Duration::from_secs(10));
    let f = follower(leader);
    let pid = c.nodes[f].child.as_ref().unwrap().id();
    signal(pid, "-STOP");
    let value = "p".repeat(30_000);
    for i in 0..100 {
        let got = put(&c.nodes[leader].addr, &format!("k{i}"), &value);
        assert_eq!(got.map(|(s, _)| s), Some(200), "write {i}");
    }
    signal(pid, "-CONT");
    let took = caught_up(&c, leader, f, Duration::from_secs(15));
    eprintln!("paused follower caught up in {took:?}");
}

#[test]
fn a_follower_that_needs_a_snapshot_larger_than_a_frame_catches_up() {
    let mut c = Cluster::start("big-snap", 33, 3, &["--snapshot-every", "3"]);
    let leader = c.wait_leader(Duration::from_secs(10));
    let f = follower(leader);
    c.nodes[f].kill();
    // Three values of 900 kB: the state machine (and so the snapshot) is about 2.7 MB.
    let value = "s".repeat(900_000);
    for i in 0..3 {
        let got = put(&c.nodes[leader].addr, &format!("s{i}"), &value);
        assert_eq!(got.map(|(s, _)| s), Some(200), "write {i}");
    }
    for i in 0..6 {
        let got = put(&c.nodes[leader].addr, &format!("small{i}"), "x");
        assert_eq!(got.map(|(s, _)| s), Some(200), "small write {i}");
    }
    let log = c.log(leader as u64 + 1);
    assert!(log.contains("snapshot taken"), "no snapshot: {log}");
    c.nodes[f].start();
    caught_up(&c, leader, f, Duration::from_secs(15));
}
