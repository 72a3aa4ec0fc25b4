//! Every history in the shared corpus loads, auto-detected, with the counts its EXPECTED.md
//! gives.

use histories::{read_path, EventType, Format, History, Status};
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
}

/// Every file under `dir` whose name ends with one of `exts`, sorted.
fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if exts.iter().any(|x| p.to_string_lossy().ends_with(x)) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn count(h: &History, kind: EventType) -> usize {
    h.events.iter().filter(|e| e.kind == kind).count()
}

#[test]
fn every_corpus_history_loads_with_auto_detection() {
    let all = files(&corpus(), &[".edn", ".log", ".txt"]);
    // 122 Knossos EDN files, 103 etcd logs, 6 kv logs.
    assert_eq!(all.len(), 231, "corpus files found: {}", all.len());
    let failures: Vec<String> = all
        .iter()
        .filter_map(|p| read_path(p, Format::Auto).err().map(|e| e.to_string()))
        .collect();
    assert!(
        failures.is_empty(),
        "{} files fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn etcd_logs_have_the_documented_counts() {
    // (file, lines, invokes, info, fail-cas, fail-read) from porcupine/EXPECTED.md.
    let rows = [
        ("etcd_000.log", 170, 85, 16, 20, 0),
        ("etcd_002.log", 154, 77, 19, 13, 0),
        ("etcd_095.log", 0, 0, 0, 0, 0),
        ("etcd_100.log", 154, 77, 11, 17, 5),
        ("etcd_102.log", 146, 73, 18, 9, 7),
    ];
    for (name, lines, invokes, info, fail_cas, fail_read) in rows {
        let h = read_path(
            &corpus().join("porcupine/jepsen").join(name),
            Format::JepsenLog,
        )
        .unwrap();
        assert_eq!(h.events.len(), lines, "{name}");
        assert_eq!(count(&h, EventType::Invoke), invokes, "{name}");
        assert_eq!(count(&h, EventType::Info), info, "{name}");
        let fails = |f: histories::F| {
            h.operations
                .iter()
                .filter(|o| o.status == Status::Fail && o.f == f)
                .count()
        };
        assert_eq!(fails(histories::F::Cas), fail_cas, "{name}");
        assert_eq!(fails(histories::F::Read), fail_read, "{name}");
    }
}

#[test]
fn kv_logs_have_the_documented_counts() {
    for (name, operations) in [
        ("c01-ok.txt", 58),
        ("c10-bad.txt", 405),
        ("c50-ok.txt", 1712),
    ] {
        let h = read_path(&corpus().join("porcupine/kv").join(name), Format::Auto).unwrap();
        assert_eq!(h.operations.len(), operations, "{name}");
        assert!(
            h.operations
                .iter()
                .all(|o| o.status == Status::Ok && o.key.is_some()),
            "{name}"
        );
    }
}

#[test]
fn knossos_files_have_the_documented_counts() {
    // (file, invoke, ok, fail, info) from knossos/EXPECTED.md (info counts nemesis events too).
    let rows = [
        ("cas-register/bad/bad-analysis.edn", 9, 7, 0, 0),
        ("cas-register/bad/cas-failure.edn", 291, 205, 85, 9),
        ("cas-register/good/memstress3-90.edn", 80, 36, 29, 15),
        (
            "cas-register/good/mongodb-v0-ack-rollback-.edn",
            0,
            0,
            0,
            28,
        ),
        ("multi-register/good/multi-register.edn", 123, 119, 2, 6),
        ("mutex/bad/etcd.edn", 563, 261, 299, 12),
    ];
    for (name, invoke, ok, fail, info) in rows {
        let h = read_path(&corpus().join("knossos").join(name), Format::Auto).unwrap();
        let got = (
            count(&h, EventType::Invoke),
            count(&h, EventType::Ok),
            count(&h, EventType::Fail),
            count(&h, EventType::Info),
        );
        assert_eq!(got, (invoke, ok, fail, info), "{name}");
    }
}

#[test]
fn every_corpus_history_survives_jsonl_and_edn_round_trips() {
    for path in files(&corpus(), &[".edn", ".log", ".txt"]) {
        let name = path.display().to_string();
        let h = read_path(&path, Format::Auto).unwrap();
        let jsonl = histories::jsonl::write_jsonl(&h, Vec::new()).unwrap();
        let back = histories::read_bytes(&jsonl, Format::Auto, &name).unwrap();
        assert_eq!(back.events, h.events, "{name} via JSON Lines");
        let edn = histories::write_edn(&back, Vec::new()).unwrap();
        let again = histories::read_bytes(&edn, Format::Auto, &name).unwrap();
        assert_eq!(again.events, h.events, "{name} via JSON Lines then EDN");
        assert_eq!(again.operations, h.operations, "{name}");
    }
}
