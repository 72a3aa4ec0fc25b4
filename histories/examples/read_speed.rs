//! Measures how fast histories are written and read back: N operations over K keys by P
//! processes, as JSON Lines and as EDN.
//!
//! `cargo run --release -p histories --example read_speed -- [OPS] [KEYS] [PROCESSES]`

use histories::{read_path, Event, EventType, Format, JsonlWriter, Key, F};
use serde_json::{json, Value};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let ops = args.first().copied().unwrap_or(1_000_000);
    let keys = args.get(1).copied().unwrap_or(1_000);
    let procs = args.get(2).copied().unwrap_or(50);
    let dir = std::env::temp_dir().join(format!("histories-speed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let jsonl = dir.join("h.jsonl");

    let t = Instant::now();
    let mut w = JsonlWriter::create(&jsonl)?;
    // Each process runs one op at a time: invoke, then complete `procs` events later.
    let mut pending: Vec<Option<Event>> = vec![None; procs as usize];
    for i in 0..ops {
        let p = (i % procs) as usize;
        if let Some(done) = pending[p].take() {
            w.write(&done)?;
        }
        let key = Some(Key::Int((i * 7919 % keys) as i64));
        let (f, input, output) = match i % 3 {
            0 => (F::Read, Value::Null, json!(i % 5)),
            1 => (F::Write, json!(i % 5), json!(i % 5)),
            _ => (
                F::Cas,
                json!([i % 5, (i + 1) % 5]),
                json!([i % 5, (i + 1) % 5]),
            ),
        };
        w.write(
            &Event::client(p as u64, EventType::Invoke, f.clone(), key.clone(), input).at(2 * i),
        )?;
        pending[p] = Some(Event::client(p as u64, EventType::Ok, f, key, output).at(2 * i + 1));
    }
    for done in pending.into_iter().flatten() {
        w.write(&done)?;
    }
    w.finish()?;
    let write_s = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(&jsonl)?.len();

    let t = Instant::now();
    let h = read_path(&jsonl, Format::Auto)?;
    let read_s = t.elapsed().as_secs_f64();
    let jsonl_peak = peak_rss_mb();

    let edn = dir.join("h.edn");
    let t = Instant::now();
    histories::write_edn(&h, std::io::BufWriter::new(std::fs::File::create(&edn)?))?;
    let edn_write_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let h2 = read_path(&edn, Format::Auto)?;
    let edn_read_s = t.elapsed().as_secs_f64();
    assert_eq!(h2.operations.len(), h.operations.len());

    println!(
        "{ops} ops, {keys} keys, {procs} processes: {} events, JSONL {:.1} MB",
        h.events.len(),
        size as f64 / 1e6
    );
    println!("JSONL write (flush per line) {write_s:.2} s, read+pair {read_s:.2} s (peak RSS {jsonl_peak} MB)");
    println!(
        "EDN   write {edn_write_s:.2} s, read+pair {edn_read_s:.2} s (peak RSS {} MB)",
        peak_rss_mb()
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// The process's peak resident set size so far (Linux), in MB; 0 elsewhere.
fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}
