//! Sharing the model's large values within one search thread: node states, storages and
//! messages that are equal are kept once (hash-consing), and renamings of them are
//! remembered (see `symmetry.rs`).
//!
//! Why: an exhaustive search keeps every state of its frontier, and a state is mostly what
//! its nodes hold. Far fewer node states exist than global states (a node in a given local
//! state appears in many interleavings of the others), so sharing them is what makes the
//! frontier small. The identity of a node state or a storage is already its 64-bit
//! fingerprint (`NodeState::seal`), so sharing by fingerprint changes no state's identity.
//!
//! Why per thread: stateright's checker threads live for one search and share nothing the
//! model controls; a table per thread needs no lock and is dropped with its thread. Random
//! walks do not use it (their states are dropped as they go, and a table would only grow).

use super::state::{NodeState, Storage, Wire};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Entries a table holds before it is emptied (then sharing starts afresh; nothing breaks).
const CAP: usize = 1 << 21;

/// A renaming of the nodes, by index: `perm[i]` is the new index of node `i`.
pub(super) type Perm = [u8; 5];

#[derive(Default)]
struct Tables {
    nodes: HashMap<u64, Arc<NodeState>>,
    storages: HashMap<u64, Storage>,
    wires: HashSet<Wire>,
    renamed_nodes: HashMap<(u64, Perm), Arc<NodeState>>,
    renamed_storages: HashMap<(u64, Perm), Storage>,
    renamed_wires: HashMap<(Wire, Perm), Wire>,
}

thread_local! {
    static TABLES: RefCell<Tables> = RefCell::new(Tables::default());
}

fn capped<K, V>(map: &mut HashMap<K, V>) -> &mut HashMap<K, V> {
    if map.len() >= CAP {
        map.clear();
    }
    map
}

/// The shared copy of this node state.
pub(super) fn node(s: NodeState) -> Arc<NodeState> {
    TABLES.with(|t| {
        let mut t = t.borrow_mut();
        let fp = s.fp;
        Arc::clone(
            capped(&mut t.nodes)
                .entry(fp)
                .or_insert_with(|| Arc::new(s)),
        )
    })
}

/// The shared copy of this storage.
pub(super) fn storage(s: Storage) -> Storage {
    TABLES.with(|t| {
        let mut t = t.borrow_mut();
        let fp = s.fingerprint();
        capped(&mut t.storages).entry(fp).or_insert(s).clone()
    })
}

/// The shared copy of this message.
pub(super) fn wire(w: Wire) -> Wire {
    TABLES.with(|t| {
        let mut t = t.borrow_mut();
        if t.wires.len() >= CAP {
            t.wires.clear();
        }
        if let Some(shared) = t.wires.get(&w) {
            return shared.clone();
        }
        t.wires.insert(w.clone());
        w
    })
}

/// The value remembered in `table` for `key`, computed (and shared) by `make` the first
/// time.
fn remembered<K: std::hash::Hash + Eq, V: Clone>(
    table: fn(&mut Tables) -> &mut HashMap<K, V>,
    key: K,
    make: impl FnOnce() -> V,
) -> V {
    if let Some(hit) = TABLES.with(|t| table(&mut t.borrow_mut()).get(&key).cloned()) {
        return hit;
    }
    // `make` shares through the tables too: it must run with them unborrowed.
    let value = make();
    TABLES.with(|t| capped(table(&mut t.borrow_mut())).insert(key, value.clone()));
    value
}

/// `s` renamed by `perm`, computed by `rename` the first time.
pub(super) fn renamed_node(
    s: &Arc<NodeState>,
    perm: Perm,
    rename: impl FnOnce() -> NodeState,
) -> Arc<NodeState> {
    remembered(|t| &mut t.renamed_nodes, (s.fp, perm), || node(rename()))
}

/// `s` renamed by `perm`, computed by `rename` the first time.
pub(super) fn renamed_storage(
    s: &Storage,
    perm: Perm,
    rename: impl FnOnce() -> Storage,
) -> Storage {
    remembered(
        |t| &mut t.renamed_storages,
        (s.fingerprint(), perm),
        || storage(rename()),
    )
}

/// `w` renamed by `perm`, computed by `rename` the first time.
pub(super) fn renamed_wire(w: &Wire, perm: Perm, rename: impl FnOnce() -> Wire) -> Wire {
    remembered(
        |t| &mut t.renamed_wires,
        (w.clone(), perm),
        || wire(rename()),
    )
}
