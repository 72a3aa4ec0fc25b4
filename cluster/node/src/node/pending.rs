//! Client requests waiting in the event loop: proposals until their entry applies, reads until
//! their ReadIndex is confirmed and applied, each under its deadline.

use std::time::Instant;

use raft::{ProposeError, ReadError};

use super::Driver;
use crate::api::{Answer, ApiError, ClientOp, Refusal, ReplyTo};
use crate::kv::Command;

pub(super) struct PendingWrite {
    pub(super) term: u64,
    pub(super) admin: bool,
    pub(super) reply: ReplyTo,
}

pub(super) struct PendingRead {
    pub(super) key: String,
    pub(super) reply: ReplyTo,
}

pub(super) enum Expiry {
    /// The proposal at (index, term).
    Write(u64, u64),
    /// The read with this context.
    Read(u64),
}

impl Driver {
    pub(super) fn on_read(&mut self, key: String, reply: ReplyTo) {
        let ctx = self.next_ctx;
        self.next_ctx += 1;
        match self.node.read_index(ctx) {
            Ok(()) => {
                self.reads.insert(ctx, PendingRead { key, reply });
                self.expiry
                    .push_back((Instant::now() + self.deadline, Expiry::Read(ctx)));
            }
            Err(ReadError::NotLeader { leader }) => {
                let op = Some(ClientOp::Read { key });
                let _ = reply.send(Err(Refusal::NotLeader { leader, op }));
            }
            Err(e @ ReadError::BadContext { .. }) => {
                panic!("read contexts are unique and non-zero, yet the core says: {e}")
            }
        }
    }

    pub(super) fn on_write(&mut self, cmd: Command, reply: ReplyTo) {
        let id = self.next_request;
        self.next_request += 1;
        match self.node.propose(cmd.encode(id)) {
            Ok(p) => self.wait_for(p, false, reply),
            Err(ProposeError::NotLeader { leader }) => {
                let op = Some(ClientOp::Write(cmd));
                let _ = reply.send(Err(Refusal::NotLeader { leader, op }));
            }
        }
    }

    pub(super) fn wait_for(&mut self, p: raft::ProposalId, admin: bool, reply: ReplyTo) {
        let w = PendingWrite {
            term: p.term,
            admin,
            reply,
        };
        if let Some(old) = self.writes.insert(p.index, w) {
            // An older proposal of ours sat at this index, so its entry was overwritten: the
            // core reports such proposals as dropped, but answer conservatively if it has not.
            let e = ApiError::unknown("proposal overwritten before its outcome was known");
            let _ = old.reply.send(Err(Refusal::Error(e)));
        }
        self.expiry.push_back((
            Instant::now() + self.deadline,
            Expiry::Write(p.index, p.term),
        ));
    }

    /// Answers the client waiting on the proposal at `index`, if it was made in `term`; a
    /// different term means our proposal was replaced: definitely not applied.
    pub(super) fn resolve(
        &mut self,
        index: u64,
        term: u64,
        f: impl FnOnce(bool) -> Result<Answer, ApiError>,
    ) {
        let Some(w) = self.writes.remove(&index) else {
            return;
        };
        let res = if w.term == term {
            f(w.admin)
        } else {
            Err(ApiError::unavailable(
                "proposal lost to another leader's entry (not applied)",
            ))
        };
        let _ = w.reply.send(res.map_err(Refusal::Error));
    }

    pub(super) fn answer_reads(&mut self) {
        let applied = self.kv.applied;
        let kv = &self.kv;
        let reads = &mut self.reads;
        self.confirmed.retain(|&(ctx, index)| {
            if index > applied {
                return true;
            }
            if let Some(r) = reads.remove(&ctx) {
                let v = kv.get(&r.key).map(str::to_string);
                let _ = r.reply.send(Ok(Answer::Value(v)));
            }
            false
        });
    }

    pub(super) fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.expiry.front() {
            if *at > now {
                break;
            }
            let (_, what) = self.expiry.pop_front().unwrap();
            match what {
                Expiry::Write(index, term) => {
                    if self.writes.get(&index).is_some_and(|w| w.term == term) {
                        let w = self.writes.remove(&index).expect("just seen");
                        let e = ApiError::unknown("deadline passed before the write committed");
                        let _ = w.reply.send(Err(Refusal::Error(e)));
                    }
                }
                Expiry::Read(ctx) => {
                    if let Some(r) = self.reads.remove(&ctx) {
                        let e = ApiError::unknown("deadline passed before the read was confirmed");
                        let _ = r.reply.send(Err(Refusal::Error(e)));
                    }
                }
            }
        }
    }
}
