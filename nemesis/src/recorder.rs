//! The recorder: every event of a run, appended to `history.jsonl` as it happens and kept
//! in memory for the checks.

use histories::{Event, EventType, Process};
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Counters shown by the progress line and used by the availability statistics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Completions with `ok`.
    pub ok: AtomicU64,
    /// Completions with `fail`.
    pub fail: AtomicU64,
    /// Completions with `info`.
    pub info: AtomicU64,
}

/// Writes one event per line and flushes it, so a crash of the runner still leaves every
/// event it recorded on disk (a checkable prefix).
///
/// A single mutex orders events: the file order is the order in which events were
/// observed, which is what makes it a valid real-time history (a completion is written
/// before any invocation that starts after it).
pub struct Recorder {
    start: Instant,
    inner: Mutex<Inner>,
    /// Live counters.
    pub counters: Counters,
}

struct Inner {
    out: Option<LineWriter>,
    events: Vec<Event>,
}

/// The JSON Lines sink (flushes every line).
type LineWriter = histories::JsonlWriter<std::io::BufWriter<std::fs::File>>;

impl Recorder {
    /// A recorder writing to `path` (or only to memory when `None`, for benchmarks and tests).
    pub fn new(path: Option<&Path>) -> std::io::Result<Recorder> {
        let out = match path {
            Some(p) => Some(histories::JsonlWriter::create(p)?),
            None => None,
        };
        Ok(Recorder {
            start: Instant::now(),
            inner: Mutex::new(Inner {
                out,
                events: Vec::new(),
            }),
            counters: Counters::default(),
        })
    }

    /// Nanoseconds since the test started.
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// The instant the test started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Records one event, stamping it with the current time.
    pub fn record(&self, mut e: Event) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Stamp under the lock, so times never go backwards in file order.
        e.time = Some(self.now_ns());
        match e.kind {
            EventType::Ok => self.counters.ok.fetch_add(1, Ordering::Relaxed),
            EventType::Fail => self.counters.fail.fetch_add(1, Ordering::Relaxed),
            EventType::Info if e.process != Process::Nemesis => {
                self.counters.info.fetch_add(1, Ordering::Relaxed)
            }
            _ => 0,
        };
        if let Some(out) = inner.out.as_mut() {
            if let Err(err) = out.write(&e) {
                // A full disk must not stop the test silently: say it once, keep in memory.
                eprintln!("nemesis: cannot write the history ({err}); keeping it in memory");
                inner.out = None;
            }
        }
        inner.events.push(e);
    }

    /// A nemesis event (`start-kill`, `stop-partition`, …) with a description of who.
    pub fn nemesis(&self, f: &str, value: Value) {
        self.record(Event::nemesis(f, value));
    }

    /// A copy of every event so far.
    pub fn events(&self) -> Vec<Event> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .events
            .clone()
    }

    /// `(ok, fail, info)` so far.
    pub fn totals(&self) -> (u64, u64, u64) {
        (
            self.counters.ok.load(Ordering::Relaxed),
            self.counters.fail.load(Ordering::Relaxed),
            self.counters.info.load(Ordering::Relaxed),
        )
    }
}
