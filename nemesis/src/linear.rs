//! Linearizability of a run's history, per key, through the checker crate.

use checker::{ModelKind, Options, Verdict};
use histories::History;
use serde::Serialize;
use serde_json::{json, Value};
use std::time::Duration;

/// The checker's answer, reduced to what the runner reports.
#[derive(Debug, Clone, Serialize)]
pub struct Linearizability {
    /// `linearizable`, `not-linearizable` or `unknown`.
    pub verdict: Verdict,
    /// Keys checked.
    pub keys_checked: usize,
    /// Keys that are not linearizable, or undecided, with the checker's explanation.
    pub problems: Vec<Value>,
    /// Set when the history could not be checked at all.
    pub error: Option<String>,
    /// Wall time of the check, seconds.
    pub seconds: f64,
    /// Plain-text explanations of the counterexamples (for the summary).
    #[serde(skip)]
    pub explanations: Vec<String>,
}

/// Checks `h` under the key-value model (every key starts absent), giving up after
/// `time_limit` or a 4 GiB memo budget with an `unknown` verdict naming the key.
pub fn check(h: &History, time_limit: Duration) -> Linearizability {
    let opts = Options {
        model: ModelKind::Kv,
        initial: Value::Null,
        time_limit: Some(time_limit),
        memory_limit_bytes: Some(4 << 30),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ..Options::default()
    };
    let report = checker::check(h, &opts);
    let mut problems = Vec::new();
    let mut explanations = Vec::new();
    for k in report.failures() {
        let key = k.key.as_ref().map(|k| k.to_string()).unwrap_or_default();
        if let Some(cex) = &k.counterexample {
            let text = cex.explain();
            explanations.push(format!("key {key}:\n{text}"));
            problems.push(
                json!({"key": key, "verdict": k.verdict, "explanation": text,
                                 "counterexample": cex}),
            );
        }
    }
    for k in report.unknowns() {
        let key = k.key.as_ref().map(|k| k.to_string()).unwrap_or_default();
        problems.push(json!({"key": key, "verdict": k.verdict,
                             "reason": k.unknown_reason.as_ref().map(|r| r.to_string())}));
    }
    Linearizability {
        verdict: report.verdict,
        keys_checked: report.keys.len(),
        problems,
        error: report.error.clone(),
        seconds: report.time_secs,
        explanations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use histories::{Event, EventType::*, Key, F};
    use serde_json::json;

    fn ev(p: u64, t: histories::EventType, f: F, v: Value) -> Event {
        Event::client(p, t, f, Some(Key::Str("k0".into())), v)
    }

    #[test]
    fn a_read_that_misses_an_acknowledged_append_is_not_linearizable() {
        let h = History::from_events(vec![
            ev(0, Invoke, F::Append, json!("1,")),
            ev(0, Ok, F::Append, json!("1,")),
            ev(1, Invoke, F::Read, Value::Null),
            ev(1, Ok, F::Read, Value::Null),
        ])
        .unwrap();
        let l = check(&h, Duration::from_secs(10));
        assert_eq!(l.verdict, Verdict::NotLinearizable);
        assert_eq!(l.problems[0]["key"], "k0");
        assert!(!l.explanations.is_empty());
    }

    #[test]
    fn appends_then_a_whole_read_are_linearizable() {
        let h = History::from_events(vec![
            ev(0, Invoke, F::Append, json!("1,")),
            ev(1, Invoke, F::Append, json!("2,")),
            ev(0, Ok, F::Append, json!("1,")),
            ev(1, Info, F::Append, json!("2,")),
            ev(2, Invoke, F::Read, Value::Null),
            ev(2, Ok, F::Read, json!("2,1,")),
        ])
        .unwrap();
        let l = check(&h, Duration::from_secs(10));
        assert_eq!(l.verdict, Verdict::Linearizable, "{:?}", l.problems);
        assert_eq!(l.keys_checked, 1);
    }
}
