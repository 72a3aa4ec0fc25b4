//! Workloads: what each logical client process invokes, and the worker loop that records
//! every invocation and completion.

pub mod append;
pub mod register;

use crate::client::{Http, KvClient, Op, Outcome};
use crate::recorder::Recorder;
use crate::target::Target;
use histories::{Event, EventType, Key};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Chooses the next operation of one client.
pub trait Generator: Send {
    /// The next key and operation.
    fn next(&mut self, rng: &mut StdRng) -> (String, Op);
}

/// The key names of a run: `k0 .. k{n-1}`.
pub fn key_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("k{i}")).collect()
}

/// What every worker shares.
pub struct WorkerCtx {
    /// The system.
    pub target: Arc<dyn Target>,
    /// The history.
    pub recorder: Arc<Recorder>,
    /// Number of workers (the step between a worker's successive process ids).
    pub concurrency: usize,
    /// Pause between two operations of one worker (0: none).
    pub interval: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Per-request timeout of odd-numbered workers (`None`: `timeout`).
    ///
    /// Why two timeouts: a request that reaches a paused or cut-off node is answered only
    /// when the node comes back, and a deposed leader that answers before it learns it was
    /// deposed is exactly what stale-read bugs look like. Impatient clients give up after
    /// `timeout` and keep the rest of the cluster busy (so the new leader commits writes
    /// the old one has not seen); patient clients are still waiting when the old leader
    /// wakes up, so its stale answer reaches the history.
    pub patient_timeout: Option<Duration>,
    /// Set when workers must stop.
    pub stop: Arc<AtomicBool>,
    /// The end of the attack phase.
    pub deadline: Instant,
}

/// Records an invocation, runs it, and records its completion. Returns the outcome.
pub async fn invoke_recorded(
    recorder: &Recorder,
    client: &dyn KvClient,
    process: u64,
    key: &str,
    op: &Op,
) -> Outcome {
    let k = Some(Key::Str(key.to_string()));
    recorder.record(Event::client(
        process,
        EventType::Invoke,
        op.f(),
        k.clone(),
        op.value(),
    ));
    let outcome = client.invoke(key, op).await;
    let done = match &outcome {
        // A read completes with the value read; other operations repeat their input
        // (Jepsen's convention). An append's whole resulting value is kept as `result`.
        Outcome::Ok(v) if !op.mutates() => {
            Event::client(process, EventType::Ok, op.f(), k, v.clone())
        }
        Outcome::Ok(v) => {
            let mut e = Event::client(process, EventType::Ok, op.f(), k, op.value());
            if !v.is_null() {
                e.extra.insert("result".into(), v.clone());
            }
            e
        }
        Outcome::Fail(why) => {
            let mut e = Event::client(process, EventType::Fail, op.f(), k, op.value());
            e.extra.insert("error".into(), Value::String(why.clone()));
            e
        }
        Outcome::Info(why) => {
            let mut e = Event::client(process, EventType::Info, op.f(), k, op.value());
            e.extra.insert("error".into(), Value::String(why.clone()));
            e
        }
    };
    recorder.record(done);
    outcome
}

/// One worker: a sequence of logical processes, starting at `index`. After an `info` the
/// worker continues as a fresh process (`old + concurrency`), with a fresh connection to the
/// next node; after a `fail` it also moves to the next node, since its node may be down.
pub async fn run_worker(ctx: Arc<WorkerCtx>, index: usize, mut gen: Box<dyn Generator>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let nodes: Vec<usize> = ctx.target.nodes().iter().map(|n| n.id).collect();
    let timeout = match ctx.patient_timeout {
        Some(t) if index % 2 == 1 => t,
        _ => ctx.timeout,
    };
    let mut process = index as u64;
    let mut node = index % nodes.len();
    let mut client = ctx.target.client(nodes[node], Http::new(timeout));
    // Spread the first requests so workers do not start in lockstep.
    if !ctx.interval.is_zero() {
        let jitter = rng.gen_range(0..=ctx.interval.as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(jitter)).await;
    }
    while !ctx.stop.load(Ordering::Relaxed) && Instant::now() < ctx.deadline {
        let (key, op) = gen.next(&mut rng);
        let outcome = invoke_recorded(&ctx.recorder, client.as_ref(), process, &key, &op).await;
        match outcome {
            Outcome::Ok(_) => {}
            Outcome::Fail(_) => {
                node = (node + 1) % nodes.len();
                client = ctx.target.client(nodes[node], Http::new(timeout));
            }
            Outcome::Info(_) => {
                process += ctx.concurrency as u64;
                node = (node + 1) % nodes.len();
                client = ctx.target.client(nodes[node], Http::new(timeout));
            }
        }
        if !ctx.interval.is_zero() {
            tokio::time::sleep(ctx.interval).await;
        }
    }
}
