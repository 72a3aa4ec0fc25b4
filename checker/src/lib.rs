//! Linearizability checking of histories: Wing & Gong backtracking with Lowe's memoization,
//! per key and keys in parallel, with counterexamples a user can read.
//!
//! ```
//! use checker::{check, ModelKind, Options, Verdict};
//! use histories::{Event, EventType::*, History, F};
//! use serde_json::json;
//!
//! // Process 0 writes 1 and completes; process 1 then reads the initial value: stale.
//! let events = vec![
//!     Event::client(0, Invoke, F::Write, None, json!(1)),
//!     Event::client(0, Ok, F::Write, None, json!(1)),
//!     Event::client(1, Invoke, F::Read, None, json!(null)),
//!     Event::client(1, Ok, F::Read, None, json!(0)),
//! ];
//! let history = History::from_events(events).unwrap();
//! let opts = Options { model: ModelKind::Register, initial: json!(0), ..Options::default() };
//! let report = check(&history, &opts);
//! assert_eq!(report.verdict, Verdict::NotLinearizable);
//! let cex = report.keys[0].counterexample.as_ref().unwrap();
//! assert_eq!(cex.op, 1); // the read
//! println!("{}", cex.explain());
//! ```
//!
//! Semantics (REFERENCE.md §1): `fail` = did not happen (dropped); `info` or no completion =
//! may take effect at any time after the invocation, or never. See `checker/README.md` for
//! the algorithm and why each pruning keeps the verdict.

#![deny(missing_docs)]

pub mod append;
pub mod generate;
mod memo;
pub mod model;
pub mod model_check;
pub mod oracle;
mod outcome;
mod prepare;
mod run;
mod search;
pub mod txn;
mod witness;

pub use outcome::{
    Blocked, Counterexample, KeyReport, OpSummary, PartialLinearization, Report, Step,
    UnknownReason, Verdict,
};

use serde_json::Value;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The sequential object a history is checked against (per key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ModelKind {
    /// Read and write.
    Register,
    /// Read, write and compare-and-set.
    CasRegister,
    /// Read, write, cas and append (strings concatenate; absent is `null`).
    #[default]
    Kv,
    /// Knossos' mutex: `acquire` succeeds only when the lock is free, `release` only when it
    /// is held (by anyone: Knossos' model has no owner); the lock starts free. Checked as a
    /// cas register over `false` / `true` (acquire = cas false→true, release = true→false).
    Mutex,
    /// Knossos' multi-register: `txn` ops reading and writing several named registers at
    /// once (see [`txn`]); `initial` is a map from register name to value, or one value
    /// for every register.
    MultiRegister,
}

impl ModelKind {
    /// Every name accepted by `FromStr`.
    pub const NAMES: [&'static str; 5] =
        ["register", "cas-register", "kv", "multi-register", "mutex"];
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
            ModelKind::MultiRegister => "multi-register",
            ModelKind::Mutex => "mutex",
        })
    }
}

/// A model name that is not one of [`ModelKind::NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model {0:?}: expected register, cas-register, kv, multi-register or mutex")]
pub struct UnknownModel(pub String);

impl FromStr for ModelKind {
    type Err = UnknownModel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "register" => Ok(ModelKind::Register),
            "cas-register" => Ok(ModelKind::CasRegister),
            "kv" => Ok(ModelKind::Kv),
            "multi-register" => Ok(ModelKind::MultiRegister),
            "mutex" => Ok(ModelKind::Mutex),
            other => Err(UnknownModel(other.to_string())),
        }
    }
}

/// How to check.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The model every key follows.
    pub model: ModelKind,
    /// Every key's initial value; `null` means absent.
    pub initial: Value,
    /// Give up (verdict `Unknown`, naming the key) after this long.
    pub time_limit: Option<Duration>,
    /// Give up (verdict `Unknown`, naming the key) when the search's memo tables hold more
    /// than this many bytes in total.
    pub memory_limit_bytes: Option<usize>,
    /// Keys searched in parallel.
    pub threads: usize,
    /// The issue-12 reductions of the search: an indeterminate op is placed only right
    /// before an op that observes its effect, and of two identical completed candidates only
    /// the one returning first is tried (README, "Pruning"). On by default; off only to
    /// compare with the plain search in tests and benchmarks.
    pub reductions: bool,
}

impl Default for Options {
    /// The kv model from absent, no time limit, a 4 GiB memory budget, one thread per core.
    fn default() -> Self {
        Options {
            model: ModelKind::Kv,
            initial: Value::Null,
            time_limit: None,
            memory_limit_bytes: Some(4 << 30),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            reductions: true,
        }
    }
}

/// Why a history cannot be checked against the model at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// An operation the model does not have (e.g. `cas` on a plain register).
    #[error("operation {op} (process {process}, invoked at event {event}) is a {f:?}, which the {model} model does not support")]
    UnsupportedOp {
        /// Index in `History::operations`.
        op: usize,
        /// Event index of its invocation.
        event: usize,
        /// Its process.
        process: u64,
        /// Its function.
        f: String,
        /// The model.
        model: ModelKind,
    },
    /// A value of the wrong shape (a cas that is not a pair, an append of a non-string).
    #[error("operation {op} (process {process}, invoked at event {event}): {f} needs {expected}, found {found}")]
    BadValue {
        /// Index in `History::operations`.
        op: usize,
        /// Event index of its invocation.
        event: usize,
        /// Its process.
        process: u64,
        /// Its function.
        f: String,
        /// The shape required.
        expected: &'static str,
        /// The value found.
        found: String,
    },
}

impl CheckError {
    /// The event index of the offending invocation.
    pub fn event(&self) -> usize {
        match self {
            CheckError::UnsupportedOp { event, .. } | CheckError::BadValue { event, .. } => *event,
        }
    }
}

/// Knossos' convention: a read that completed with `nil` says nothing about the value (its
/// models accept it in any state), whereas in our format `null` means "absent". Call this on
/// a Knossos history to give such reads that meaning: they become indeterminate reads, which
/// the search drops. Returns how many reads changed.
pub fn nil_reads_as_unknown(history: &mut histories::History) -> usize {
    let mut changed = 0;
    for op in &mut history.operations {
        let nil = op.output.as_ref().is_none_or(Value::is_null);
        if op.f == histories::F::Read && op.status == histories::Status::Ok && nil {
            op.status = histories::Status::Info;
            op.output = None;
            changed += 1;
        }
    }
    changed
}

/// Checks a history; an operation the model cannot check is an error.
pub fn try_check(history: &histories::History, opts: &Options) -> Result<Report, CheckError> {
    run::validate(history, opts.model)?;
    Ok(run::run(history, opts))
}

/// Checks a history. An operation the model cannot check gives verdict `Unknown` with
/// `Report::error` set (use [`try_check`] to get it as an error).
pub fn check(history: &histories::History, opts: &Options) -> Report {
    match try_check(history, opts) {
        Ok(report) => report,
        Err(e) => Report {
            verdict: Verdict::Unknown,
            model: opts.model.to_string(),
            initial: opts.initial.clone(),
            ops: history.operations.len(),
            keys: Vec::new(),
            time_secs: 0.0,
            error: Some(e.to_string()),
        },
    }
}
