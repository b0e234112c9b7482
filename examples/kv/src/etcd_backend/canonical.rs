//! The guest's tables with what no read can observe normalised away, so that two stores holding
//! the same history compare equal however they came by it (the guest's own commands, or an
//! import of its export): links and fingers to changes a compaction dropped (an import never
//! had them; a search never follows them, see [`crate::chain`]), and a revision floor at or
//! below the newest change (none is ever left there; checked all the same).

use wasmraft_guest_sdk::ReadStore;

use super::Pairs;
use crate::errors::corrupt;
use crate::layout::{HISTORY, KEYS, REVISION_FLOOR, history_end, history_key};
use crate::meta::current_revision;
use crate::pager::Pager;
use crate::record::{decode_change, decode_key_row, encode_change, encode_key_row};
use crate::revision::Revision;

/// Every pair of the store, in key order, normalised as the module docs say.
pub fn canonical_tables(store: &dyn ReadStore) -> Result<Pairs, String> {
    let newest = store
        .scan_page(HISTORY, &history_end(), 1, true)
        .first()
        .and_then(|(k, _)| crate::layout::parse_history_key(k))
        .map_or(0, |r| r.main);
    let kept = |links: &[Revision]| -> Vec<Revision> {
        links.iter().copied().take_while(|r| store.get(&history_key(*r)).is_some()).collect()
    };
    let mut out = Vec::new();
    let mut pager = Pager::new(store, Vec::new(), Vec::new());
    while let Some((k, v)) = pager.next_pair() {
        let v = if k.starts_with(HISTORY) {
            let c = decode_change(&v)?;
            encode_change(c.tombstone, &kept(&c.links), c.payload)
        } else if k.starts_with(KEYS) {
            let mut row = decode_key_row(&v)?;
            row.fingers = kept(&row.fingers);
            if row.fingers.is_empty() {
                return Err(corrupt("a key row whose newest change is gone"));
            }
            encode_key_row(&row)
        } else if k == REVISION_FLOOR {
            if current_revision(store)? <= newest {
                continue;
            }
            v
        } else {
            v
        };
        out.push((k, v));
    }
    Ok(out)
}
