//! What a check returns: the verdict, one report per key, and for a key that is not
//! linearizable a counterexample kept as data (op ids into `History::operations`, states as
//! JSON) so that an HTML report can draw it, plus [`Counterexample::explain`] as plain text.
//!
//! (Named `outcome`, not `report`, so that `report` means one thing: the crate that draws
//! the HTML pages.)

use histories::{History, Key, Operation, Status};
use serde::Serialize;
use serde_json::Value;
use std::fmt::{self, Write as _};

/// The answer for a history or a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Some order of the operations respects real time and the model.
    Linearizable,
    /// No such order exists.
    NotLinearizable,
    /// The search stopped before deciding (time or memory budget, or another key failed
    /// first).
    Unknown,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable => "not linearizable",
            Verdict::Unknown => "unknown",
        })
    }
}

/// Why a key's verdict is `Unknown`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "cause")]
pub enum UnknownReason {
    /// The time limit passed while this key was being searched.
    TimeLimit,
    /// The memory budget was spent while this key was being searched.
    MemoryLimit {
        /// The budget.
        limit_bytes: usize,
    },
    /// Another key was found not linearizable first, so this one was not finished.
    Stopped,
}

impl fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnknownReason::TimeLimit => {
                f.write_str("time limit reached (raise it: --time-limit SECS)")
            }
            UnknownReason::MemoryLimit { limit_bytes } => write!(
                f,
                "memory budget of {limit_bytes} bytes spent (raise it: --memory-limit MIB)"
            ),
            UnknownReason::Stopped => f.write_str("not finished: another key failed first"),
        }
    }
}

/// One key's result.
#[derive(Debug, Clone, Serialize)]
pub struct KeyReport {
    /// The key (`None`: the single register of a history without keys).
    pub key: Option<Key>,
    /// Operations on this key in the history (all statuses).
    pub ops: usize,
    /// Operations the search had to place (after dropping failed ops, indeterminate reads
    /// and unobservable indeterminate writes).
    pub searched_ops: usize,
    /// This key's verdict.
    pub verdict: Verdict,
    /// Search time for this key, in seconds.
    pub time_secs: f64,
    /// Configurations (linearized set, state) the search entered.
    pub states_explored: u64,
    /// Bytes the memo table held at the end (what the memory budget counts).
    pub memo_bytes: usize,
    /// Set when `verdict` is `NotLinearizable`.
    pub counterexample: Option<Counterexample>,
    /// Set when `verdict` is `Unknown`.
    pub unknown_reason: Option<UnknownReason>,
}

/// The result of checking a history.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Not linearizable if any key is; else unknown if any key is; else linearizable.
    pub verdict: Verdict,
    /// The model's name (`register`, `cas-register`, `kv`).
    pub model: String,
    /// The initial value of every key (`null`: absent).
    pub initial: Value,
    /// Client operations in the history.
    pub ops: usize,
    /// Per key, in key order.
    pub keys: Vec<KeyReport>,
    /// Wall time of the check, in seconds.
    pub time_secs: f64,
    /// Set when the history could not be checked at all (an operation the model does not
    /// know, a malformed value); the verdict is then `Unknown`.
    pub error: Option<String>,
}

impl Report {
    /// The key reports that are not linearizable.
    pub fn failures(&self) -> impl Iterator<Item = &KeyReport> {
        self.keys
            .iter()
            .filter(|k| k.verdict == Verdict::NotLinearizable)
    }

    /// The key reports whose verdict is unknown, with the reason.
    pub fn unknowns(&self) -> impl Iterator<Item = &KeyReport> {
        self.keys.iter().filter(|k| k.verdict == Verdict::Unknown)
    }
}

/// An operation as a counterexample shows it, so the text needs no history beside it.
#[derive(Debug, Clone, Serialize)]
pub struct OpSummary {
    /// Index in `History::operations`.
    pub id: usize,
    /// The client process.
    pub process: u64,
    /// `read`, `write`, `cas` or `append`.
    pub f: String,
    /// The invocation's value.
    pub input: Value,
    /// The completion's value (`ok` ops only).
    pub output: Option<Value>,
    /// `ok` or `info` (indeterminate).
    pub status: String,
    /// Event index of the invocation.
    pub invoke_index: usize,
    /// Event index of the completion, if any.
    pub complete_index: Option<usize>,
}

impl OpSummary {
    pub(crate) fn of(op: &Operation) -> Self {
        OpSummary {
            id: op.id,
            process: op.process,
            f: op.f.to_string(),
            input: op.input.clone(),
            output: op.output.clone().filter(|_| op.status == Status::Ok),
            status: match op.status {
                Status::Ok => "ok",
                Status::Fail => "fail",
                Status::Info => "info",
            }
            .to_string(),
            invoke_index: op.invoke_index,
            complete_index: op.complete_index,
        }
    }

    /// `read -> 3`, `write 1`, `cas 1->2`, `append "x"`, with `?` for indeterminate ops.
    pub fn describe(&self) -> String {
        let unknown = self.status != "ok";
        match self.f.as_str() {
            "read" if unknown => "read -> ?".to_string(),
            "read" => format!(
                "read -> {}",
                show(self.output.as_ref().unwrap_or(&Value::Null))
            ),
            "cas" => match self.input.as_array().map(Vec::as_slice) {
                Some([e, n]) => format!("cas {}->{}", show(e), show(n)),
                _ => format!("cas {}", show(&self.input)),
            },
            // A completed txn shows what its reads returned.
            "txn" => format!("txn {}", show(self.output.as_ref().unwrap_or(&self.input))),
            f => format!("{f} {}", show(&self.input)),
        }
    }

    fn when(&self) -> String {
        match self.complete_index {
            Some(c) if self.status == "ok" => format!("events {}..{}", self.invoke_index, c),
            _ => format!("invoked at event {}, outcome unknown", self.invoke_index),
        }
    }
}

/// A JSON value for humans: `null` is shown as `nil` (absent).
fn show(v: &Value) -> String {
    match v {
        Value::Null => "nil".to_string(),
        other => other.to_string(),
    }
}

/// One step of a partial linearization.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The operation (id into `History::operations`).
    pub op: usize,
    /// The key's value after it.
    pub state_after: Value,
}

/// An operation that could have been linearized next, and why it could not.
#[derive(Debug, Clone, Serialize)]
pub struct Blocked {
    /// The operation (id into `History::operations`).
    pub op: usize,
    /// Why it is illegal in the state the partial linearization ends in.
    pub reason: String,
}

/// One longest partial linearization the search reached.
#[derive(Debug, Clone, Serialize)]
pub struct PartialLinearization {
    /// The operations in order, with the state after each.
    pub steps: Vec<Step>,
    /// The state at the end.
    pub final_state: Value,
    /// The pending operations that could have come next, each with why not.
    pub blocked: Vec<Blocked>,
}

/// Why a key is not linearizable, as data.
#[derive(Debug, Clone, Serialize)]
pub struct Counterexample {
    /// The key.
    pub key: Option<Key>,
    /// The model's initial state.
    pub initial_state: Value,
    /// The completed operation that cannot be linearized: after the longest partial
    /// linearization, it must take effect before it returns, and no order allows it.
    pub op: usize,
    /// Operations on this key whose real-time interval overlaps `op`'s.
    pub concurrent: Vec<usize>,
    /// The longest partial linearizations the search reached (most completed ops placed).
    pub linearizations: Vec<PartialLinearization>,
    /// Completed operations on the key whose effect the search had to place.
    pub searched_ok_ops: usize,
    /// Every operation mentioned above.
    pub ops: Vec<OpSummary>,
}

impl Counterexample {
    /// The summary of an operation mentioned in this counterexample.
    pub fn op_summary(&self, id: usize) -> Option<&OpSummary> {
        self.ops
            .binary_search_by_key(&id, |o| o.id)
            .ok()
            .map(|i| &self.ops[i])
    }

    fn line(&self, id: usize) -> String {
        match self.op_summary(id) {
            Some(o) => format!(
                "#{} process {} {} ({})",
                o.id,
                o.process,
                o.describe(),
                o.when()
            ),
            None => format!("#{id}"),
        }
    }

    /// Plain text a user can follow without reading the checker's code.
    pub fn explain(&self) -> String {
        let mut t = String::new();
        let key = match &self.key {
            Some(k) => format!("key {}", serde_json::to_string(k).unwrap_or_default()),
            None => "the register".to_string(),
        };
        let _ = writeln!(
            t,
            "{key} is not linearizable (initial value {}).",
            show(&self.initial_state)
        );
        let _ = writeln!(t, "Operation {} cannot be linearized:", self.line(self.op));
        let _ = writeln!(
            t,
            "no order of the operations that respects real time and the model puts it before \
             its completion."
        );
        if let Some(lin) = self.linearizations.first() {
            let placed = lin
                .steps
                .iter()
                .filter(|s| self.op_summary(s.op).is_some_and(|o| o.status == "ok"))
                .count();
            let _ = writeln!(
                t,
                "\nLongest partial linearization ({placed} of {} completed operations placed):",
                self.searched_ok_ops
            );
            let _ = writeln!(t, "  {:<41} value {}", "start", show(&self.initial_state));
            for (i, s) in lin.steps.iter().enumerate() {
                let what = self
                    .op_summary(s.op)
                    .map(|o| format!("#{} p{} {}", o.id, o.process, o.describe()))
                    .unwrap_or_default();
                let _ = writeln!(
                    t,
                    "  {:>3}. {what:<36} value {}",
                    i + 1,
                    show(&s.state_after)
                );
            }
            let _ = writeln!(
                t,
                "Then the value is {}, and every operation that could take effect next is impossible:",
                show(&lin.final_state)
            );
            for b in &lin.blocked {
                let _ = writeln!(t, "  {}: {}", self.line(b.op), b.reason);
            }
        }
        if self.linearizations.len() > 1 {
            let ends: Vec<String> = self.linearizations[1..]
                .iter()
                .map(|l| show(&l.final_state))
                .collect();
            let _ = writeln!(
                t,
                "Other partial linearizations as long end with the value {}; no operation can \
                 follow them either.",
                ends.join(", ")
            );
        }
        if !self.concurrent.is_empty() {
            let ids: Vec<String> = self.concurrent.iter().map(|i| format!("#{i}")).collect();
            let _ = writeln!(
                t,
                "\nOperations concurrent with #{}: {}. The search tried every order of them \
                 (and every placement of indeterminate operations) and none works.",
                self.op,
                ids.join(", ")
            );
        }
        t
    }
}

/// Collects the summaries of the ops a counterexample mentions.
pub(crate) fn summaries(history: &History, ids: impl IntoIterator<Item = usize>) -> Vec<OpSummary> {
    let mut ids: Vec<usize> = ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .map(|i| OpSummary::of(&history.operations[i]))
        .collect()
}
