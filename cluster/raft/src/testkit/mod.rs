//! The test kit for drivers of the core: an in-memory disk and Raft's safety properties.
//!
//! Two drivers test the core from outside: the seeded simulation (`raft::sim`) and the
//! stateright model check (`checker::model_check`). Both need a disk that follows step 3 of
//! the driver contract and loses what a crash loses, and both check the paper's Figure 3
//! properties. They live here once, so the two cannot drift apart.
//!
//! Behind the `testkit` cargo feature: the node process has its own write-ahead log and
//! needs none of this.
//!
//! Why a feature of this crate rather than a crate beside it: the simulation already lives
//! here and uses the core's crate-private state; a separate crate would have to make that
//! public. The kit itself uses only the public API, so moving it out later is mechanical.

mod disk;
mod relabel;
mod safety;

pub use disk::Disk;
pub use relabel::Relabel;
pub use safety::{
    append_only, applied_same, commit_within_log, election_safety, leader_completeness,
    log_matching, Safety,
};
