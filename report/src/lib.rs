//! Self-contained HTML reports of histories and their checks, and a local browser of runs.
//!
//! A report is one HTML file that opens from disk with no network: a canvas timeline (one
//! lane per process, fault intervals shaded, zoom and pan, fine at 100,000 operations),
//! latency and throughput plots with the same shading, each counterexample drawn on the
//! timeline with its longest partial linearization as a table, the verdict per check,
//! statistics and the run's parameters. See `report/README.md`.
//!
//! ```
//! use checker::{check, ModelKind, Options};
//! use histories::{Event, EventType::*, History, F};
//! use serde_json::json;
//!
//! let history = History::from_events(vec![
//!     Event::client(0, Invoke, F::Write, None, json!(1)).at(0),
//!     Event::client(0, Ok, F::Write, None, json!(1)).at(2_000_000),
//!     Event::client(1, Invoke, F::Read, None, json!(null)).at(3_000_000),
//!     Event::client(1, Ok, F::Read, None, json!(0)).at(4_000_000),
//! ])
//! .unwrap();
//! let opts = Options { model: ModelKind::Register, initial: json!(0), ..Options::default() };
//! let checked = serde_json::to_value(check(&history, &opts)).unwrap();
//! let page = report::check_report(&history, &checked, "stale-read.jsonl", None);
//! assert!(page.starts_with("<!doctype html>"));
//! assert!(page.contains("Longest partial linearization"));
//! ```

#![deny(missing_docs)]

pub mod cex;
pub mod data;
pub mod escape;
pub mod page;
pub mod series;
mod serve;

pub use page::{CheckRow, PageInput};
pub use serve::{index_page, serve, serve_on, RunSummary};

use serde_json::Value;
use std::path::{Path, PathBuf};

/// Why a report could not be written or the run browser could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A run's history could not be read.
    #[error("{0}")]
    History(#[from] histories::ReadError),
    /// A run's `results.json` is not JSON.
    #[error("{path}: not JSON: {source}")]
    Results {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// The run browser was asked to listen beyond this machine.
    #[error("refusing to serve on {0}: the run browser listens on loopback addresses only (127.0.0.0/8, ::1)")]
    NotLoopback(std::net::SocketAddr),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A verdict as JSON (`not-linearizable`) as the page shows it (`not linearizable`).
fn verdict_text(v: &Value) -> String {
    v.as_str().unwrap_or("unknown").replace('-', " ")
}

/// Why a key is unknown, from `checker::UnknownReason`'s JSON form.
fn unknown_text(r: &Value) -> String {
    match r["cause"].as_str() {
        Some("time-limit") => "time limit reached".to_string(),
        Some("memory-limit") => format!("memory budget of {} bytes spent", r["limit_bytes"]),
        Some("stopped") => "not finished: another key failed first".to_string(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// The report of `checker check` on one history. `report` is the checker's report as JSON
/// (`serde_json::to_value(&checker_report)`): this crate does not link the checker, because
/// the checker's binary links this crate. `params` (any JSON object) adds parameters.
pub fn check_report(
    history: &histories::History,
    report: &Value,
    source: &str,
    params: Option<&Value>,
) -> String {
    let empty = Vec::new();
    let keys = report["keys"].as_array().unwrap_or(&empty);
    let count = |v: &str| keys.iter().filter(|k| k["verdict"] == v).count();
    let mut checks = vec![CheckRow {
        name: format!(
            "linearizability ({} model)",
            report["model"].as_str().unwrap_or("?")
        ),
        verdict: verdict_text(&report["verdict"]),
        detail: match report["error"].as_str() {
            Some(e) => format!("could not check: {e}"),
            None => format!(
                "{} keys: {} not linearizable, {} unknown; {:.3} s",
                keys.len(),
                count("not-linearizable"),
                count("unknown"),
                report["time_secs"].as_f64().unwrap_or(0.0)
            ),
        },
    }];
    for k in keys.iter().filter(|k| k["verdict"] != "linearizable") {
        let why = unknown_text(&k["unknown_reason"]);
        checks.push(CheckRow {
            name: format!("key {}", cex::key_of_json(&k["key"])),
            verdict: verdict_text(&k["verdict"]),
            detail: format!(
                "{} ops, {} searched, {} states, {:.3} s{}",
                k["ops"],
                k["searched_ops"],
                k["states_explored"],
                k["time_secs"].as_f64().unwrap_or(0.0),
                if why.is_empty() {
                    why
                } else {
                    format!("; {why}")
                }
            ),
        });
    }
    let mut p = vec![
        ("history".to_string(), source.to_string()),
        (
            "model".to_string(),
            report["model"].as_str().unwrap_or("?").to_string(),
        ),
        (
            "initial value".to_string(),
            data::show(&report["initial"], 200),
        ),
        ("operations".to_string(), report["ops"].to_string()),
        ("keys".to_string(), keys.len().to_string()),
        (
            "check time".to_string(),
            format!("{:.3} s", report["time_secs"].as_f64().unwrap_or(0.0)),
        ),
    ];
    if let Some(v) = params {
        p.extend(flatten_params(v));
    }
    let rows: Vec<Value> = keys
        .iter()
        .map(|k| {
            serde_json::json!({
                "key": cex::key_of_json(&k["key"]), "verdict": verdict_text(&k["verdict"]),
                "ops": k["ops"], "searched ops": k["searched_ops"], "states": k["states_explored"],
                "memo bytes": k["memo_bytes"], "seconds": k["time_secs"],
            })
        })
        .collect();
    let input = PageInput {
        title: format!("checker: {source}"),
        verdict: verdict_text(&report["verdict"]),
        checks,
        failures: cex::from_checker(report),
        params: p,
        tables: vec![("Keys".to_string(), Value::Array(rows))],
        notes: Vec::new(),
    };
    page::render(history, &input)
}

/// Top-level scalar fields of an object as parameters (nested values as compact JSON).
fn flatten_params(v: &Value) -> Vec<(String, String)> {
    match v.as_object() {
        Some(o) => o
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => "–".to_string(),
                    v => data::show(v, 300),
                };
                (k.clone(), s)
            })
            .collect(),
        None => vec![("parameters".to_string(), data::show(v, 300))],
    }
}

/// The fields of `results.json` that are drawn as sections of their own, not parameters.
const RESULT_SECTIONS: [&str; 6] = [
    "verdict",
    "linearizability",
    "append",
    "stats",
    "final_reads",
    "notes",
];

/// The report of a nemesis run, from its history and its `results.json` (as written by
/// `nemesis`: `verdict`, `linearizability`, `append`, `stats`, `notes`, and parameters).
pub fn run_report(history: &histories::History, results: &Value) -> String {
    let lin = &results["linearizability"];
    let mut checks = vec![CheckRow {
        name: "linearizability (kv model, per key)".to_string(),
        verdict: lin["verdict"]
            .as_str()
            .unwrap_or("unknown")
            .replace('-', " "),
        detail: match lin["error"].as_str() {
            Some(e) => format!("could not check: {e}"),
            None => format!(
                "{} keys checked in {:.1} s",
                lin["keys_checked"].as_u64().unwrap_or(0),
                lin["seconds"].as_f64().unwrap_or(0.0)
            ),
        },
    }];
    if let Some(probs) = lin["problems"].as_array() {
        for p in probs.iter().filter(|p| p.get("reason").is_some()) {
            checks.push(CheckRow {
                name: format!("key {}", p["key"].as_str().unwrap_or("?")),
                verdict: "unknown".to_string(),
                detail: p["reason"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    let append = &results["append"];
    if append.is_object() {
        let anomalies = append["anomalies"].as_array().map_or(0, Vec::len);
        checks.push(CheckRow {
            name: "append (every acknowledged append in the final read, in order)".to_string(),
            verdict: if anomalies == 0 { "valid" } else { "invalid" }.to_string(),
            detail: format!(
                "{} acknowledged appends over {} keys, {} anomalies",
                append["acknowledged"], append["keys"], anomalies
            ),
        });
    }
    let params: Vec<(String, String)> = flatten_params(results)
        .into_iter()
        .filter(|(k, _)| !RESULT_SECTIONS.contains(&k.as_str()))
        .collect();
    let mut tables = vec![(
        "Availability per fault window".to_string(),
        results["stats"]["windows"].clone(),
    )];
    if append.is_object() {
        tables.push(("Append anomalies".to_string(), append["anomalies"].clone()));
    }
    let notes = results["notes"]
        .as_array()
        .map(|n| {
            n.iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let title = match (results["target"].as_str(), results["run_dir"].as_str()) {
        (Some(t), Some(d)) => format!(
            "nemesis run {} ({t})",
            Path::new(d)
                .file_name()
                .map_or(d.into(), |n| n.to_string_lossy())
        ),
        _ => "nemesis run".to_string(),
    };
    let input = PageInput {
        title,
        verdict: results["verdict"].as_str().unwrap_or("unknown").to_string(),
        checks,
        failures: cex::from_results(results),
        params,
        tables,
        notes,
    };
    page::render(history, &input)
}

/// Reads `history.jsonl` and `results.json` in a run directory and renders its report.
pub fn render_run_dir(dir: &Path) -> Result<String, ReportError> {
    let results_path = dir.join("results.json");
    let text = std::fs::read_to_string(&results_path).map_err(io(&results_path))?;
    let results: Value = serde_json::from_str(&text).map_err(|source| ReportError::Results {
        path: results_path.clone(),
        source,
    })?;
    let history = histories::read_path(&dir.join("history.jsonl"), histories::Format::Jsonl)?;
    Ok(run_report(&history, &results))
}

/// Writes `report.html` into a run directory from its `history.jsonl` and `results.json`;
/// returns its path.
pub fn write_run_dir(dir: &Path) -> Result<PathBuf, ReportError> {
    let page = render_run_dir(dir)?;
    let out = dir.join("report.html");
    std::fs::write(&out, page).map_err(io(&out))?;
    Ok(out)
}

/// Writes `page` to `path`.
pub fn write(path: &Path, page: &str) -> Result<(), ReportError> {
    std::fs::write(path, page).map_err(io(path))
}
