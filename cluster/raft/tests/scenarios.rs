//! Runs the scenario files in `testdata/*.txt` (in the style of etcd's interaction tests).
//!
//! A file opens with `#` lines saying what it tests. Each `> command` line is followed by
//! the trace it produced. The runner replays the commands and compares the whole file; run
//! with `RAFT_REWRITE=1` to write the actual traces back (then read the diff before
//! committing it).
//!
//! Commands (node ids are numbers; `N` one node, lists are comma-separated):
//! - `add-nodes K [pre-vote=false] [check-quorum=false] [bugs=a,b] [max-batch=B]
//!   [max-inflight=I] [voters=1,2,3]`: nodes `1..=K`, all started with the same initial
//!   voters (default all K).
//! - `campaign N`, `tick N [count]`, `tick-election N`, `tick-heartbeat N`
//! - `propose N data [count]` (data1, data2, … when count > 1), `read-index N ctx`, `compact N`
//! - `conf-change N add-voter 4 | add-learner 4 | remove 4 | joint 1,2,4 [manual] | leave`
//! - `process-ready N[,M…]`, `deliver-msgs [from=N] [to=N]`, `drop-msgs [from=N] [to=N]`,
//!   `stabilize` (process and deliver until quiet)
//! - `crash N`, `restart N`, `partition 1,2/3,4,5`, `heal`
//! - `status [N]`, `log N`

mod interaction;

use std::fs;
use std::path::Path;

#[test]
fn scenarios() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let rewrite = std::env::var_os("RAFT_REWRITE").is_some();
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("testdata directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    let mut failed = Vec::new();
    let files_seen = files.len();
    for path in files {
        let text = fs::read_to_string(&path).expect("readable scenario");
        assert!(text.starts_with('#'), "{path:?} must open with a paragraph");
        let actual =
            interaction::run_script(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if actual != text {
            if rewrite {
                fs::write(&path, &actual).expect("write scenario");
            } else {
                failed.push(path.display().to_string());
                eprintln!("--- {} differs; first difference:", path.display());
                for (i, (a, b)) in text.lines().zip(actual.lines()).enumerate() {
                    if a != b {
                        eprintln!("line {}:\n  expected: {a}\n  actual:   {b}", i + 1);
                        break;
                    }
                }
            }
        }
    }
    assert!(
        failed.is_empty(),
        "scenarios differ (RAFT_REWRITE=1 to update): {failed:?}"
    );
    assert!(files_seen >= 10, "expected the scenario files in {dir:?}");
}
