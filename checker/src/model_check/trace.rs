//! Readable traces: a counterexample as one line per step (who sent what to whom, timeouts,
//! crashes), each followed by a one-line summary of the nodes.

use super::actor::{Msg, NodeState, State, Timer};
use super::properties::{nodes, ModelCfg, RaftState};
use raft::{EntryKind, Message, MessageBody, Role};
use stateright::actor::{ActorModelAction, Id};
use std::fmt::Write;

/// The action type of the model.
pub type Action = ActorModelAction<Msg, Timer, ()>;

/// `n1`… for nodes, `c1`… for clients.
pub fn actor_name(nodes: usize, id: Id) -> String {
    let i = usize::from(id);
    if i < nodes {
        format!("n{}", i + 1)
    } else {
        format!("c{}", i - nodes + 1)
    }
}

fn entry_text(e: &raft::Entry) -> String {
    let what = match &e.kind {
        EntryKind::NoOp => "noop".to_string(),
        EntryKind::ConfChange(c) => format!("{c:?}"),
        EntryKind::Normal(data) => match super::actor::decode_command(data) {
            Some((c, seq, op)) => format!("c{}#{seq} {op:?}", c + 1),
            None => format!("{data:?}"),
        },
    };
    format!("{}@t{} {what}", e.index, e.term)
}

/// One protocol message, briefly.
pub fn describe_message(m: &Message) -> String {
    let body = match &m.body {
        MessageBody::RequestVote {
            last_log_index,
            last_log_term,
            ..
        } => format!("last=({last_log_index},t{last_log_term})"),
        MessageBody::RequestVoteResponse { granted, .. } => {
            (if *granted { "granted" } else { "rejected" }).to_string()
        }
        MessageBody::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            commit,
        } => {
            let es: Vec<String> = entries.iter().map(entry_text).collect();
            format!(
                "prev=({prev_log_index},t{prev_log_term}) [{}] commit={commit}",
                es.join(", ")
            )
        }
        MessageBody::AppendEntriesResponse {
            success,
            index,
            conflict_index,
            conflict_term,
        } => {
            if *success {
                format!("ok match={index}")
            } else {
                format!("reject index={index} hint=({conflict_index},t{conflict_term})")
            }
        }
        MessageBody::Heartbeat { commit, ctx } => format!("commit={commit} ctx={ctx}"),
        MessageBody::HeartbeatResponse { ctx } => format!("ctx={ctx}"),
        MessageBody::InstallSnapshot { snapshot } => {
            format!("snapshot=({},t{})", snapshot.meta.index, snapshot.meta.term)
        }
    };
    format!("{} t{} {body}", m.body.name(), m.term)
}

fn role_text(role: Role) -> &'static str {
    match role {
        Role::Follower => "F",
        Role::PreCandidate => "P",
        Role::Candidate => "C",
        Role::Leader => "L",
    }
}

/// One node, briefly: role, term, vote, log terms, commit, register value.
pub fn describe_node(s: &NodeState) -> String {
    let st = s.node.status();
    let log: Vec<String> = s
        .node
        .log()
        .all_entries()
        .iter()
        .map(|e| e.term.to_string())
        .collect();
    let vote = st.vote.map_or("-".into(), |v| format!("n{v}"));
    format!(
        "{} t{} vote={} log=[{}] commit={} value={}",
        role_text(st.role),
        st.term,
        vote,
        log.join(","),
        st.commit,
        s.machine.value
    )
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
        ActorModelAction::Crash(id) => format!("{} crashes", name(id)),
        ActorModelAction::Recover(id) => format!("{} restarts from its disk", name(id)),
        ActorModelAction::SelectRandom { actor, .. } => format!("{} random choice", name(actor)),
    }
}

fn describe_msg(msg: &Msg) -> String {
    match msg {
        Msg::Raft(w) => describe_message(&w.decode()),
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
        let _ = write!(
            out,
            "n{}{} {}",
            i + 1,
            if crashed { "x" } else { "" },
            describe_node(s)
        );
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
