//! Reading the keys of a span as of a revision: the one primitive behind ranges, compares, and
//! the "previous value" lookups of puts and deletes.
//!
//! At the current revision the `l/` table answers directly (one `get`, or one scan of exactly
//! the live keys). At a past revision the `i/` history answers: for each key, the newest change
//! at or below the revision, unless that change is a tombstone.

use prost::Message;
use wasmraft_guest_sdk::ReadStore;
use wasmraft_proto::mvccpb::KeyValue;

use crate::errors::corrupt;
use crate::layout::{Span, index_key, index_prefix, live_key, parse_index_key};
use crate::pager::Pager;
use crate::record::{Change, decode_change};
use crate::revision::Revision;

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
/// the revision the `l/` table reflects).
pub fn visit(store: &dyn ReadStore, span: &Span, at: i64, current: i64, f: &mut Visitor<'_>) -> Result<(), String> {
    if at >= current { visit_live(store, span, f) } else { visit_history(store, span, at, f) }
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

/// The key's live KeyValue (at the revision the `l/` table reflects).
pub fn get_live(store: &dyn ReadStore, key: &[u8]) -> Result<Option<KeyValue>, String> {
    store.get(&live_key(key)).map(|v| decode_kv(&v)).transpose()
}

pub fn decode_kv(bytes: &[u8]) -> Result<KeyValue, String> {
    KeyValue::decode(bytes).map_err(|e| corrupt(format!("stored KeyValue: {e}")))
}

fn visit_live(store: &dyn ReadStore, span: &Span, f: &mut Visitor<'_>) -> Result<(), String> {
    if let Span::Single(key) = span {
        if let Some(kv) = store.get(&live_key(key)) {
            f(&kv)?;
        }
        return Ok(());
    }
    let (start, end) = span.live_range();
    let mut pager = Pager::new(store, start, end);
    while let Some((_, kv)) = pager.next_pair() {
        if f(&kv)? == Flow::Stop {
            break;
        }
    }
    Ok(())
}

fn visit_history(store: &dyn ReadStore, span: &Span, at: i64, f: &mut Visitor<'_>) -> Result<(), String> {
    if let Span::Single(key) = span {
        // The newest change at or below `at`: one descending step from just above it.
        let start = index_prefix(key);
        let end = index_key(key, Revision::new(at.saturating_add(1), 0));
        if let Some((_, record)) = store.scan_page(&start, &end, 1, true).into_iter().next() {
            emit(&record, f)?;
        }
        return Ok(());
    }

    let (start, end) = span.index_range();
    let mut pager = Pager::new(store, start, end);
    // The escaped-key prefix of the key being walked, and its newest record at or below `at`.
    let mut group: Vec<u8> = Vec::new();
    let mut newest: Option<Vec<u8>> = None;
    while let Some((stored, record)) = pager.next_pair() {
        let (prefix, _, rev) = parse_index_key(&stored).ok_or_else(|| corrupt("index key"))?;
        if prefix != group.as_slice() {
            if let Some(r) = newest.take()
                && emit(&r, f)? == Flow::Stop
            {
                return Ok(());
            }
            group = prefix.to_vec();
        }
        if rev.main <= at {
            newest = Some(record);
        } else {
            // History is ascending: everything else of this key is newer still.
            if let Some(r) = newest.take()
                && emit(&r, f)? == Flow::Stop
            {
                return Ok(());
            }
            pager.skip_prefix(&group);
        }
    }
    if let Some(r) = newest {
        emit(&r, f)?;
    }
    Ok(())
}

/// Hands a history record to the visitor if it is a put.
fn emit(record: &[u8], f: &mut Visitor<'_>) -> Result<Flow, String> {
    match decode_change(record)? {
        Change::Put(kv) => f(kv),
        Change::Tombstone => Ok(Flow::Continue),
    }
}
