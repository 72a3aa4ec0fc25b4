//! A paused leader (issue 15, item 7): a request a follower already forwarded to it fails as
//! soon as the follower learns of a newer term, not at the node's 5 s deadline.

mod common;

use std::time::{Duration, Instant};

use common::{request, signal, Cluster};
use serde_json::json;

#[test]
fn a_write_forwarded_to_a_paused_leader_is_unknown_once_a_new_term_begins() {
    let c = Cluster::start("paused-leader", 37, 3, &[]);
    let leader = c.wait_leader(Duration::from_secs(10));
    let f = (leader + 1) % 3;
    // A first write through the follower opens its stream to the leader (retried: the
    // follower may not have heard of the new leader yet).
    let body = json!({"value": "before"});
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let got = request(&c.nodes[f].addr, "PUT", "/kv/k", Some(&body));
        if got.as_ref().map(|(s, _)| *s) == Some(200) {
            break;
        }
        assert!(
            Instant::now() < until,
            "no write through the follower: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = c.nodes[leader].child.as_ref().unwrap().id();
    signal(pid, "-STOP");
    let start = Instant::now();
    let body = json!({"value": "during"});
    let got = request(&c.nodes[f].addr, "PUT", "/kv/k", Some(&body));
    let took = start.elapsed();
    signal(pid, "-CONT");
    let (status, v) = got.expect("an answer");
    assert_eq!(status, 504, "{v}");
    assert_eq!(v["definite"], false, "{v}");
    assert!(
        took < Duration::from_millis(3000),
        "answered after {took:?}, not as soon as a new term began: {v}"
    );
}
