//! A minimal write-load generator for tuning the node by hand (the real benchmark, against
//! etcd too, is `nemesis bench`): C keep-alive connections to one address, PUT for T seconds.
//!
//! `cargo run --release -p cluster --example load -- ADDR CONCURRENCY SECONDS [read-fraction]`

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:7001".into());
    let c: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(32);
    let secs: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let reads: f64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..c {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut i = 0u64;
            while Instant::now() < until {
                i += 1;
                let key = format!("k{}", (w as u64 * 7919 + i) % 100);
                let is_read = (i % 100) as f64 / 100.0 < reads;
                let req = if is_read {
                    Request::get(format!("/kv/{key}")).body(Full::new(Bytes::new()))
                } else {
                    Request::put(format!("/kv/{key}")).body(Full::new(Bytes::from(format!(
                        "{{\"value\":\"v{w}-{i}\"}}"
                    ))))
                }
                .unwrap();
                let t = Instant::now();
                match tx.send_request(req).await {
                    Ok(r) => {
                        let ok = r.status().is_success();
                        let _ = r.into_body().collect().await;
                        if ok {
                            lat.push(t.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                    Err(_) => return (lat, errors + 1),
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort();
    let q =
        |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "ops/s {:.0}  p50 {:.2} ms  p99 {:.2} ms  p999 {:.2} ms  errors {errors}",
        all.len() as f64 / secs as f64,
        q(0.5),
        q(0.99),
        q(0.999)
    );
}
