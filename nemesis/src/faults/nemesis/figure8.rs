//! The figure-8 fault ([`Fault::Figure8`](crate::faults::Fault::Figure8)): the paper's
//! Figure 8 on five nodes, moving on when the nodes' status shows a step took.

use super::{lock, Nemesis, Undo};
use crate::net::{Grudge, LinkFault};
use anyhow::Result;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

/// How many entries the leader commits while two followers are cut off (step 1).
///
/// Why 60: the next leader (step 3) must need more round trips to put its first entry on
/// those followers than the nemesis needs to see it elected and cut it off (a few status
/// polls of 2 ms); with one entry per AppendEntries each round trip carries one entry and
/// waits for a follower's fsync. More would lengthen the catch-up of step 4, which must end
/// before the nodes' 5 s client deadline answers the waiting writes with 504.
const LAG_ENTRIES: u64 = 60;

/// Bounds of the steps that wait for the cluster (commits, elections).
const LAG_LIMIT: Duration = Duration::from_secs(3);
const ELECTION_LIMIT: Duration = Duration::from_secs(3);
const COMMIT_LIMIT: Duration = Duration::from_secs(4);

/// How long the old leader and one follower stay together alone (step 2): the old leader
/// appends the writes its clients send, which no one else will hold, until its check-quorum
/// deposes it (one or two election timeouts, 100-400 ms).
const ALONE: Duration = Duration::from_millis(500);

/// How long the last step waits before it asks who leads: two election timeouts, so that
/// C, cut off while it led term t+1, has stepped down (check-quorum) and the election
/// among C, D and E is over.
const SETTLE: Duration = Duration::from_millis(400);

/// The delay put on D's links to A and B in step 4 once D is nearly caught up (proxy
/// backend only): every further entry then takes a round trip of at least twice this.
///
/// Why: A appends only the writes its clients had in flight while it was alone with B (one
/// per client, about ten), so without a delay D got the new leader's first entry a few
/// round trips of a millisecond after the commit index passed k, faster than a status poll
/// and a SIGSTOP; in a matrix of 60 s runs on a loaded machine, D got it first in 6 faults
/// of 6. At 25 ms a round trip, D holds each old entry for 50 ms or more before the next.
const SLOW_D: LinkFault = LinkFault::Delay {
    base: Duration::from_millis(25),
    jitter: Duration::ZERO,
};

/// How far past the old leader's last commit the new leader's commit index must be before
/// the last step cuts it off, when C's last index is not known (the step uses C's last
/// index when its status gives it: that entry, C's own of term t+1, is the first one C
/// overwrites on D, often k+1).
///
/// Why 3: the cut-off follower C holds at most the entries the old leader had sent it, and
/// with one entry per AppendEntries and one in flight that is at most two past the commit
/// index (one unacknowledged entry to C, one to the other follower); so a commit index 3
/// past it covers C's last index + 1, the first entry C lacks: the one C overwrites.
const PAST_OLD_COMMIT: u64 = 3;

impl Nemesis {
    /// Starts the figure-8 fault on `ids` (five nodes) with `leader`, and plays it to its
    /// last step; `Undo::Heal` ends it. With A the leader of term t and B..E the others in
    /// a seeded order:
    ///
    /// 1. D and E are cut off until A has committed [`LAG_ENTRIES`] more entries;
    /// 2. C is cut off too: A appends writes only B gets, for [`ALONE`];
    /// 3. A and B are cut off, C, D, E joined: C (the longest log) wins term t+1 and
    ///    appends its first entry at k+1, then must bring D and E up one entry per round
    ///    trip; as soon as its status says leader, C is cut off (not killed: its entry of
    ///    term t+1 must survive, as in the figure) and D joins A and B;
    /// 4. A or B wins term t+2 and brings D up one entry per round trip (slowed by
    ///    [`SLOW_D`] once D is nearly up to k). Once its commit
    ///    index reaches C's last index (C's entry of term t+1; see [`PAST_OLD_COMMIT`]),
    ///    D is paused, A and B cut off, C, D, E
    ///    joined, D resumed: SIGSTOP is immediate, where a cut can take milliseconds.
    ///    A correct leader has committed nothing of term t beyond k there (its own first
    ///    entry, at the end of its log, is what would commit them); one with
    ///    `--bug commit-old-term` commits k+1 as soon as D holds it, and its proposer
    ///    answers the client once it learns that;
    /// 5. C's last term, t+1, beats D's and E's: C wins and overwrites k+1.
    ///
    /// A step whose condition is not met in time ends the fault there (the heal follows).
    /// Why no kill anywhere: A keeps the proposals it made in term t across its step-down
    /// and answers their clients when they are applied; a restart would forget them.
    pub(super) async fn figure8(
        &self,
        ids: &[usize],
        leader: Option<usize>,
        rng: &mut StdRng,
    ) -> Result<(Undo, Value)> {
        let Some(a) = leader.filter(|_| ids.len() == 5) else {
            return Ok((
                Undo::Heal,
                json!({"kind": "figure8", "nodes": [], "skipped": "no leader known, or not 5 nodes"}),
            ));
        };
        let mut others: Vec<usize> = ids.iter().copied().filter(|&i| i != a).collect();
        others.shuffle(rng);
        let [b, c, d, e] = others[..] else {
            unreachable!("five nodes, one the leader")
        };
        let mut out = Map::new();
        out.insert("kind".into(), json!("figure8"));
        out.insert("nodes".into(), json!(ids));
        out.insert(
            "roles".into(),
            json!({"a": a, "b": b, "c": c, "d": d, "e": e}),
        );
        let reached = self.figure8_steps(ids, [a, b, c, d, e], &mut out).await?;
        out.insert("reached".into(), json!(reached));
        Ok((Undo::Heal, Value::Object(out)))
    }

    /// Steps 1-5 of [`Nemesis::figure8`]; returns the last step reached, with what was
    /// seen in `out`.
    async fn figure8_steps(
        &self,
        ids: &[usize],
        [a, b, c, d, e]: [usize; 5],
        out: &mut Map<String, Value>,
    ) -> Result<&'static str> {
        let net = self.net()?;
        let cut = |groups: &[&[usize]]| {
            let mut g = Grudge::none(ids);
            for (i, x) in groups.iter().enumerate() {
                for y in &groups[i + 1..] {
                    g.cut_between(x, y);
                }
            }
            g
        };
        let begin = Instant::now();
        let mark = |out: &mut Map<String, Value>, what: &str| {
            out.insert(
                format!("{what}_ms"),
                json!(begin.elapsed().as_millis() as u64),
            );
        };
        // 1. D and E fall behind.
        lock(net).partition(&cut(&[&[a, b, c], &[d, e]]))?;
        let Some(c0) = self.status_of(a).await.filter(|s| s.is_leader) else {
            return Ok("lag: the leader did not answer");
        };
        if self
            .poll(&[a], LAG_LIMIT, |s| s.commit >= c0.commit + LAG_ENTRIES)
            .await
            .is_none()
        {
            return Ok("lag: too few commits");
        }
        mark(out, "lagged");
        // 2. A and B alone.
        lock(net).partition(&cut(&[&[a, b], &[c], &[d, e]]))?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Some(old) = self.status_of(a).await else {
            return Ok("alone: the leader did not answer");
        };
        out.insert("old_commit".into(), json!(old.commit));
        tokio::time::sleep(ALONE).await;
        // 3. C wins among C, D, E and is cut off at once.
        lock(net).partition(&cut(&[&[a, b], &[c, d, e]]))?;
        let Some((_, c_won)) = self.poll(&[c], ELECTION_LIMIT, |s| s.is_leader).await else {
            return Ok("c not elected");
        };
        lock(net).partition(&cut(&[&[a, b, d], &[c], &[e]]))?;
        mark(out, "c_elected");
        // 4. A or B wins with D and commits past k. Once D is nearly up to k (its commit
        // index follows its log while it catches up), its links to A and B are slowed.
        if self
            .poll(&[d], COMMIT_LIMIT, |s| s.commit + 2 >= old.commit)
            .await
            .is_some()
        {
            let mut g = Grudge::none(ids);
            g.cut_between(&[a, b], &[d]);
            let slowed = lock(net).link(&g, Some(SLOW_D))?;
            out.insert("slowed_d".into(), json!(slowed));
            mark(out, "d_near_k");
        }
        // C's last index is its own entry of term t+1, the first one C will overwrite on D.
        let want = c_won
            .last_index
            .map_or(old.commit + PAST_OLD_COMMIT, |i| i.max(old.commit + 1));
        out.insert("c_last_index".into(), json!(c_won.last_index));
        let Some((x, s)) = self
            .poll(&[a, b], COMMIT_LIMIT, |s| s.is_leader && s.commit >= want)
            .await
        else {
            return Ok("no commit past the old leader's");
        };
        lock(&self.cluster).pause(d)?;
        let cut_off = lock(net).partition(&cut(&[&[a, b], &[c, d, e]]));
        let resumed = lock(&self.cluster).resume(d);
        cut_off?;
        resumed?;
        mark(out, "committed");
        out.insert("new_leader".into(), json!(x));
        out.insert("new_commit".into(), json!(s.commit));
        // 5. Who wins among C, D, E (C when D missed the new leader's first entry). Asked
        // after SETTLE: C, cut off as leader of term t+1, may still believe it leads.
        tokio::time::sleep(SETTLE).await;
        match self.poll(&[c, d, e], ELECTION_LIMIT, |s| s.is_leader).await {
            Some((l, _)) => {
                out.insert("last_leader".into(), json!(l));
                mark(out, "last_elected");
                Ok("last election")
            }
            None => Ok("no last leader"),
        }
    }
}
