//! The progress line: elapsed / total, ok / fail / info so far, and the fault in force.
//! Printed only when stdout is a terminal, so logs and CI output stay clean.

use crate::recorder::Recorder;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Whether progress is shown at all.
pub fn enabled() -> bool {
    std::io::stdout().is_terminal()
}

/// The line for the given state.
pub fn line(elapsed: Duration, total: Duration, totals: (u64, u64, u64), fault: &str) -> String {
    let fault = if fault.is_empty() { "no fault" } else { fault };
    format!(
        "[{:>4}s/{}s] ok {} fail {} info {} | {fault}",
        elapsed.as_secs(),
        total.as_secs(),
        totals.0,
        totals.1,
        totals.2
    )
}

/// Redraws the line twice a second until `stop` is set, then ends it with a newline.
pub async fn run(
    recorder: Arc<Recorder>,
    total: Duration,
    current: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
) {
    if !enabled() {
        return;
    }
    let mut out = std::io::stdout();
    while !stop.load(Ordering::Relaxed) {
        let fault = current.lock().map(|f| f.clone()).unwrap_or_default();
        let l = line(recorder.start().elapsed(), total, recorder.totals(), &fault);
        // \x1b[K clears what a longer previous line left behind.
        let _ = write!(out, "\r{l}\x1b[K");
        let _ = out.flush();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = writeln!(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_counts_and_the_fault() {
        let l = line(
            Duration::from_secs(12),
            Duration::from_secs(60),
            (10, 2, 1),
            "kill n2",
        );
        assert_eq!(l, "[  12s/60s] ok 10 fail 2 info 1 | kill n2");
        assert!(line(Duration::ZERO, Duration::from_secs(5), (0, 0, 0), "").ends_with("no fault"));
    }
}
