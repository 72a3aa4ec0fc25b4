//! Tests of the iptables backend: rule generation without root, real firewall changes with it.

use super::*;
use crate::net::{grudge, PartitionKind};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

fn node(id: usize, last: u8, uid: Option<u32>) -> NodeNet {
    NodeNet {
        id,
        ip: Ipv4Addr::new(127, 0, 9, last),
        port: 7000 + id as u16,
        uid,
    }
}

fn split(a: &[usize], b: &[usize]) -> Grudge {
    let all: Vec<usize> = a.iter().chain(b).copied().collect();
    let mut g = Grudge::none(&all);
    g.cut_between(a, b);
    g
}

fn joined(cmds: &[Vec<String>]) -> Vec<String> {
    cmds.iter().map(|c| c.join(" ")).collect()
}

#[test]
fn chain_names_fit_iptables_and_stay_distinct() {
    let c = Chains::for_tag("20261126T2330");
    assert_eq!(
        (c.input.as_str(), c.output.as_str()),
        ("JTN-20261126T2330-i", "JTN-20261126T2330-o")
    );
    assert_eq!(Chains::for_tag("a b/c").input, "JTN-a_b_c-i");
    let long1 = Chains::for_tag("run-2026-11-26T23:30:00.123456-alpha");
    let long2 = Chains::for_tag("run-2026-11-26T23:30:00.123456-beta");
    for c in [&long1, &long2, &Chains::for_tag("")] {
        assert!(
            c.input.len() <= MAX_CHAIN && c.input.starts_with(PREFIX),
            "{c:?}"
        );
    }
    assert_ne!(long1, long2);
}

#[test]
fn setup_inserts_one_jump_per_builtin_chain() {
    let c = Chains::for_tag("t");
    assert_eq!(
        joined(&c.setup_args()),
        [
            "-N JTN-t-i",
            "-N JTN-t-o",
            "-I INPUT 1 -j JTN-t-i",
            "-I OUTPUT 1 -j JTN-t-o"
        ]
    );
    assert_eq!(joined(&c.heal_args()), ["-F JTN-t-i", "-F JTN-t-o"]);
}

#[test]
fn bound_nodes_are_cut_by_address_in_both_directions() {
    let nodes = [node(1, 1, None), node(2, 2, None), node(3, 3, None)];
    let rules = Chains::for_tag("t")
        .rule_args(&nodes, &split(&[1], &[2, 3]))
        .unwrap();
    assert_eq!(
        joined(&rules),
        [
            "-A JTN-t-i -s 127.0.9.2 -d 127.0.9.1 -j DROP",
            "-A JTN-t-i -s 127.0.9.3 -d 127.0.9.1 -j DROP",
            "-A JTN-t-i -s 127.0.9.1 -d 127.0.9.2 -j DROP",
            "-A JTN-t-i -s 127.0.9.1 -d 127.0.9.3 -j DROP",
        ]
    );
}

#[test]
fn nodes_with_uids_are_cut_by_owner_in_output() {
    let nodes = [
        node(1, 1, Some(901)),
        node(2, 2, Some(902)),
        node(3, 3, None),
    ];
    let rules = Chains::for_tag("t")
        .rule_args(&nodes, &split(&[1], &[2, 3]))
        .unwrap();
    assert_eq!(
        joined(&rules),
        [
            "-A JTN-t-o -o lo -m owner --uid-owner 902 -d 127.0.9.1 -j DROP",
            "-A JTN-t-i -s 127.0.9.3 -d 127.0.9.1 -j DROP",
            "-A JTN-t-o -o lo -m owner --uid-owner 901 -d 127.0.9.2 -j DROP",
            "-A JTN-t-o -o lo -m owner --uid-owner 901 -d 127.0.9.3 -j DROP",
        ]
    );
}

#[test]
fn every_kind_yields_one_rule_per_cut_pair() {
    let nodes: Vec<NodeNet> = (1..=5).map(|i| node(i, i as u8, None)).collect();
    for kind in PartitionKind::ALL {
        let g = grudge(
            kind,
            &[1, 2, 3, 4, 5],
            Some(3),
            &mut StdRng::seed_from_u64(3),
        );
        let rules = Chains::for_tag("t").rule_args(&nodes, &g).unwrap();
        assert_eq!(rules.len(), g.cut_pairs().len(), "{kind}: {g}");
    }
}

#[test]
fn rules_for_unknown_nodes_are_an_error() {
    let err = Chains::for_tag("t")
        .rule_args(&[node(1, 1, None)], &split(&[1], &[9]))
        .unwrap_err();
    assert!(err.to_string().contains("unknown node 9"), "{err}");
}

const LISTING: &str = "\
-P INPUT ACCEPT
-P FORWARD ACCEPT
-P OUTPUT ACCEPT
-N DOCKER
-N JTN-old-i
-N JTN-old-o
-N JTN-live-i
-A INPUT -j JTN-live-i
-A INPUT -j JTN-old-i
-A INPUT -s 10.0.0.0/8 -j DOCKER
-A OUTPUT -o lo -j JTN-old-o
-A DOCKER -j JTN-old-i
-A JTN-old-i -s 127.0.9.1 -d 127.0.9.2 -j DROP
-A JTN-old-o -o lo -m owner --uid-owner 901 -d 127.0.9.2 -j DROP
";

#[test]
fn removal_deletes_exactly_the_jumps_and_our_chains() {
    let doomed = BTreeSet::from([
        "JTN-old-i".to_string(),
        "JTN-old-o".to_string(),
        "JTN-gone-i".to_string(),
    ]);
    assert_eq!(
        joined(&removal_args(LISTING, &doomed)),
        [
            "-D INPUT -j JTN-old-i",
            "-D OUTPUT -o lo -j JTN-old-o",
            "-D DOCKER -j JTN-old-i",
            "-F JTN-old-i",
            "-F JTN-old-o",
            "-X JTN-old-i",
            "-X JTN-old-o",
        ]
    );
    assert_eq!(
        our_chains(LISTING),
        BTreeSet::from(["JTN-old-i", "JTN-old-o", "JTN-live-i"].map(String::from))
    );
}

#[test]
fn process_identity_tells_live_from_dead() {
    let me = process_identity(std::process::id()).unwrap();
    assert!(me.starts_with(&format!("{} ", std::process::id())), "{me}");
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert_eq!(process_identity(pid), None);
}

// ---- Tests that change the real firewall (root only) ----

/// Holds the locks that serialize the tests that change the firewall.
struct RootGuard {
    _thread: MutexGuard<'static, ()>,
    _process: nix::fcntl::Flock<std::fs::File>,
}

/// Serializes root tests inside one process (`cargo test` threads: `cleanup_leftovers` also
/// removes this process's own chains) and across processes (nextest), so a test may check that
/// no chain of ours is left that is not owned by a live process outside these tests.
static ROOT_TESTS: Mutex<()> = Mutex::new(());

fn root_or_skip(test: &str) -> Option<RootGuard> {
    if let Err(e) = available() {
        eprintln!("skipping {test}: {e}");
        return None;
    }
    let thread = ROOT_TESTS.lock().unwrap_or_else(|p| p.into_inner());
    // Not inside the state directory: cleanup_leftovers deletes files there it cannot read.
    let path = std::env::temp_dir().join("jtn-net-tests.lock");
    let file = std::fs::File::create(&path).unwrap();
    let process = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    Some(RootGuard {
        _thread: thread,
        _process: process,
    })
}

fn listing() -> String {
    run(&args(&["-S"])).unwrap()
}

/// Asserts that no rule or chain of `chains` is in the firewall.
fn assert_gone(chains: &Chains) {
    let listing = listing();
    assert!(
        !listing.contains(&chains.base),
        "{} left behind:\n{listing}",
        chains.base
    );
}

/// Removes chains when a test fails halfway.
struct Remove(BTreeSet<String>);
impl Drop for Remove {
    fn drop(&mut self) {
        let _ = remove_chains(&self.0);
    }
}

fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.bind(&SocketAddr::from((src, 0)).into())?;
    sock.connect_timeout(&dst.into(), Duration::from_millis(500))?;
    Ok(sock.into())
}

/// Connects from `src` (bound) to `listener` and sends a ping that the listener reads.
fn exchange(src: Ipv4Addr, listener: &TcpListener) -> std::io::Result<()> {
    let mut client = connect_from(src, listener.local_addr()?)?;
    client.write_all(b"ping")?;
    let (mut server, _) = listener.accept()?;
    let mut buf = [0; 4];
    server.read_exact(&mut buf)?;
    assert_eq!(&buf, b"ping");
    Ok(())
}

#[test]
fn partition_cuts_bound_sockets_and_heal_restores_them() {
    let Some(_guard) = root_or_skip("partition_cuts_bound_sockets_and_heal_restores_them") else {
        return;
    };
    let (ip1, ip2) = (Ipv4Addr::new(127, 0, 9, 1), Ipv4Addr::new(127, 0, 9, 2));
    let l1 = TcpListener::bind((ip1, 0)).unwrap();
    let l2 = TcpListener::bind((ip2, 0)).unwrap();
    let nodes = [
        NodeNet {
            id: 1,
            ip: ip1,
            port: l1.local_addr().unwrap().port(),
            uid: None,
        },
        NodeNet {
            id: 2,
            ip: ip2,
            port: l2.local_addr().unwrap().port(),
            uid: None,
        },
    ];
    let tag = format!("addr{}", std::process::id());
    let chains = Chains::for_tag(&tag);
    let _remove = Remove(chains.names());
    let mut net = Iptables::start(&tag, &nodes).unwrap();
    let fw = listing();
    assert!(
        fw.contains(&format!("-A INPUT -j {}", chains.input)),
        "{fw}"
    );
    assert!(
        fw.contains(&format!("-A OUTPUT -j {}", chains.output)),
        "{fw}"
    );

    exchange(ip1, &l2).expect("1 -> 2 before the cut");
    let mut old = connect_from(ip1, l2.local_addr().unwrap()).unwrap();
    let (mut old_server, _) = l2.accept().unwrap();

    net.partition(&split(&[1], &[2])).unwrap();
    assert!(
        exchange(ip1, &l2).is_err(),
        "1 -> 2 connected across the cut"
    );
    assert!(
        exchange(ip2, &l1).is_err(),
        "2 -> 1 connected across the cut"
    );
    // Unbound clients (source 127.0.0.1, like the runner's) are not cut.
    let unbound = TcpStream::connect_timeout(&l2.local_addr().unwrap(), Duration::from_millis(500));
    assert!(unbound.is_ok(), "{unbound:?}");
    drop(l2.accept().unwrap());
    // An open connection loses its packets silently.
    old.write_all(b"held").unwrap();
    old_server
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let err = old_server.read(&mut [0; 4]).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );

    net.heal().unwrap();
    exchange(ip1, &l2).expect("1 -> 2 after heal");
    exchange(ip2, &l1).expect("2 -> 1 after heal");
    // TCP retransmits what was sent during the cut.
    old_server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0; 4];
    old_server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"held");

    net.cleanup().unwrap();
    assert_gone(&chains);
    assert!(!chains.state_path().exists());
    net.cleanup().unwrap();
}

#[test]
fn owner_rules_cut_a_process_running_under_a_node_uid() {
    let Some(_guard) = root_or_skip("owner_rules_cut_a_process_running_under_a_node_uid") else {
        return;
    };
    if Command::new("bash").arg("-c").arg("true").status().is_err() {
        eprintln!("skipping owner_rules_cut_a_process_running_under_a_node_uid: no bash");
        return;
    }
    let uids = crate::net::ensure_uids(2).unwrap();
    let (ip3, ip4) = (Ipv4Addr::new(127, 0, 9, 3), Ipv4Addr::new(127, 0, 9, 4));
    let l4 = TcpListener::bind((ip4, 0)).unwrap();
    let port = l4.local_addr().unwrap().port();
    let nodes = [
        NodeNet {
            id: 3,
            ip: ip3,
            port: 1,
            uid: Some(uids[0]),
        },
        NodeNet {
            id: 4,
            ip: ip4,
            port,
            uid: Some(uids[1]),
        },
    ];
    // A client that, like etcd, does not bind its socket, running as node 3's user.
    let send_as_node3 = || {
        let script = format!("exec 3<>/dev/tcp/{ip4}/{port} && echo hi >&3");
        let status = Command::new("timeout")
            .args(["2", "bash", "-c", &script])
            .uid(uids[0])
            .current_dir("/")
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        if status.success() {
            let (mut server, _) = l4.accept().unwrap();
            let mut buf = [0; 3];
            server.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"hi\n");
        }
        status.success()
    };
    let tag = format!("uid{}", std::process::id());
    let chains = Chains::for_tag(&tag);
    let _remove = Remove(chains.names());
    let mut net = Iptables::start(&tag, &nodes).unwrap();
    assert!(
        send_as_node3(),
        "node 3's user cannot reach node 4 before the cut"
    );

    net.partition(&split(&[3], &[4])).unwrap();
    assert!(
        !send_as_node3(),
        "node 3's user reached node 4 across the cut"
    );
    // Root's packets to the same address still pass: the rule matches the owner only.
    assert!(
        TcpStream::connect_timeout(&l4.local_addr().unwrap(), Duration::from_millis(500)).is_ok()
    );
    drop(l4.accept().unwrap());

    net.heal().unwrap();
    assert!(
        send_as_node3(),
        "node 3's user cannot reach node 4 after heal"
    );
    drop(net); // Drop cleans up too.
    assert_gone(&chains);
}

use std::os::unix::process::CommandExt;

#[test]
fn leftovers_of_dead_runs_are_removed_and_live_runs_spared() {
    let Some(_guard) = root_or_skip("leftovers_of_dead_runs_are_removed_and_live_runs_spared")
    else {
        return;
    };
    let me = std::process::id();
    let create = |chains: &Chains| {
        chains
            .setup_args()
            .iter()
            .for_each(|a| drop(run(a).unwrap()));
        run(&args(&[
            "-A",
            &chains.input,
            "-s",
            "127.0.9.7",
            "-d",
            "127.0.9.8",
            "-j",
            "DROP",
        ]))
        .unwrap();
    };
    let write_owner = |chains: &Chains, owner: &str| {
        std::fs::create_dir_all(state_dir()).unwrap();
        let body = format!("{owner}\n{}\n{}\n", chains.input, chains.output);
        std::fs::write(chains.state_path(), body).unwrap();
    };

    // A run killed with SIGKILL: its state file names a process that no longer exists.
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_identity = process_identity(dead.id()).unwrap_or(format!("{} 1", dead.id()));
    dead.wait().unwrap();
    let crashed = Chains::for_tag(&format!("crash{me}"));
    // A run that died before its state file was written (or whose /tmp was wiped).
    let orphan = Chains::for_tag(&format!("orphan{me}"));
    // A concurrent run that is still alive.
    let mut sleeper = Command::new("sleep").arg("20").spawn().unwrap();
    let live = Chains::for_tag(&format!("live{me}"));
    let all: BTreeSet<String> = [&crashed, &orphan, &live]
        .iter()
        .flat_map(|c| c.names())
        .collect();
    let _remove = Remove(all);
    write_owner(&crashed, &dead_identity);
    write_owner(&live, &process_identity(sleeper.id()).unwrap());
    for c in [&crashed, &orphan, &live] {
        create(c);
    }

    cleanup_leftovers().unwrap();
    assert_gone(&crashed);
    assert_gone(&orphan);
    assert!(!crashed.state_path().exists());
    let fw = listing();
    assert!(
        fw.contains(&format!("-A INPUT -j {}", live.input)),
        "live run's chain removed:\n{fw}"
    );

    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    cleanup_leftovers().unwrap();
    assert_gone(&live);
    // Nothing with our prefix is left except chains of other live processes.
    let fw = listing();
    for chain in our_chains(&fw) {
        let base = chain.trim_end_matches("-i").trim_end_matches("-o");
        let owner = read_state(&state_dir().join(base));
        assert!(
            matches!(owner, Some((true, _))),
            "{chain} survived cleanup_leftovers:\n{fw}"
        );
    }
}

/// Not a test by itself: the victim process of `a_run_killed_with_sigkill_leaves_nothing_behind`
/// (it does nothing unless that test starts it with `JTN_VICTIM_TAG` set).
#[test]
#[ignore]
fn sigkill_victim() {
    let Ok(tag) = std::env::var("JTN_VICTIM_TAG") else {
        return;
    };
    let nodes = [node(1, 1, None), node(2, 2, None)];
    let mut net = Iptables::start(&tag, &nodes).unwrap();
    net.partition(&split(&[1], &[2])).unwrap();
    println!("JTN-READY");
    // Bounded: the parent kills us long before this ends.
    std::thread::sleep(Duration::from_secs(20));
}

#[test]
fn a_run_killed_with_sigkill_leaves_nothing_behind() {
    let Some(_guard) = root_or_skip("a_run_killed_with_sigkill_leaves_nothing_behind") else {
        return;
    };
    use std::io::BufRead;
    let tag = format!("kill{}", std::process::id());
    let chains = Chains::for_tag(&tag);
    let _remove = Remove(chains.names());
    // Re-run this test binary, asking it for the victim test only.
    let module = module_path!().split_once("::").map_or("", |(_, rest)| rest);
    let mut victim = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &format!("{module}::sigkill_victim"),
            "--ignored",
            "--nocapture",
        ])
        .env("JTN_VICTIM_TAG", &tag)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(victim.stdout.take().unwrap());
    let ready = out
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("JTN-READY"));
    assert!(ready, "the victim never partitioned");
    let fw = listing();
    assert!(
        fw.contains(&format!(
            "-A {} -s 127.0.9.1/32 -d 127.0.9.2/32 -j DROP",
            chains.input
        )),
        "{fw}"
    );
    // A cleanup_leftovers by someone else spares the live victim.
    cleanup_leftovers().unwrap();
    assert!(
        listing().contains(&chains.input),
        "live run's chain removed"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim.id() as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    victim.wait().unwrap();
    assert!(
        listing().contains(&chains.input),
        "SIGKILL cannot have run any cleanup"
    );
    cleanup_leftovers().unwrap();
    assert_gone(&chains);
    assert!(!chains.state_path().exists());
}
