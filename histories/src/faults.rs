//! Fault windows: when each fault of a history was on, from its nemesis `start` / `stop` events.
//!
//! The one reading of a history's fault events, shared by every tool that shows them (the
//! nemesis' `summary.txt` availability table and the report's shaded spans), so two views of
//! one run never disagree about when a fault was on:
//!
//! - A nemesis event `start-X` opens a window of family `X`; `stop-X` closes one. Jepsen's bare
//!   `start` / `stop` are the family `nemesis`. Names like `starter` are neither.
//! - Faults of one family may overlap (two kills of different nodes): a stop closes the
//!   *oldest* open window of its family (first in, first out). A history does not say which
//!   start a stop answers; the nemesis undoes faults in the order it made them, and FIFO makes
//!   every window as short as the events allow, so no client operation is blamed on a fault
//!   that may already have ended.
//! - A start with no stop is open until the end of the history ([`FaultWindow::stop`] is
//!   `None`); what "the end" is (the last event, or the end of an attack phase) is the
//!   caller's axis.
//! - A stop with no open window of its family is kept as a stray (a history cut at its start,
//!   or a tool that logs stops only), never paired with another family's start.

use crate::{Event, Process};

/// One fault, from its start event to its stop event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultWindow {
    /// The family: `partition`, `kill`, `pause`, ... (`nemesis` for a bare `start`).
    pub family: String,
    /// Index of the start event in the history's events.
    pub start: usize,
    /// Index of the stop event that closed it; `None` when it was still on at the end.
    pub stop: Option<usize>,
}

/// Every nemesis event of a history, sorted into windows and the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultWindows {
    /// The windows, in the order they started.
    pub windows: Vec<FaultWindow>,
    /// Indices of stop events that closed nothing.
    pub stray_stops: Vec<usize>,
    /// Indices of the other nemesis events (neither a start nor a stop), e.g. `final-phase`.
    pub others: Vec<usize>,
}

/// What a nemesis event's `f` says: a start or stop of a family, or neither.
enum Edge<'a> {
    Start(&'a str),
    Stop(&'a str),
    Other,
}

/// The family after `start` / `stop`: `-X` is `X`, nothing is Jepsen's `nemesis`.
fn family(rest: &str) -> Option<&str> {
    match rest {
        "" => Some("nemesis"),
        r => r.strip_prefix('-').filter(|fam| !fam.is_empty()),
    }
}

fn edge(f: &str) -> Edge<'_> {
    if let Some(fam) = f.strip_prefix("start").and_then(family) {
        Edge::Start(fam)
    } else if let Some(fam) = f.strip_prefix("stop").and_then(family) {
        Edge::Stop(fam)
    } else {
        Edge::Other
    }
}

/// Pairs the nemesis events of `events` into fault windows (see the module docs for the
/// rules). Client events are ignored.
pub fn fault_windows(events: &[Event]) -> FaultWindows {
    let mut out = FaultWindows::default();
    // Positions in `out.windows` of the windows still open, oldest first.
    let mut open: Vec<usize> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e.process != Process::Nemesis {
            continue;
        }
        match edge(e.f.as_str()) {
            Edge::Start(fam) => {
                open.push(out.windows.len());
                out.windows.push(FaultWindow {
                    family: fam.to_string(),
                    start: i,
                    stop: None,
                });
            }
            Edge::Stop(fam) => match open.iter().position(|&w| out.windows[w].family == fam) {
                Some(at) => out.windows[open.remove(at)].stop = Some(i),
                None => out.stray_stops.push(i),
            },
            Edge::Other => out.others.push(i),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventType, F};
    use serde_json::json;

    fn nemesis(f: &str) -> Event {
        Event::nemesis(f, json!(null))
    }

    fn spans(w: &FaultWindows) -> Vec<(&str, usize, Option<usize>)> {
        w.windows
            .iter()
            .map(|w| (w.family.as_str(), w.start, w.stop))
            .collect()
    }

    #[test]
    fn overlapping_faults_of_one_family_close_oldest_first() {
        let events = [
            nemesis("start-kill"),      // 0
            nemesis("start-partition"), // 1
            nemesis("start-kill"),      // 2
            nemesis("stop-kill"),       // 3: closes the kill of 0, not of 2
            nemesis("stop-partition"),  // 4
            nemesis("stop-kill"),       // 5
        ];
        let w = fault_windows(&events);
        assert_eq!(
            spans(&w),
            [
                ("kill", 0, Some(3)),
                ("partition", 1, Some(4)),
                ("kill", 2, Some(5))
            ]
        );
        assert!(w.stray_stops.is_empty() && w.others.is_empty());
    }

    #[test]
    fn a_start_with_no_stop_stays_open_and_a_stray_stop_closes_nothing() {
        let events = [
            nemesis("stop-pause"), // 0: nothing open
            Event::client(1, EventType::Invoke, F::Read, None, json!(null)),
            nemesis("start-pause"),     // 2
            nemesis("final-phase"),     // 3
            nemesis("stop-partition"),  // 4: another family's stop closes nothing
            nemesis("start-partition"), // 5
            nemesis("stop-partition"),  // 6
        ];
        let w = fault_windows(&events);
        assert_eq!(spans(&w), [("pause", 2, None), ("partition", 5, Some(6))]);
        assert_eq!(w.stray_stops, [0, 4]);
        assert_eq!(w.others, [3]);
    }

    #[test]
    fn jepsen_bare_start_and_stop_are_the_nemesis_family() {
        let events = [
            nemesis("start"),
            nemesis("starter"),
            nemesis("stop"),
            nemesis("start-"),
            nemesis("stopped"),
        ];
        let w = fault_windows(&events);
        assert_eq!(spans(&w), [("nemesis", 0, Some(2))]);
        assert_eq!(w.others, [1, 3, 4]);
    }
}
