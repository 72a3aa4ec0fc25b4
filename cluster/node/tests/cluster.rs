//! End-to-end tests with real node processes on 127.0.N.x addresses: elections, every client
//! operation through every node, restarts, SIGKILL under load, and bad input.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{put, request, Cluster};
use serde_json::{json, Value};

fn get(addr: &str, key: &str) -> Option<(u16, Value)> {
    request(addr, "GET", &format!("/kv/{key}"), None)
}

/// Retries a read on every node until one answers 200 (leader elections take a moment).
fn read_anywhere(c: &Cluster, key: &str, within: Duration) -> Value {
    let until = Instant::now() + within;
    while Instant::now() < until {
        for a in c.addrs() {
            if let Some((200, v)) = get(&a, key) {
                return v["value"].clone();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no node answered a read of {key} within {within:?}");
}

/// [`request`], repeated while the node answers a definite 503 (no leader known, leadership
/// lost: not applied, so safe to send again), for up to 10 s. The operations test wants every
/// answer through every node; a leader change in the middle of it (the 100 ms election timeout
/// can pass on a loaded machine) refuses a request definitely, which the API allows.
fn served(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = request(addr, method, path, body).expect("an answer");
        if answer.0 != 503 || answer.1["definite"] != json!(true) || Instant::now() > until {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn three_nodes_elect_a_leader_and_serve_every_operation_through_any_node() {
    let c = Cluster::start("ops", 11, 3, &[]);
    c.wait_leader(Duration::from_secs(10));
    let addrs = c.addrs();
    for (i, a) in addrs.iter().enumerate() {
        let key = format!("k{i}");
        let kv = format!("/kv/{key}");
        assert_eq!(served(a, "GET", &kv, None), (200, json!({ "value": null })));
        let put_a = json!({"value": "a"});
        assert_eq!(served(a, "PUT", &kv, Some(&put_a)), (200, json!({})));
        // Read through every node: linearizable, so the write is visible everywhere.
        for b in &addrs {
            assert_eq!(
                served(b, "GET", &kv, None),
                (200, json!({ "value": "a" })),
                "via {b}"
            );
        }
        let cas = |exp: Value, new: &str| {
            served(
                a,
                "POST",
                &format!("/kv/{key}/cas"),
                Some(&json!({"expected": exp, "new": new})),
            )
        };
        assert_eq!(cas(json!("a"), "b"), (200, json!({})));
        let (st, body) = cas(json!("a"), "c");
        assert_eq!(st, 409);
        assert_eq!(body["definite"], json!(true));
        assert_eq!(body["value"], json!("b"));
        let (st, _) = cas(Value::Null, "z");
        assert_eq!(st, 409, "cas with expected null on a present key must fail");
        let (st, body) = served(
            a,
            "POST",
            &format!("/kv/{key}/append"),
            Some(&json!({"value": "xy"})),
        );
        assert_eq!((st, body), (200, json!({ "value": "bxy" })));
    }
    // expected null on an absent key succeeds.
    let (st, _) = served(
        &addrs[1],
        "POST",
        "/kv/fresh/cas",
        Some(&json!({"expected": null, "new": "n"})),
    );
    assert_eq!(st, 200);
    assert_eq!(
        served(&addrs[2], "GET", "/kv/fresh", None).1,
        json!({ "value": "n" })
    );
    let (st, s) = request(&addrs[0], "GET", "/status", None).unwrap();
    assert_eq!(st, 200);
    assert_eq!(s["voters"], json!([1, 2, 3]));
    assert!(s["term"].as_u64().unwrap() >= 1);
}

#[test]
fn a_whole_cluster_restart_keeps_every_acknowledged_write() {
    // A small snapshot interval makes recovery go through snapshot + log suffix.
    let mut c = Cluster::start("restart", 12, 3, &["--snapshot-every", "40"]);
    let leader = c.wait_leader(Duration::from_secs(10));
    let a = c.nodes[leader].addr.clone();
    for i in 0..150 {
        assert_eq!(
            put(&a, &format!("key{}", i % 30), &format!("v{i}"))
                .unwrap()
                .0,
            200
        );
    }
    for n in &mut c.nodes {
        n.kill();
    }
    for n in &mut c.nodes {
        n.start();
    }
    c.wait_leader(Duration::from_secs(10));
    for k in 0..30 {
        let last = (0..150).filter(|i| i % 30 == k).max().unwrap();
        assert_eq!(
            read_anywhere(&c, &format!("key{k}"), Duration::from_secs(10)),
            json!(format!("v{last}"))
        );
    }
    let snaps = std::fs::read_dir(c.dir.0.join("node-1"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".snap")
        })
        .count();
    assert_eq!(snaps, 1, "node 1 took a snapshot and kept only the latest");
}

/// Writers append unique tokens to their own keys while nodes are SIGKILLed and restarted at
/// random instants; afterwards every acknowledged append must be in the final value, in order.
#[test]
fn sigkill_under_load_loses_no_acknowledged_write() {
    let c = Arc::new(Mutex::new(Cluster::start(
        "crash",
        13,
        3,
        &["--snapshot-every", "200"],
    )));
    c.lock().unwrap().wait_leader(Duration::from_secs(10));
    let addrs = c.lock().unwrap().addrs();
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4 {
        let (addrs, stop, acked) = (addrs.clone(), stop.clone(), acked.clone());
        writers.push(std::thread::spawn(move || {
            let key = format!("w{w}");
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let token = format!("<{w}.{n}>");
                n += 1;
                let a = &addrs[(n as usize + w) % addrs.len()];
                let r = request(
                    a,
                    "POST",
                    &format!("/kv/{key}/append"),
                    Some(&json!({"value": token})),
                );
                match r {
                    Some((200, body)) => {
                        let whole = body["value"].as_str().unwrap().to_string();
                        assert!(whole.ends_with(&token), "append answered {whole}");
                        acked
                            .lock()
                            .unwrap()
                            .entry(key.clone())
                            .or_default()
                            .push(token);
                    }
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }));
    }
    let mut rng_state = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move |n: u64| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state % n
    };
    let until = Instant::now() + Duration::from_secs(15);
    let mut kills = 0;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200 + rnd(800)));
        let victim = rnd(3) as usize;
        let mut cl = c.lock().unwrap();
        cl.nodes[victim].kill();
        kills += 1;
        drop(cl);
        std::thread::sleep(Duration::from_millis(rnd(600)));
        c.lock().unwrap().nodes[victim].start();
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let cl = c.lock().unwrap();
    cl.wait_leader(Duration::from_secs(10));
    let acked = acked.lock().unwrap();
    let total: usize = acked.values().map(Vec::len).sum();
    assert!(kills >= 10, "only {kills} kills");
    assert!(
        total >= 50,
        "only {total} acknowledged appends: the cluster hardly served"
    );
    for (key, tokens) in acked.iter() {
        let v = read_anywhere(&cl, key, Duration::from_secs(10));
        let v = v.as_str().unwrap_or_else(|| panic!("{key} is absent"));
        let mut at = 0;
        for t in tokens {
            let pos = v[at..]
                .find(t.as_str())
                .unwrap_or_else(|| panic!("acknowledged {t} missing from {key} after {at}: {v}"));
            at += pos + t.len();
        }
    }
    eprintln!("{kills} kills, {total} acknowledged appends, all present");
}

/// Membership through the admin API: node 4 starts outside the initial voter set, is added
/// through a follower (forwarded to the leader), catches up, and a joint change then drops
/// node 1; the cluster keeps serving throughout.
#[test]
fn admin_adds_a_voter_and_a_joint_change_removes_one() {
    let c = Cluster::start("admin", 17, 4, &["--voters", "1,2,3"]);
    let leader = c.wait_leader(Duration::from_secs(10));
    let addrs = c.addrs();
    assert_eq!(put(&addrs[leader], "m", "before").unwrap().0, 200);
    let follower = (0..3).find(|&i| i != leader).unwrap();
    let add = json!({"id": 4, "addr": addrs[3], "learner": false});
    let (st, body) = request(&addrs[follower], "POST", "/admin/add", Some(&add)).unwrap();
    assert_eq!(st, 200, "{body}");
    assert!(body["index"].as_u64().unwrap() > 0);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, s) = request(&addrs[3], "GET", "/status", None).unwrap();
        if s["voters"] == json!([1, 2, 3, 4]) && s["applied"].as_u64() >= body["index"].as_u64() {
            break;
        }
        assert!(Instant::now() < until, "node 4 did not catch up: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        get(&addrs[3], "m").unwrap(),
        (200, json!({"value": "before"}))
    );
    let joint = json!({"voters": [2, 3, 4]});
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        // Another change may still be pending right after the add: retry while 503.
        let r =
            c.addrs()
                .iter()
                .find_map(|a| match request(a, "POST", "/admin/joint", Some(&joint)) {
                    Some((200, b)) => Some(b),
                    _ => None,
                });
        if r.is_some() {
            break;
        }
        assert!(Instant::now() < until, "joint change never accepted");
        std::thread::sleep(Duration::from_millis(100));
    }
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = (1..4).all(|i| {
            request(&addrs[i], "GET", "/status", None)
                .is_some_and(|(_, s)| s["voters"] == json!([2, 3, 4]))
        });
        if ok {
            break;
        }
        assert!(Instant::now() < until, "the joint change did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    let until = Instant::now() + Duration::from_secs(10);
    while put(&addrs[3], "m", "after").map(|r| r.0) != Some(200) {
        assert!(Instant::now() < until, "no write after the change");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        read_anywhere(&c, "m", Duration::from_secs(5)),
        json!("after")
    );
    // Node 1, removed by the joint change, comes back without an address (every node knows
    // it); a node nobody knows cannot.
    let unknown = json!({"id": 9});
    let refused = c
        .addrs()
        .iter()
        .find_map(|a| match request(a, "POST", "/admin/add", Some(&unknown)) {
            Some((st, b)) if st != 503 => Some((st, b)),
            _ => None,
        })
        .expect("some node answers");
    assert_eq!(refused.0, 400, "{}", refused.1);
    let back = json!({"id": 1});
    let until = Instant::now() + Duration::from_secs(10);
    while !c.addrs()[1..].iter().any(|a| {
        matches!(
            request(a, "POST", "/admin/add", Some(&back)),
            Some((200, _))
        )
    }) {
        assert!(Instant::now() < until, "re-adding node 1 never accepted");
        std::thread::sleep(Duration::from_millis(100));
    }
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, s) = request(&addrs[0], "GET", "/status", None).unwrap();
        if s["voters"] == json!([1, 2, 3, 4])
            && get(&addrs[0], "m").map(|r| r.1) == Some(json!({"value": "after"}))
        {
            break;
        }
        assert!(Instant::now() < until, "node 1 did not rejoin: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The outcome contract the nemesis records `fail` / `info` from: a write proposed by a leader
/// that has lost its quorum times out as unknown (504, definite false); once the leader has
/// stepped down, writes are refused before proposal (503, definite true).
#[test]
fn a_leader_without_quorum_answers_unknown_then_definite() {
    let mut c = Cluster::start(
        "quorum",
        18,
        3,
        &["--election-ticks", "100", "--deadline-ms", "300"],
    );
    let leader = c.wait_leader(Duration::from_secs(15));
    let addr = c.nodes[leader].addr.clone();
    assert_eq!(put(&addr, "q", "1").unwrap().0, 200);
    for (i, n) in c.nodes.iter_mut().enumerate() {
        if i != leader {
            n.kill();
        }
    }
    let (st, body) = put(&addr, "q", "2").unwrap();
    assert_eq!(st, 504, "{body}");
    assert_eq!(body["definite"], json!(false));
    // Check-quorum makes the leader step down within about two election timeouts.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (st, body) = put(&addr, "q", "3").unwrap();
        if st == 503 {
            assert_eq!(body["definite"], json!(true), "{body}");
            break;
        }
        assert_eq!(st, 504, "{body}");
        assert!(Instant::now() < until, "the leader never stepped down");
    }
}

/// Peer connections leave from the node's own address (so firewall rules by address cut
/// them) and name the sender in `x-raft-from`; the peer address may be anything, here a plain
/// listener standing in for a relay.
#[test]
fn peer_connections_are_bound_to_the_node_address_and_carry_its_id() {
    use std::io::Read;
    let relay = std::net::TcpListener::bind("127.0.19.2:0").unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let port = std::net::TcpListener::bind("127.0.19.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = common::TempDir::new("bind");
    let mut node = common::Proc {
        id: 1,
        addr: format!("127.0.19.1:{port}"),
        args: vec![
            "node".into(),
            "--id".into(),
            "1".into(),
            "--listen".into(),
            format!("127.0.19.1:{port}"),
            "--peer".into(),
            format!("2={relay_addr}"),
            "--data-dir".into(),
            dir.0.join("d").display().to_string(),
        ],
        child: None,
    };
    node.start();
    relay.set_nonblocking(true).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let (mut s, from) = loop {
        match relay.accept() {
            Ok(c) => break c,
            Err(_) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("the node never connected to its peer: {e}"),
        }
    };
    s.set_nonblocking(false).unwrap();
    assert_eq!(
        from.ip().to_string(),
        "127.0.19.1",
        "outgoing peer socket not bound"
    );
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
    assert!(head.starts_with("post /raft/stream http/1.1"), "{head}");
    assert!(head.contains("x-raft-from: 1\r\n"), "{head}");
    node.kill();
}

/// With one entry per AppendEntries and one in flight (`--max-append-entries 1
/// --max-inflight 1`, as the nemesis' figure-8 runs start the nodes), a follower that missed
/// 100 writes is brought up entry by entry: with the other follower down, the next write
/// commits only once it has all of them.
#[test]
fn one_entry_per_append_still_catches_a_follower_up() {
    let limits = ["--max-append-entries", "1", "--max-inflight", "1"];
    let mut c = Cluster::start("one-entry", 38, 3, &limits);
    let leader = c.wait_leader(Duration::from_secs(10));
    let a = c.nodes[leader].addr.clone();
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    c.nodes[followers[0]].kill();
    for i in 0..100 {
        let (code, _) = put(&a, &format!("k{}", i % 10), &format!("v{i}")).unwrap();
        assert_eq!(code, 200);
    }
    c.nodes[followers[0]].start();
    c.nodes[followers[1]].kill();
    let until = Instant::now() + Duration::from_secs(20);
    while put(&a, "k0", "after").map(|(code, _)| code) != Some(200) {
        assert!(
            Instant::now() < until,
            "no commit with the restarted follower"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        read_anywhere(&c, "k9", Duration::from_secs(10)),
        json!("v99")
    );
    assert_eq!(
        read_anywhere(&c, "k0", Duration::from_secs(10)),
        json!("after")
    );
}
