//! The `checker` binary on files a user might hand it (issue 15): a byte order mark, bytes
//! that are not UTF-8; and the append anomalies it reports on a recorded append history.

use histories::Format;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

const HISTORY: &str = r#"{"process":0,"type":"invoke","f":"write","value":1}
{"process":0,"type":"ok","f":"write","value":1}
{"process":1,"type":"invoke","f":"read","value":null}
{"process":1,"type":"ok","f":"read","value":1}
"#;

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("checker-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn check(path: &PathBuf) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_checker"))
        .arg("check")
        .arg(path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_byte_order_mark_does_not_defeat_format_detection() {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(HISTORY.as_bytes());
    let (code, text) = check(&file("bom.jsonl", &bytes));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("linearizable"), "{text}");
}

#[test]
fn invalid_utf8_is_reported_with_file_line_and_byte() {
    let mut bytes = HISTORY.as_bytes().to_vec();
    bytes.extend_from_slice(
        b"{\"process\":2,\"type\":\"invoke\",\"f\":\"read\",\"value\":\"\xFF\"}\n",
    );
    let path = file("bad-utf8.jsonl", &bytes);
    let (code, text) = check(&path);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains(&format!("{}:5", path.display())), "{text}");
    assert!(text.contains("0xff"), "{text}");
}

#[test]
fn errors_quote_keys_as_written_not_as_rust_debug_text() {
    let bytes = br#"{"process":0,"type":"invoke","f":"read","key":"a","value":null}
{"process":0,"type":"ok","f":"read","key":"b","value":null}
"#;
    let (code, text) = check(&file("keys.jsonl", bytes));
    assert_eq!(code, 2, "{text}");
    assert!(text.contains(r#"key "b" but invoked on key "a""#), "{text}");
    assert!(!text.contains("Some("), "{text}");
}

/// `checker convert` (issue 15): every Knossos cas-register file of the corpus to JSON
/// Lines and back to EDN gives the same operations and the same verdict.
#[test]
fn convert_round_trips_corpus_files_through_jsonl_and_edn() {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/knossos/cas-register"
    ));
    let mut files: Vec<PathBuf> = ["good", "bad"]
        .iter()
        .flat_map(|d| std::fs::read_dir(dir.join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "edn"))
        .collect();
    files.sort();
    assert!(files.len() > 100, "{} corpus files", files.len());
    for (i, f) in files.iter().enumerate().step_by(10) {
        let jsonl = file(&format!("c{i}.jsonl"), b"");
        let edn = file(&format!("c{i}.edn"), b"");
        for (input, to, out) in [(f, "jsonl", &jsonl), (&jsonl, "edn", &edn)] {
            let status = Command::new(env!("CARGO_BIN_EXE_checker"))
                .args(["convert", "--to", to, "--out"])
                .arg(out)
                .arg(input)
                .status()
                .unwrap();
            assert!(status.success(), "convert {} --to {to}", input.display());
        }
        let original = histories::read_path(f, histories::Format::Edn).unwrap();
        let back = histories::read_path(&edn, histories::Format::Edn).unwrap();
        assert_eq!(
            original.operations.len(),
            back.operations.len(),
            "{}",
            f.display()
        );
        let args = ["check", "--format", "edn"];
        let verdict = |p: &PathBuf| {
            Command::new(env!("CARGO_BIN_EXE_checker"))
                .args(args)
                .arg(p)
                .status()
                .unwrap()
                .code()
        };
        assert_eq!(verdict(f), verdict(&edn), "{}", f.display());
    }
}

/// A recorded append history (JSON Lines, as the nemesis writes it) with a planted lost
/// write: process 3's append of `2` is acknowledged, and the read that starts afterwards has
/// only `1`.
const LOST_WRITE: &str = r#"{"process":0,"type":"invoke","f":"append","key":"k","value":"1,","time":0}
{"process":0,"type":"ok","f":"append","key":"k","value":"1,","time":1000}
{"process":3,"type":"invoke","f":"append","key":"k","value":"2,","time":2000}
{"process":3,"type":"ok","f":"append","key":"k","value":"2,","time":3000}
{"process":1,"type":"invoke","f":"read","key":"k","value":null,"time":4000}
{"process":1,"type":"ok","f":"read","key":"k","value":"1,","time":5000}
"#;

fn check_json(path: &PathBuf) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_checker"))
        .args(["check", "--json"])
        .arg(path)
        .output()
        .unwrap();
    let line = serde_json::from_slice(&out.stdout).unwrap();
    (out.status.code().unwrap_or(-1), line)
}

#[test]
fn a_planted_lost_write_is_reported_after_the_verdict_as_the_nemesis_reports_it() {
    let path = file("lost-write.jsonl", LOST_WRITE.as_bytes());
    let (code, text) = check(&path);
    assert_eq!(code, 1, "{text}");
    let mut lines = text.lines();
    assert!(
        lines.next().unwrap().contains(": not linearizable"),
        "{text}"
    );
    let append = text.find("append: 2 acknowledged appends over 1 keys, 1 anomalies");
    assert!(append.is_some(), "{text}");
    let lost = &text[append.unwrap()..];
    assert!(
        lost.contains(r#"{"kind":"lost-write","key":"k","element":"2","process":3,"#),
        "{text}"
    );

    // --json carries the same list the nemesis gets from `checker::append::check_append`.
    let (code, line) = check_json(&path);
    assert_eq!(code, 1);
    let history = histories::read_str(LOST_WRITE, Format::Jsonl, "lost-write").unwrap();
    let nemesis = checker::append::check_append(&history);
    assert_eq!(nemesis.anomalies.len(), 1);
    assert_eq!(line["append"]["anomalies"], json!(nemesis.anomalies));
    assert_eq!(line["append"]["anomalies"][0]["acked_ns"], 3000);
}

/// An anomaly alone makes the exit code 1: a retried append read twice is linearizable
/// under the kv model (two appends of `1,` give `1,1,`) but a duplicate element.
#[test]
fn an_append_anomaly_in_a_linearizable_history_exits_1() {
    let dup = r#"{"process":0,"type":"invoke","f":"append","key":"k","value":"1,"}
{"process":0,"type":"ok","f":"append","key":"k","value":"1,"}
{"process":1,"type":"invoke","f":"append","key":"k","value":"1,"}
{"process":1,"type":"ok","f":"append","key":"k","value":"1,"}
{"process":2,"type":"invoke","f":"read","key":"k","value":null}
{"process":2,"type":"ok","f":"read","key":"k","value":"1,1,"}
"#;
    let (code, line) = check_json(&file("duplicate.jsonl", dup.as_bytes()));
    assert_eq!(code, 1, "{line}");
    assert_eq!(line["report"]["verdict"], "linearizable", "{line}");
    assert_eq!(
        line["append"]["anomalies"][0]["kind"], "duplicate",
        "{line}"
    );

    // Without the second append of `1,` (the read a clean prefix) the file passes.
    let clean: String = dup
        .lines()
        .filter(|l| !l.contains(r#""process":1,"#))
        .map(|l| format!("{l}\n"))
        .collect();
    let clean = clean.replace("1,1,", "1,");
    let (code, text) = check(&file("clean-append.jsonl", clean.as_bytes()));
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("append: 1 acknowledged appends over 1 keys, 0 anomalies"),
        "{text}"
    );

    // A history without appends has no append section.
    let (code, line) = check_json(&file("register.jsonl", HISTORY.as_bytes()));
    assert_eq!(code, 0);
    assert!(line.get("append").is_none(), "{line}");
}
