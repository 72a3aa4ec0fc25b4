//! Random histories for tests and benchmarks: valid and linearizable by construction (a
//! simulated store applies each operation atomically somewhere inside its interval), and
//! the same with a planted violation.
//!
//! The simulation keeps one slot per concurrent client. At each step it picks a slot at
//! random and moves it along: idle → invoked (an `invoke` event) → applied (the store
//! executes the operation: its linearization point) → completed (`ok`, or `fail` for a cas
//! whose compare failed, which changed nothing). An operation chosen to be indeterminate
//! completes with `info` after being applied or not (a coin flip), or is left without a
//! completion at the end; its client then gets a fresh process id (old id + clients), as
//! Jepsen does. Runs are reproducible from the seed.

use histories::{Event, EventType, History, Key, F};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::HashMap;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    /// Concurrent clients.
    pub processes: usize,
    /// Keys (`1`: a single register without a key).
    pub keys: usize,
    /// Operations (invocations) in total.
    pub ops: usize,
    /// Probability that an operation ends indeterminate (`info` or no completion).
    pub info_rate: f64,
    /// Relative weights of read, write, cas, append.
    pub mix: [u32; 4],
    /// Values written are drawn from `0..values`; `0` means every written value is unique
    /// (a counter), which makes planted violations certain.
    pub values: u32,
    /// Every key's initial value (`null`: absent).
    pub initial: Value,
    /// The seed.
    pub seed: u64,
    /// Key popularity: `0` draws keys uniformly; `alpha > 0` draws them from a Pareto
    /// distribution with that shape (key `floor(x) - 1` for `x` Pareto on `[1, inf)`,
    /// redrawn past the last key), so key 0 is the hottest. With `alpha = 1.2` key 0 gets
    /// `1 - 2^-1.2`, about 56%, of all operations: the hot key of a bug-hunting run.
    pub key_skew: f64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            processes: 3,
            keys: 1,
            ops: 20,
            info_rate: 0.1,
            mix: [4, 3, 3, 0],
            values: 4,
            initial: Value::Null,
            seed: 0,
            key_skew: 0.0,
        }
    }
}

enum Slot {
    Idle,
    Invoked {
        op: PendingOp,
        applied: Option<Result<Value, ()>>,
    },
}

struct PendingOp {
    key: Option<Key>,
    f: F,
    input: Value,
    info: bool,
}

struct Gen {
    cfg: GenConfig,
    rng: StdRng,
    store: HashMap<Option<Key>, Value>,
    events: Vec<Event>,
    counter: u64,
}

impl Gen {
    fn emit(&mut self, process: u64, kind: EventType, op: &PendingOp, value: Value) {
        let t = self.events.len() as u64 * 1_000;
        self.events
            .push(Event::client(process, kind, op.f.clone(), op.key.clone(), value).at(t));
    }

    fn value(&mut self) -> Value {
        if self.cfg.values == 0 {
            self.counter += 1;
            json!(self.counter)
        } else {
            json!(self.rng.gen_range(0..self.cfg.values))
        }
    }

    /// A key index in `0..n` from the Pareto distribution of shape `key_skew`.
    fn pareto_key(&mut self, n: usize) -> usize {
        loop {
            let u: f64 = self.rng.gen_range(0.0..1.0);
            let x = (1.0 - u).powf(-1.0 / self.cfg.key_skew);
            let k = x.floor() as usize - 1;
            if k < n {
                return k;
            }
        }
    }

    fn new_op(&mut self) -> PendingOp {
        let key = match self.cfg.keys {
            0 | 1 => None,
            n if self.cfg.key_skew > 0.0 => Some(Key::Int(self.pareto_key(n) as i64)),
            n => Some(Key::Int(self.rng.gen_range(0..n as i64))),
        };
        let total: u32 = self.cfg.mix.iter().sum::<u32>().max(1);
        let mut pick = self.rng.gen_range(0..total);
        let mut which = 0;
        while which < 3 && pick >= self.cfg.mix[which] {
            pick -= self.cfg.mix[which];
            which += 1;
        }
        let (f, input) = match which {
            0 => (F::Read, Value::Null),
            1 => (F::Write, self.value()),
            2 => {
                // Expect the current value half the time, so cas ops often succeed.
                let current = self
                    .store
                    .get(&key)
                    .cloned()
                    .unwrap_or(self.cfg.initial.clone());
                let expected = if self.rng.gen_bool(0.5) {
                    current
                } else {
                    self.value()
                };
                (F::Cas, json!([expected, self.value()]))
            }
            _ => {
                self.counter += 1;
                (F::Append, json!(format!("x{}y", self.counter)))
            }
        };
        let info = self.rng.gen_bool(self.cfg.info_rate.clamp(0.0, 1.0));
        PendingOp {
            key,
            f,
            input,
            info,
        }
    }

    /// The store executes `op` atomically: `Ok(read value or null)`, or `Err` for a cas whose
    /// compare failed / an append to a non-string (nothing changed).
    fn apply(&mut self, op: &PendingOp) -> Result<Value, ()> {
        let current = self
            .store
            .get(&op.key)
            .cloned()
            .unwrap_or(self.cfg.initial.clone());
        let new = match op.f {
            F::Read => return Ok(current),
            F::Write => op.input.clone(),
            F::Cas if current == op.input[0] => op.input[1].clone(),
            F::Append => match (&current, op.input.as_str()) {
                (Value::Null, Some(s)) => json!(s),
                (Value::String(old), Some(s)) => json!(format!("{old}{s}")),
                _ => return Err(()),
            },
            _ => return Err(()),
        };
        self.store.insert(op.key.clone(), new);
        Ok(Value::Null)
    }
}

/// Generates the events of a linearizable history.
pub fn events(cfg: &GenConfig) -> Vec<Event> {
    let mut g = Gen {
        rng: StdRng::seed_from_u64(cfg.seed),
        cfg: cfg.clone(),
        store: HashMap::new(),
        events: Vec::with_capacity(cfg.ops * 2),
        counter: 0,
    };
    let n = cfg.processes.max(1);
    let mut slots: Vec<(u64, Slot)> = (0..n as u64).map(|p| (p, Slot::Idle)).collect();
    let mut invoked = 0;
    let mut busy = 0;
    while invoked < cfg.ops || busy > 0 {
        let s = g.rng.gen_range(0..n);
        let (process, slot) = std::mem::replace(&mut slots[s], (0, Slot::Idle));
        slots[s] = match slot {
            Slot::Idle if invoked < cfg.ops => {
                let op = g.new_op();
                g.emit(process, EventType::Invoke, &op, op.input.clone());
                invoked += 1;
                busy += 1;
                (process, Slot::Invoked { op, applied: None })
            }
            Slot::Idle => (process, Slot::Idle),
            Slot::Invoked { op, applied: None } if !op.info || g.rng.gen_bool(0.5) => {
                let result = g.apply(&op);
                (
                    process,
                    Slot::Invoked {
                        op,
                        applied: Some(result),
                    },
                )
            }
            Slot::Invoked { op, applied } => {
                busy -= 1;
                if op.info {
                    if g.rng.gen_bool(0.8) {
                        g.emit(process, EventType::Info, &op, op.input.clone());
                    }
                    // A crashed client comes back with a fresh process id.
                    (process + n as u64, Slot::Idle)
                } else {
                    match applied {
                        Some(Ok(v)) if op.f == F::Read => g.emit(process, EventType::Ok, &op, v),
                        Some(Ok(_)) => g.emit(process, EventType::Ok, &op, op.input.clone()),
                        _ => g.emit(process, EventType::Fail, &op, op.input.clone()),
                    }
                    (process, Slot::Idle)
                }
            }
        };
        // A crashed client that wrote no completion leaves its invocation open: that is the
        // "no completion" case, and its old id is never used again.
    }
    g.events
}

/// Generates a linearizable history.
pub fn history(cfg: &GenConfig) -> History {
    History::from_events(events(cfg)).expect("the generator pairs events by construction")
}

/// What [`plant_violation`] changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Planted {
    /// The `ok` read at this event index now returns a value that was overwritten by a write
    /// that completed before the read began.
    StaleRead {
        /// Event index of the read's completion.
        event: usize,
    },
    /// The `ok` read at this event index now returns a value nobody ever wrote.
    PhantomRead {
        /// Event index of the read's completion.
        event: usize,
    },
}

/// Plants a violation in a history generated with unique values (`values: 0`) and no
/// appends: a stale read when one can be made, else a read of a value never written.
/// `None` if the history has no `ok` read.
pub fn plant_violation(events: &[Event], seed: u64) -> Option<(Vec<Event>, Planted)> {
    let h = History::from_events(events.to_vec()).ok()?;
    let mut rng = StdRng::seed_from_u64(seed);
    let reads: Vec<_> = h
        .operations
        .iter()
        .filter(|o| o.f == F::Read && o.status == histories::Status::Ok)
        .collect();
    if reads.is_empty() {
        return None;
    }
    let start = rng.gen_range(0..reads.len());
    for r in reads.iter().cycle().skip(start).take(reads.len()) {
        // Writes of this key that completed before the read was invoked, in completion order.
        let done: Vec<_> = h
            .operations
            .iter()
            .filter(|o| o.key == r.key && o.status == histories::Status::Ok)
            .filter(|o| matches!(o.f, F::Write | F::Cas))
            .filter(|o| o.complete_index.is_some_and(|c| c < r.invoke_index))
            .collect();
        // w1 then w2 strictly after it in real time: the read cannot see w1's value.
        let pair = done.iter().find_map(|w1| {
            let c1 = w1.complete_index?;
            done.iter().any(|w2| w2.invoke_index > c1).then_some(w1)
        });
        if let Some(w1) = pair {
            let v = match w1.f {
                F::Cas => w1.input[1].clone(),
                _ => w1.input.clone(),
            };
            let event = r.complete_index?;
            let mut out = events.to_vec();
            out[event].value = v;
            return Some((out, Planted::StaleRead { event }));
        }
    }
    let r = reads[start];
    let event = r.complete_index?;
    let mut out = events.to_vec();
    out[event].value = json!("never-written");
    Some((out, Planted::PhantomRead { event }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_keys_make_key_zero_hot() {
        let cfg = GenConfig {
            processes: 50,
            keys: 100,
            ops: 20_000,
            info_rate: 0.01,
            key_skew: 1.2,
            ..GenConfig::default()
        };
        let h = history(&cfg);
        let hot = h
            .operations
            .iter()
            .filter(|o| o.key == Some(Key::Int(0)))
            .count();
        // 1 - 2^-1.2 = 0.565 of the draws, a bit more after redraws past key 99.
        assert!((10_800..=12_000).contains(&hot), "key 0 has {hot} ops");
        let uniform = history(&GenConfig {
            key_skew: 0.0,
            ..cfg
        });
        let cold = uniform
            .operations
            .iter()
            .filter(|o| o.key == Some(Key::Int(0)))
            .count();
        assert!(cold < 400, "uniform key 0 has {cold} ops");
    }
}
