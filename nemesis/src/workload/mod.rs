//! Workloads: what each logical client process invokes, and the worker loop that records
//! every invocation and completion.

pub mod append;
pub mod register;

use crate::client::{Http, KvClient, Op, Outcome, PRECONDITION_FAILED};
use crate::recorder::Recorder;
use crate::sut::Target;
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

/// How a client picks the key of its next operation: uniformly over `k0 .. k{n-1}`, or with
/// a share of the operations on a few hot keys (`k0 .. k{hot-1}`) and the rest uniform.
///
/// Why hot keys: a stale read shows only if it misses a write to its own key made while the
/// reader's node was behind; with ten uniform keys most stale reads land on keys nobody wrote
/// in that window and look fresh. Concentrating most operations on two or three keys makes
/// each read meet the writes it could miss, while the cold keys keep histories of every
/// size in the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Keys {
    names: Vec<String>,
    hot: usize,
    hot_share: f64,
}

impl Keys {
    /// Uniform over `n` keys.
    pub fn uniform(n: usize) -> Keys {
        Keys::skewed(n, 0, 0.0)
    }

    /// `hot_share` of the operations on the first `hot` of `n` keys (uniformly among them),
    /// the rest uniform over all `n`.
    pub fn skewed(n: usize, hot: usize, hot_share: f64) -> Keys {
        Keys {
            names: key_names(n.max(1)),
            hot: hot.min(n),
            hot_share: hot_share.clamp(0.0, 1.0),
        }
    }

    /// The next key.
    pub fn pick(&self, rng: &mut StdRng) -> &str {
        let i = if self.hot > 0 && rng.gen_bool(self.hot_share) {
            rng.gen_range(0..self.hot)
        } else {
            rng.gen_range(0..self.names.len())
        };
        &self.names[i]
    }
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
/// next node; after a `fail` it also moves to the next node, since its node may be down
/// (but not after a cas whose comparison failed: the node answered).
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
            // A cas whose comparison failed was answered by a working cluster: staying put.
            // (Moving on after each one sent workers round the ring several times a second,
            // so under a pause most of them soon sat on the paused node until their timeout:
            // pausing one node of five took the register workload from 140 to 40 ok/s.)
            Outcome::Fail(why) if why == PRECONDITION_FAILED => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::BoxFut;
    use crate::net::NodeNet;
    use crate::sut::{NodeStatus, Target};
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::path::Path;
    use std::sync::Mutex;

    /// Three nodes whose every answer is `fail` with a fixed reason; records which node
    /// each new client was made for.
    struct Failing {
        nodes: Vec<NodeNet>,
        why: &'static str,
        clients: Arc<Mutex<Vec<usize>>>,
    }

    struct FailingClient(&'static str);

    impl KvClient for FailingClient {
        fn invoke<'a>(&'a self, _: &'a str, _: &'a Op) -> BoxFut<'a, Outcome> {
            Box::pin(async move { Outcome::Fail(self.0.to_string()) })
        }
    }

    impl Target for Failing {
        fn name(&self) -> &'static str {
            "failing"
        }
        fn nodes(&self) -> &[NodeNet] {
            &self.nodes
        }
        fn command(
            &self,
            _: usize,
            _: &Path,
            _: &BTreeMap<usize, SocketAddr>,
        ) -> anyhow::Result<std::process::Command> {
            anyhow::bail!("not started in this test")
        }
        fn client(&self, id: usize, _: Http) -> Box<dyn KvClient> {
            self.clients.lock().unwrap().push(id);
            Box::new(FailingClient(self.why))
        }
        fn status<'a>(&'a self, _: usize, _: &'a Http) -> BoxFut<'a, Option<NodeStatus>> {
            Box::pin(async { None })
        }
    }

    struct Cas;

    impl Generator for Cas {
        fn next(&mut self, _: &mut StdRng) -> (String, Op) {
            ("k".into(), Op::Cas("1".into(), "2".into()))
        }
    }

    /// Which nodes one worker made clients for while every answer failed with `why`.
    async fn nodes_visited(why: &'static str) -> Vec<usize> {
        let clients = Arc::new(Mutex::new(Vec::new()));
        let nodes = (1..=3)
            .map(|id| NodeNet {
                id,
                ip: std::net::Ipv4Addr::new(127, 0, 0, id as u8),
                port: 1,
                uid: None,
            })
            .collect();
        let ctx = Arc::new(WorkerCtx {
            target: Arc::new(Failing {
                nodes,
                why,
                clients: clients.clone(),
            }),
            recorder: Arc::new(Recorder::new(None).unwrap()),
            concurrency: 1,
            interval: Duration::from_millis(1),
            timeout: Duration::from_millis(100),
            patient_timeout: None,
            stop: Arc::new(AtomicBool::new(false)),
            deadline: Instant::now() + Duration::from_millis(100),
        });
        run_worker(ctx, 0, Box::new(Cas), 1).await;
        let v = clients.lock().unwrap().clone();
        v
    }

    #[test]
    fn hot_keys_get_their_share_and_cold_keys_still_appear() {
        let keys = Keys::skewed(10, 2, 0.8);
        let mut rng = StdRng::seed_from_u64(4);
        let picks: Vec<String> = (0..10_000)
            .map(|_| keys.pick(&mut rng).to_string())
            .collect();
        let hot = picks.iter().filter(|k| *k == "k0" || *k == "k1").count();
        // 80 % on the hot pair, plus their uniform share of the other 20 %: 84 %.
        assert!((8_100..8_700).contains(&hot), "{hot} of 10000 on k0, k1");
        assert!(picks.iter().any(|k| k == "k9"));
        let uniform = Keys::uniform(10);
        let k0 = (0..10_000)
            .filter(|_| uniform.pick(&mut rng) == "k0")
            .count();
        assert!((800..1_200).contains(&k0), "{k0}");
    }

    #[tokio::test]
    async fn a_failed_comparison_keeps_the_worker_on_its_node_and_other_failures_move_it() {
        assert_eq!(nodes_visited(PRECONDITION_FAILED).await, vec![1]);
        let moved = nodes_visited("connect failed").await;
        assert!(moved.len() > 3, "{moved:?}");
        assert_eq!(&moved[..4], &[1, 2, 3, 1]);
    }
}
