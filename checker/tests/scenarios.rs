//! Small scenarios with a known answer: the semantics of fail / info, the counterexample's
//! content, and the budgets (time, memory) ending in `Unknown` naming the key.

use checker::generate::{self, GenConfig};
use checker::{check, try_check, ModelKind, Options, UnknownReason, Verdict};
use histories::{Event, EventType, EventType::*, History, Key, F};
use serde_json::{json, Value};
use std::time::Duration;

fn ev(p: u64, kind: EventType, f: F, v: Value) -> Event {
    Event::client(p, kind, f, None, v)
}

fn opts(model: ModelKind, initial: Value) -> Options {
    Options {
        model,
        initial,
        ..Options::default()
    }
}

fn verdict(events: Vec<Event>, model: ModelKind, initial: Value) -> Verdict {
    check(
        &History::from_events(events).unwrap(),
        &opts(model, initial),
    )
    .verdict
}

#[test]
fn a_failed_write_did_not_happen() {
    let events = vec![
        ev(0, Invoke, F::Write, json!(1)),
        ev(0, Fail, F::Write, json!(1)),
        ev(1, Invoke, F::Read, Value::Null),
        ev(1, Ok, F::Read, json!(1)),
    ];
    assert_eq!(
        verdict(events, ModelKind::Register, json!(0)),
        Verdict::NotLinearizable
    );
}

#[test]
fn an_info_write_may_take_effect_long_after_it_was_invoked() {
    let events = vec![
        ev(0, Invoke, F::Write, json!(1)),
        ev(0, Info, F::Write, json!(1)),
        ev(1, Invoke, F::Read, Value::Null),
        ev(1, Ok, F::Read, json!(0)),
        ev(1, Invoke, F::Read, Value::Null),
        ev(1, Ok, F::Read, json!(1)),
    ];
    assert_eq!(
        verdict(events, ModelKind::Register, json!(0)),
        Verdict::Linearizable
    );
}

#[test]
fn an_info_write_takes_effect_at_most_once() {
    let events = vec![
        ev(0, Invoke, F::Write, json!(1)),
        ev(0, Info, F::Write, json!(1)),
        ev(1, Invoke, F::Write, json!(2)),
        ev(1, Ok, F::Write, json!(2)),
        ev(1, Invoke, F::Read, Value::Null),
        ev(1, Ok, F::Read, json!(1)),
        ev(1, Invoke, F::Read, Value::Null),
        ev(1, Ok, F::Read, json!(2)),
    ];
    assert_eq!(
        verdict(events, ModelKind::Register, json!(0)),
        Verdict::NotLinearizable
    );
}

#[test]
fn cas_and_append_follow_the_kv_model() {
    let k = Some(Key::Str("k".into()));
    let e = |p, t, f, v| Event::client(p, t, f, k.clone(), v);
    let events = vec![
        e(0, Invoke, F::Append, json!("a")),
        e(0, Ok, F::Append, json!("a")),
        e(0, Invoke, F::Cas, json!(["a", "b"])),
        e(0, Ok, F::Cas, json!(["a", "b"])),
        e(0, Invoke, F::Append, json!("c")),
        e(0, Ok, F::Append, json!("c")),
        e(0, Invoke, F::Read, Value::Null),
        e(0, Ok, F::Read, json!("bc")),
    ];
    assert_eq!(
        verdict(events.clone(), ModelKind::Kv, Value::Null),
        Verdict::Linearizable
    );
    let mut wrong = events;
    wrong[7].value = json!("abc");
    assert_eq!(
        verdict(wrong, ModelKind::Kv, Value::Null),
        Verdict::NotLinearizable
    );
}

#[test]
fn the_counterexample_names_the_stale_read_and_its_concurrent_ops() {
    // 0: write 1 completes; then 1 reads 0 while 2 writes 2 concurrently.
    let events = vec![
        ev(0, Invoke, F::Write, json!(1)),
        ev(0, Ok, F::Write, json!(1)),
        ev(2, Invoke, F::Write, json!(2)),
        ev(1, Invoke, F::Read, Value::Null),
        ev(1, Ok, F::Read, json!(0)),
        ev(2, Ok, F::Write, json!(2)),
    ];
    let h = History::from_events(events).unwrap();
    let report = check(&h, &opts(ModelKind::Register, json!(0)));
    assert_eq!(report.verdict, Verdict::NotLinearizable);
    let c = report.keys[0].counterexample.as_ref().unwrap();
    assert_eq!(c.op, 2, "the read");
    assert_eq!(c.concurrent, vec![1]);
    let lin = &c.linearizations[0];
    assert_eq!(lin.steps[0].op, 0);
    assert_eq!(lin.steps[0].state_after, json!(1));
    assert!(lin
        .blocked
        .iter()
        .any(|b| b.op == 2 && b.reason.contains("read 0")));
    let text = c.explain();
    assert!(text.contains("#2 process 1 read -> 0"), "{text}");
    assert!(text.contains("cannot be linearized"), "{text}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["keys"][0]["counterexample"]["op"], 2);
}

#[test]
fn an_unsupported_op_is_an_error_naming_it() {
    let events = vec![
        ev(0, Invoke, F::Cas, json!([0, 1])),
        ev(0, Ok, F::Cas, json!([0, 1])),
    ];
    let h = History::from_events(events).unwrap();
    let err = try_check(&h, &opts(ModelKind::Register, json!(0))).unwrap_err();
    assert!(err.to_string().contains("cas"), "{err}");
    let bad = vec![ev(0, Invoke, F::Cas, json!(3)), ev(0, Ok, F::Cas, json!(3))];
    let err = try_check(
        &History::from_events(bad).unwrap(),
        &opts(ModelKind::Kv, json!(0)),
    );
    assert!(err.unwrap_err().to_string().contains("[expected, new]"));
}

/// A key whose search needs many steps: 20 processes, small values, info ops.
fn busy_history() -> History {
    generate::history(&GenConfig {
        processes: 20,
        keys: 1,
        ops: 3000,
        info_rate: 0.05,
        mix: [1, 2, 2, 0],
        values: 3,
        initial: Value::Null,
        seed: 3,
        key_skew: 0.0,
    })
}

#[test]
fn a_spent_memory_budget_gives_unknown_naming_the_key() {
    let h = busy_history();
    let o = Options {
        memory_limit_bytes: Some(1),
        ..opts(ModelKind::CasRegister, Value::Null)
    };
    let report = check(&h, &o);
    assert_eq!(report.verdict, Verdict::Unknown);
    let k = report.unknowns().next().expect("an unknown key");
    assert_eq!(k.key, None);
    assert_eq!(
        k.unknown_reason,
        Some(UnknownReason::MemoryLimit { limit_bytes: 1 })
    );
}

#[test]
fn a_passed_time_limit_gives_unknown_naming_the_key() {
    let h = busy_history();
    let o = Options {
        time_limit: Some(Duration::ZERO),
        ..opts(ModelKind::CasRegister, Value::Null)
    };
    let report = check(&h, &o);
    assert_eq!(report.verdict, Verdict::Unknown);
    let k = report.unknowns().next().expect("an unknown key");
    assert_eq!(k.unknown_reason, Some(UnknownReason::TimeLimit));
    // Issue 15: the message says which flag raises the limit.
    let said = k.unknown_reason.as_ref().unwrap().to_string();
    assert!(said.contains("--time-limit"), "{said}");
    // Without the limit the same history is decided.
    assert_eq!(
        check(&h, &opts(ModelKind::CasRegister, Value::Null)).verdict,
        Verdict::Linearizable
    );
}

/// Knossos' mutex: two acquires with no release between them cannot both succeed; an
/// indeterminate release between them explains it.
#[test]
fn a_mutex_acquired_twice_needs_a_release_between() {
    let acquire = || F::Other("acquire".into());
    let release = || F::Other("release".into());
    let twice = vec![
        ev(0, Invoke, acquire(), Value::Null),
        ev(0, Ok, acquire(), Value::Null),
        ev(1, Invoke, acquire(), Value::Null),
        ev(1, Ok, acquire(), Value::Null),
    ];
    let o = opts(ModelKind::Mutex, Value::Null);
    let h = History::from_events(twice.clone()).unwrap();
    assert_eq!(check(&h, &o).verdict, Verdict::NotLinearizable);
    let mut released = twice;
    released.insert(2, ev(2, Invoke, release(), Value::Null));
    let h = History::from_events(released).unwrap();
    assert_eq!(check(&h, &o).verdict, Verdict::Linearizable);
    // A mutex op under another model is an error, and a cas under the mutex model.
    assert!(try_check(&h, &opts(ModelKind::CasRegister, Value::Null)).is_err());
}

/// A key no reduction shortens: 60 concurrent indeterminate cas ops over values 0..5 (every
/// pair `e → n` with `e ≠ n`, three of each, every value expected by some cas, so none is
/// pruned), then a read of 9, which nothing writes. It is not linearizable, but the search
/// must try the chains of cas ops before it can say so: about 4^20 configurations.
fn adversarial_history() -> History {
    let mut events = Vec::new();
    let mut p = 0;
    for e in 0..5 {
        for n in (0..5).filter(|&n| n != e) {
            for _ in 0..3 {
                events.push(ev(p, Invoke, F::Cas, json!([e, n])));
                p += 1;
            }
        }
    }
    for q in 0..p {
        events.push(ev(q, Info, F::Cas, Value::Null));
    }
    events.push(ev(p, Invoke, F::Read, Value::Null));
    events.push(ev(p, Ok, F::Read, json!(9)));
    History::from_events(events).unwrap()
}

/// Issue 12: no history makes the checker hang. The adversarial key ends `unknown` once its
/// time limit passes, saying which flag to raise. The bound on the wall clock is loose on
/// purpose (a hang is what it catches, not a slow machine).
#[test]
fn an_adversarial_key_ends_unknown_at_its_time_limit() {
    let h = adversarial_history();
    let limit = Duration::from_millis(300);
    let o = Options {
        time_limit: Some(limit),
        memory_limit_bytes: None,
        ..opts(ModelKind::CasRegister, json!(0))
    };
    let start = std::time::Instant::now();
    let report = check(&h, &o);
    let took = start.elapsed();
    assert_eq!(report.verdict, Verdict::Unknown);
    let k = report.unknowns().next().expect("an unknown key");
    assert_eq!(k.unknown_reason, Some(UnknownReason::TimeLimit));
    let said = k.unknown_reason.as_ref().unwrap().to_string();
    assert!(said.contains("--time-limit"), "{said}");
    assert!(k.states_explored > 1000, "the search did run: {k:?}");
    assert!(
        took >= limit && took < limit + Duration::from_secs(20),
        "{took:?}"
    );
}

/// Issue 12: the memory budget bounds the search. Without a time limit the adversarial key
/// would run for ever; with a 16 MiB budget it ends `unknown` naming `--memory-limit`, and
/// the memo's own accounting (capacities, chunks, the table's next doubling) stopped within
/// one 8 MiB chunk and one doubling of the budget, checked every 1,024 steps.
#[test]
fn an_adversarial_key_ends_unknown_when_its_memory_budget_is_spent() {
    const BUDGET: usize = 16 << 20;
    let h = adversarial_history();
    let o = Options {
        time_limit: None,
        memory_limit_bytes: Some(BUDGET),
        ..opts(ModelKind::CasRegister, json!(0))
    };
    let report = check(&h, &o);
    assert_eq!(report.verdict, Verdict::Unknown);
    let k = report.unknowns().next().expect("an unknown key");
    assert_eq!(
        k.unknown_reason,
        Some(UnknownReason::MemoryLimit {
            limit_bytes: BUDGET
        })
    );
    let said = k.unknown_reason.as_ref().unwrap().to_string();
    assert!(said.contains("--memory-limit"), "{said}");
    assert!(k.memo_bytes > BUDGET, "it stopped because it spent it");
    assert!(
        k.memo_bytes <= 2 * BUDGET + (8 << 20),
        "the accounting overshot: {} bytes",
        k.memo_bytes
    );
}

/// A key that starts after the deadline (here: at once) is not prepared or searched.
#[test]
fn keys_started_after_the_deadline_are_unknown_without_work() {
    let h = adversarial_history();
    let o = Options {
        time_limit: Some(Duration::ZERO),
        ..opts(ModelKind::CasRegister, json!(0))
    };
    let report = check(&h, &o);
    let k = report.unknowns().next().expect("an unknown key");
    assert_eq!(k.unknown_reason, Some(UnknownReason::TimeLimit));
    assert_eq!(k.states_explored, 0);
}
