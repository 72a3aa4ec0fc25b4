//! End to end: the `nemesis` binary against real node processes (our cluster, and etcd when
//! it is installed), checking verdicts and that no acknowledged append was lost.
//!
//! The runs are serialized by a file lock: each starts a whole cluster, and the machine has
//! two cores. Each run is about 15-20 s of load plus start-up, final phase and check.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Seed 14 schedules, with `--faults kill,pause,partition --fault-interval 2` over 18 s: pause one, partition bridge,
/// pause and isolate the leader, kill the leader (every fault family, never a majority kill,
/// so the cluster stays available part of the time). `faults::schedule` is seeded, so this
/// stays true until the schedule's algorithm changes; the tests check the families anyway.
const ALL_FAULTS_SEED: &str = "14";

fn serialize() -> nix::fcntl::Flock<std::fs::File> {
    let f = std::fs::File::create(std::env::temp_dir().join("nemesis-e2e.lock")).unwrap();
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap()
}

fn run_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nemesis-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// What a finished `nemesis` run left: exit code, results.json, and its pid (which names
/// its firewall chains, `JTN-nm<pid>-*`).
struct Run {
    code: i32,
    results: Value,
    pid: u32,
}

/// Runs `nemesis` with `args` and prints its output.
fn nemesis(dir: &Path, args: &[&str]) -> Run {
    let child = Command::new(env!("CARGO_BIN_EXE_nemesis"))
        .args(args)
        .arg("--run-dir")
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nemesis starts");
    let pid = child.id();
    let out = child.wait_with_output().expect("nemesis runs");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let code = out.status.code().unwrap_or(-1);
    let results = std::fs::read_to_string(dir.join("results.json"))
        .unwrap_or_else(|e| panic!("no results.json in {} (exit {code}): {e}", dir.display()));
    Run {
        code,
        results: serde_json::from_str(&results).unwrap(),
        pid,
    }
}

/// The verdict is valid, appends were acknowledged and none is lost, every key was read
/// at the end.
fn assert_valid_with_no_lost_write(code: i32, r: &Value) {
    assert_eq!(r["verdict"], "valid", "{r:#}");
    assert_eq!(code, 0);
    assert_eq!(r["linearizability"]["verdict"], "linearizable");
    let append = &r["append"];
    assert!(append["acknowledged"].as_u64().unwrap() > 50, "{append}");
    assert_eq!(append["anomalies"].as_array().unwrap().len(), 0, "{append}");
    assert_eq!(r["final_reads"].as_object().unwrap().len(), 5);
}

/// The nemesis events of a run's history, in order.
fn nemesis_events(dir: &Path) -> Vec<Value> {
    let h = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    h.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["process"] == "nemesis")
        .collect()
}

fn fault_families(dir: &Path) -> Vec<String> {
    let mut fams: Vec<String> = nemesis_events(dir)
        .into_iter()
        .filter_map(|e| e["f"].as_str()?.strip_prefix("start-").map(String::from))
        .collect();
    fams.sort();
    fams.dedup();
    fams
}

/// Whether the run with this pid left a firewall chain (other runs may be going on).
fn chains_left_by(pid: u32) -> bool {
    let out = Command::new("iptables").args(["-w", "-S"]).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("JTN-nm{pid}-")))
        .unwrap_or(false)
}

const RAFT: &[&str] = &[
    "--target",
    "raft",
    "--nodes",
    "5",
    "--concurrency",
    "8",
    "--keys",
    "5",
    "--workload",
    "append",
    "--rate",
    "150",
];

#[test]
fn raft_clean_run_is_linearizable_and_loses_nothing() {
    let _lock = serialize();
    let dir = run_dir("clean");
    let mut args = RAFT.to_vec();
    args.extend(["--time-limit", "15", "--faults", "none", "--seed", "1"]);
    let Run {
        code,
        results: r,
        pid,
    } = nemesis(&dir, &args);
    assert_valid_with_no_lost_write(code, &r);
    assert!(fault_families(&dir).is_empty());
    assert!(!chains_left_by(pid));

    // The same --run-dir again: refused before any node starts on the first run's data
    // (issue 15: that used to end in a false INVALID), and the first run's files untouched.
    let before = std::fs::read(dir.join("results.json")).unwrap();
    let again = Command::new(env!("CARGO_BIN_EXE_nemesis"))
        .args(&args)
        .arg("--run-dir")
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert_eq!(std::fs::read(dir.join("results.json")).unwrap(), before);
    // Kept only when the test fails (a panic above skips this), for inspection.
    let _ = std::fs::remove_dir_all(&dir);
}

/// DROP rules of the run with this pid (other runs may be going on).
fn drop_rules_of(pid: u32) -> usize {
    let out = Command::new("iptables").args(["-w", "-S"]).output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains(&format!("JTN-nm{pid}-")) && l.ends_with("-j DROP"))
            .count()
    })
    .unwrap_or(0)
}

/// Issue 15: a run SIGKILLed while its partition is in force cannot remove its DROP rules
/// (no handler runs); the next run removes them before it starts, even one with no faults
/// and so no network backend at all.
#[test]
fn a_run_without_faults_removes_the_rules_of_a_sigkilled_partition_run() {
    let iptables = Command::new("iptables").args(["-w", "-S"]).output();
    if !nix::unistd::geteuid().is_root() || !iptables.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: the iptables backend needs root and iptables");
        return;
    }
    let _lock = serialize();
    let victim_dir = run_dir("sigkilled");
    let mut victim = Command::new(env!("CARGO_BIN_EXE_nemesis"))
        .args([
            "--nodes",
            "3",
            "--concurrency",
            "2",
            "--faults",
            "partition",
        ])
        .args([
            "--net",
            "iptables",
            "--fault-interval",
            "0.5",
            "--seed",
            "3",
        ])
        .args(["--time-limit", "60", "--run-dir"])
        .arg(&victim_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let victim_pid = victim.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while drop_rules_of(victim_pid) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the victim run never partitioned"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim_pid as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    victim.wait().unwrap();
    assert!(
        drop_rules_of(victim_pid) > 0,
        "SIGKILL cannot have run any cleanup"
    );

    let dir = run_dir("after-sigkill");
    let args = ["--nodes", "3", "--concurrency", "2", "--keys", "2"];
    let mut args = args.to_vec();
    args.extend(["--faults", "none", "--time-limit", "2", "--seed", "1"]);
    let Run {
        code, results: r, ..
    } = nemesis(&dir, &args);
    assert_eq!(code, 0, "{r:#}");
    assert!(
        !chains_left_by(victim_pid),
        "the SIGKILLed run's chains survived a --faults none run"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&victim_dir);
}

#[test]
fn raft_survives_kill_pause_and_proxy_partitions() {
    let _lock = serialize();
    let dir = run_dir("proxy");
    let mut args = RAFT.to_vec();
    args.extend([
        "--time-limit",
        "18",
        "--fault-interval",
        "2",
        "--faults",
        "kill,pause,partition",
        "--seed",
        ALL_FAULTS_SEED,
    ]);
    args.extend(["--net", "proxy"]);
    let Run {
        code,
        results: r,
        pid,
    } = nemesis(&dir, &args);
    assert_eq!(fault_families(&dir), ["kill", "partition", "pause"]);
    assert_valid_with_no_lost_write(code, &r);
    assert!(
        !chains_left_by(pid),
        "the proxy backend wrote firewall rules"
    );
    // Kept only when the test fails (a panic above skips this), for inspection.
    let _ = std::fs::remove_dir_all(&dir);
}

/// Link faults through the proxy (delays, a jittered delay, stalls released in a burst,
/// resets of the leader's connections) between kills: the history stays valid and nothing
/// acknowledged is lost. Seed 11 at `--fault-interval 1.5` draws three shapes of link fault
/// and two kills in 15 s (pinned by a unit test in `faults/schedule.rs`).
#[test]
fn raft_survives_link_faults_through_the_proxy() {
    let _lock = serialize();
    let dir = run_dir("link");
    let mut args = RAFT.to_vec();
    args.extend([
        "--time-limit",
        "15",
        "--fault-interval",
        "1.5",
        "--faults",
        "link,kill",
        "--net",
        "proxy",
        "--seed",
        "11",
    ]);
    let Run {
        code, results: r, ..
    } = nemesis(&dir, &args);
    assert_valid_with_no_lost_write(code, &r);
    assert_eq!(fault_families(&dir), ["kill", "link"]);
    let h = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let kinds: std::collections::BTreeSet<String> = h
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["process"] == "nemesis" && e["f"] == "start-link")
        .map(|e| e["value"]["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.len() >= 2, "link faults drawn: {kinds:?}");
    // Kept only when the test fails (a panic above skips this), for inspection.
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reordered messages (the leader's held AppendEntries delivered after newer ones, then the
/// leader cut off): the correct cluster ignores the stale ones and stays valid.
#[test]
fn raft_survives_reordered_messages() {
    let _lock = serialize();
    let dir = run_dir("reorder");
    let mut args = RAFT.to_vec();
    args.extend([
        "--time-limit",
        "8",
        "--fault-interval",
        "1",
        "--faults",
        "reorder",
        "--net",
        "proxy",
        "--seed",
        "3",
    ]);
    let Run {
        code, results: r, ..
    } = nemesis(&dir, &args);
    assert_valid_with_no_lost_write(code, &r);
    let h = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let reorders = h
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["f"] == "start-link" && e["value"]["kind"] == "reorder")
        .count();
    assert!(reorders >= 2, "{reorders} reorders in 8 s");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Membership changes between partitions through the proxy: every removal and every re-add
/// done, and the history valid. Seed 17 schedules, at `--fault-interval 2`: remove and
/// re-add a minority (all at once), a majorities ring, isolate one, the leader.
#[test]
fn raft_survives_removing_and_re_adding_voters() {
    let _lock = serialize();
    let dir = run_dir("member");
    let mut args = RAFT.to_vec();
    args.extend([
        "--time-limit",
        "15",
        "--fault-interval",
        "2",
        "--faults",
        "member,partition",
        "--net",
        "proxy",
        "--seed",
        "17",
    ]);
    let Run {
        code, results: r, ..
    } = nemesis(&dir, &args);
    assert_valid_with_no_lost_write(code, &r);
    let member: Vec<Value> = nemesis_events(&dir)
        .into_iter()
        .filter(|e| e["f"] == "start-member" || e["f"] == "stop-member")
        .map(|e| e["value"].clone())
        .collect();
    // The split fault's removals are refused by design (its own e2e check is the bug run).
    let member: Vec<&Value> = member.iter().filter(|v| v.get("split").is_none()).collect();
    assert!(member.len() >= 2, "no member fault in 15 s: {member:?}");
    for v in &member {
        let what = v.get("removed").or(v.get("added")).unwrap();
        let nodes = v["nodes"].as_array().unwrap().len();
        assert_eq!(what, &serde_json::json!(vec!["done"; nodes]), "{member:?}");
    }
    // Kept only when the test fails (a panic above skips this), for inspection.
    let _ = std::fs::remove_dir_all(&dir);
}

/// The composed membership fault catches the bug it was made for: a leader that takes a
/// second membership change while the first is pending, cut off with one follower, commits
/// with its side while the other side elects its own leader (6 of 6 runs of 12-30 s caught
/// it while this test was written; BENCHMARKS.md).
#[test]
fn split_member_catches_unsafe_membership() {
    let _lock = serialize();
    let dir = run_dir("split-member");
    let mut args = RAFT.to_vec();
    args.extend([
        "--time-limit",
        "12",
        "--fault-interval",
        "2",
        "--faults",
        "split-member",
        "--net",
        "proxy",
        "--bug",
        "unsafe-membership",
        "--seed",
        "1001",
    ]);
    let Run {
        code, results: r, ..
    } = nemesis(&dir, &args);
    assert_eq!(r["verdict"], "invalid", "{r:#}");
    assert_eq!(code, 1);
    assert_eq!(fault_families(&dir), ["member"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The stale-leader fault: a correct cluster stays valid through it (the restarted nodes
/// keep their term and depose the old leader); one whose nodes forget their term on restart
/// follows the old leader, which commits over the new leader's entries (`--bug forget-vote`:
/// caught by every 30 s run tried while this test was written).
#[test]
fn stale_leader_keeps_a_correct_cluster_valid_and_catches_forget_vote() {
    let _lock = serialize();
    for bug in [None, Some("forget-vote")] {
        let dir = run_dir("stale-leader");
        let mut args = RAFT.to_vec();
        args.extend([
            "--time-limit",
            "12",
            "--fault-interval",
            "1",
            "--faults",
            "stale-leader",
            "--net",
            "proxy",
            "--seed",
            "1001",
        ]);
        if let Some(b) = bug {
            args.extend(["--bug", b]);
        }
        let Run {
            code, results: r, ..
        } = nemesis(&dir, &args);
        assert_eq!(fault_families(&dir), ["kill", "pause"], "{bug:?}");
        match bug {
            None => assert_valid_with_no_lost_write(code, &r),
            Some(_) => {
                assert_eq!(r["verdict"], "invalid", "{r:#}");
                assert_eq!(code, 1);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The lag fault on its own: cut two followers off while writes go on, kill the leader and
/// the first follower that kept up, heal, restart both. A correct cluster elects the one
/// node still up that kept up (the lagging nodes vote for it), catches them up and loses
/// nothing.
#[test]
fn lag_then_kill_keeps_a_correct_cluster_valid() {
    let _lock = serialize();
    let dir = run_dir("lag");
    let mut args = RAFT.to_vec();
    args.extend(
        "--time-limit 15 --fault-interval 2 --faults lag --net proxy --seed 1001".split(' '),
    );
    let Run {
        code, results: r, ..
    } = nemesis(&dir, &args);
    assert_eq!(fault_families(&dir), ["kill", "partition"]);
    let kills: Vec<String> = nemesis_events(&dir)
        .into_iter()
        .filter(|e| e["f"] == "start-kill")
        .map(|e| e["value"]["who"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(kills.iter().any(|w| w == "leader"), "{kills:?}");
    assert!(
        kills.iter().any(|w| w == "follower that kept up"),
        "{kills:?}"
    );
    assert_valid_with_no_lost_write(code, &r);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The figure-8 fault: a correct cluster stays valid through it, and every time its steps
/// all take, the last election goes to the follower that got the newest leader's first
/// entry (D): a correct leader commits nothing of the old term before that entry is on a
/// majority, so the node holding the term in between (C) cannot win. (With `--bug
/// commit-old-term` C wins and overwrites acknowledged writes; see BENCHMARKS.md for how
/// often.)
#[test]
fn figure8_keeps_a_correct_cluster_valid() {
    let _lock = serialize();
    let dir = run_dir("figure8");
    let mut args = RAFT.to_vec();
    args.extend(
        "--time-limit 20 --fault-interval 2 --faults figure8 --net proxy --seed 5".split(' '),
    );
    let run = nemesis(&dir, &args);
    assert_valid_with_no_lost_write(run.code, &run.results);
    let played: Vec<Value> = nemesis_events(&dir)
        .into_iter()
        .map(|e| e["value"].clone())
        .filter(|v| v["kind"] == "figure8")
        .collect();
    let whole = played.iter().filter(|v| v["reached"] == "last election");
    let mut n = 0;
    for v in whole {
        assert_eq!(v["last_leader"], v["roles"]["d"], "{v}");
        n += 1;
    }
    assert!(n > 0, "no figure-8 fault got through: {played:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn raft_survives_kill_pause_and_iptables_partitions_when_root() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: the iptables backend needs root");
        return;
    }
    let _lock = serialize();
    let dir = run_dir("iptables");
    let mut args = RAFT.to_vec();
    args.extend([
        "--time-limit",
        "18",
        "--fault-interval",
        "2",
        "--faults",
        "kill,pause,partition",
        "--seed",
        ALL_FAULTS_SEED,
    ]);
    args.extend(["--net", "iptables"]);
    let Run {
        code,
        results: r,
        pid,
    } = nemesis(&dir, &args);
    assert_eq!(fault_families(&dir), ["kill", "partition", "pause"]);
    assert_valid_with_no_lost_write(code, &r);
    assert!(!chains_left_by(pid), "a firewall chain survived the run");
    // Kept only when the test fails (a panic above skips this), for inspection.
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn etcd_runs_end_to_end_with_faults() {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("etcd").is_file()))
        .unwrap_or(false);
    if !on_path {
        eprintln!("SKIPPED: etcd is not on PATH (Debian: apt-get install etcd-server)");
        return;
    }
    let _lock = serialize();
    let dir = run_dir("etcd");
    // Partitions of etcd need per-node uids and iptables, so root; kills and pauses do not.
    let faults = if nix::unistd::geteuid().is_root() {
        "kill,pause,partition"
    } else {
        "kill,pause"
    };
    let args = [
        "--target",
        "etcd",
        "--nodes",
        "3",
        "--concurrency",
        "8",
        "--keys",
        "5",
        "--workload",
        "append",
        "--rate",
        "150",
        "--time-limit",
        "18",
        "--fault-interval",
        "2",
        "--seed",
        ALL_FAULTS_SEED,
        "--faults",
        faults,
    ];
    let Run {
        code,
        results: r,
        pid,
    } = nemesis(&dir, &args);
    println!("etcd verdict: {} (exit {code})", r["verdict"]);
    assert!(!fault_families(&dir).is_empty());
    assert_eq!(
        r["append"]["anomalies"].as_array().unwrap().len(),
        0,
        "{r:#}"
    );
    assert_ne!(r["verdict"], "invalid", "{r:#}");
    assert!(code == 0 || code == 3, "exit {code}");
    assert!(!chains_left_by(pid), "a firewall chain survived the run");
    // Kept only when the test fails (a panic above skips this), for inspection.
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether power losses can run here (the lazy FUSE mounts need root and /dev/fuse).
fn fuse_available() -> bool {
    nix::unistd::geteuid().is_root() && Path::new("/dev/fuse").exists()
}

/// A 15 s run of power losses only (`POWER_SEED`), with `extra` arguments; `None` when
/// FUSE is not available here (the test is skipped with a message).
fn power_run(name: &str, extra: &[&str]) -> Option<(PathBuf, Run)> {
    if !fuse_available() {
        eprintln!("skipped: power losses need root and /dev/fuse");
        return None;
    }
    let dir = run_dir(name);
    let mut args = RAFT.to_vec();
    args.extend("--time-limit 15 --fault-interval 1.5 --faults power-loss".split(' '));
    args.extend(["--seed", POWER_SEED]);
    args.extend(extra);
    let run = nemesis(&dir, &args);
    Some((dir, run))
}

/// Power losses (kill, lose every unsynced write, restart) on the correct cluster: it
/// fsyncs before it acknowledges, so the history stays valid and nothing is lost; and the
/// run leaves no mount behind.
#[test]
fn raft_survives_power_losses() {
    let _lock = serialize();
    let Some((dir, run)) = power_run("power", &[]) else {
        return;
    };
    assert_valid_with_no_lost_write(run.code, &run.results);
    assert_eq!(fault_families(&dir), ["power-loss"]);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(dir.to_str().unwrap()), "a mount was left");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same schedule with nodes that never fsync (`--bug no-fsync`): the power losses
/// take acknowledged entries with them and the run comes out invalid.
#[test]
fn power_loss_catches_no_fsync() {
    let _lock = serialize();
    let Some((dir, run)) = power_run("power-no-fsync", &["--bug", "no-fsync"]) else {
        return;
    };
    assert_eq!(run.results["verdict"], "invalid", "{:#}", run.results);
    assert_eq!(run.code, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Seed of both power-loss tests: at `--fault-interval 1.5` over 15 s it draws a majority
/// power loss (with the leader) first, then the leader three times, then two majorities;
/// with `--bug no-fsync` seeds 1, 2 and 3 all came out invalid (BENCHMARKS.md).
const POWER_SEED: &str = "2";
