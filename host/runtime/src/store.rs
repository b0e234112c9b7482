//! The key-value store a guest call works on, as the host lends it.
//!
//! The guest sees one flat keyspace of byte keys and values. Where the host keeps it (a redb
//! table, in the member) is not this crate's business: the host implements [`StoreRead`] for a
//! query's snapshot and [`StoreWrite`] for the transaction an entry is applied in, and lends
//! one to each call ([`crate::Guest::apply`], [`crate::Guest::query`]).
//!
//! Nothing here sees a guest's writes while it runs: they collect in the runtime's overlay,
//! which reads consult first, and reach the store in one [`StoreWrite::write`] only after
//! `apply` returned `Ok`. A trap, an `Err` or an exhausted budget therefore leaves the store
//! untouched without any undo.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

/// Why the host's store could not answer. Never the guest's doing: an entry that meets one may
/// be half-written, so the member must stop applying ([`crate::ApplyError::Storage`]).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StoreError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl StoreError {
    pub fn new(e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> StoreError {
        StoreError(e.into())
    }

    /// The store's own error, for a caller that knows the store's type.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }

    pub fn into_inner(self) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self.0
    }
}

/// What [`StoreRead::scan`] hands each pair to: `Break` when it wants no more.
pub type Visit<'v> = dyn FnMut(&[u8], &[u8]) -> ControlFlow<()> + 'v;

/// The keyspace as the store holds it, for the duration of one guest call.
///
/// Answers must be the same on every member for the same state: the guest's output depends on
/// them. An implementation is called on the thread that called the guest, only while that call
/// runs.
pub trait StoreRead {
    /// The value stored under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Visits the pairs with `start <= key < end` (`None`: no upper bound) in key order,
    /// descending when `reverse`, until `visit` breaks or the range is exhausted. The runtime
    /// stops as soon as its page is full, so pairs are read as they are visited, not collected
    /// first.
    fn scan(&self, start: &[u8], end: Option<&[u8]>, reverse: bool, visit: &mut Visit<'_>) -> Result<(), StoreError>;
}

/// A store an entry is applied in: the keyspace, and where the entry's writes go once it
/// succeeded.
pub trait StoreWrite: StoreRead {
    /// Writes a successful entry's puts and deletes, in key order. Never called for an entry
    /// without writes, nor for one that failed. An `Err` may leave part of them written: the
    /// caller must not commit what holds them.
    fn write(&mut self, writes: &Writes) -> Result<(), StoreError>;
}

/// One entry's writes: the last put or delete of each key it touched, in key order.
#[derive(Debug, Default)]
pub struct Writes(pub(crate) BTreeMap<Vec<u8>, Option<Vec<u8>>>);

impl Writes {
    /// Each key with its new value (`None`: deleted), ascending.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], Option<&[u8]>)> + '_ {
        self.0.iter().map(|(k, v)| (k.as_slice(), v.as_deref()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
