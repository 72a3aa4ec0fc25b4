//! The timeline data the page draws: operations as a compact integer array, lanes, keys,
//! fault intervals and other nemesis marks, on one time axis.

use histories::{History, Status};
use serde::Serialize;
use std::collections::BTreeMap;

/// The unit of the time axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Microseconds since the first event (every event has a time).
    Us,
    /// Event positions (some event has no time, e.g. a Knossos history).
    Event,
}

/// Maps events to positions on the time axis.
///
/// A history either has a time on every event, or it is drawn by event position: mixing
/// the two would put untimed events at made-up times.
#[derive(Debug, Clone, Copy)]
pub struct Axis {
    /// The unit.
    pub unit: Unit,
    /// The first event's time in ns (`Us` only).
    t0: u64,
}

impl Axis {
    /// The axis for `h`.
    pub fn of(h: &History) -> Axis {
        let timed = !h.events.is_empty() && h.events.iter().all(|e| e.time.is_some());
        if timed {
            let t0 = h.events.iter().filter_map(|e| e.time).min().unwrap_or(0);
            Axis { unit: Unit::Us, t0 }
        } else {
            Axis {
                unit: Unit::Event,
                t0: 0,
            }
        }
    }

    /// Position of event `i` on the axis.
    pub fn at(&self, h: &History, i: usize) -> i64 {
        match self.unit {
            Unit::Us => (h.events[i].time.unwrap_or(self.t0).saturating_sub(self.t0) / 1000) as i64,
            Unit::Event => i as i64,
        }
    }

    /// The end of the axis: the last event's position.
    pub fn end(&self, h: &History) -> i64 {
        (0..h.events.len())
            .map(|i| self.at(h, i))
            .max()
            .unwrap_or(0)
    }
}

/// Status codes in the ops array.
pub const OK: i64 = 0;
/// `fail`.
pub const FAIL: i64 = 1;
/// `info`, or never completed.
pub const INFO: i64 = 2;

/// Integers per operation in [`Timeline::ops`].
pub const OP_FIELDS: usize = 7;

/// What the timeline canvas draws.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// Axis unit.
    pub unit: Unit,
    /// Axis end.
    pub t_end: i64,
    /// Label of each lane: the processes it holds (see [`lanes`]).
    pub lanes: Vec<String>,
    /// Key labels (`-` for a single register).
    pub keys: Vec<String>,
    /// Function names.
    pub fs: Vec<String>,
    /// Per operation, in `History::operations` order, [`OP_FIELDS`] integers:
    /// lane, start, end (-1: never completed), status, f index, key index, process.
    pub ops: Vec<i64>,
    /// Per operation, a short description: `cas [1,2] -> ok`.
    pub desc: Vec<String>,
    /// Fault intervals, shaded across all lanes and plots.
    pub faults: Vec<FaultSpan>,
    /// Other nemesis events (e.g. `final-phase`), drawn as vertical lines.
    pub marks: Vec<Mark>,
}

/// A fault interval: from a `start-X` nemesis event to the matching `stop-X`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultSpan {
    /// The family (`partition`, `kill`, `pause`, or `nemesis` for Jepsen's bare
    /// `start` / `stop`).
    pub family: String,
    /// Start on the axis.
    pub start: i64,
    /// End on the axis (the history's end when it never stopped).
    pub end: i64,
    /// Whether a stop event was seen.
    pub closed: bool,
    /// The start event's value, as compact JSON.
    pub detail: String,
}

/// A nemesis event that is neither a start nor a stop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mark {
    /// Position on the axis.
    pub at: i64,
    /// `f` and value.
    pub label: String,
}

/// The key label of an operation (`-` for the single register).
pub fn key_label(k: &Option<histories::Key>) -> String {
    k.as_ref()
        .map_or_else(|| "-".to_string(), |k| k.to_string())
}

fn status_code(s: Status) -> i64 {
    match s {
        Status::Ok => OK,
        Status::Fail => FAIL,
        Status::Info => INFO,
    }
}

/// `null` as `nil`, other values as compact JSON, truncated to `max` characters.
pub fn show(v: &serde_json::Value, max: usize) -> String {
    let s = match v {
        serde_json::Value::Null => "nil".to_string(),
        v => v.to_string(),
    };
    if s.chars().count() > max {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    } else {
        s
    }
}

/// Describes an operation: `read -> 3`, `write 1 -> fail`, `cas [1,2] -> ?`.
fn describe(op: &histories::Operation) -> String {
    let outcome = match (op.status, &op.output) {
        (Status::Ok, Some(v)) if op.f == histories::F::Read => show(v, 80),
        (Status::Ok, _) => "ok".to_string(),
        (Status::Fail, _) => "fail".to_string(),
        (Status::Info, _) => "?".to_string(),
    };
    if op.f == histories::F::Read {
        format!("read -> {outcome}")
    } else {
        format!("{} {} -> {outcome}", op.f, show(&op.input, 80))
    }
}

/// The fault intervals of `h` on `axis`, from [`histories::fault_windows`] (the pairing every
/// tool shares: overlapping faults of one family close first-in first-out, a start without a
/// stop lasts to the end of the history), and the other nemesis events as marks.
pub fn faults(h: &History, axis: &Axis) -> (Vec<FaultSpan>, Vec<Mark>) {
    let end = axis.end(h);
    let found = histories::fault_windows(&h.events);
    let spans = found
        .windows
        .iter()
        .map(|w| FaultSpan {
            family: w.family.clone(),
            start: axis.at(h, w.start),
            end: w.stop.map_or(end, |i| axis.at(h, i)),
            closed: w.stop.is_some(),
            detail: show(&h.events[w.start].value, 200),
        })
        .collect();
    let mut unpaired: Vec<(usize, &str)> = found
        .stray_stops
        .iter()
        .map(|&i| (i, " (no matching start)"))
        .chain(found.others.iter().map(|&i| (i, "")))
        .collect();
    unpaired.sort_unstable();
    let marks = unpaired
        .into_iter()
        .map(|(i, note)| Mark {
            at: axis.at(h, i),
            label: format!(
                "{}{note} {}",
                h.events[i].f.as_str(),
                show(&h.events[i].value, 200)
            ),
        })
        .collect();
    (spans, marks)
}

/// Assigns processes to lanes: a process takes the lowest lane whose previous process had
/// finished (its last event came earlier) when this one started; returns each process's lane
/// and the lanes' labels (`p3`, or `p3…p23` for a lane that held several).
///
/// Why not one lane per process id: after an `info` a worker goes on under a fresh id, so a
/// run with faults has thousands of short-lived ids and as many mostly empty lanes. A lane
/// still shows one process at a time (ids never overlap in it), like a worker thread in
/// Jepsen's timeline, and the tooltip names the process.
pub fn lanes(h: &History) -> (BTreeMap<u64, usize>, Vec<String>) {
    // process -> (first event, last event; usize::MAX while an operation stays open)
    let mut span: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    for op in &h.operations {
        let last = op.complete_index.unwrap_or(usize::MAX);
        span.entry(op.process)
            .and_modify(|s| s.1 = s.1.max(last))
            .or_insert((op.invoke_index, last));
    }
    let mut order: Vec<(u64, (usize, usize))> = span.into_iter().collect();
    order.sort_by_key(|(p, (first, _))| (*first, *p));
    let mut free_after: Vec<usize> = Vec::new();
    let mut members: Vec<Vec<u64>> = Vec::new();
    let mut lane_of = BTreeMap::new();
    for (p, (first, last)) in order {
        let lane = match free_after.iter().position(|&end| end < first) {
            Some(l) => l,
            None => {
                free_after.push(0);
                members.push(Vec::new());
                free_after.len() - 1
            }
        };
        free_after[lane] = last;
        members[lane].push(p);
        lane_of.insert(p, lane);
    }
    let labels = members
        .iter()
        .map(|m| match m.as_slice() {
            [one] => format!("p{one}"),
            [first, .., last] => format!("p{first}…p{last}"),
            [] => String::new(),
        })
        .collect();
    (lane_of, labels)
}

/// Builds the timeline of `h`.
pub fn timeline(h: &History) -> Timeline {
    let axis = Axis::of(h);
    let (lane_of, lanes) = lanes(h);
    let mut key_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut keys: Vec<String> = Vec::new();
    let mut f_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut fs: Vec<String> = Vec::new();
    let mut ops = Vec::with_capacity(h.operations.len() * OP_FIELDS);
    let mut desc = Vec::with_capacity(h.operations.len());
    for op in &h.operations {
        let key = key_label(&op.key);
        let k = *key_of.entry(key.clone()).or_insert_with(|| {
            keys.push(key);
            keys.len() - 1
        });
        let fname = op.f.to_string();
        let f = *f_of.entry(fname.clone()).or_insert_with(|| {
            fs.push(fname);
            fs.len() - 1
        });
        ops.extend_from_slice(&[
            lane_of[&op.process] as i64,
            axis.at(h, op.invoke_index),
            op.complete_index.map_or(-1, |c| axis.at(h, c)),
            status_code(op.status),
            f as i64,
            k as i64,
            op.process as i64,
        ]);
        desc.push(describe(op));
    }
    let (faults, marks) = faults(h, &axis);
    Timeline {
        unit: axis.unit,
        t_end: axis.end(h),
        lanes,
        keys,
        fs,
        ops,
        desc,
        faults,
        marks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use histories::{Event, EventType::*, F};
    use serde_json::json;

    fn at(e: Event, ms: u64) -> Event {
        e.at(ms * 1_000_000)
    }

    #[test]
    fn pairs_faults_by_family_and_keeps_open_ones_to_the_end() {
        let h = History::from_events(vec![
            at(Event::client(0, Invoke, F::Write, None, json!(1)), 1000),
            at(
                Event::nemesis("start-partition", json!({"kind": "halves"})),
                1010,
            ),
            at(Event::nemesis("start-kill", json!({"nodes": [1]})), 1020),
            at(Event::nemesis("stop-partition", json!(null)), 1030),
            at(Event::nemesis("final-phase", json!("heal")), 1035),
            at(Event::nemesis("start-pause", json!({"nodes": [2]})), 1040),
            at(Event::nemesis("stop-kill", json!({"nodes": [1]})), 1050),
            at(Event::client(0, Ok, F::Write, None, json!(1)), 1060),
        ])
        .unwrap();
        let axis = Axis::of(&h);
        let (spans, marks) = faults(&h, &axis);
        let got: Vec<(&str, i64, i64, bool)> = spans
            .iter()
            .map(|s| (s.family.as_str(), s.start, s.end, s.closed))
            .collect();
        assert_eq!(
            got,
            [
                ("partition", 10_000, 30_000, true),
                ("kill", 20_000, 50_000, true),
                ("pause", 40_000, 60_000, false),
            ]
        );
        assert_eq!(spans[0].detail, r#"{"kind":"halves"}"#);
        assert_eq!(marks.len(), 1);
        assert_eq!(marks[0].at, 35_000);
        assert!(marks[0].label.starts_with("final-phase"));
    }

    #[test]
    fn jepsen_bare_start_stop_and_stray_stop() {
        let h = History::from_events(vec![
            Event::nemesis("start", json!("majority")),
            Event::nemesis("stop", json!(null)),
            Event::nemesis("stop-kill", json!(null)),
            Event::nemesis("starter", json!(null)),
        ])
        .unwrap();
        let (spans, marks) = faults(&h, &Axis::of(&h));
        assert_eq!(spans.len(), 1);
        assert_eq!(
            (spans[0].family.as_str(), spans[0].start, spans[0].end),
            ("nemesis", 0, 1)
        );
        let labels: Vec<&str> = marks.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(labels, ["stop-kill (no matching start) nil", "starter nil"]);
    }

    #[test]
    fn ops_array_lanes_keys_and_untimed_axis() {
        let h = History::from_events(vec![
            Event::client(7, Invoke, F::Write, Some(histories::Key::Int(1)), json!(5)),
            Event::client(
                3,
                Invoke,
                F::Read,
                Some(histories::Key::Str("b".into())),
                json!(null),
            ),
            Event::client(7, Info, F::Write, Some(histories::Key::Int(1)), json!(5)),
            Event::client(
                3,
                Ok,
                F::Read,
                Some(histories::Key::Str("b".into())),
                json!(5),
            ),
            Event::client(4, Invoke, F::Cas, None, json!([1, 2])),
        ])
        .unwrap();
        let t = timeline(&h);
        assert_eq!(t.unit, Unit::Event);
        // p7 (events 0-2) then p4 (from event 4) share a lane; p3 overlaps p7.
        assert_eq!(t.lanes, ["p7…p4", "p3"]);
        assert_eq!(t.keys, ["1", "b", "-"]);
        assert_eq!(t.fs, ["write", "read", "cas"]);
        assert_eq!(
            t.ops,
            [
                0, 0, 2, INFO, 0, 0, 7, /**/ 1, 1, 3, OK, 1, 1, 3, /**/ 0, 4, -1, INFO,
                2, 2, 4
            ]
        );
        assert_eq!(t.desc, ["write 5 -> ?", "read -> 5", "cas [1,2] -> ?"]);
        assert_eq!(t.t_end, 4);
    }
}
