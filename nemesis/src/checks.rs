//! The statistics of a finished run: outcomes per operation and availability during each
//! fault. (The append invariants are the checker's: `checker::append`.)

use crate::client::PRECONDITION_FAILED;
use histories::{History, Operation, Process, Status};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

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
    use histories::{Event, EventType, F};
    use serde_json::json;

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
