//! What the apply thread has applied but not yet committed to the state database, for readers.
//!
//! The apply thread keeps one redb write transaction open across apply batches and commits it
//! like etcd's backend commits its batch transaction (`apply/mod.rs`): every
//! `--backend-batch-interval`, every `--backend-batch-limit` entries, and whenever something
//! needs the file itself. Clients are answered after each batch, long before that commit, and
//! a client that got its answer must read its own write. Readers therefore read the last
//! committed state *plus* this: the guest keyspace rows and guest metric values the open
//! transaction has changed since its last commit. etcd's read buffer (`txReadBuffer`) plays the
//! same part over its batch transaction.
//!
//! Only those two tables need it. Every other table the host keeps (membership, deployments,
//! auth, alarms) changes only in entries after which the apply thread commits at once, and is
//! read from memory anyway (`replicated.rs`).
//!
//! The maps are persistent (`imbl`): publishing one after a batch is a pointer copy, a reader
//! holds the version it took for as long as it reads, and the apply thread's next writes do
//! not disturb it.
//!
//! Consistency without a lock across the commit: a reader takes the published maps *before* it
//! begins its read transaction, and the apply thread publishes the emptied maps only *after*
//! its commit has finished. A reader that took the full maps reads them over either the old
//! committed state or the new one (which already holds the same rows: the overlay's values are
//! the latest ones, so laying them on again changes nothing); a reader that took the emptied
//! maps began its transaction after the commit.

use std::ops::Bound;
use std::sync::RwLock;

use bytes::Bytes;
use redb::ReadTransaction;

use crate::guest_metrics::GuestMetric;

/// Rows of the guest keyspace written since the last commit: `None` is a deletion. Keys and
/// values are reference-counted: the first write to a tree node after a publish copies the node,
/// and copying a node must not copy its keys and values.
pub type KvRows = imbl::OrdMap<Bytes, Option<Bytes>>;

/// Guest metric values written since the last commit, by name.
pub type MetricRows = imbl::OrdMap<String, GuestMetric>;

/// The uncommitted changes readers lay over the committed state.
#[derive(Clone, Default)]
pub struct Uncommitted {
    pub kv: KvRows,
    pub metrics: MetricRows,
}

/// An uncommitted row: its key, and its value (None: deleted).
pub type KvRow<'a> = (&'a Bytes, &'a Option<Bytes>);

/// `rows` in `[start, end)` (`end` None: to the end), in key order or reversed.
pub fn kv_range<'a>(
    rows: &'a KvRows,
    start: &[u8],
    end: Option<&[u8]>,
    reverse: bool,
) -> Box<dyn Iterator<Item = KvRow<'a>> + 'a> {
    if end.is_some_and(|end| end <= start) {
        return Box::new(std::iter::empty());
    }
    let bounds = (Bound::Included(start), end.map_or(Bound::Unbounded, Bound::Excluded));
    let range = rows.range::<_, [u8]>(bounds);
    if reverse { Box::new(range.rev()) } else { Box::new(range) }
}

/// The last published [`Uncommitted`] (see the module's doc for the protocol).
#[derive(Default)]
pub struct Published {
    current: RwLock<Uncommitted>,
}

impl Published {
    /// What readers lay over the committed state from now on.
    pub fn publish(&self, changes: &Uncommitted) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = changes.clone();
    }

    /// The changes to lay over a read transaction begun after this call.
    pub fn take(&self) -> Uncommitted {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A consistent view of the applied state: a read transaction of the committed state and the
/// uncommitted changes to lay over it.
pub struct StateView {
    pub txn: ReadTransaction,
    pub uncommitted: Uncommitted,
}

impl StateView {
    /// The committed state alone (a state database nobody applies to: tests, tools).
    pub fn committed(txn: ReadTransaction) -> StateView {
        StateView { txn, uncommitted: Uncommitted::default() }
    }
}
