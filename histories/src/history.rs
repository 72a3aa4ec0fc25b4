//! A whole history: its events, and the operations they pair into.

use crate::{Event, EventType, Key, Process, F};
use serde_json::Value;
use std::collections::BTreeMap;

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Completed with `ok`: it happened, between its invocation and its completion.
    Ok,
    /// Completed with `fail`: it definitely did not happen. Checkers drop it.
    Fail,
    /// Completed with `info`, or never completed: it may have happened at any time after its
    /// invocation, or never.
    Info,
}

/// One client operation: an invocation paired with its completion (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// Position in [`History::operations`].
    pub id: usize,
    /// The client process.
    pub process: u64,
    /// The function.
    pub f: F,
    /// The key (`None`: a single register).
    pub key: Option<Key>,
    /// The invocation's value (`null` for reads, `[expected, new]` for cas, …).
    pub input: Value,
    /// The completion's value, for `ok` and `fail` completions; `None` for info or missing.
    pub output: Option<Value>,
    /// How it ended.
    pub status: Status,
    /// Index in [`History::events`] of the invocation.
    pub invoke_index: usize,
    /// Index in [`History::events`] of the completion, `None` if it never completed.
    pub complete_index: Option<usize>,
}

impl Operation {
    /// The invocation time in nanoseconds, if the history has times.
    pub fn invoke_time(&self, h: &History) -> Option<u64> {
        h.events[self.invoke_index].time
    }

    /// The completion time in nanoseconds, if it completed and the history has times.
    pub fn complete_time(&self, h: &History) -> Option<u64> {
        self.complete_index.and_then(|i| h.events[i].time)
    }
}

/// A history: every event in order, and the client operations they form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Every event, in real-time order (nemesis events included).
    pub events: Vec<Event>,
    /// Client operations, ordered by invocation.
    pub operations: Vec<Operation>,
}

/// Why a sequence of events is not a well-formed history. `index` is the event's position
/// (0-based) in the sequence; readers turn it into a file line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairingError {
    /// A completion whose process has no open invocation.
    #[error("{kind} completion by process {process} with no open invocation")]
    CompletionWithoutInvoke {
        /// Event position.
        index: usize,
        /// The process.
        process: u64,
        /// `ok`, `fail` or `info`.
        kind: EventType,
    },
    /// A second invocation on a process that already has an open operation.
    #[error("process {process} invokes again while its operation invoked at event {open} is still open (a process is sequential)")]
    BusyProcess {
        /// Event position.
        index: usize,
        /// The process.
        process: u64,
        /// Position of the open invocation.
        open: usize,
    },
    /// A process used again after one of its operations completed with `info`.
    #[error("process {process} is used again after its operation crashed with info at event {crashed} (a process is never reused after info)")]
    ReusedAfterInfo {
        /// Event position.
        index: usize,
        /// The process.
        process: u64,
        /// Position of the info completion.
        crashed: usize,
    },
    /// A completion whose `f` differs from its invocation's.
    #[error("process {process} completes {found} but invoked {expected}")]
    MismatchedF {
        /// Event position.
        index: usize,
        /// The process.
        process: u64,
        /// The invoked function.
        expected: F,
        /// The completion's function.
        found: F,
    },
    /// A completion whose key differs from its invocation's.
    #[error("process {process} completes on key {} but invoked on key {}", key_text(.found), key_text(.expected))]
    MismatchedKey {
        /// Event position.
        index: usize,
        /// The process.
        process: u64,
        /// The invoked key.
        expected: Option<Key>,
        /// The completion's key.
        found: Option<Key>,
    },
}

impl PairingError {
    /// The position of the earlier event the error refers to: the open invocation of a
    /// busy process, or the `info` that retired a reused one.
    pub fn related_index(&self) -> Option<usize> {
        match self {
            PairingError::BusyProcess { open, .. } => Some(*open),
            PairingError::ReusedAfterInfo { crashed, .. } => Some(*crashed),
            _ => None,
        }
    }

    /// The position of the offending event.
    pub fn index(&self) -> usize {
        match self {
            PairingError::CompletionWithoutInvoke { index, .. }
            | PairingError::BusyProcess { index, .. }
            | PairingError::ReusedAfterInfo { index, .. }
            | PairingError::MismatchedF { index, .. }
            | PairingError::MismatchedKey { index, .. } => *index,
        }
    }
}

impl History {
    /// Pairs events into operations, enforcing Jepsen's rules (REFERENCE.md §1): a process is
    /// sequential, a completion needs an open invocation, and a process is never reused after
    /// `info`. Nemesis events are kept in `events` but form no operation. An invocation left
    /// open at the end counts as `info`.
    pub fn from_events(events: Vec<Event>) -> Result<History, PairingError> {
        let mut operations: Vec<Operation> = Vec::new();
        // process -> index into `operations` of its open operation
        let mut open: BTreeMap<u64, usize> = BTreeMap::new();
        // process -> event index of the info that retired it
        let mut retired: BTreeMap<u64, usize> = BTreeMap::new();
        for (index, e) in events.iter().enumerate() {
            let Process::Client(process) = e.process else {
                continue;
            };
            if let Some(&crashed) = retired.get(&process) {
                return Err(PairingError::ReusedAfterInfo {
                    index,
                    process,
                    crashed,
                });
            }
            match e.kind {
                EventType::Invoke => {
                    if let Some(&op) = open.get(&process) {
                        return Err(PairingError::BusyProcess {
                            index,
                            process,
                            open: operations[op].invoke_index,
                        });
                    }
                    open.insert(process, operations.len());
                    operations.push(Operation {
                        id: operations.len(),
                        process,
                        f: e.f.clone(),
                        key: e.key.clone(),
                        input: e.value.clone(),
                        output: None,
                        status: Status::Info,
                        invoke_index: index,
                        complete_index: None,
                    });
                }
                kind => {
                    let Some(op) = open.remove(&process) else {
                        return Err(PairingError::CompletionWithoutInvoke {
                            index,
                            process,
                            kind,
                        });
                    };
                    let op = &mut operations[op];
                    if op.f != e.f {
                        return Err(PairingError::MismatchedF {
                            index,
                            process,
                            expected: op.f.clone(),
                            found: e.f.clone(),
                        });
                    }
                    if e.key.is_some() && op.key != e.key {
                        return Err(PairingError::MismatchedKey {
                            index,
                            process,
                            expected: op.key.clone(),
                            found: e.key.clone(),
                        });
                    }
                    op.complete_index = Some(index);
                    match kind {
                        EventType::Ok => {
                            op.status = Status::Ok;
                            op.output = Some(e.value.clone());
                        }
                        EventType::Fail => {
                            op.status = Status::Fail;
                            op.output = Some(e.value.clone());
                        }
                        _ => {
                            op.status = Status::Info;
                            retired.insert(process, index);
                        }
                    }
                }
            }
        }
        Ok(History { events, operations })
    }
}

/// A key as a user wrote it (JSON: `"b"`, `7`), or `none`, for error messages.
fn key_text(key: &Option<Key>) -> String {
    key.as_ref().map_or("none".to_string(), |k| {
        serde_json::to_string(k).unwrap_or_else(|_| k.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(p: u64, kind: EventType, f: F, v: Value) -> Event {
        Event::client(p, kind, f, None, v)
    }

    #[test]
    fn pairs_ok_fail_info_and_pending() {
        let h = History::from_events(vec![
            ev(0, EventType::Invoke, F::Write, json!(1)),
            ev(1, EventType::Invoke, F::Read, Value::Null),
            ev(0, EventType::Ok, F::Write, json!(1)),
            ev(1, EventType::Info, F::Read, Value::Null),
            ev(0, EventType::Invoke, F::Cas, json!([1, 2])),
            ev(0, EventType::Fail, F::Cas, json!([1, 2])),
            ev(2, EventType::Invoke, F::Write, json!(3)),
        ])
        .unwrap();
        let st: Vec<Status> = h.operations.iter().map(|o| o.status).collect();
        assert_eq!(st, [Status::Ok, Status::Info, Status::Fail, Status::Info]);
        assert_eq!(h.operations[3].complete_index, None);
        assert_eq!(h.operations[0].output, Some(json!(1)));
    }

    #[test]
    fn rejects_reuse_after_info() {
        let err = History::from_events(vec![
            ev(1, EventType::Invoke, F::Read, Value::Null),
            ev(1, EventType::Info, F::Read, Value::Null),
            ev(1, EventType::Invoke, F::Read, Value::Null),
        ])
        .unwrap_err();
        assert_eq!(
            err,
            PairingError::ReusedAfterInfo {
                index: 2,
                process: 1,
                crashed: 1
            }
        );
    }

    #[test]
    fn rejects_busy_process_and_orphan_completion() {
        let busy = History::from_events(vec![
            ev(1, EventType::Invoke, F::Read, Value::Null),
            ev(1, EventType::Invoke, F::Read, Value::Null),
        ]);
        assert!(matches!(
            busy,
            Err(PairingError::BusyProcess { index: 1, .. })
        ));
        let orphan = History::from_events(vec![ev(4, EventType::Ok, F::Read, json!(1))]);
        assert!(matches!(
            orphan,
            Err(PairingError::CompletionWithoutInvoke { index: 0, .. })
        ));
    }
}
