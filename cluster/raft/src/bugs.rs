//! Bug switches: classic Raft mistakes the core can re-introduce on purpose, one by one.
//!
//! They exist so the simulation harness, the model checker and the black-box tester can prove
//! they catch each mistake. All are off by default. In the core each is one small branch
//! marked `// BUG:` next to the correct code.

use std::fmt;
use std::str::FromStr;

/// One classic mistake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bug {
    /// Commit entries of earlier terms by counting replicas (the paper's Figure 8).
    CommitOldTerm,
    /// Term and vote are not persisted, so a restarted node can vote twice in one term.
    ForgetVote,
    /// Grant votes without the election restriction (§5.4.1).
    NoLogCheck,
    /// The leader answers reads from its own commit index, without a ReadIndex round.
    LocalRead,
    /// ReadIndex serves before the new leader has committed an entry of its own term.
    EarlyRead,
    /// Start a membership change before an entry of the leader's term is committed, or while
    /// another change is still pending.
    UnsafeMembership,
    /// A follower truncates its log after a matching prevLogIndex even when the entries agree.
    TruncateMatching,
    /// The driver acknowledges, votes and answers without making its hard state and new
    /// entries durable first (no `fsync`). The core behaves as usual: this switch is for the
    /// drivers. The node process skips every `fsync` of its write-ahead log; a simulation or
    /// model that crashes a node loses what was not saved. A process kill keeps the page cache,
    /// so only a lost power supply (the nemesis' `power-loss` fault) or a crash that drops
    /// unsaved state exposes it: a node forgets a vote or an entry it acknowledged.
    NoFsync,
}

impl Bug {
    /// Every switch, in declaration order.
    pub const ALL: [Bug; 8] = [
        Bug::CommitOldTerm,
        Bug::ForgetVote,
        Bug::NoLogCheck,
        Bug::LocalRead,
        Bug::EarlyRead,
        Bug::UnsafeMembership,
        Bug::TruncateMatching,
        Bug::NoFsync,
    ];

    /// The switch's name on command lines and in files (`commit-old-term`, …).
    pub fn name(self) -> &'static str {
        match self {
            Bug::CommitOldTerm => "commit-old-term",
            Bug::ForgetVote => "forget-vote",
            Bug::NoLogCheck => "no-log-check",
            Bug::LocalRead => "local-read",
            Bug::EarlyRead => "early-read",
            Bug::UnsafeMembership => "unsafe-membership",
            Bug::TruncateMatching => "truncate-matching",
            Bug::NoFsync => "no-fsync",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of the eight switches.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown bug switch {name:?}; known: commit-old-term, forget-vote, no-log-check, local-read, early-read, unsafe-membership, truncate-matching, no-fsync")]
pub struct UnknownBug {
    /// The name as given.
    pub name: String,
}

impl FromStr for Bug {
    type Err = UnknownBug;
    fn from_str(s: &str) -> Result<Bug, UnknownBug> {
        Bug::ALL
            .into_iter()
            .find(|b| b.name() == s.trim())
            .ok_or_else(|| UnknownBug {
                name: s.to_string(),
            })
    }
}

/// A set of bug switches (empty by default: the correct protocol).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Bugs(u8);

impl Bugs {
    /// No switch on.
    pub fn none() -> Bugs {
        Bugs(0)
    }

    /// Exactly one switch on.
    pub fn only(bug: Bug) -> Bugs {
        Bugs(bug.bit())
    }

    /// This set plus `bug`.
    pub fn with(self, bug: Bug) -> Bugs {
        Bugs(self.0 | bug.bit())
    }

    /// Whether `bug` is on.
    pub fn contains(self, bug: Bug) -> bool {
        self.0 & bug.bit() != 0
    }

    /// Whether no switch is on.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The switches that are on, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Bug> {
        Bug::ALL.into_iter().filter(move |b| self.contains(*b))
    }
}

impl fmt::Debug for Bugs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(Bug::name)).finish()
    }
}

impl fmt::Display for Bugs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Bug::name).collect();
        f.write_str(&names.join(","))
    }
}

/// Parses a comma-separated list (`"commit-old-term,forget-vote"`); `""` and `"none"` are
/// the empty set.
impl FromStr for Bugs {
    type Err = UnknownBug;
    fn from_str(s: &str) -> Result<Bugs, UnknownBug> {
        let mut set = Bugs::none();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part != "none" {
                set = set.with(part.parse()?);
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for bug in Bug::ALL {
            assert_eq!(bug.name().parse::<Bug>().unwrap(), bug);
            assert!(Bugs::only(bug).contains(bug));
        }
        let set: Bugs = "early-read, forget-vote".parse().unwrap();
        assert!(set.contains(Bug::EarlyRead) && set.contains(Bug::ForgetVote));
        assert!(!set.contains(Bug::LocalRead));
        assert_eq!(set.to_string(), "forget-vote,early-read");
        assert!("".parse::<Bugs>().unwrap().is_empty());
        let err = "commit-new-term".parse::<Bugs>().unwrap_err();
        assert!(err.to_string().contains("commit-new-term"));
    }
}
