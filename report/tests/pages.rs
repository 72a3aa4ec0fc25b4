//! The generated pages: counterexamples from real corpus checks, a run's results, user data
//! that tries to inject markup, and the data a long history embeds.

mod common;

use checker::{check, ModelKind, Options, Verdict};
use common::*;
use histories::{Event, EventType::*, History, Key, F};
use serde_json::json;

const EVIL: &str = "</script><script>document.title='pwned'</script><img src=x onerror=alert(1)>";

/// Every `<script` in the page: the error hook, the data and the drawing code.
fn script_tags(page: &str) -> usize {
    page.matches("<script").count()
}

#[test]
fn corpus_counterexample_is_drawn_and_tabled() {
    let path = corpus("porcupine/kv/c10-bad.txt");
    let h = histories::read_path(&path, histories::Format::PorcupineKv).unwrap();
    let opts = Options {
        model: ModelKind::Kv,
        initial: json!(""),
        ..Options::default()
    };
    let r = check(&h, &opts);
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    let page = report::check_report(&h, &serde_json::to_value(&r).unwrap(), "c10-bad.txt", None);
    let cex = r
        .failures()
        .next()
        .unwrap()
        .counterexample
        .as_ref()
        .unwrap();
    let data = embedded(&page);
    // The timeline marks the same op, concurrent ops and steps the checker reported.
    assert_eq!(data["cex"][0]["op"], json!(cex.op));
    assert_eq!(data["cex"][0]["concurrent"], json!(cex.concurrent));
    let steps: Vec<usize> = cex.linearizations[0].steps.iter().map(|s| s.op).collect();
    assert_eq!(data["cex"][0]["steps"], json!(steps));
    // One table row per step, plus the start row.
    assert!(page.matches("<tr><td>").count() > steps.len());
    assert!(page.contains("Longest partial linearization"));
    assert!(page.contains("show counterexample on key"));
    assert!(page.contains("badge bad"));
    // Every op of the history is in the ops array.
    assert_eq!(
        data["timeline"]["ops"].as_array().unwrap().len(),
        h.operations.len() * report::data::OP_FIELDS
    );
    assert_eq!(script_tags(&page), 3);
}

#[test]
fn linearizable_history_has_no_counterexample_section() {
    let path = corpus("porcupine/kv/c10-ok.txt");
    let h = histories::read_path(&path, histories::Format::PorcupineKv).unwrap();
    let opts = Options {
        model: ModelKind::Kv,
        initial: json!(""),
        ..Options::default()
    };
    let r = check(&h, &opts);
    assert_eq!(r.verdict, Verdict::Linearizable);
    let page = report::check_report(
        &h,
        &serde_json::to_value(&r).unwrap(),
        "c10-ok.txt",
        Some(&json!({"threads": 2})),
    );
    assert!(!page.contains("Longest partial linearization"));
    assert!(page.contains("badge good"));
    assert!(page.contains("<th>threads</th><td>2</td>"));
    assert_eq!(embedded(&page)["cex"], json!([]));
}

#[test]
fn user_strings_cannot_inject_markup() {
    let key = Some(Key::Str(EVIL.to_string()));
    let h = History::from_events(vec![
        Event::client(0, Invoke, F::Write, key.clone(), json!(EVIL)).at(0),
        Event::client(0, Ok, F::Write, key.clone(), json!(EVIL)).at(1_000_000),
        Event::nemesis("start-partition", json!(EVIL)).at(1_500_000),
        Event::client(1, Invoke, F::Read, key.clone(), json!(null)).at(2_000_000),
        Event::client(1, Ok, F::Read, key.clone(), json!("other")).at(3_000_000),
        Event::nemesis(EVIL, json!(EVIL)).at(3_500_000),
    ])
    .unwrap();
    let opts = Options {
        model: ModelKind::Kv,
        initial: json!(null),
        ..Options::default()
    };
    let r = check(&h, &opts);
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    let page = report::check_report(
        &h,
        &serde_json::to_value(&r).unwrap(),
        EVIL,
        Some(&json!({ EVIL: EVIL })),
    );
    assert_eq!(
        script_tags(&page),
        3,
        "a user string opened a script element"
    );
    assert!(!page.contains("<img"));
    assert!(!page.contains("onerror=alert(1)>"));
    assert!(page.contains("&lt;/script&gt;&lt;script&gt;"));
    // The data still carries the strings exactly, for the script to show as text.
    let data = embedded(&page);
    assert_eq!(data["timeline"]["keys"][0], json!(EVIL));
    assert!(data["timeline"]["marks"][0]["label"]
        .as_str()
        .unwrap()
        .starts_with(EVIL));

    let results = results_for(&synthetic(200, 4, 3, 20), EVIL);
    let run = report::run_report(&synthetic(200, 4, 3, 20), &results);
    assert_eq!(script_tags(&run), 3);
    assert!(!run.contains("<img"));
}

#[test]
fn run_report_shows_parameters_checks_windows_and_notes() {
    let h = synthetic(2_000, 10, 5, 60);
    let results = results_for(&h, "\"planted\"");
    let page = report::run_report(&h, &results);
    assert!(page.contains("<title>nemesis run 20261126T234749Z (raft)</title>"));
    assert!(page.contains("<th>seed</th><td>42</td>"));
    assert!(page.contains("<th>faults</th><td>kill,pause,partition</td>"));
    assert!(
        !page.contains("<th>linearizability</th>"),
        "sections are not parameters"
    );
    assert!(page.contains("Availability per fault window"));
    assert!(page.contains("note &quot;planted&quot;"));
    assert!(page.contains("badge bad\">invalid"));
    assert!(page.contains("badge small bad\">not linearizable"));
    assert!(page.contains("read &quot;planted&quot; but the value is 3"));
    let data = embedded(&page);
    // 60 s with a fault every 10 s from 5 s: 5 intervals, all closed, 4 s each.
    let faults = data["timeline"]["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 5);
    for f in faults {
        assert_eq!(
            f["end"].as_i64().unwrap() - f["start"].as_i64().unwrap(),
            4_000_000
        );
        assert_eq!(f["closed"], json!(true));
    }
    assert_eq!(data["series"]["bucket"], json!(1_000_000));
}

#[test]
fn run_dir_report_is_written_from_its_files() {
    let dir = scratch("rundir");
    let h = synthetic(500, 5, 3, 30);
    let mut w = histories::JsonlWriter::from_writer(Vec::new());
    for e in &h.events {
        w.write(e).unwrap();
    }
    std::fs::write(dir.join("history.jsonl"), w.finish().unwrap()).unwrap();
    std::fs::write(dir.join("results.json"), results_for(&h, "x").to_string()).unwrap();
    let out = report::write_run_dir(&dir).unwrap();
    let page = std::fs::read_to_string(out).unwrap();
    assert_eq!(
        embedded(&page)["timeline"]["ops"].as_array().unwrap().len(),
        500 * report::data::OP_FIELDS
    );
    std::fs::write(dir.join("results.json"), "{not json").unwrap();
    let e = report::write_run_dir(&dir).unwrap_err();
    assert!(e.to_string().contains("results.json: not JSON"), "{e}");
}

#[test]
fn long_history_embeds_compact_bounded_series() {
    let h = synthetic(100_000, 50, 100, 300);
    assert_eq!(h.operations.len(), 100_000);
    let results = results_for(&h, "x");
    let page = report::run_report(&h, &results);
    let data = embedded(&page);
    let lat = data["series"]["lat"].as_array().unwrap();
    assert!(lat.len() / 3 <= (report::series::COLUMNS as usize + 1) * 6);
    // The slowest operation is among the kept points (times are whole µs since the first
    // event).
    let t0 = h.events[0].time.unwrap();
    let us = |t: u64| (t - t0) / 1000;
    let slowest = h
        .operations
        .iter()
        .filter_map(|o| Some(us(o.complete_time(&h)?) - us(o.invoke_time(&h)?)))
        .max()
        .unwrap();
    let kept_max = lat.chunks(3).map(|p| p[1].as_i64().unwrap()).max().unwrap();
    assert_eq!(kept_max, slowest as i64);
    // Throughput counts every completed op once.
    let completed = h
        .operations
        .iter()
        .filter(|o| o.complete_index.is_some())
        .count();
    let counted: u64 = data["series"]["tput"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b.as_array().unwrap().iter().map(|c| c.as_u64().unwrap()))
        .sum();
    assert_eq!(counted as usize, completed);
    eprintln!("100,000-op page: {} bytes", page.len());
    assert!(page.len() < 12 << 20, "{} bytes", page.len());
}
