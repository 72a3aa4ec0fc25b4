//! The reorder fault ([`Fault::ReorderThenCutLeader`](crate::faults::Fault::ReorderThenCutLeader)):
//! the leader's older AppendEntries delivered after newer ones, then the leader cut off.

use super::{grudge_json, lock, pick, Nemesis, Undo, Who, NO_LINK_SHAPING, STATUS_POLL};
use crate::net::{Grudge, LinkFault};
use anyhow::Result;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How long the reorder fault holds what the leader sends before its links are closed,
/// when it is timed by the clock (no status to go by).
///
/// Why 40 ms: the followers' election timeout is 100-200 ms and the leader reconnects
/// within about 20 ms, so they keep hearing from it (an election would change the term,
/// and a follower ignores the messages of an old term); 40 ms of AppendEntries is a few
/// batches at the default rate.
const HOLD: Duration = Duration::from_millis(40);

/// How long the fault holds what the leader sends when it is timed by status.
///
/// Why this short: what the leader holds is the relay's next chunk, everything it sent
/// during the delay [`SLOW`] that was in force, plus these 5 ms; and the writes that the
/// stale messages can truncate are the ones proposed after the hold. Its clients are then
/// still getting answers for a delay (acknowledgements already on their way), so they
/// propose new writes, which commit once the followers are caught up on a new connection.
/// A longer hold only blocked every client (no commit while nothing reaches a follower),
/// so one or two entries were proposed after it: too few to be read back.
const HOLD_SLOW: Duration = Duration::from_millis(5);

/// The delay on the leader's links while the fault is timed by status (proxy backend).
///
/// Why: a follower ignores an AppendEntries below its commit index (old news), so a stale
/// one truncates entries only if it lands before the follower learns that they are
/// committed, and the leader tells it in its very next message: on fast links that leaves
/// well under a millisecond after the leader commits. With every chunk delayed 20 ms the
/// follower learns of a commit at least 20 ms after the leader made it (and acknowledged
/// its writes), long enough for a status poll to see the commit and deliver the stale
/// messages. 20 ms plus [`HOLD_SLOW`] stays well under the 100 ms election timeout.
const SLOW: LinkFault = LinkFault::Delay {
    base: Duration::from_millis(20),
    jitter: Duration::ZERO,
};

/// How long the delay is in force before the hold starts: a few chunks, so the followers'
/// commit index trails the leader's by the delay when the held messages are taken.
const SLOW_FIRST: Duration = Duration::from_millis(60);

/// How long after the late delivery the leader is cut off.
///
/// Why not at once: what the leader sent just after its commit, the answers to the client
/// writes its followers forwarded among it, is still on its way (a relay passes one chunk
/// per delay [`SLOW`], so up to two delays); cut off at once, those writes were never
/// acknowledged, so their loss could not be seen. The followers take those messages after
/// the stale ones and refuse the appends among them (their log is now shorter); the
/// leader ignores the first such refusals (they are at its match index, which it believes)
/// and any repair needs a round trip on the slowed links, at least two delays after the
/// refusal: cut off before then, it never comes.
const CUT_AFTER_RELEASE: Duration = Duration::from_millis(45);

/// How many times one fault takes the leader's links over, until the followers truncate.
///
/// Why more than once: the stale messages truncate only if the leader's commit index went
/// past them in one step, before its followers heard of a commit that covers them (their
/// status then shows it); in about half the tries the leader first commits exactly what
/// it held, and a correct follower and a buggy one alike ignore the stale messages. A try
/// that changed nothing costs about 0.2 s.
const ATTEMPTS: usize = 3;

/// How long after the late delivery the followers' status is read: the stale messages are
/// written at once (not delayed), so a few milliseconds see them taken.
const SETTLE: Duration = Duration::from_millis(10);

/// How long the fault waits for the leader to commit past what it had when its links were
/// taken over (its followers must first be caught up on a new connection) before it
/// delivers the held messages anyway.
const COMMIT_LIMIT: Duration = Duration::from_secs(2);

impl Nemesis {
    /// Starts the reorder fault on the leader of `ids`; `Undo::HealLink` ends it. What the
    /// leader sends is taken over (held), its links are closed so it reconnects and its
    /// newer messages pass, then the held ones are delivered late.
    ///
    /// When the target reports a node's last index (our cluster) the fault is timed by
    /// status: the leader's links are slowed by [`SLOW`], and the held messages are
    /// delivered as soon as the leader's commit index passes the last index it had when
    /// they were taken, i.e. once it has acknowledged writes that the stale messages will
    /// truncate on a follower that does not skip matching entries
    /// (`--bug truncate-matching`), and before its followers can know those are committed.
    /// If a majority of the nodes then hold less than the leader committed, they are cut
    /// off from the leader and any follower that kept the entries, [`CUT_AFTER_RELEASE`]
    /// after the delivery, and elect a leader among them; if not (a correct cluster always),
    /// the fault tries again, up to [`ATTEMPTS`] times.
    /// Otherwise (no last index) by the clock: a drawn 2-20 ms after a new connection first
    /// passed, the held messages are delivered and the leader is cut off.
    pub(super) async fn reorder_then_cut(
        &self,
        ids: &[usize],
        leader: Option<usize>,
        rng: &mut StdRng,
    ) -> Result<(Undo, Value)> {
        let nodes = pick(Who::Leader, ids, leader, rng);
        let a = nodes[0];
        // One-way: only what the leader sends is held. Why: its followers' answers, and
        // the client requests they forward to it, keep flowing, so the leader goes on
        // appending while nothing reaches them, and what it holds is full of entries.
        let mut g = Grudge::none(ids);
        for f in ids.iter().filter(|&&i| i != a) {
            g.0.entry(*f).or_default().insert(a);
        }
        let mut value = json!({"kind": "reorder", "nodes": nodes, "grudge": grudge_json(&g)});
        let timed_by_status = leader == Some(a)
            && self
                .status_of(a)
                .await
                .is_some_and(|s| s.is_leader && s.last_index.is_some());
        let net = self.net()?;
        if !timed_by_status {
            let cut_after = Duration::from_millis(rng.gen_range(2..=20));
            let f = LinkFault::Reorder {
                after: HOLD,
                cut_after: Some(cut_after),
            };
            if lock(net).link(&g, Some(f))? {
                value["cut_after_ms"] = json!(cut_after.as_millis() as u64);
            } else {
                value["skipped"] = json!(NO_LINK_SHAPING);
            }
            return Ok((Undo::HealLink, value));
        }
        if !lock(net).link(&g, Some(SLOW))? {
            value["skipped"] = json!(NO_LINK_SHAPING);
            return Ok((Undo::HealLink, value));
        }
        let mut attempts = Vec::new();
        for _ in 0..ATTEMPTS {
            tokio::time::sleep(SLOW_FIRST).await;
            let (outcome, released, short) = self.reorder_once(a, ids, &g).await?;
            attempts.push(outcome);
            if short.len() > ids.len() / 2 {
                // The leader and any follower that kept the entries on one side, the
                // followers that lost them (a majority) on the other, to elect among them.
                let rest: Vec<usize> = ids.iter().copied().filter(|i| !short.contains(i)).collect();
                let mut cut = Grudge::none(ids);
                cut.cut_between(&short, &rest);
                tokio::time::sleep_until((released + CUT_AFTER_RELEASE).into()).await;
                lock(net).partition(&cut)?;
                value["cut"] = json!({"short": short, "rest": rest});
                break;
            }
        }
        value["attempts"] = json!(attempts);
        Ok((Undo::HealLink, value))
    }

    /// One take-over of `a`'s links (`g`), delivered late once `a` commits past what it
    /// held (or after [`COMMIT_LIMIT`]). Returns what was seen, when the held messages were
    /// delivered, and the followers that then hold less than `a` has committed: they
    /// truncated their log to the stale messages, and if they are a majority, `a` must now
    /// be cut off from them before it repairs them.
    async fn reorder_once(
        &self,
        a: usize,
        ids: &[usize],
        g: &Grudge,
    ) -> Result<(Value, Instant, Vec<usize>)> {
        let net = self.net()?;
        let begin = Instant::now();
        let f = LinkFault::Reorder {
            after: HOLD_SLOW,
            cut_after: None,
        };
        lock(net).link(g, Some(f))?;
        tokio::time::sleep(HOLD_SLOW + STATUS_POLL).await;
        let held_last = self.status_of(a).await.and_then(|s| s.last_index);
        let mut commit = None;
        if let Some(last) = held_last {
            commit = self
                .poll(&[a], COMMIT_LIMIT, |s| s.commit > last)
                .await
                .map(|(_, s)| s.commit);
        }
        lock(net).release(g)?;
        let released = Instant::now();
        let released_ms = begin.elapsed().as_millis() as u64;
        // What the followers hold once they took the stale messages (written at once, no
        // delay): (commit index, last index).
        tokio::time::sleep(SETTLE).await;
        let mut after = serde_json::Map::new();
        let mut short = Vec::new();
        for &f in ids.iter().filter(|&&i| i != a) {
            if let Some(s) = self.status_of(f).await {
                if commit.is_some_and(|c| s.last_index.is_some_and(|l| l < c)) {
                    short.push(f);
                }
                after.insert(f.to_string(), json!([s.commit, s.last_index]));
            }
        }
        let seen = json!({
            "held_last_index": held_last,
            "commit_at_release": commit,
            "released_ms": released_ms,
            "followers_after": after,
        });
        Ok((seen, released, short))
    }
}
