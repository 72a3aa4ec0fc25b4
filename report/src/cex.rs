//! Counterexamples as the page shows them, read from the checker's JSON form so that a
//! report can be drawn from a live `checker::Report` and from a run's `results.json` alike.

use crate::data::show;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An operation a counterexample mentions (the JSON form of `checker::OpSummary`).
#[derive(Debug, Clone, Deserialize)]
pub struct OpView {
    /// Index in `History::operations`.
    pub id: usize,
    /// The client process.
    pub process: u64,
    /// Function name.
    pub f: String,
    /// Invocation value.
    #[serde(default)]
    pub input: Value,
    /// Completion value (ok ops).
    #[serde(default)]
    pub output: Option<Value>,
    /// `ok`, `fail` or `info`.
    pub status: String,
}

impl OpView {
    /// `read -> 3`, `write 1`, `cas 1->2`, with `?` for an unknown outcome.
    pub fn describe(&self) -> String {
        let known = self.status == "ok";
        match self.f.as_str() {
            "read" if !known => "read -> ?".to_string(),
            "read" => format!(
                "read -> {}",
                show(self.output.as_ref().unwrap_or(&Value::Null), 120)
            ),
            "cas" => match self.input.as_array().map(Vec::as_slice) {
                Some([e, n]) => format!("cas {}->{}", show(e, 60), show(n, 60)),
                _ => format!("cas {}", show(&self.input, 120)),
            },
            f => format!("{f} {}", show(&self.input, 120)),
        }
    }
}

/// One step of a partial linearization.
#[derive(Debug, Clone, Deserialize)]
pub struct StepView {
    /// The operation id.
    pub op: usize,
    /// The state after it.
    pub state_after: Value,
}

/// An operation that could not come next.
#[derive(Debug, Clone, Deserialize)]
pub struct BlockedView {
    /// The operation id.
    pub op: usize,
    /// Why not.
    pub reason: String,
}

/// A longest partial linearization.
#[derive(Debug, Clone, Deserialize)]
pub struct LinView {
    /// Steps in order.
    pub steps: Vec<StepView>,
    /// State at the end.
    pub final_state: Value,
    /// What could not come next.
    #[serde(default)]
    pub blocked: Vec<BlockedView>,
}

/// The JSON form of `checker::Counterexample`.
#[derive(Debug, Clone, Deserialize)]
pub struct CexView {
    /// Initial state.
    pub initial_state: Value,
    /// The operation that cannot be linearized.
    pub op: usize,
    /// Operations concurrent with it.
    #[serde(default)]
    pub concurrent: Vec<usize>,
    /// The longest partial linearizations.
    #[serde(default)]
    pub linearizations: Vec<LinView>,
    /// Completed operations the search had to place.
    #[serde(default)]
    pub searched_ok_ops: usize,
    /// Every operation mentioned.
    #[serde(default)]
    pub ops: Vec<OpView>,
}

impl CexView {
    /// The summary of operation `id`, if mentioned.
    pub fn op(&self, id: usize) -> Option<&OpView> {
        self.ops.iter().find(|o| o.id == id)
    }
}

/// A key that is not linearizable, with what the page shows about it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The key's label (as in the timeline's key list).
    pub key: String,
    /// The checker's plain-text explanation.
    pub explanation: String,
    /// The counterexample as data, when its JSON could be read.
    pub cex: Option<CexView>,
}

/// What the timeline needs to draw a counterexample.
#[derive(Debug, Clone, Serialize)]
pub struct CexMarks {
    /// Key label.
    pub key: String,
    /// The op that cannot be linearized.
    pub op: usize,
    /// Concurrent ops.
    pub concurrent: Vec<usize>,
    /// The first longest partial linearization's ops, in order.
    pub steps: Vec<usize>,
}

impl Failure {
    /// The marks to draw, if the counterexample is known.
    pub fn marks(&self) -> Option<CexMarks> {
        let c = self.cex.as_ref()?;
        Some(CexMarks {
            key: self.key.clone(),
            op: c.op,
            concurrent: c.concurrent.clone(),
            steps: c
                .linearizations
                .first()
                .map(|l| l.steps.iter().map(|s| s.op).collect())
                .unwrap_or_default(),
        })
    }
}

/// A key as JSON (`checker::Report`'s form) as the timeline labels it.
pub fn key_of_json(k: &Value) -> String {
    match k {
        Value::Null => "-".to_string(),
        Value::String(s) if s.is_empty() => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The failures of a checker report, given as its JSON (`serde_json::to_value(&report)`).
pub fn from_checker(report: &Value) -> Vec<Failure> {
    let Some(keys) = report["keys"].as_array() else {
        return Vec::new();
    };
    keys.iter()
        .filter(|k| k["verdict"] == "not-linearizable" && !k["counterexample"].is_null())
        .map(|k| Failure {
            key: key_of_json(&k["key"]),
            explanation: k["explanation"].as_str().unwrap_or_default().to_string(),
            cex: serde_json::from_value(k["counterexample"].clone()).ok(),
        })
        .collect()
}

/// The failures recorded in a run's `results.json` (`linearizability.problems`).
pub fn from_results(results: &Value) -> Vec<Failure> {
    let Some(problems) = results["linearizability"]["problems"].as_array() else {
        return Vec::new();
    };
    problems
        .iter()
        .filter(|p| p.get("counterexample").is_some_and(|c| !c.is_null()))
        .map(|p| {
            let key = key_of_json(&p["key"]);
            Failure {
                key,
                explanation: p["explanation"].as_str().unwrap_or_default().to_string(),
                cex: serde_json::from_value(p["counterexample"].clone()).ok(),
            }
        })
        .collect()
}
