//! Membership changes: the admin requests a leader turns into configuration changes, and the
//! peer addresses every node learns from the log.

use std::collections::BTreeSet;

use raft::{ConfChange, ConfChangeError, Role};

use super::Driver;
use crate::api::{AdminOp, ApiError, Refusal, ReplyTo};
use crate::kv::Command;

impl Driver {
    pub(super) fn on_admin(&mut self, op: AdminOp, reply: ReplyTo) {
        let me = self.node.id();
        if self.node.role() != Role::Leader {
            let leader = self.node.status().leader;
            let _ = reply.send(Err(Refusal::NotLeader { leader, op: None }));
            return;
        }
        let change = match op {
            AdminOp::Add { id, addr, learner } => {
                if id == me {
                    let e = ApiError::bad_request(format!("node {id} is this node"));
                    let _ = reply.send(Err(Refusal::Error(e)));
                    return;
                }
                match addr {
                    Some(addr) => self.propose_peer(id, addr),
                    // Re-adding a known server: every node keeps the address it has, which
                    // under the nemesis's proxy backend is a relay of its own.
                    None if self.shared.peer_addr(id).is_some() => {}
                    None => {
                        let e = ApiError::bad_request(format!(
                            "node {id} has no known address: give \"addr\""
                        ));
                        let _ = reply.send(Err(Refusal::Error(e)));
                        return;
                    }
                }
                if learner {
                    ConfChange::AddLearner(id)
                } else {
                    ConfChange::AddVoter(id)
                }
            }
            AdminOp::Remove { id } => ConfChange::Remove(id),
            AdminOp::Joint { voters, addrs } => {
                for (id, a) in addrs.into_iter().filter(|(id, _)| *id != me) {
                    self.propose_peer(id, a);
                }
                let voters: BTreeSet<u64> = voters.into_iter().collect();
                let learners = self
                    .node
                    .membership()
                    .learners
                    .difference(&voters)
                    .copied()
                    .collect();
                ConfChange::EnterJoint {
                    voters,
                    learners,
                    auto_leave: true,
                }
            }
        };
        match self.node.propose_conf_change(change) {
            Ok(p) => self.wait_for(p, true, reply),
            Err(ConfChangeError::NotLeader { leader }) => {
                let _ = reply.send(Err(Refusal::NotLeader { leader, op: None }));
            }
            Err(e @ ConfChangeError::Invalid { .. }) => {
                let _ = reply.send(Err(Refusal::Error(ApiError::bad_request(e.to_string()))));
            }
            Err(e) => {
                let err = ApiError::unavailable(e.to_string());
                let _ = reply.send(Err(Refusal::Error(err)));
            }
        }
    }

    /// Proposes the address of a new member so every node (and every later snapshot) learns
    /// it. Only called on the leader; should leadership be lost in between, the membership
    /// change that follows is refused too.
    pub(super) fn propose_peer(&mut self, id: u64, addr: String) {
        self.learn_peer(id, &addr);
        let rid = self.next_request;
        self.next_request += 1;
        let _ = self.node.propose(Command::SetPeer { id, addr }.encode(rid));
    }

    pub(super) fn learn_peer(&mut self, id: u64, addr: &str) {
        if id == self.node.id() {
            return;
        }
        self.shared
            .peers
            .write()
            .unwrap()
            .insert(id, addr.to_string());
        self.transport.set_peer(id, addr.to_string());
    }
}
