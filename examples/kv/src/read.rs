//! Reading the keys of a span as of a revision: the one primitive behind ranges, compares, and
//! the "previous value" lookups of puts and deletes.
//!
//! Both walk the span's `k/` rows, in key order. At the current revision each row answers
//! directly (its live value, or nothing for a deleted key). At a past revision a row answers
//! when the key has not changed since; otherwise the key's history is searched
//! ([`crate::chain`]: O(log versions) gets, for the keys changed since the revision only).

use prost::Message;
use wasmraft_guest_sdk::ReadStore;
use wasmraft_proto::mvccpb::KeyValue;

use crate::chain;
use crate::errors::corrupt;
use crate::layout::{Span, key_row};
use crate::pager::Pager;
use crate::record::{decode_key_row, live_of};

/// Whether a visit goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// The callback of [`visit`]: gets each live key's encoded `mvccpb.KeyValue`, in key order.
/// Decoding is left to the callback so that counting never pays for it.
pub type Visitor<'f> = dyn FnMut(&[u8]) -> Result<Flow, String> + 'f;

/// Visits every key of `span` that exists at revision `at` (`at <= current`, where `current` is
/// the store's revision, and `at` at or above the compaction).
pub fn visit(store: &dyn ReadStore, span: &Span, at: i64, current: i64, f: &mut Visitor<'_>) -> Result<(), String> {
    if let Span::Single(key) = span {
        let Some(bytes) = store.get(&key_row(key)) else { return Ok(()) };
        visit_row(store, &bytes, at, current, f)?;
        return Ok(());
    }
    let (start, end) = span.key_range();
    let mut pager = Pager::new(store, start, end);
    while let Some((_, bytes)) = pager.next_pair() {
        if visit_row(store, &bytes, at, current, f)? == Flow::Stop {
            break;
        }
    }
    Ok(())
}

/// Hands a `k/` row's value at `at` to the visitor, if the key existed then.
fn visit_row(store: &dyn ReadStore, row: &[u8], at: i64, current: i64, f: &mut Visitor<'_>) -> Result<Flow, String> {
    if at >= current {
        return match live_of(row)? {
            Some(kv) => f(kv),
            None => Ok(Flow::Continue),
        };
    }
    match chain::value_at(store, &decode_key_row(row)?, at)? {
        Some(kv) => f(&kv),
        None => Ok(Flow::Continue),
    }
}

/// The key's KeyValue at revision `at`, if it existed then.
pub fn get(store: &dyn ReadStore, key: &[u8], at: i64, current: i64) -> Result<Option<KeyValue>, String> {
    let mut found = None;
    visit(store, &Span::Single(key.to_vec()), at, current, &mut |kv| {
        found = Some(decode_kv(kv)?);
        Ok(Flow::Stop)
    })?;
    Ok(found)
}

/// The key's live KeyValue (at the store's revision).
pub fn get_live(store: &dyn ReadStore, key: &[u8]) -> Result<Option<KeyValue>, String> {
    match store.get(&key_row(key)) {
        Some(row) => live_of(&row)?.map(decode_kv).transpose(),
        None => Ok(None),
    }
}

pub fn decode_kv(bytes: &[u8]) -> Result<KeyValue, String> {
    KeyValue::decode(bytes).map_err(|e| corrupt(format!("stored KeyValue: {e}")))
}
