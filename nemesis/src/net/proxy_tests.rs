//! Tests of the proxy backend over real loopback sockets (no root needed).

use super::*;
use crate::net::Grudge;
use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A server on `ip` that greets each connection with the peer's IP and a newline, then echoes.
fn echo_server(ip: Ipv4Addr) -> u16 {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let _ = conn.set_nodelay(true);
                let peer = conn.peer_addr().unwrap().ip();
                let _ = conn.write_all(format!("{peer}\n").as_bytes());
                let mut buf = [0; 4096];
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    if conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn nodes() -> Vec<NodeNet> {
    [5u8, 6]
        .iter()
        .map(|&last| {
            let ip = Ipv4Addr::new(127, 0, 9, last);
            NodeNet {
                id: last as usize,
                ip,
                port: echo_server(ip),
                uid: None,
            }
        })
        .collect()
}

/// A connection through `addr`: returns the greeting (the IP the server saw) and the stream.
fn open(addr: SocketAddr) -> std::io::Result<(String, BufReader<TcpStream>)> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream);
    let mut greeting = String::new();
    if reader.read_line(&mut greeting)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok((greeting.trim().to_string(), reader))
}

fn echo(conn: &mut BufReader<TcpStream>, msg: &[u8]) -> std::io::Result<()> {
    conn.get_mut().write_all(msg)?;
    let mut back = vec![0; msg.len()];
    conn.read_exact(&mut back)?;
    assert_eq!(back, msg);
    Ok(())
}

fn split(a: usize, b: usize) -> Grudge {
    let mut g = Grudge::none(&[a, b]);
    g.cut_between(&[a], &[b]);
    g
}

#[test]
fn relays_carry_traffic_until_cut_and_again_after_heal() {
    let nodes = nodes();
    let mut proxy = Proxy::start(&nodes).unwrap();
    let via56 = proxy.peer_addr(5, 6);
    assert_eq!(
        via56.ip(),
        nodes[0].ip,
        "relay (5, 6) must listen on node 5's address"
    );
    assert_ne!(via56, proxy.peer_addr(6, 5));
    assert_ne!(via56, nodes[1].addr());
    assert_eq!(proxy.peer_addr(5, 5), nodes[0].addr());

    let (seen, mut old) = open(via56).unwrap();
    assert_eq!(
        seen, "127.0.9.5",
        "the target must see the source node's address"
    );
    echo(&mut old, b"hello").unwrap();

    proxy.partition(&split(5, 6)).unwrap();
    // The open connection is closed, and new ones in either direction are refused.
    let mut rest = Vec::new();
    let closed = old
        .get_mut()
        .write_all(b"x")
        .and_then(|()| old.read_to_end(&mut rest));
    assert!(
        matches!(closed, Ok(0)) || closed.is_err(),
        "{closed:?} {rest:?}"
    );
    assert!(open(via56).is_err());
    assert!(open(proxy.peer_addr(6, 5)).is_err());

    proxy.heal().unwrap();
    let (_, mut new) = open(via56).unwrap();
    echo(&mut new, b"again").unwrap();
    let (seen, mut back) = open(proxy.peer_addr(6, 5)).unwrap();
    assert_eq!(seen, "127.0.9.6");
    echo(&mut back, b"both ways").unwrap();

    proxy.cleanup().unwrap();
    assert!(open(via56).is_err(), "relay still serving after cleanup");
    proxy.cleanup().unwrap();
}

#[test]
fn link_faults_delay_stall_then_burst_and_reset() {
    let nodes = nodes();
    let mut proxy = Proxy::start(&nodes).unwrap();
    let via = proxy.peer_addr(5, 6);
    let (_, mut conn) = open(via).unwrap();
    let fixed = LinkFault::Delay {
        base: Duration::from_millis(100),
        jitter: Duration::from_millis(20),
    };
    assert!(proxy.link(&split(5, 6), Some(fixed)).unwrap());
    // Both directions are delayed: the echo takes at least two delays.
    let t = Instant::now();
    echo(&mut conn, b"slow").unwrap();
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");

    // A stall holds bytes until it is lifted, then they arrive.
    proxy.link(&split(5, 6), Some(LinkFault::Stall)).unwrap();
    conn.get_mut().write_all(b"held").unwrap();
    conn.get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut back = [0u8; 4];
    assert!(conn.read_exact(&mut back).is_err(), "bytes passed a stall");
    proxy.link(&split(5, 6), None).unwrap();
    conn.get_ref()
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    conn.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"held");
    let t = Instant::now();
    echo(&mut conn, b"fast again").unwrap();
    assert!(t.elapsed() < Duration::from_millis(100));

    // A reset closes the open connection; a new one passes.
    proxy.link(&split(5, 6), Some(LinkFault::Reset)).unwrap();
    let mut rest = Vec::new();
    let closed = conn
        .get_mut()
        .write_all(b"x")
        .and_then(|()| conn.read_to_end(&mut rest));
    assert!(matches!(closed, Ok(0)) || closed.is_err(), "{closed:?}");
    let (_, mut fresh) = open(via).unwrap();
    echo(&mut fresh, b"new").unwrap();
}

/// Every chunk a recording server received, with its connection's number, in order.
type Received = Arc<Mutex<Vec<(usize, Vec<u8>)>>>;

/// A server on `ip` that records every chunk it receives, with its connection's number.
fn recording_server(ip: Ipv4Addr) -> (u16, Received) {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().flatten().enumerate() {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0; 4096];
                while let Ok(k @ 1..) = conn.read(&mut buf) {
                    log.lock().unwrap().push((n, buf[..k].to_vec()));
                }
            });
        }
    });
    (port, seen)
}

#[test]
fn a_reorder_delivers_held_bytes_after_a_new_connections_bytes() {
    let ip5 = Ipv4Addr::new(127, 0, 11, 5);
    let ip6 = Ipv4Addr::new(127, 0, 11, 6);
    let (port, log) = recording_server(ip6);
    let nodes = vec![
        NodeNet {
            id: 5,
            ip: ip5,
            port: echo_server(ip5),
            uid: None,
        },
        NodeNet {
            id: 6,
            ip: ip6,
            port,
            uid: None,
        },
    ];
    let mut proxy = Proxy::start(&nodes).unwrap();
    let via = proxy.peer_addr(5, 6);
    let mut old = TcpStream::connect(via).unwrap();
    old.write_all(b"old-1").unwrap();
    let wait_for = |what: &[u8]| {
        let t = Instant::now();
        while !log.lock().unwrap().iter().any(|(_, b)| b == what) {
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "{what:?} never arrived"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(b"old-1");
    let reorder = LinkFault::Reorder {
        after: Duration::from_millis(150),
        cut_after: None,
    };
    assert!(proxy.link(&split(5, 6), Some(reorder)).unwrap());
    // Written while held: kept by the relay, and the sender's side closes after 150 ms.
    old.write_all(b"old-2").unwrap();
    old.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut rest = Vec::new();
    let closed = old.read_to_end(&mut rest);
    assert!(matches!(closed, Ok(0)) || closed.is_err(), "{closed:?}");
    // The sender reconnects; its new bytes pass at once.
    let mut new = TcpStream::connect(via).unwrap();
    new.write_all(b"new-1").unwrap();
    wait_for(b"new-1");
    std::thread::sleep(Duration::from_millis(100));
    assert!(log.lock().unwrap().iter().all(|(_, b)| b != b"old-2"));
    // Lifted: the held bytes arrive on the old connection, after the new one's.
    proxy.link(&split(5, 6), None).unwrap();
    wait_for(b"old-2");
    let seen = log.lock().unwrap().clone();
    let at = |what: &[u8]| seen.iter().position(|(_, b)| b == what).unwrap();
    assert!(
        at(b"old-1") < at(b"new-1") && at(b"new-1") < at(b"old-2"),
        "{seen:?}"
    );
    assert_eq!(
        seen[at(b"old-1")].0,
        seen[at(b"old-2")].0,
        "same connection"
    );
    assert_ne!(seen[at(b"old-1")].0, seen[at(b"new-1")].0);

    // With `cut_after`: 50 ms after the new connection's first bytes, the held ones are
    // delivered and the link is cut until healed.
    let mut old = TcpStream::connect(via).unwrap();
    old.write_all(b"old-3").unwrap();
    wait_for(b"old-3");
    let reorder = LinkFault::Reorder {
        after: Duration::from_millis(100),
        cut_after: Some(Duration::from_millis(50)),
    };
    proxy.link(&split(5, 6), Some(reorder)).unwrap();
    old.write_all(b"old-4").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(log.lock().unwrap().iter().all(|(_, b)| b != b"old-4"));
    let mut new = TcpStream::connect(via).unwrap();
    new.write_all(b"new-2").unwrap();
    wait_for(b"new-2");
    wait_for(b"old-4");
    if let Ok(mut c) = TcpStream::connect(via) {
        let _ = c.write_all(b"cut-off");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(log.lock().unwrap().iter().all(|(_, b)| b != b"cut-off"));
    proxy.heal().unwrap();
    let mut healed = TcpStream::connect(via).unwrap();
    healed.write_all(b"healed").unwrap();
    wait_for(b"healed");

    // Without `cut_after`, released by `release`: the held bytes arrive, after the new
    // connection's; the link stays up, and a partition then cuts it.
    let reorder = LinkFault::Reorder {
        after: Duration::from_millis(100),
        cut_after: None,
    };
    proxy.link(&split(5, 6), Some(reorder)).unwrap();
    healed.write_all(b"old-5").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut new = TcpStream::connect(via).unwrap();
    new.write_all(b"new-3").unwrap();
    wait_for(b"new-3");
    std::thread::sleep(Duration::from_millis(100));
    assert!(log.lock().unwrap().iter().all(|(_, b)| b != b"old-5"));
    assert!(proxy.release(&split(5, 6)).unwrap());
    wait_for(b"old-5");
    let seen = log.lock().unwrap().clone();
    let at = |what: &[u8]| seen.iter().position(|(_, b)| b == what).unwrap();
    assert!(at(b"new-3") < at(b"old-5"), "{seen:?}");
    new.write_all(b"new-4").unwrap();
    wait_for(b"new-4");
    proxy.partition(&split(5, 6)).unwrap();
    let _ = new.write_all(b"after-release");
    if let Ok(mut c) = TcpStream::connect(via) {
        let _ = c.write_all(b"cut-off-2");
    }
    std::thread::sleep(Duration::from_millis(200));
    let seen = log.lock().unwrap().clone();
    assert!(
        seen.iter()
            .all(|(_, b)| b != b"after-release" && b != b"cut-off-2"),
        "{seen:?}"
    );
    proxy.heal().unwrap();
}

#[test]
fn a_partition_replaces_the_previous_one() {
    let ids = [5usize, 6, 7];
    let nodes: Vec<NodeNet> = ids
        .iter()
        .map(|&id| {
            let ip = Ipv4Addr::new(127, 0, 10, id as u8);
            NodeNet {
                id,
                ip,
                port: echo_server(ip),
                uid: None,
            }
        })
        .collect();
    let mut proxy = Proxy::start(&nodes).unwrap();
    let mut first = Grudge::none(&ids);
    first.cut_between(&[5], &[6, 7]);
    let mut second = Grudge::none(&ids);
    second.cut_between(&[7], &[5, 6]);
    proxy.partition(&first).unwrap();
    assert!(open(proxy.peer_addr(5, 6)).is_err());
    proxy.partition(&second).unwrap();
    assert!(
        open(proxy.peer_addr(5, 6)).is_ok(),
        "5 -> 6 still cut after a new partition"
    );
    assert!(open(proxy.peer_addr(6, 7)).is_err());
    assert!(open(proxy.peer_addr(7, 5)).is_err());
}

#[test]
fn grudges_with_unknown_nodes_are_rejected() {
    let mut proxy = Proxy::start(&nodes()).unwrap();
    let err = proxy.partition(&split(5, 9)).unwrap_err();
    assert!(err.to_string().contains("unknown node 9"), "{err}");
}

/// Not a pass/fail test: prints the round-trip latency through a relay next to a direct one.
/// Run: `cargo nextest run --release -p nemesis --run-ignored only proxy_latency --no-capture`
#[test]
#[ignore]
fn proxy_latency() {
    let nodes = nodes();
    let proxy = Proxy::start(&nodes).unwrap();
    let rounds = 5_000;
    for (name, addr) in [
        ("direct", nodes[1].addr()),
        ("relay", proxy.peer_addr(5, 6)),
    ] {
        let (_, mut conn) = open(addr).unwrap();
        conn.get_ref().set_nodelay(true).unwrap();
        let start = Instant::now();
        for _ in 0..rounds {
            echo(&mut conn, &[7; 64]).unwrap();
        }
        let per = start.elapsed() / rounds;
        println!("{name}: {rounds} round trips of 64 bytes, {per:?} each");
    }
}
