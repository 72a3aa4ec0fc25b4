//! Readable traces: a counterexample as one line per step (who sent what to whom, timeouts,
//! crashes), each followed by a one-line summary of the nodes.

use super::properties::{nodes, ModelCfg, RaftState};
pub use super::state::Action;
use super::state::{Msg, State, Timer};
use super::workload::Grow;
use stateright::actor::{ActorModelAction, Id};
use std::fmt::Write;

/// `n1`… for nodes, `c1`… for clients.
pub fn actor_name(nodes: usize, id: Id) -> String {
    let i = usize::from(id);
    if i < nodes {
        format!("n{}", i + 1)
    } else {
        format!("c{}", i - nodes + 1)
    }
}

/// One step, briefly.
pub fn describe_action(nodes: usize, action: &Action) -> String {
    let name = |id: &Id| actor_name(nodes, *id);
    match action {
        ActorModelAction::Deliver { src, dst, msg } => {
            format!("{} -> {}  {}", name(src), name(dst), describe_msg(msg))
        }
        ActorModelAction::Drop(env) => format!(
            "drop {} -> {}  {}",
            name(&env.src),
            name(&env.dst),
            describe_msg(&env.msg)
        ),
        ActorModelAction::Timeout(id, Timer::Election) => format!("{} election timeout", name(id)),
        ActorModelAction::Timeout(id, Timer::Heartbeat) => {
            format!("{} heartbeat timeout", name(id))
        }
        ActorModelAction::Timeout(id, Timer::Membership) => {
            format!("{} proposes removing a voter", name(id))
        }
        ActorModelAction::Timeout(id, Timer::Grow(Grow::AddVoter)) => {
            format!("{} proposes adding n{nodes} as a voter", name(id))
        }
        ActorModelAction::Timeout(id, Timer::Grow(Grow::Joint)) => {
            format!("{} proposes a joint configuration with n{nodes}", name(id))
        }
        ActorModelAction::Timeout(id, Timer::Compact) => {
            format!("{} compacts its applied log into a snapshot", name(id))
        }
        ActorModelAction::Crash(id) => format!("{} crashes", name(id)),
        ActorModelAction::Recover(id) => format!("{} restarts from its disk", name(id)),
        ActorModelAction::SelectRandom { actor, .. } => format!("{} random choice", name(actor)),
    }
}

fn describe_msg(msg: &Msg) -> String {
    match msg {
        // The core's own rendering (`1->2 AppendEntries term=2 prev=1@1 ...`).
        Msg::Raft(w) => w.decode().to_string(),
        Msg::Request { seq, op } => format!("request #{seq} {op:?}"),
        Msg::Reply { seq, ret } => format!("reply #{seq} {ret:?}"),
    }
}

/// The nodes of a state on one line (`x` marks a crashed node).
pub fn describe_state(cfg: &ModelCfg, state: &RaftState) -> String {
    let mut out = String::new();
    for (i, s, crashed) in nodes(cfg, state) {
        if !out.is_empty() {
            out.push_str(" | ");
        }
        let _ = write!(out, "n{}{} {s:?}", i + 1, if crashed { "x" } else { "" },);
    }
    for s in state.actor_states.iter().skip(cfg.nodes) {
        if let State::Client(c) = &**s {
            let _ = write!(out, " | done={}", c.done);
        }
    }
    out
}

/// A whole path: numbered steps, each with the nodes after it, and the number of steps.
/// Steps that changed nothing are left out (random walks record the deliveries they tried
/// that were no-ops).
pub fn describe_path(cfg: &ModelCfg, steps: &[(RaftState, Option<Action>)]) -> (String, usize) {
    let mut out = String::new();
    if let Some((first, _)) = steps.first() {
        let _ = writeln!(out, "   start: {}", describe_state(cfg, first));
    }
    let mut k = 0;
    for window in steps.windows(2) {
        let (before, action) = &window[0];
        let (after, _) = &window[1];
        let Some(a) = action else {
            continue;
        };
        if before == after {
            continue;
        }
        k += 1;
        let _ = writeln!(out, "{k:>3}. {}", describe_action(cfg.nodes, a));
        let _ = writeln!(out, "       {}", describe_state(cfg, after));
    }
    (out, k)
}
