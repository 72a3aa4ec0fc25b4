//! The iptables backend: DROP rules in two chains this project owns, removed exactly.
//!
//! A run tagged `T` owns `JTN-T-i`, jumped to from INPUT, and `JTN-T-o`, jumped to from
//! OUTPUT, each by exactly one rule inserted first in the built-in chain. Nothing else in the
//! firewall is touched: heal flushes our two chains, cleanup deletes the two jump rules by
//! their spec and then our chains (Jepsen's `iptables -F` also wipes other tools' rules,
//! jepsen#600).
//!
//! Rules, for each pair `(from, to)` the grudge cuts:
//! - `from` binds its outgoing sockets to its own address (`uid: None`):
//!   `-A JTN-T-i -s IP(from) -d IP(to) -j DROP`, on input as Jepsen's rules are (the receiver
//!   refuses what its grudge names). Either way packets are lost silently: a TCP connect or
//!   send across the cut hangs and times out, as on a real network.
//! - `from` runs under its own uid (etcd, which does not bind, so every packet it sends has
//!   source 127.0.0.1): `-A JTN-T-o -o lo -m owner --uid-owner UID(from) -d IP(to) -j DROP`.
//!   The owner match is only valid in OUTPUT (the kernel rejects it in a chain reachable from
//!   INPUT), which is why there are two chains. The mirror rule comes from the grudge, which is
//!   symmetric.
//!
//! Crash safety: before creating its chains a run writes a state file
//! `/run/jtn-net/JTN-T` with its pid, its start time and the chain names. [`cleanup_leftovers`]
//! removes every chain with our prefix unless such a file shows its owner is another process
//! that is still alive, so concurrent runs (and parallel tests) leave each other alone.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::{check_grudge, Grudge, Net, NetError, NodeNet};

/// Every chain this project creates starts with this.
pub(crate) const PREFIX: &str = "JTN-";
/// iptables' limit on chain names.
const MAX_CHAIN: usize = 28;

/// Ok when running as root and `iptables -w -L -n` works.
pub(crate) fn available() -> Result<(), NetError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(NetError::IptablesUnavailable("not running as root".into()));
    }
    run(&["-L".into(), "-n".into()])
        .map(drop)
        .map_err(|e| NetError::IptablesUnavailable(e.to_string()))
}

/// Runs `iptables -w ARGS`, returning its stdout.
fn run(args: &[String]) -> Result<String, NetError> {
    let args: Vec<&str> = ["-w"]
        .into_iter()
        .chain(args.iter().map(String::as_str))
        .collect();
    super::run_command("iptables", &args)
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// The two chains of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chains {
    /// `JTN-<tag>`: names the state file; the chains add `-i` / `-o`.
    base: String,
    input: String,
    output: String,
}

impl Chains {
    /// Chain names for `tag`. Characters other than ASCII letters, digits, `_` and `.` become
    /// `_`; a tag too long for iptables' 28 characters keeps its start and gains a hash of the
    /// whole, so two long tags that share a start still differ.
    pub(crate) fn for_tag(tag: &str) -> Chains {
        let room = MAX_CHAIN - PREFIX.len() - 2;
        let clean: String = tag
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let short = if clean.len() <= room && !clean.is_empty() {
            clean
        } else {
            let hash = tag.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            let keep = clean.len().min(room - 9);
            format!("{}_{:08x}", &clean[..keep], hash as u32)
        };
        let base = format!("{PREFIX}{short}");
        Chains {
            input: format!("{base}-i"),
            output: format!("{base}-o"),
            base,
        }
    }

    fn names(&self) -> BTreeSet<String> {
        BTreeSet::from([self.input.clone(), self.output.clone()])
    }

    /// Creates both chains and the two jumps.
    pub(crate) fn setup_args(&self) -> Vec<Vec<String>> {
        vec![
            args(&["-N", &self.input]),
            args(&["-N", &self.output]),
            args(&["-I", "INPUT", "1", "-j", &self.input]),
            args(&["-I", "OUTPUT", "1", "-j", &self.output]),
        ]
    }

    /// Empties both chains.
    pub(crate) fn heal_args(&self) -> Vec<Vec<String>> {
        vec![args(&["-F", &self.input]), args(&["-F", &self.output])]
    }

    /// The DROP rules for `g` (see the module docs).
    pub(crate) fn rule_args(
        &self,
        nodes: &[NodeNet],
        g: &Grudge,
    ) -> Result<Vec<Vec<String>>, NetError> {
        check_grudge(g, nodes)?;
        let node = |id: usize| {
            nodes
                .iter()
                .find(|n| n.id == id)
                .expect("checked by check_grudge")
        };
        let mut rules = Vec::new();
        for (from, to) in g.cut_pairs() {
            let (src, dst) = (node(from), node(to));
            let dst_ip = dst.ip.to_string();
            rules.push(match src.uid {
                Some(uid) => args(&[
                    "-A",
                    &self.output,
                    "-o",
                    "lo",
                    "-m",
                    "owner",
                    "--uid-owner",
                    &uid.to_string(),
                    "-d",
                    &dst_ip,
                    "-j",
                    "DROP",
                ]),
                None => args(&[
                    "-A",
                    &self.input,
                    "-s",
                    &src.ip.to_string(),
                    "-d",
                    &dst_ip,
                    "-j",
                    "DROP",
                ]),
            });
        }
        Ok(rules)
    }

    fn state_path(&self) -> PathBuf {
        state_dir().join(&self.base)
    }
}

/// The commands that remove `chains` from a firewall listed by `iptables -S`: every rule
/// jumping to one of them (deleted by its exact spec, in any chain but ours), then a flush and
/// a delete of each chain present. Chains not in the listing are skipped.
pub(crate) fn removal_args(listing: &str, chains: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut jumps = Vec::new();
    let mut present = Vec::new();
    for line in listing.lines() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        match tokens.as_slice() {
            ["-N", name] if chains.contains(*name) => present.push(name.to_string()),
            ["-A", chain, rest @ ..] if !chains.contains(*chain) => {
                let target = rest
                    .windows(2)
                    .find(|w| w[0] == "-j" || w[0] == "-g")
                    .map(|w| w[1]);
                if target.is_some_and(|t| chains.contains(t)) {
                    let mut spec = args(&["-D", chain]);
                    spec.extend(rest.iter().map(|s| s.to_string()));
                    jumps.push(spec);
                }
            }
            _ => {}
        }
    }
    let mut cmds = jumps;
    cmds.extend(present.iter().map(|c| args(&["-F", c])));
    cmds.extend(present.iter().map(|c| args(&["-X", c])));
    cmds
}

/// Removes `chains` and every jump to them, exactly.
///
/// Two runs starting at once both clean the same leftovers, so a command may fail because the
/// other run got there first: failures only count if the chains are still there on a fresh
/// listing after a few rounds.
fn remove_chains(chains: &BTreeSet<String>) -> Result<(), NetError> {
    let mut last_err = None;
    for _ in 0..3 {
        let cmds = removal_args(&run(&args(&["-S"]))?, chains);
        if cmds.is_empty() {
            return Ok(());
        }
        for cmd in &cmds {
            if let Err(e) = run(cmd) {
                last_err = Some(e);
            }
        }
    }
    if removal_args(&run(&args(&["-S"]))?, chains).is_empty() {
        return Ok(());
    }
    Err(last_err.unwrap_or_else(|| NetError::Command {
        command: "iptables -w -S".into(),
        detail: format!("chains {chains:?} are still there after removing them three times"),
    }))
}

/// Chains with our prefix in an `iptables -S` listing.
pub(crate) fn our_chains(listing: &str) -> BTreeSet<String> {
    listing
        .lines()
        .filter_map(|l| l.strip_prefix("-N "))
        .map(str::trim)
        .filter(|c| c.starts_with(PREFIX))
        .map(String::from)
        .collect()
}

/// A fixed path, not `$TMPDIR`: a run that looked in another directory would take a live
/// run's chains for orphans. `/run` is root's (as the firewall is) and emptied at boot, when
/// the chains vanish too.
fn state_dir() -> PathBuf {
    PathBuf::from("/run/jtn-net")
}

/// `pid starttime` of a process, from `/proc/PID/stat` (start time guards against pid reuse).
fn process_identity(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; fields after it do not.
    let after = &stat[stat.rfind(')')? + 1..];
    let start = after.split_whitespace().nth(19)?;
    Some(format!("{pid} {start}"))
}

/// Writes the state file of `chains` for this process.
fn write_state(chains: &Chains) -> Result<(), NetError> {
    let io = |what: String| move |source| NetError::Io { what, source };
    let dir = state_dir();
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    let me = process_identity(std::process::id()).unwrap_or_default();
    let body = format!("{me}\n{}\n{}\n", chains.input, chains.output);
    let path = chains.state_path();
    std::fs::write(&path, body).map_err(io(format!("writing {}", path.display())))
}

/// Reads a state file: (owner is another live process, chains listed).
fn read_state(path: &std::path::Path) -> Option<(bool, Vec<String>)> {
    let body = std::fs::read_to_string(path).ok()?;
    let mut lines = body.lines();
    let owner = lines.next()?.trim().to_string();
    let pid: u32 = owner.split_whitespace().next()?.parse().ok()?;
    let other_alive =
        pid != std::process::id() && process_identity(pid).as_deref() == Some(owner.as_str());
    Some((
        other_alive,
        lines
            .map(String::from)
            .filter(|c| c.starts_with(PREFIX))
            .collect(),
    ))
}

/// Removes every firewall chain with this project's prefix (and the jumps to it) that is not
/// owned by another live process: chains left by runs that crashed, were killed with SIGKILL,
/// or by this process itself (so a signal handler may call it). Call it whenever the runner
/// starts, whatever its faults: a leftover DROP rule would spoil a clean run too. Without root
/// or iptables there is nothing it could remove, and it returns `Ok` at once.
pub fn cleanup_leftovers() -> anyhow::Result<()> {
    if available().is_err() {
        return Ok(());
    }
    let listing = run(&args(&["-S"]))?;
    let mut doomed = our_chains(&listing);
    let mut stale_files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(state_dir()) {
        for path in entries.flatten().map(|e| e.path()) {
            match read_state(&path) {
                Some((true, chains)) => doomed.retain(|c| !chains.contains(c)),
                Some((false, chains)) => {
                    doomed.extend(chains);
                    stale_files.push(path);
                }
                None => stale_files.push(path),
            }
        }
    }
    remove_chains(&doomed)?;
    for path in stale_files {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// A live iptables partitioner (see the module docs).
pub(crate) struct Iptables {
    chains: Chains,
    nodes: Vec<NodeNet>,
    /// False once cleaned up.
    active: bool,
}

impl Iptables {
    pub(crate) fn start(tag: &str, nodes: &[NodeNet]) -> Result<Iptables, NetError> {
        available()?;
        let bound: Vec<&NodeNet> = nodes.iter().filter(|n| n.uid.is_none()).collect();
        for (i, a) in bound.iter().enumerate() {
            if let Some(b) = bound[..i].iter().find(|b| b.ip == a.ip) {
                return Err(NetError::BadNodes(format!(
                    "nodes {} and {} share {} and have no uid: iptables cannot tell their packets apart",
                    b.id, a.id, a.ip
                )));
            }
        }
        let chains = Chains::for_tag(tag);
        // State first: a chain without a live owner's state file is fair game for
        // `cleanup_leftovers` in a concurrent run.
        write_state(&chains)?;
        remove_chains(&chains.names())?;
        let mut net = Iptables {
            chains,
            nodes: nodes.to_vec(),
            active: true,
        };
        if let Err(e) = net
            .chains
            .setup_args()
            .iter()
            .try_for_each(|a| run(a).map(drop))
        {
            let _ = net.teardown();
            return Err(e);
        }
        Ok(net)
    }

    fn teardown(&mut self) -> Result<(), NetError> {
        if !self.active {
            return Ok(());
        }
        remove_chains(&self.chains.names())?;
        let _ = std::fs::remove_file(self.chains.state_path());
        self.active = false;
        Ok(())
    }

    fn flush(&self) -> Result<(), NetError> {
        self.chains
            .heal_args()
            .iter()
            .try_for_each(|a| run(a).map(drop))
    }
}

impl Net for Iptables {
    fn partition(&mut self, g: &Grudge) -> anyhow::Result<()> {
        let rules = self.chains.rule_args(&self.nodes, g)?;
        self.flush()?;
        if let Err(e) = rules.iter().try_for_each(|a| run(a).map(drop)) {
            let _ = self.flush();
            return Err(e.into());
        }
        Ok(())
    }

    fn heal(&mut self) -> anyhow::Result<()> {
        Ok(self.flush()?)
    }

    fn peer_addr(&self, from: usize, to: usize) -> std::net::SocketAddr {
        let find = |id| self.nodes.iter().find(|n| n.id == id);
        assert!(
            find(from).is_some(),
            "peer_addr: unknown node {from} in {:?}",
            self.nodes
        );
        find(to)
            .unwrap_or_else(|| panic!("peer_addr: unknown node {to} in {:?}", self.nodes))
            .addr()
    }

    fn cleanup(&mut self) -> anyhow::Result<()> {
        Ok(self.teardown()?)
    }
}

impl Drop for Iptables {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

#[cfg(test)]
#[path = "iptables_tests.rs"]
mod tests;
