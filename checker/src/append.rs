//! The append invariants of a list-append history: no acknowledged append lost, none missed
//! by a read that began after it was acknowledged, reads of a key only grow, no element
//! twice, none read that failed or was never appended.
//!
//! An append history writes comma-terminated elements to a key (`append k "7,"`) and reads
//! the whole value back (`"3,7,"`). The linearizability search checks such a history against
//! the kv model; these checks explain, per key, what broke in words a reader of the run can
//! act on (which element, which process, when it was acknowledged). `checker check` runs
//! them on any history with an append, and the nemesis on its append runs.

use histories::{History, Key, Operation, Status, F};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Splits a value into its elements (`"1,2,"` → `["1", "2"]`).
pub fn elements(value: &str) -> Vec<&str> {
    value.split(',').filter(|s| !s.is_empty()).collect()
}

/// Whether `h` has an append operation (and so an append report worth giving).
pub fn has_appends(h: &History) -> bool {
    h.operations.iter().any(|o| o.f == F::Append)
}

/// One violation of the append invariants, explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AppendAnomaly {
    /// An acknowledged append is missing from the final read of its key.
    LostWrite {
        /// The key.
        key: String,
        /// The element.
        element: String,
        /// The process whose `ok` acknowledged it.
        process: u64,
        /// Invocation time of the acknowledged append, ns since the test start.
        invoked_ns: u64,
        /// Completion (acknowledgement) time, ns.
        acked_ns: u64,
        /// The final value of the key, for reference.
        final_value: String,
    },
    /// A read that is not a prefix of a read that started after it ended.
    NotAPrefix {
        /// The key.
        key: String,
        /// The earlier read: process and value.
        earlier_process: u64,
        /// Its value.
        earlier: String,
        /// The later read: process.
        later_process: u64,
        /// Its value.
        later: String,
    },
    /// A read that misses an append acknowledged before the read was invoked, though later
    /// reads hold it (a stale read: the append took effect before the read began, so the
    /// read must see it). Reported once per read, with the append acknowledged last.
    StaleRead {
        /// The key.
        key: String,
        /// The element missed.
        element: String,
        /// The process whose `ok` acknowledged the append.
        append_process: u64,
        /// When the append was acknowledged, ns since the test start.
        acked_ns: u64,
        /// The reading process.
        read_process: u64,
        /// When the read was invoked, ns (after `acked_ns`).
        read_invoked_ns: u64,
        /// How many acknowledged elements the read missed.
        missed: usize,
        /// The value read.
        value: String,
    },
    /// Two reads of a key neither of which is a prefix of the other (the values diverged).
    Diverged {
        /// The key.
        key: String,
        /// One read.
        a: String,
        /// The other.
        b: String,
    },
    /// An element that appears twice in one read.
    Duplicate {
        /// The key.
        key: String,
        /// The element.
        element: String,
        /// The reading process.
        process: u64,
        /// The value read.
        value: String,
    },
    /// An append that completed with `fail` (definitely not applied) but was read.
    FailedButPresent {
        /// The key.
        key: String,
        /// The element.
        element: String,
        /// The process that got `fail`.
        process: u64,
    },
    /// A read holds an element that no append of that key ever wrote.
    Phantom {
        /// The key.
        key: String,
        /// The element.
        element: String,
    },
}

/// What the append checks found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AppendReport {
    /// Keys with at least one append.
    pub keys: usize,
    /// Acknowledged appends checked against a final read.
    pub acknowledged: usize,
    /// Keys that had acknowledged appends but no successful final read (not checkable).
    pub keys_without_final_read: Vec<String>,
    /// Every anomaly found.
    pub anomalies: Vec<AppendAnomaly>,
}

impl AppendReport {
    /// Whether every invariant held.
    pub fn valid(&self) -> bool {
        self.anomalies.is_empty()
    }
}

fn key_name(k: &Option<Key>) -> String {
    k.as_ref().map(|k| k.to_string()).unwrap_or_default()
}

fn time(h: &History, idx: Option<usize>) -> u64 {
    idx.and_then(|i| h.events[i].time).unwrap_or(0)
}

/// Checks the append invariants of `h`, key by key. The final read of a key is its last
/// successful read (the runner's final phase reads every key after all clients stopped).
pub fn check_append(h: &History) -> AppendReport {
    let mut by_key: BTreeMap<String, Vec<&Operation>> = BTreeMap::new();
    for op in &h.operations {
        by_key.entry(key_name(&op.key)).or_default().push(op);
    }
    let mut report = AppendReport::default();
    for (key, ops) in by_key {
        let appends: Vec<&Operation> = ops.iter().copied().filter(|o| o.f == F::Append).collect();
        let reads: Vec<(&Operation, Vec<String>)> = ops
            .iter()
            .copied()
            .filter(|o| o.f == F::Read && o.status == Status::Ok)
            .map(|o| {
                let v = o.output.as_ref().and_then(Value::as_str).unwrap_or("");
                (o, elements(v).into_iter().map(String::from).collect())
            })
            .collect();
        if !appends.is_empty() {
            report.keys += 1;
        }
        check_reads(h, &key, &reads, &mut report.anomalies);
        check_elements(&key, &appends, &reads, &mut report.anomalies);
        let acked: Vec<&Operation> = appends
            .iter()
            .copied()
            .filter(|o| o.status == Status::Ok)
            .collect();
        if acked.is_empty() {
            continue;
        }
        let Some((_, final_read)) = reads.iter().max_by_key(|(o, _)| o.complete_index) else {
            report.keys_without_final_read.push(key);
            continue;
        };
        let present: BTreeSet<&str> = final_read.iter().map(String::as_str).collect();
        check_stale_reads(h, &key, &acked, &reads, &present, &mut report.anomalies);
        for op in acked {
            report.acknowledged += 1;
            let element = op.input.as_str().unwrap_or("").trim_end_matches(',');
            if !present.contains(element) {
                report.anomalies.push(AppendAnomaly::LostWrite {
                    key: key.clone(),
                    element: element.to_string(),
                    process: op.process,
                    invoked_ns: time(h, Some(op.invoke_index)),
                    acked_ns: time(h, op.complete_index),
                    final_value: final_read.join(","),
                });
            }
        }
    }
    report
}

/// Reads of one key only grow: each is a prefix of every read that starts after it ends,
/// every two reads are comparable, and no read holds an element twice.
fn check_reads(
    h: &History,
    key: &str,
    reads: &[(&Operation, Vec<String>)],
    out: &mut Vec<AppendAnomaly>,
) {
    for (op, els) in reads {
        let mut seen = BTreeSet::new();
        for e in els {
            if !seen.insert(e) {
                out.push(AppendAnomaly::Duplicate {
                    key: key.into(),
                    element: e.clone(),
                    process: op.process,
                    value: els.join(","),
                });
            }
        }
    }
    // Comparability: sorted by length, each read must be a prefix of the next.
    let mut by_len: Vec<&(&Operation, Vec<String>)> = reads.iter().collect();
    by_len.sort_by_key(|(_, e)| e.len());
    for w in by_len.windows(2) {
        if !w[1].1.starts_with(&w[0].1) {
            out.push(AppendAnomaly::Diverged {
                key: key.into(),
                a: w[0].1.join(","),
                b: w[1].1.join(","),
            });
        }
    }
    // Real time: the longest read completed before a read's invocation must be its prefix.
    let mut by_end: Vec<&(&Operation, Vec<String>)> = reads.iter().collect();
    by_end.sort_by_key(|(o, _)| o.complete_index);
    let mut by_start: Vec<&(&Operation, Vec<String>)> = reads.iter().collect();
    by_start.sort_by_key(|(o, _)| o.invoke_index);
    let mut longest: Option<&(&Operation, Vec<String>)> = None;
    let mut ended = by_end.iter().peekable();
    for later in by_start {
        while let Some(r) = ended.peek() {
            if r.0.complete_index < Some(later.0.invoke_index) {
                if longest.is_none_or(|l| r.1.len() > l.1.len()) {
                    longest = Some(r);
                }
                ended.next();
            } else {
                break;
            }
        }
        if let Some(earlier) = longest {
            if !later.1.starts_with(&earlier.1) {
                out.push(AppendAnomaly::NotAPrefix {
                    key: key.into(),
                    earlier_process: earlier.0.process,
                    earlier: earlier.1.join(","),
                    later_process: later.0.process,
                    later: later.1.join(","),
                });
            }
        }
    }
    let _ = h;
}

/// Every read holds each append acknowledged before it was invoked. Only the elements of
/// `present` (the final read) are asked for: one missing there is a lost write, reported as
/// such, and every read after its loss would repeat it.
fn check_stale_reads(
    h: &History,
    key: &str,
    acked: &[&Operation],
    reads: &[(&Operation, Vec<String>)],
    present: &BTreeSet<&str>,
    out: &mut Vec<AppendAnomaly>,
) {
    let mut by_ack: Vec<(&Operation, &str)> = acked
        .iter()
        .map(|o| (*o, o.input.as_str().unwrap_or("").trim_end_matches(',')))
        .filter(|(_, e)| present.contains(e))
        .collect();
    by_ack.sort_by_key(|(o, _)| o.complete_index);
    let mut by_start: Vec<&(&Operation, Vec<String>)> = reads.iter().collect();
    by_start.sort_by_key(|(o, _)| o.invoke_index);
    let mut before = 0;
    for (read, els) in by_start {
        while before < by_ack.len() && by_ack[before].0.complete_index < Some(read.invoke_index) {
            before += 1;
        }
        let held: BTreeSet<&str> = els.iter().map(String::as_str).collect();
        let missed: Vec<&(&Operation, &str)> = by_ack[..before]
            .iter()
            .filter(|(_, e)| !held.contains(e))
            .collect();
        if let Some((append, element)) = missed.last() {
            out.push(AppendAnomaly::StaleRead {
                key: key.into(),
                element: (*element).into(),
                append_process: append.process,
                acked_ns: time(h, append.complete_index),
                read_process: read.process,
                read_invoked_ns: time(h, Some(read.invoke_index)),
                missed: missed.len(),
                value: els.join(","),
            });
        }
    }
}

/// Every element read was appended to this key, and none whose append failed.
fn check_elements(
    key: &str,
    appends: &[&Operation],
    reads: &[(&Operation, Vec<String>)],
    out: &mut Vec<AppendAnomaly>,
) {
    let status: BTreeMap<&str, &Operation> = appends
        .iter()
        .map(|o| (o.input.as_str().unwrap_or("").trim_end_matches(','), *o))
        .collect();
    let read: BTreeSet<&str> = reads
        .iter()
        .flat_map(|(_, e)| e.iter().map(String::as_str))
        .collect();
    for e in read {
        match status.get(e) {
            None => out.push(AppendAnomaly::Phantom {
                key: key.into(),
                element: e.into(),
            }),
            Some(op) if op.status == Status::Fail => out.push(AppendAnomaly::FailedButPresent {
                key: key.into(),
                element: e.into(),
                process: op.process,
            }),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use histories::{Event, EventType};
    use serde_json::json;

    #[test]
    fn values_split_into_their_elements() {
        assert_eq!(elements("1,22,3,"), vec!["1", "22", "3"]);
        assert!(elements("").is_empty());
    }

    /// A tiny history language: (process, type, f, value, time in ms).
    fn hist(events: &[(u64, &str, &str, Value)]) -> History {
        let evs = events
            .iter()
            .enumerate()
            .map(|(i, (p, t, f, v))| {
                let kind = match *t {
                    "invoke" => EventType::Invoke,
                    "ok" => EventType::Ok,
                    "fail" => EventType::Fail,
                    _ => EventType::Info,
                };
                Event::client(*p, kind, F::from(*f), Some(Key::Str("k".into())), v.clone())
                    .at(i as u64 * 1_000_000)
            })
            .collect();
        History::from_events(evs).unwrap()
    }

    #[test]
    fn a_clean_append_history_passes() {
        let h = hist(&[
            (0, "invoke", "append", json!("1,")),
            (0, "ok", "append", json!("1,")),
            (1, "invoke", "read", Value::Null),
            (1, "ok", "read", json!("1,")),
            (0, "invoke", "append", json!("2,")),
            (2, "invoke", "append", json!("3,")),
            (2, "info", "append", json!("3,")),
            (0, "ok", "append", json!("2,")),
            (1, "invoke", "read", Value::Null),
            (1, "ok", "read", json!("1,2,")),
        ]);
        let r = check_append(&h);
        assert!(r.valid(), "{:?}", r.anomalies);
        assert_eq!(r.acknowledged, 2);
    }

    #[test]
    fn a_read_that_misses_an_append_acknowledged_before_it_began_is_stale() {
        // p1's read begins after p0's append of 2 was acknowledged, and misses it; a later
        // read holds it (so it is not lost). p2's read overlaps the append of 3 and may miss
        // it.
        let h = hist(&[
            (0, "invoke", "append", json!("1,")),
            (0, "ok", "append", json!("1,")),
            (0, "invoke", "append", json!("2,")),
            (0, "ok", "append", json!("2,")),
            (1, "invoke", "read", Value::Null),
            (1, "ok", "read", json!("1,")),
            (0, "invoke", "append", json!("3,")),
            (2, "invoke", "read", Value::Null),
            (2, "ok", "read", json!("1,2,")),
            (0, "ok", "append", json!("3,")),
            (3, "invoke", "read", Value::Null),
            (3, "ok", "read", json!("1,2,3,")),
        ]);
        let r = check_append(&h);
        let stale: Vec<&AppendAnomaly> = r
            .anomalies
            .iter()
            .filter(|a| matches!(a, AppendAnomaly::StaleRead { .. }))
            .collect();
        assert_eq!(stale.len(), 1, "{:?}", r.anomalies);
        match stale[0] {
            AppendAnomaly::StaleRead {
                element,
                append_process,
                read_process,
                acked_ns,
                read_invoked_ns,
                missed,
                ..
            } => {
                assert_eq!(
                    (element.as_str(), *append_process, *read_process),
                    ("2", 0, 1)
                );
                assert_eq!(
                    (*acked_ns, *read_invoked_ns, *missed),
                    (3_000_000, 4_000_000, 1)
                );
            }
            other => panic!("expected a stale read, got {other:?}"),
        }
        // Without the stale read, nothing is flagged.
        let ok = hist(&[
            (0, "invoke", "append", json!("1,")),
            (0, "ok", "append", json!("1,")),
            (0, "invoke", "append", json!("2,")),
            (2, "invoke", "read", Value::Null),
            (2, "ok", "read", json!("1,")),
            (0, "ok", "append", json!("2,")),
            (3, "invoke", "read", Value::Null),
            (3, "ok", "read", json!("1,2,")),
        ]);
        assert!(
            check_append(&ok).valid(),
            "{:?}",
            check_append(&ok).anomalies
        );
    }

    #[test]
    fn a_planted_lost_write_is_named_with_its_process() {
        let h = hist(&[
            (0, "invoke", "append", json!("1,")),
            (0, "ok", "append", json!("1,")),
            (3, "invoke", "append", json!("2,")),
            (3, "ok", "append", json!("2,")),
            (1, "invoke", "read", Value::Null),
            (1, "ok", "read", json!("1,")),
        ]);
        let r = check_append(&h);
        assert_eq!(r.anomalies.len(), 1, "{:?}", r.anomalies);
        match &r.anomalies[0] {
            AppendAnomaly::LostWrite {
                element,
                process,
                acked_ns,
                ..
            } => {
                assert_eq!(element, "2");
                assert_eq!(*process, 3);
                assert_eq!(*acked_ns, 3_000_000);
            }
            other => panic!("expected a lost write, got {other:?}"),
        }
    }

    #[test]
    fn a_read_that_shrinks_or_diverges_or_repeats_is_flagged() {
        let h = hist(&[
            (0, "invoke", "append", json!("1,")),
            (0, "ok", "append", json!("1,")),
            (0, "invoke", "append", json!("2,")),
            (0, "ok", "append", json!("2,")),
            (1, "invoke", "read", Value::Null),
            (1, "ok", "read", json!("1,2,")),
            (1, "invoke", "read", Value::Null),
            (1, "ok", "read", json!("2,")),
            (1, "invoke", "read", Value::Null),
            (1, "ok", "read", json!("1,1,2,")),
        ]);
        let r = check_append(&h);
        let kinds: BTreeSet<String> = r
            .anomalies
            .iter()
            .map(|a| {
                serde_json::to_value(a).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert!(kinds.contains("not-a-prefix"), "{kinds:?}");
        assert!(kinds.contains("diverged"), "{kinds:?}");
        assert!(kinds.contains("duplicate"), "{kinds:?}");
    }

    #[test]
    fn a_failed_append_that_was_read_and_a_phantom_are_flagged() {
        let h = hist(&[
            (0, "invoke", "append", json!("1,")),
            (0, "fail", "append", json!("1,")),
            (1, "invoke", "read", Value::Null),
            (1, "ok", "read", json!("1,9,")),
        ]);
        let r = check_append(&h);
        assert!(r.anomalies.contains(&AppendAnomaly::FailedButPresent {
            key: "k".into(),
            element: "1".into(),
            process: 0
        }));
        assert!(r.anomalies.contains(&AppendAnomaly::Phantom {
            key: "k".into(),
            element: "9".into()
        }));
    }
}
