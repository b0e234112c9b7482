//! The active guest's exported metrics (WIT `metrics`), as the state database keeps them.
//!
//! A batch merges its successful commands' updates (a failed command's never reach it: the
//! runtime drops them with its writes) and writes each touched name once, in the batch's own
//! transaction: every member holds the same values at the same applied index, a restart
//! resumes from them, and a snapshot carries them (`wasmraft_storage::tables::GUEST_METRICS`).

use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use wasmraft_runtime::MetricUpdate;
use wasmraft_storage::tables::GUEST_METRICS;

use crate::state_error::StateError;
use crate::uncommitted::StateView;

/// One stored guest metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestMetric {
    pub name: String,
    pub value: i64,
    /// Last written with `add` (a counter when its name ends in `_total`), not `set`.
    pub added: bool,
}

const KIND_ADD: u8 = 0;
const KIND_SET: u8 = 1;

fn encode(added: bool, value: i64) -> [u8; 9] {
    let mut out = [0u8; 9];
    out[0] = if added { KIND_ADD } else { KIND_SET };
    out[1..].copy_from_slice(&value.to_be_bytes());
    out
}

fn decode(name: &[u8], bytes: &[u8]) -> Result<GuestMetric, StateError> {
    let corrupt =
        |detail: &str| StateError::corrupt("guest metric", format!("{:?}: {detail}", String::from_utf8_lossy(name)));
    let name = std::str::from_utf8(name).map_err(|_| corrupt("name is not UTF-8"))?.to_string();
    let (kind, value) = bytes.split_first().ok_or_else(|| corrupt("empty record"))?;
    let value: [u8; 8] = value.try_into().map_err(|_| corrupt("value is not 8 bytes"))?;
    let added = match *kind {
        KIND_ADD => true,
        KIND_SET => false,
        k => return Err(corrupt(&format!("unknown kind {k}"))),
    };
    Ok(GuestMetric { name, value: i64::from_be_bytes(value), added })
}

/// Applies a batch's merged updates to the stored values; returns the values written (what
/// readers see of them until the transaction commits: `crate::uncommitted`).
pub(crate) fn write(
    txn: &WriteTransaction,
    updates: &BTreeMap<String, MetricUpdate>,
) -> Result<Vec<GuestMetric>, StateError> {
    if updates.is_empty() {
        return Ok(Vec::new());
    }
    let mut table = txn.open_table(GUEST_METRICS)?;
    let mut written = Vec::with_capacity(updates.len());
    for (name, update) in updates {
        let before = match table.get(name.as_bytes())? {
            Some(v) => Some(decode(name.as_bytes(), v.value())?.value),
            None => None,
        };
        let added = matches!(update, MetricUpdate::Add(_));
        let value = update.apply_to(before);
        table.insert(name.as_bytes(), encode(added, value).as_slice())?;
        written.push(GuestMetric { name: name.clone(), value, added });
    }
    Ok(written)
}

/// Stores `value` under `name` as it stands, for a state built outside the log (a restore
/// from etcd's backup file, whose importer runs the guest's own code natively).
pub fn install(txn: &WriteTransaction, name: &str, value: i64, added: bool) -> Result<(), StateError> {
    txn.open_table(GUEST_METRICS)?.insert(name.as_bytes(), encode(added, value).as_slice())?;
    Ok(())
}

/// Forgets every stored value: the guest that wrote them is no longer the active one.
pub(crate) fn clear(txn: &WriteTransaction) -> Result<(), StateError> {
    txn.open_table(GUEST_METRICS)?.retain(|_, _| false)?;
    Ok(())
}

/// Every guest metric of a view of the applied state, by name.
pub(crate) fn read_view(view: &StateView) -> Result<Vec<GuestMetric>, StateError> {
    let mut by_name: BTreeMap<String, GuestMetric> =
        read(&view.txn)?.into_iter().map(|m| (m.name.clone(), m)).collect();
    for (name, metric) in view.uncommitted.metrics.iter() {
        by_name.insert(name.clone(), metric.clone());
    }
    Ok(by_name.into_values().collect())
}

/// Every stored guest metric, by name.
pub(crate) fn read(txn: &ReadTransaction) -> Result<Vec<GuestMetric>, StateError> {
    let table = match txn.open_table(GUEST_METRICS) {
        Ok(t) => t,
        // A state database from before the table existed: nothing exported yet.
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for item in table.iter()? {
        let (k, v) = item?;
        out.push(decode(k.value(), v.value())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableDatabase;

    #[test]
    fn batches_add_and_set_onto_stored_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = redb::Database::create(dir.path().join("s.redb")).expect("db");
        let batch = |updates: &[(&str, MetricUpdate)]| {
            let txn = db.begin_write().expect("txn");
            let map = updates.iter().map(|(n, u)| (n.to_string(), *u)).collect();
            write(&txn, &map).expect("write");
            txn.commit().expect("commit");
        };
        batch(&[("a_total", MetricUpdate::Add(2)), ("g", MetricUpdate::Set(5))]);
        batch(&[("a_total", MetricUpdate::Add(3)), ("g", MetricUpdate::Set(-1))]);
        let got = read(&db.begin_read().expect("read")).expect("decodes");
        assert_eq!(
            got,
            vec![
                GuestMetric { name: "a_total".into(), value: 5, added: true },
                GuestMetric { name: "g".into(), value: -1, added: false },
            ]
        );
        let txn = db.begin_write().expect("txn");
        clear(&txn).expect("clear");
        txn.commit().expect("commit");
        assert!(read(&db.begin_read().expect("read")).expect("decodes").is_empty());
    }
}
