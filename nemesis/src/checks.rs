//! The checks of a finished run: the append invariants (no lost acknowledged append,
//! reads only grow, no duplicates), statistics, and availability during each fault.

use crate::client::PRECONDITION_FAILED;
use crate::workload::append::elements;
use histories::{History, Key, Operation, Process, Status, F};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

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

/// Completions of one kind of operation.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// `ok`.
    pub ok: u64,
    /// `fail`.
    pub fail: u64,
    /// `info` (or never completed).
    pub info: u64,
    /// Of the `fail`s, cas operations whose comparison failed: answered by a working
    /// cluster, so they count as available.
    pub compare_failed: u64,
}

/// Client operations during one fault (or outside every fault).
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// The fault (`kill`, `partition`, …) or `none`.
    pub fault: String,
    /// The nemesis event's description.
    pub detail: Value,
    /// Start, seconds since the test start.
    pub start_s: f64,
    /// End, seconds.
    pub end_s: f64,
    /// Operations that completed inside the window.
    pub completed: Counts,
    /// Fraction of completions that were `ok` or a failed cas comparison (availability).
    pub availability: f64,
    /// `ok` completions per second.
    pub ok_per_s: f64,
}

/// Statistics of a history.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Per operation (`read`, `write`, `cas`, `append`).
    pub by_f: BTreeMap<String, Counts>,
    /// Total operations.
    pub operations: usize,
    /// Each fault window, in order, then the time outside every fault.
    pub windows: Vec<Window>,
}

/// Counts outcomes per operation and availability in each fault window.
pub fn stats(h: &History) -> Stats {
    let mut by_f: BTreeMap<String, Counts> = BTreeMap::new();
    for op in &h.operations {
        let c = by_f.entry(op.f.to_string()).or_default();
        match op.status {
            Status::Ok => c.ok += 1,
            Status::Fail => c.fail += 1,
            Status::Info => c.info += 1,
        }
    }
    // The attack phase ends where the final phase begins (or with the history).
    let end = h
        .events
        .iter()
        .find(|e| e.process == Process::Nemesis && e.f.as_str() == "final-phase")
        .or(h.events.last())
        .and_then(|e| e.time)
        .unwrap_or(0);
    // The windows are the report's too (`histories::fault_windows`); a fault still on when
    // the attack ended lasts to its end here, since the final phase heals everything.
    let time = |i: usize| h.events[i].time.unwrap_or(0);
    let spans: Vec<(String, Value, u64, u64)> = histories::fault_windows(&h.events)
        .windows
        .into_iter()
        .map(|w| {
            let value = h.events[w.start].value.clone();
            (w.family, value, time(w.start), w.stop.map_or(end, time))
        })
        .collect();
    let compare_failed = |o: &Operation| {
        o.complete_index
            .and_then(|i| h.events[i].extra.get("error"))
            .is_some_and(|e| e == PRECONDITION_FAILED)
    };
    for op in &h.operations {
        if compare_failed(op) {
            by_f.entry(op.f.to_string()).or_default().compare_failed += 1;
        }
    }
    let done: Vec<(u64, Status, bool)> = h
        .operations
        .iter()
        .filter_map(|o| {
            Some((
                h.events[o.complete_index?].time?,
                o.status,
                compare_failed(o),
            ))
        })
        .collect();
    let count = |from: u64, to: u64, inside: bool| {
        let mut c = Counts::default();
        for &(t, s, cf) in &done {
            let in_span = t >= from && t <= to;
            let in_any = spans.iter().any(|sp| t >= sp.2 && t <= sp.3);
            if (inside && in_span) || (!inside && !in_any && t <= end) {
                match s {
                    Status::Ok => c.ok += 1,
                    Status::Fail => c.fail += 1,
                    Status::Info => c.info += 1,
                }
                c.compare_failed += u64::from(cf);
            }
        }
        c
    };
    let window = |fault: String, detail: Value, secs: f64, start: u64, end: u64, c: Counts| {
        let total = c.ok + c.fail + c.info;
        Window {
            fault,
            detail,
            start_s: start as f64 / 1e9,
            end_s: end as f64 / 1e9,
            availability: if total == 0 {
                0.0
            } else {
                (c.ok + c.compare_failed) as f64 / total as f64
            },
            ok_per_s: if secs > 0.0 { c.ok as f64 / secs } else { 0.0 },
            completed: c,
        }
    };
    let mut windows: Vec<Window> = spans
        .iter()
        .map(|(fam, v, t0, t1)| {
            let secs = (t1 - t0) as f64 / 1e9;
            window(
                fam.clone(),
                v.clone(),
                secs,
                *t0,
                *t1,
                count(*t0, *t1, true),
            )
        })
        .collect();
    let faulty: u64 = spans.iter().map(|s| s.3 - s.2).sum();
    let quiet_secs = end.saturating_sub(faulty) as f64 / 1e9;
    windows.push(window(
        "none".into(),
        Value::Null,
        quiet_secs,
        0,
        end,
        count(0, 0, false),
    ));
    Stats {
        by_f,
        operations: h.operations.len(),
        windows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use histories::{Event, EventType};
    use serde_json::json;

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

    #[test]
    fn stats_count_outcomes_and_fault_windows() {
        let mut evs = vec![
            Event::client(0, EventType::Invoke, F::Write, None, json!("1")).at(0),
            Event::client(0, EventType::Ok, F::Write, None, json!("1")).at(1_000_000_000),
            Event::nemesis("start-kill", json!({"nodes": [1]})).at(2_000_000_000),
            Event::client(1, EventType::Invoke, F::Write, None, json!("2")).at(2_500_000_000),
            Event::client(1, EventType::Info, F::Write, None, json!("2")).at(3_000_000_000),
            Event::nemesis("stop-kill", json!({"nodes": [1]})).at(4_000_000_000),
        ];
        evs.push(Event::client(2, EventType::Invoke, F::Read, None, Value::Null).at(5_000_000_000));
        evs.push(Event::client(2, EventType::Fail, F::Read, None, Value::Null).at(6_000_000_000));
        let s = stats(&History::from_events(evs).unwrap());
        assert_eq!(
            s.by_f["write"],
            Counts {
                ok: 1,
                fail: 0,
                info: 1,
                compare_failed: 0
            }
        );
        assert_eq!(
            s.by_f["read"],
            Counts {
                ok: 0,
                fail: 1,
                info: 0,
                compare_failed: 0
            }
        );
        assert_eq!(s.windows.len(), 2);
        assert_eq!(s.windows[0].fault, "kill");
        assert_eq!(
            s.windows[0].completed,
            Counts {
                ok: 0,
                fail: 0,
                info: 1,
                compare_failed: 0
            }
        );
        assert_eq!(s.windows[0].availability, 0.0);
        assert_eq!(
            s.windows[1].completed,
            Counts {
                ok: 1,
                fail: 1,
                info: 0,
                compare_failed: 0
            }
        );
    }

    /// Issue 13: two kills that overlap are two windows, each closed by the first stop after
    /// it in start order, as the report draws them; a start with no stop lasts to the final
    /// phase. (This pairing kept only the later of two open kills.)
    #[test]
    fn overlapping_faults_of_one_family_are_separate_windows_as_in_the_report() {
        let s = |t: u64| t * 1_000_000_000;
        let h = History::from_events(vec![
            Event::client(0, EventType::Invoke, F::Write, None, json!("1")).at(0),
            Event::nemesis("start-kill", json!({"nodes": [1]})).at(s(1)),
            Event::nemesis("start-kill", json!({"nodes": [2]})).at(s(2)),
            Event::nemesis("stop-kill", json!({"nodes": [1]})).at(s(3)),
            Event::nemesis("start-pause", json!({"nodes": [3]})).at(s(4)),
            Event::nemesis("stop-kill", json!({"nodes": [2]})).at(s(5)),
            Event::nemesis("final-phase", json!("heal")).at(s(6)),
            Event::client(0, EventType::Ok, F::Write, None, json!("1")).at(s(7)),
        ])
        .unwrap();
        let windows: Vec<(String, Value, f64, f64)> = stats(&h)
            .windows
            .into_iter()
            .map(|w| (w.fault, w.detail, w.start_s, w.end_s))
            .collect();
        assert_eq!(
            windows,
            [
                ("kill".into(), json!({"nodes": [1]}), 1.0, 3.0),
                ("kill".into(), json!({"nodes": [2]}), 2.0, 5.0),
                ("pause".into(), json!({"nodes": [3]}), 4.0, 6.0),
                ("none".into(), Value::Null, 0.0, 6.0),
            ]
        );
        // The report pairs the same events into the same windows (it draws the open pause
        // to the history's end, 7 s, where the summary stops at the final phase).
        let axis = report::data::Axis::of(&h);
        let (spans, _) = report::data::faults(&h, &axis);
        let drawn: Vec<(&str, i64, i64)> = spans
            .iter()
            .map(|sp| (sp.family.as_str(), sp.start, sp.end))
            .collect();
        let at = |t: u64| {
            axis.at(
                &h,
                h.events.iter().position(|e| e.time == Some(s(t))).unwrap(),
            )
        };
        assert_eq!(
            drawn,
            [
                ("kill", at(1), at(3)),
                ("kill", at(2), at(5)),
                ("pause", at(4), at(7))
            ]
        );
    }
}
