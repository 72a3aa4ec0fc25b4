//! Helpers shared by the report's integration tests: corpus paths, a synthetic long history
//! with faults, and a fake run's `results.json` with a counterexample on it.

#![allow(dead_code)]

use histories::{Event, EventType, History, Key, F};
use serde_json::{json, Value};
use std::path::PathBuf;

/// The shared corpus, beside the workspace.
pub fn corpus(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus")).join(rel)
}

/// A fresh scratch directory under the target's tmp dir.
pub fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A timed register history of `ops` operations by `workers` sequential workers over
/// `keys` keys, `seconds` long, with a fault every 10 s, about 2 % info outcomes (the
/// worker then takes a fresh process id, as Jepsen does) and 3 % fails. Deterministic.
pub fn synthetic(ops: usize, workers: u64, keys: i64, seconds: u64) -> History {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let span = seconds * 1_000_000_000;
    let per_worker = (ops as u64).div_ceil(workers);
    let slot = span / (per_worker + 1);
    // (time, event) pairs, sorted at the end.
    let mut timed: Vec<(u64, u64, Event)> = Vec::new();
    let mut seq = 0u64;
    let mut push = |t: u64, e: Event, timed: &mut Vec<(u64, u64, Event)>| {
        seq += 1;
        timed.push((t, seq, e.at(t)));
    };
    let mut made = 0usize;
    for w in 0..workers {
        let mut process = w;
        let mut t = rnd() % slot;
        for _ in 0..per_worker {
            if made == ops {
                break;
            }
            let key = Some(Key::Int((rnd() % keys as u64) as i64));
            let (f, input) = match rnd() % 3 {
                0 => (F::Read, Value::Null),
                1 => (F::Write, json!(rnd() % 5)),
                _ => (F::Cas, json!([rnd() % 5, rnd() % 5])),
            };
            // Log-normal-ish latency: mostly 1-5 ms, a tail to 200 ms.
            let lat = 1_000_000
                + rnd() % 4_000_000
                + if rnd() % 50 == 0 {
                    rnd() % 200_000_000
                } else {
                    0
                };
            let lat = lat.min(slot - 1);
            push(
                t,
                Event::client(
                    process,
                    EventType::Invoke,
                    f.clone(),
                    key.clone(),
                    input.clone(),
                ),
                &mut timed,
            );
            let roll = rnd() % 100;
            let (kind, out) = match roll {
                0..=1 => (EventType::Info, input.clone()),
                2..=4 => (EventType::Fail, input.clone()),
                _ if f == F::Read => (EventType::Ok, json!(rnd() % 5)),
                _ => (EventType::Ok, input.clone()),
            };
            push(
                t + lat,
                Event::client(process, kind, f, key, out),
                &mut timed,
            );
            if kind == EventType::Info {
                process += workers;
            }
            t += slot;
            made += 1;
        }
    }
    let fams = ["partition", "kill", "pause"];
    let mut t = 5_000_000_000u64;
    let mut n = 0;
    while t + 6_000_000_000 < span {
        let fam = fams[n % 3];
        push(
            t,
            Event::nemesis(&format!("start-{fam}"), json!({"nodes": [n % 5 + 1]})),
            &mut timed,
        );
        push(
            t + 4_000_000_000,
            Event::nemesis(&format!("stop-{fam}"), json!({"nodes": [n % 5 + 1]})),
            &mut timed,
        );
        t += 10_000_000_000;
        n += 1;
    }
    timed.sort_by_key(|(t, s, _)| (*t, *s));
    History::from_events(timed.into_iter().map(|(_, _, e)| e).collect()).unwrap()
}

/// A `results.json` like nemesis writes, with a counterexample naming operations of `h`:
/// the first ok read is "the op that cannot be linearized", the two ops invoked before it
/// on its key are the linearization, and `value` is planted in a state.
pub fn results_for(h: &History, value: &str) -> Value {
    let read = h
        .operations
        .iter()
        .find(|o| o.f == F::Read && o.status == histories::Status::Ok && o.id > 40)
        .unwrap();
    let before: Vec<&histories::Operation> = h
        .operations
        .iter()
        .filter(|o| o.key == read.key && o.id < read.id && o.status == histories::Status::Ok)
        .collect();
    let lin: Vec<&histories::Operation> = before.iter().rev().take(2).rev().copied().collect();
    let summary = |o: &histories::Operation| {
        json!({"id": o.id, "process": o.process, "f": o.f.to_string(), "input": o.input,
               "output": o.output, "status": "ok", "invoke_index": o.invoke_index,
               "complete_index": o.complete_index})
    };
    let mut ops: Vec<Value> = lin.iter().map(|o| summary(o)).collect();
    ops.push(summary(read));
    let key = read.key.as_ref().unwrap().to_string();
    json!({
        "verdict": "invalid", "seed": 42, "target": "raft", "workload": "register",
        "bug": value, "nodes": 5, "concurrency": 10, "time_limit_s": 60,
        "faults": "kill,pause,partition", "run_dir": "/tmp/runs/20261126T234749Z",
        "interrupted": false,
        "linearizability": {
            "verdict": "not-linearizable", "keys_checked": 10, "seconds": 0.5, "error": null,
            "problems": [{
                "key": key, "verdict": "not-linearizable",
                "explanation": format!("key {key} is not linearizable {value}"),
                "counterexample": {
                    "key": key, "initial_state": null, "op": read.id, "concurrent": [],
                    "linearizations": [{
                        "steps": lin.iter().enumerate().map(|(i, o)| json!({"op": o.id,
                            "state_after": if i == 0 { json!(value) } else { o.input.clone() }}))
                            .collect::<Vec<_>>(),
                        "final_state": 3,
                        "blocked": [{"op": read.id, "reason": format!("read {value} but the value is 3")}]
                    }],
                    "searched_ok_ops": 3, "ops": ops
                }
            }]
        },
        "append": null,
        "stats": {"operations": h.operations.len(), "by_f": {}, "windows": [
            {"fault": "partition", "detail": {"kind": value}, "start_s": 5.0, "end_s": 9.0,
             "completed": {"ok": 1, "fail": 0, "info": 0}, "availability": 0.5, "ok_per_s": 10.0}
        ]},
        "final_reads": {}, "notes": [format!("note {value}")]
    })
}

/// The JSON embedded in a page.
pub fn embedded(page: &str) -> Value {
    let open = "<script type=\"application/json\" id=\"report-data\">";
    let start = page.find(open).unwrap() + open.len();
    let len = page[start..].find("</script>").unwrap();
    serde_json::from_str(&page[start..start + len]).unwrap()
}
