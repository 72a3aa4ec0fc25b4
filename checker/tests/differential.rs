//! The fast checker against stateright's `LinearizabilityTester` (no pruning, no memo, no
//! partitioning) on thousands of small random histories, and generated histories with a
//! planted violation against the checker.
//!
//! Sizes stay well inside what REFERENCE.md §2 says the tester answers quickly (its search
//! is exponential on non-linearizable histories): at most 10 operations with 10 processes,
//! 12 with 4, 14 with 3, 18 with 2.

use checker::generate::{self, GenConfig, Planted};
use checker::oracle::stateright_linearizable;
use checker::{check, ModelKind, Options, Verdict};
use histories::{EventType, History, F};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

fn options(model: ModelKind, initial: Value) -> Options {
    Options {
        model,
        initial,
        threads: 1,
        ..Options::default()
    }
}

/// A small random configuration: few values so that reads and cas ops collide often.
fn small_config(seed: u64, rng: &mut StdRng) -> (GenConfig, ModelKind) {
    let processes = [2, 3, 4, 10][rng.gen_range(0..4)];
    let max_ops = match processes {
        10 => 10,
        4 => 12,
        3 => 14,
        _ => 18,
    };
    let model = [ModelKind::Register, ModelKind::CasRegister, ModelKind::Kv][rng.gen_range(0..3)];
    let mix = match model {
        ModelKind::Register => [3, 2, 0, 0],
        ModelKind::CasRegister => [3, 2, 2, 0],
        _ => [3, 2, 1, 2],
    };
    let initial = if rng.gen_bool(0.5) {
        json!(0)
    } else {
        Value::Null
    };
    let cfg = GenConfig {
        processes,
        keys: if model == ModelKind::Kv {
            rng.gen_range(1..=2)
        } else {
            1
        },
        ops: rng.gen_range(1..=max_ops),
        info_rate: [0.0, 0.1, 0.2][rng.gen_range(0..3)],
        mix,
        values: 3,
        initial,
        seed,
        key_skew: 0.0,
    };
    (cfg, model)
}

/// Changes one completed read's value to another small value (or one append string's
/// content), which may or may not break linearizability: the two checkers must agree.
fn mutate(history: &History, rng: &mut StdRng) -> Option<History> {
    let reads: Vec<usize> = history
        .operations
        .iter()
        .filter(|o| o.f == F::Read && o.status == histories::Status::Ok)
        .filter_map(|o| o.complete_index)
        .collect();
    if reads.is_empty() {
        return None;
    }
    let mut events = history.events.clone();
    let e = reads[rng.gen_range(0..reads.len())];
    let old = events[e].value.clone();
    events[e].value = match old {
        Value::String(s) if !s.is_empty() => {
            // drop or duplicate one appended chunk
            let cut = rng.gen_range(0..s.len());
            json!(if rng.gen_bool(0.5) {
                s[..cut].to_string()
            } else {
                format!("{s}{}", &s[cut..])
            })
        }
        _ => [json!(0), json!(1), json!(2), Value::Null][rng.gen_range(0..4)].clone(),
    };
    debug_assert_eq!(events[e].kind, EventType::Ok);
    History::from_events(events).ok()
}

fn agree(h: &History, model: ModelKind, initial: &Value, what: &str) -> bool {
    let fast = check(h, &options(model, initial.clone())).verdict;
    let t = std::time::Instant::now();
    let slow = stateright_linearizable(h, model, initial).expect("valid ops");
    if t.elapsed().as_secs_f64() > 0.5 {
        eprintln!("slow oracle ({:?}): {what}", t.elapsed());
    }
    assert_ne!(fast, Verdict::Unknown, "{what}");
    assert_eq!(
        fast == Verdict::Linearizable,
        slow,
        "{what}: checker says {fast}, stateright says {slow}; events: {}",
        serde_json::to_string(&h.events).unwrap()
    );
    slow
}

/// Generates `cfg`'s history and one mutation of it, asserts that the checker and
/// stateright agree on both, and returns how many of them were linearizable and how many not.
fn agree_with_mutation(cfg: &GenConfig, model: ModelKind, rng: &mut StdRng) -> (usize, usize) {
    let h = generate::history(cfg);
    assert!(agree(
        &h,
        model,
        &cfg.initial,
        &format!("generated {cfg:?}")
    ));
    match mutate(&h, rng) {
        Some(m) if agree(&m, model, &cfg.initial, &format!("mutated {cfg:?}")) => (2, 0),
        Some(_) => (1, 1),
        None => (1, 0),
    }
}

#[test]
fn agrees_with_stateright_on_3000_small_histories() {
    let mut rng = StdRng::seed_from_u64(2024);
    let (mut valid, mut invalid) = (0, 0);
    for seed in 0..1500u64 {
        let (cfg, model) = small_config(seed, &mut rng);
        let (v, i) = agree_with_mutation(&cfg, model, &mut rng);
        valid += v;
        invalid += i;
    }
    // The mutations must break a fair share of histories, or the comparison proves little.
    assert!(
        invalid > 300,
        "only {invalid} non-linearizable histories of {}",
        valid + invalid
    );
}

#[test]
fn generated_histories_are_linearizable_at_sizes_the_oracle_cannot_reach() {
    for seed in 0..40 {
        let cfg = GenConfig {
            processes: 8,
            keys: 3,
            ops: 600,
            info_rate: 0.05,
            mix: [3, 2, 2, 1],
            values: 4,
            initial: Value::Null,
            seed,
            key_skew: 0.0,
        };
        let report = check(
            &generate::history(&cfg),
            &options(ModelKind::Kv, Value::Null),
        );
        assert_eq!(report.verdict, Verdict::Linearizable, "{cfg:?}");
    }
}

#[test]
fn planted_violations_are_reported_not_linearizable() {
    let mut stale = 0;
    for seed in 0..200 {
        let cfg = GenConfig {
            processes: 1 + (seed as usize % 9),
            keys: 1 + (seed as usize % 3),
            ops: 50 + (seed as usize * 7) % 400,
            info_rate: 0.05,
            mix: [3, 2, 2, 0],
            values: 0,
            initial: Value::Null,
            seed,
            key_skew: 0.0,
        };
        let events = generate::events(&cfg);
        let Some((planted, what)) = generate::plant_violation(&events, seed) else {
            continue;
        };
        stale += matches!(what, Planted::StaleRead { .. }) as usize;
        let h = History::from_events(planted).unwrap();
        let report = check(&h, &options(ModelKind::CasRegister, Value::Null));
        assert_eq!(report.verdict, Verdict::NotLinearizable, "{cfg:?} {what:?}");
        let event = match what {
            Planted::StaleRead { event } | Planted::PhantomRead { event } => event,
        };
        let c = report
            .failures()
            .next()
            .unwrap()
            .counterexample
            .as_ref()
            .unwrap();
        let blamed = &h.operations[c.op];
        // The blamed op is the planted read or one that had to come before it.
        assert!(blamed.invoke_index <= event, "{what:?} blamed {blamed:?}");
    }
    assert!(stale > 100, "only {stale} stale reads planted");
}

/// Keys of only reads and appends take the witness fast path (`witness.rs`) when the reads
/// fix a linearization, and the search otherwise: either way the verdict must be
/// stateright's, on valid histories and on mutated ones (a read cut short or grown).
#[test]
fn agrees_with_stateright_on_append_only_histories() {
    let mut rng = StdRng::seed_from_u64(77);
    let (mut valid, mut invalid) = (0, 0);
    for seed in 0..500u64 {
        let processes = [2, 3, 4][rng.gen_range(0..3)];
        let cfg = GenConfig {
            processes,
            keys: rng.gen_range(1..=2),
            ops: rng.gen_range(1..=[0, 0, 12, 10, 8][processes]),
            info_rate: [0.0, 0.1, 0.3][rng.gen_range(0..3)],
            mix: [3, 0, 0, 3],
            values: 3,
            initial: if rng.gen_bool(0.3) {
                json!("s")
            } else {
                Value::Null
            },
            seed,
            key_skew: 0.0,
        };
        let (v, i) = agree_with_mutation(&cfg, ModelKind::Kv, &mut rng);
        valid += v;
        invalid += i;
    }
    assert!(
        invalid > 100,
        "only {invalid} non-linearizable histories of {}",
        valid + invalid
    );
}

/// One 3,000-op append key, 10 processes, 5% info, unique appended strings.
fn long_append_key(seed: u64) -> GenConfig {
    GenConfig {
        processes: 10,
        ops: 3_000,
        info_rate: 0.05,
        mix: [1, 0, 0, 1],
        values: 0,
        seed,
        ..GenConfig::default()
    }
}

/// A long append history is decided by the witness without the search: with a memory
/// budget of one byte the search could only answer `unknown`.
#[test]
fn long_append_keys_are_decided_without_the_search() {
    for seed in 0..5 {
        let cfg = long_append_key(seed);
        let h = generate::history(&cfg);
        let mut opts = options(ModelKind::Kv, Value::Null);
        opts.memory_limit_bytes = Some(1);
        assert_eq!(check(&h, &opts).verdict, Verdict::Linearizable, "{cfg:?}");
        // Cut one read short: the witness fails, the search runs and spends its budget.
        let mut rng = StdRng::seed_from_u64(seed);
        let m = mutate(&h, &mut rng).expect("the history has reads");
        assert_ne!(check(&m, &opts).verdict, Verdict::Linearizable);
    }
}

/// Issue 12: histories where a third or more of the operations are indeterminate, which is
/// where the reduction (an indeterminate op is placed only right before an op that
/// observes it) prunes the most. The checker with the reduction, the checker without it
/// and stateright agree on every one, valid and mutated.
#[test]
fn high_info_rates_never_change_a_verdict() {
    let mut rng = StdRng::seed_from_u64(12);
    let (mut valid, mut invalid) = (0, 0);
    for seed in 0..400u64 {
        let (mut cfg, model) = small_config(seed, &mut rng);
        // The oracle tries every subset of the indeterminate ops: keep them few.
        cfg.ops = cfg.ops.min(10);
        cfg.info_rate = [0.3, 0.5][rng.gen_range(0..2)];
        let h = generate::history(&cfg);
        let mutated = mutate(&h, &mut rng);
        for (h, what) in [(Some(h), "generated"), (mutated, "mutated")] {
            let Some(h) = h else { continue };
            let what = format!("{what} {cfg:?}");
            let plain = Options {
                reductions: false,
                ..options(model, cfg.initial.clone())
            };
            let without = check(&h, &plain).verdict;
            let ok = agree(&h, model, &cfg.initial, &what);
            assert_eq!(without == Verdict::Linearizable, ok, "plain search: {what}");
            if ok {
                valid += 1;
            } else {
                invalid += 1;
            }
        }
    }
    assert!(
        invalid > 100,
        "only {invalid} of {} not linearizable",
        valid + invalid
    );
}

/// Beyond the oracle's reach: 40 to 120 operations, up to half indeterminate, against the
/// plain search (reduction off), which is complete on these sizes within its budget.
#[test]
fn high_info_rates_agree_with_the_plain_search_on_larger_histories() {
    let mut rng = StdRng::seed_from_u64(1212);
    let (mut compared, mut invalid) = (0, 0);
    for seed in 0..300u64 {
        let model = [ModelKind::CasRegister, ModelKind::Kv][rng.gen_range(0..2)];
        let cfg = GenConfig {
            processes: rng.gen_range(2..=6),
            keys: 1,
            ops: rng.gen_range(40..=120),
            info_rate: [0.2, 0.35, 0.5][rng.gen_range(0..3)],
            mix: if model == ModelKind::Kv {
                [3, 2, 1, 2]
            } else {
                [3, 2, 2, 0]
            },
            values: 3,
            initial: Value::Null,
            seed,
            key_skew: 0.0,
        };
        let h = generate::history(&cfg);
        let mutated = mutate(&h, &mut rng);
        for h in [Some(h), mutated].into_iter().flatten() {
            let opts = Options {
                time_limit: Some(std::time::Duration::from_secs(5)),
                ..options(model, Value::Null)
            };
            let with = check(&h, &opts).verdict;
            let plain = Options {
                reductions: false,
                ..opts
            };
            let without = check(&h, &plain).verdict;
            if without == Verdict::Unknown {
                continue;
            }
            assert_eq!(
                with,
                without,
                "{cfg:?}: events {}",
                serde_json::to_string(&h.events).unwrap()
            );
            compared += 1;
            invalid += (with == Verdict::NotLinearizable) as usize;
        }
    }
    assert!(
        compared > 400 && invalid > 50,
        "{compared} compared, {invalid} not linearizable"
    );
}

/// Peak resident memory of this process (VmHWM), in bytes.
fn peak_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 1024
}

/// Issue 12: the memory budget bounds the process. A long append key with a read cut short
/// defeats the witness and sends the search past its budget: the key ends `unknown`
/// (memory), and the process's peak resident memory grows by at most the budget plus a
/// margin for the allocator (nextest runs each test in its own process).
#[test]
fn the_memory_budget_bounds_peak_resident_memory() {
    const BUDGET: usize = 48 << 20;
    let mut spent = 0;
    for seed in 0..5 {
        let cfg = long_append_key(seed);
        let h = generate::history(&cfg);
        let mut rng = StdRng::seed_from_u64(seed);
        let m = mutate(&h, &mut rng).expect("the history has reads");
        let opts = Options {
            memory_limit_bytes: Some(BUDGET),
            ..options(ModelKind::Kv, Value::Null)
        };
        let before = peak_rss();
        let report = check(&m, &opts);
        let grown = peak_rss().saturating_sub(before);
        if report.verdict == Verdict::Unknown {
            spent += 1;
            let why = report.keys[0].unknown_reason.as_ref().unwrap().to_string();
            assert!(why.contains("--memory-limit"), "{why}");
        }
        assert!(
            grown <= BUDGET + (16 << 20),
            "seed {seed}: peak grew by {grown} bytes"
        );
    }
    assert!(
        spent > 0,
        "no history spent the budget: the test proves nothing"
    );
}
