//! The driver: validate, split the history by key, search the keys in parallel, and turn
//! each failing key's search record into a counterexample.
//!
//! Keys are independent (P-compositionality: a history is linearizable iff every key's
//! sub-history is), so each is searched on its own with its own memo, which also bounds
//! memory by the largest keys in flight rather than the whole history. Workers are plain
//! scoped threads pulling key indices from an atomic counter, biggest keys first so one
//! large key does not start last; the first key found not linearizable raises a flag the
//! others poll, and they stop with `Unknown (stopped)`.

use crate::model::SequentialModel;
use crate::outcome::{
    summaries, Blocked, Counterexample, KeyReport, PartialLinearization, Report, Step,
    UnknownReason, Verdict,
};
use crate::prepare::{cell_history, text_history, KeyHistory};
use crate::search::{search, Budget, Cut, Outcome};
use crate::{CheckError, ModelKind, Options};
use histories::{History, Key, Operation, Status, F};
use rustc_hash::FxHashMap;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Rejects operations the model does not know and malformed values, before any search.
pub(crate) fn validate(history: &History, model: ModelKind) -> Result<(), CheckError> {
    for op in &history.operations {
        let multi = matches!(model, ModelKind::MultiRegister | ModelKind::Mutex);
        let allowed = match &op.f {
            F::Read | F::Write => !multi,
            F::Cas => !multi && model != ModelKind::Register,
            F::Append => model == ModelKind::Kv,
            F::Other(f) if model == ModelKind::Mutex => f == "acquire" || f == "release",
            F::Other(f) => model == ModelKind::MultiRegister && f == "txn",
        };
        if !allowed {
            return Err(CheckError::UnsupportedOp {
                op: op.id,
                event: op.invoke_index,
                process: op.process,
                f: op.f.to_string(),
                model,
            });
        }
        let bad = |expected: &'static str| CheckError::BadValue {
            op: op.id,
            event: op.invoke_index,
            process: op.process,
            f: op.f.to_string(),
            expected,
            found: op.input.to_string(),
        };
        match op.f {
            F::Cas if !matches!(op.input.as_array(), Some(a) if a.len() == 2) => {
                return Err(bad("[expected, new]"));
            }
            F::Append if !op.input.is_string() => return Err(bad("a string to append")),
            F::Other(_)
                if model == ModelKind::MultiRegister
                    && crate::txn::micro_ops(&op.input).is_none() =>
            {
                return Err(bad("[[\"read\" | \"write\", register, value], ...]"));
            }
            _ => {}
        }
    }
    Ok(())
}

type KeyOps<'h> = (Option<Key>, Vec<&'h Operation>);

/// Groups operations by key, in key order.
fn partition(history: &History) -> Vec<KeyOps<'_>> {
    let mut by_key: FxHashMap<&Option<Key>, Vec<&Operation>> = FxHashMap::default();
    for op in &history.operations {
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut keys: Vec<KeyOps<'_>> = by_key.into_iter().map(|(k, v)| (k.clone(), v)).collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    keys
}

/// Checks a validated history.
pub(crate) fn run(history: &History, opts: &Options) -> Report {
    let start = Instant::now();
    let keys = partition(history);
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(keys[i].1.len()));
    let stop = AtomicBool::new(false);
    let mem_used = AtomicUsize::new(0);
    let budget = Budget {
        deadline: opts.time_limit.map(|d| start + d),
        stop: &stop,
        mem_used: &mem_used,
        mem_limit: opts.memory_limit_bytes,
    };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<KeyReport>>> = Mutex::new(vec![None; keys.len()]);
    let threads = opts.threads.clamp(1, keys.len().max(1));
    let worker = || loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let Some(&i) = order.get(n) else { break };
        let (key, ops) = &keys[i];
        let report = check_key(history, key, ops, opts, &budget);
        if report.verdict == Verdict::NotLinearizable {
            stop.store(true, Ordering::Relaxed);
        }
        results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(report);
    };
    if threads == 1 {
        // One key or one thread: no thread to spawn (small histories are checked in
        // microseconds, less than a spawn).
        worker();
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(worker);
            }
        });
    }
    let keys: Vec<KeyReport> = results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect();
    let verdict = if keys.iter().any(|k| k.verdict == Verdict::NotLinearizable) {
        Verdict::NotLinearizable
    } else if keys.iter().any(|k| k.verdict == Verdict::Unknown) {
        Verdict::Unknown
    } else {
        Verdict::Linearizable
    };
    Report {
        verdict,
        model: opts.model.to_string(),
        initial: opts.initial.clone(),
        ops: history.operations.len(),
        keys,
        time_secs: start.elapsed().as_secs_f64(),
        error: None,
    }
}

fn check_key(
    history: &History,
    key: &Option<Key>,
    ops: &[&Operation],
    opts: &Options,
    budget: &Budget,
) -> KeyReport {
    let start = Instant::now();
    let text = opts.model == ModelKind::Kv && ops.iter().any(|o| o.f == F::Append);
    // A key started after the deadline is not even prepared (preparing is linear, but a
    // history has many keys).
    let late = budget.deadline.is_some_and(|d| start >= d);
    let mut report = if budget.stop.load(Ordering::Relaxed) || late {
        KeyReport {
            key: key.clone(),
            ops: ops.len(),
            searched_ops: 0,
            verdict: Verdict::Unknown,
            time_secs: 0.0,
            states_explored: 0,
            memo_bytes: 0,
            counterexample: None,
            unknown_reason: Some(if late {
                UnknownReason::TimeLimit
            } else {
                UnknownReason::Stopped
            }),
        }
    } else if opts.model == ModelKind::Mutex {
        let as_cas = mutex_as_cas(ops);
        let refs: Vec<&Operation> = as_cas.iter().collect();
        check_encoded(
            history,
            key,
            ops,
            &cell_history(&refs, &Value::Bool(false)),
            opts,
            budget,
        )
    } else if opts.model == ModelKind::MultiRegister {
        let h = crate::txn::txn_history(ops, &opts.initial);
        check_encoded(history, key, ops, &h, opts, budget)
    } else if text {
        match append_witness(ops, &opts.initial) {
            Some((searched_ops, placed)) => KeyReport {
                key: key.clone(),
                ops: ops.len(),
                searched_ops,
                verdict: Verdict::Linearizable,
                time_secs: 0.0,
                states_explored: placed as u64,
                memo_bytes: 0,
                counterexample: None,
                unknown_reason: None,
            },
            None => check_encoded(
                history,
                key,
                ops,
                &text_history(ops, &opts.initial),
                opts,
                budget,
            ),
        }
    } else {
        check_encoded(
            history,
            key,
            ops,
            &cell_history(ops, &opts.initial),
            opts,
            budget,
        )
    };
    report.time_secs = start.elapsed().as_secs_f64();
    report
}

/// The witness fast path of a key of reads and appends (`witness.rs`), on the history's
/// own strings: `Some((ops kept, ops placed))` if the key is linearizable by it, `None` if
/// the search must decide.
fn append_witness(ops: &[&Operation], initial: &Value) -> Option<(usize, usize)> {
    let init = match initial {
        Value::Null => None,
        Value::String(s) => Some(s.as_str()),
        _ => return None,
    };
    let slim = crate::witness::slim_ops(ops)?;
    let order = crate::witness::append_candidate(init, &slim)?;
    crate::witness::validates(init, &slim, &order).then_some((slim.len(), order.len()))
}

/// A mutex's ops as a cas register's over `false` (free) / `true` (held): acquire is
/// cas false→true, release cas true→false; ids and event indices are kept, so
/// counterexamples still point at the original ops.
fn mutex_as_cas(ops: &[&Operation]) -> Vec<Operation> {
    ops.iter()
        .map(|o| {
            let acquire = o.f == F::Other("acquire".into());
            let mut c = (*o).clone();
            c.f = F::Cas;
            c.input = serde_json::json!([!acquire, acquire]);
            c
        })
        .collect()
}

fn check_encoded<M: SequentialModel>(
    history: &History,
    key: &Option<Key>,
    ops: &[&Operation],
    kh: &KeyHistory<M>,
    opts: &Options,
    budget: &Budget,
) -> KeyReport {
    let searched = search(kh, budget, opts.reductions);
    let (verdict, unknown_reason) = match searched.outcome {
        Outcome::Linearizable => (Verdict::Linearizable, None),
        Outcome::NotLinearizable => (Verdict::NotLinearizable, None),
        Outcome::Unknown(cut) => (
            Verdict::Unknown,
            Some(match cut {
                Cut::TimeLimit => UnknownReason::TimeLimit,
                Cut::MemoryLimit => UnknownReason::MemoryLimit {
                    limit_bytes: opts.memory_limit_bytes.unwrap_or(0),
                },
                Cut::Stopped => UnknownReason::Stopped,
            }),
        ),
    };
    let counterexample = (verdict == Verdict::NotLinearizable)
        .then(|| counterexample(history, key, ops, kh, &searched.deepest));
    KeyReport {
        key: key.clone(),
        ops: ops.len(),
        searched_ops: kh.ops.len(),
        verdict,
        time_secs: 0.0,
        states_explored: searched.explored,
        memo_bytes: searched.memo_bytes,
        counterexample,
        unknown_reason,
    }
}

/// Replays one recorded path and finds what blocks it.
fn partial<M: SequentialModel>(
    history: &History,
    kh: &KeyHistory<M>,
    path: &[u32],
) -> (PartialLinearization, Option<usize>) {
    let mut state = kh.init.clone();
    let mut placed = vec![false; kh.ops.len()];
    let mut steps = Vec::with_capacity(path.len());
    for &i in path {
        let o = &kh.ops[i as usize];
        match &o.ret {
            Some(ret) => {
                // The search only recorded legal steps, so this holds; replay just recomputes.
                let _ = state.is_valid_step(&o.op, ret);
            }
            None => {
                state.invoke(&o.op);
            }
        }
        placed[i as usize] = true;
        steps.push(Step {
            op: o.id,
            state_after: state.to_json(&kh.values),
        });
    }
    let final_state = state.to_json(&kh.values);
    // The op that must come next: the pending completed op that returns first.
    let blocker = (0..kh.ops.len())
        .filter(|&i| !placed[i] && kh.ops[i].ret.is_some())
        .min_by_key(|&i| kh.ops[i].ret_at);
    let mut blocked = Vec::new();
    if let Some(b) = blocker {
        let deadline = kh.ops[b].ret_at;
        for (i, o) in kh.ops.iter().enumerate() {
            if placed[i] || o.call > deadline || o.ret.is_none() {
                continue;
            }
            let mut probe = state.clone();
            let legal = o
                .ret
                .as_ref()
                .is_some_and(|r| probe.is_valid_step(&o.op, r));
            blocked.push(Blocked {
                op: o.id,
                reason: reason(&history.operations[o.id], &final_state, legal),
            });
        }
    }
    let lin = PartialLinearization {
        steps,
        final_state,
        blocked,
    };
    (lin, blocker.map(|b| kh.ops[b].id))
}

fn reason(op: &Operation, state: &Value, legal: bool) -> String {
    let show = |v: &Value| match v {
        Value::Null => "nil".to_string(),
        v => v.to_string(),
    };
    if legal {
        return "legal here, but every way to continue after it fails".to_string();
    }
    match op.f {
        F::Read => format!(
            "it read {} but the value is {}",
            show(op.output.as_ref().unwrap_or(&Value::Null)),
            show(state)
        ),
        F::Cas => format!(
            "it swapped, so the value must be {}, but it is {}",
            show(op.input.get(0).unwrap_or(&Value::Null)),
            show(state)
        ),
        F::Append => format!("it appends to {}, which is not a string", show(state)),
        F::Other(_) => format!("its reads do not match the registers {}", show(state)),
        _ => format!("illegal with the value {}", show(state)),
    }
}

fn counterexample<M: SequentialModel>(
    history: &History,
    key: &Option<Key>,
    ops: &[&Operation],
    kh: &KeyHistory<M>,
    deepest: &[Vec<u32>],
) -> Counterexample {
    let mut linearizations = Vec::new();
    let mut op = None;
    for path in deepest {
        let (lin, blocker) = partial(history, kh, path);
        op = op.or(blocker);
        linearizations.push(lin);
    }
    let op = op.unwrap_or_else(|| ops.first().map_or(0, |o| o.id));
    let x = &history.operations[op];
    let x_end = x.complete_index.unwrap_or(usize::MAX);
    let concurrent: Vec<usize> = ops
        .iter()
        .filter(|o| o.id != op && o.status != Status::Fail)
        .filter(|o| o.invoke_index < x_end && o.complete_index.is_none_or(|c| c > x.invoke_index))
        .map(|o| o.id)
        .collect();
    let mentioned = linearizations
        .iter()
        .flat_map(|l| {
            l.steps
                .iter()
                .map(|s| s.op)
                .chain(l.blocked.iter().map(|b| b.op))
        })
        .chain(concurrent.iter().copied())
        .chain([op])
        .collect::<Vec<_>>();
    Counterexample {
        key: key.clone(),
        initial_state: kh.init.to_json(&kh.values),
        op,
        concurrent,
        linearizations,
        searched_ok_ops: kh.ops.iter().filter(|o| o.ret.is_some()).count(),
        ops: summaries(history, mentioned),
    }
}
