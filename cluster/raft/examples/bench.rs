//! Proposals per second through the Raft core alone: three nodes in one thread, an in-memory
//! driver following the driver contract (persist to a Vec, deliver messages at once, apply),
//! batching on. Run:
//!
//! ```text
//! cargo run --release -p raft --example bench -- [proposals] [batch] [payload-bytes] [codec]
//! ```
//!
//! `batch` proposals are made before the driver loop runs, so they travel in one
//! AppendEntries; with `codec` every message is also encoded and decoded, as over a network.

use raft::{decode_messages, encode_messages, Config, EntryKind, Message, Node};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg =
        |i: usize, default: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let total = arg(0, 1_000_000);
    let batch = arg(1, 256);
    let payload = vec![7u8; arg(2, 16)];
    let codec = args.iter().any(|a| a == "codec");

    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| {
            let mut c = Config::new(id, [1, 2, 3]);
            c.max_batch = batch.max(1);
            Node::new(c, None).expect("valid config")
        })
        .collect();
    // In-memory "disks": every entry and hard state handed out is kept, as a WAL would.
    let mut disks: Vec<Vec<raft::Entry>> = vec![Vec::new(); 3];
    let mut applied = [0u64; 3];
    nodes[0].campaign();
    pump(&mut nodes, &mut disks, &mut applied, codec);
    assert_eq!(nodes[0].role(), raft::Role::Leader, "node 1 must lead");

    let start = Instant::now();
    let mut proposed = 0;
    let mut messages = 0u64;
    while proposed < total {
        for _ in 0..batch.min(total - proposed) {
            nodes[0].propose(payload.clone()).expect("leader accepts");
            proposed += 1;
        }
        messages += pump(&mut nodes, &mut disks, &mut applied, codec);
    }
    let elapsed = start.elapsed();
    let committed = nodes[0].status().commit;
    assert!(
        applied.iter().all(|&a| a == committed),
        "all applied {applied:?}"
    );
    println!(
        "{proposed} proposals, batch {batch}, payload {} B{}: {:.0} proposals/s ({:.2} s, {messages} messages, commit {committed})",
        payload.len(),
        if codec { ", with codec" } else { "" },
        proposed as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
    );
}

/// Runs the driver loop on every node until no node has work; returns messages delivered.
fn pump(
    nodes: &mut [Node],
    disks: &mut [Vec<raft::Entry>],
    applied: &mut [u64; 3],
    codec: bool,
) -> u64 {
    let mut delivered = 0;
    loop {
        let mut inbox: Vec<Message> = Vec::new();
        for (i, node) in nodes.iter_mut().enumerate() {
            if !node.has_ready() {
                continue;
            }
            let rd = node.ready();
            if let Some(from) = rd.truncate_from {
                disks[i].retain(|e| e.index < from);
            }
            disks[i].extend(rd.entries.iter().cloned());
            inbox.extend(rd.messages.iter().cloned());
            for e in &rd.committed_entries {
                if let EntryKind::Normal(d) = &e.kind {
                    std::hint::black_box(d);
                }
                applied[i] = e.index;
            }
            node.advance(rd);
        }
        if inbox.is_empty() {
            return delivered;
        }
        if codec {
            inbox = decode_messages(&encode_messages(&inbox)).expect("round trip");
        }
        for m in inbox {
            delivered += 1;
            let to = (m.to - 1) as usize;
            nodes[to].step(m).expect("addressed right");
        }
    }
}
