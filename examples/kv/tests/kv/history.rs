//! Reads at past revisions, checked against a model of every revision's full state.

use std::collections::BTreeMap;

use wasmraft_kv_guest::errors::{COMPACTED, FUTURE_REV};
use wasmraft_proto::etcdserverpb::{RangeRequest, TxnRequest};
use wasmraft_proto::mvccpb::KeyValue;

use crate::common::*;

#[test]
fn a_key_reads_as_it_was() {
    let mut kv = Kv::new();
    kv.put("k", "v1"); // 2
    kv.put("k", "v2"); // 3
    kv.put("other", "x"); // 4
    kv.delete("k", ""); // 5
    kv.put("k", "v3"); // 6
    assert_eq!(kv.get_at("k", 1).unwrap(), None);
    assert_eq!(kv.get_at("k", 2).unwrap(), Some(mkv("k", "v1", 2, 2, 1)));
    assert_eq!(kv.get_at("k", 3).unwrap(), Some(mkv("k", "v2", 2, 3, 2)));
    assert_eq!(kv.get_at("k", 4).unwrap(), Some(mkv("k", "v2", 2, 3, 2)));
    assert_eq!(kv.get_at("k", 5).unwrap(), None);
    assert_eq!(kv.get_at("k", 6).unwrap(), Some(mkv("k", "v3", 6, 6, 1)));
    assert_eq!(kv.get_at("k", 7).unwrap_err(), FUTURE_REV);
    // The header always carries the current revision.
    let resp = kv.range(RangeRequest { revision: 2, ..range_req("k", "") }).unwrap();
    assert_eq!(revision_of(&resp.header), 6);
}

#[test]
fn a_past_range_counts_and_limits_at_that_revision() {
    let mut kv = Kv::new();
    for i in 0..20 {
        kv.put(&format!("k{i:02}"), "a"); // 2..=21
    }
    kv.delete("k00", "k05"); // 22
    for i in 0..20 {
        kv.put(&format!("k{i:02}"), "b"); // 23..=42
    }
    let at = |rev: i64, limit: i64| kv.range(RangeRequest { revision: rev, limit, ..range_req("k", "l") }).unwrap();
    assert_eq!(at(11, 0).count, 10);
    assert_eq!(at(21, 0).count, 20);
    assert_eq!(at(22, 0).count, 15);
    assert_eq!(at(22, 0).kvs[0], mkv("k05", "a", 7, 7, 1));
    let r = at(30, 3);
    assert_eq!((r.count, r.kvs.len(), r.more), (20, 3, true));
    assert_eq!(r.kvs[0], mkv("k00", "b", 23, 23, 1));
    assert_eq!(r.kvs[2], mkv("k02", "b", 25, 25, 1));
    assert_eq!(at(30, 0).kvs[10], mkv("k10", "a", 12, 12, 1));
    assert_eq!(at(40, 0).kvs[10], mkv("k10", "b", 12, 33, 2));
    assert_eq!(at(30, 0).kvs[19], mkv("k19", "a", 21, 21, 1));
}

/// The state at every revision, built independently of the guest.
struct Model {
    /// `states[r]` is the state at revision `r` (index 0 unused).
    states: Vec<BTreeMap<String, KeyValue>>,
}

impl Model {
    fn new() -> Self {
        Model { states: vec![BTreeMap::new(), BTreeMap::new()] }
    }

    fn current(&self) -> i64 {
        self.states.len() as i64 - 1
    }

    /// Applies one write transaction: puts (Some) and deletes (None), in order.
    fn write(&mut self, ops: &[(String, Option<String>)]) {
        let rev = self.current() + 1;
        let mut state = self.states.last().unwrap().clone();
        let mut changed = false;
        for (key, value) in ops {
            match value {
                Some(v) => {
                    let prev = state.get(key);
                    let kv = KeyValue {
                        key: key.clone().into_bytes(),
                        value: v.clone().into_bytes(),
                        create_revision: prev.map_or(rev, |p| p.create_revision),
                        mod_revision: rev,
                        version: prev.map_or(0, |p| p.version) + 1,
                        lease: 0,
                    };
                    state.insert(key.clone(), kv);
                    changed = true;
                }
                None => changed |= state.remove(key).is_some(),
            }
        }
        if changed {
            self.states.push(state);
        }
    }

    fn range(&self, rev: i64, start: &str, end: &str) -> Vec<KeyValue> {
        self.states[rev as usize].range(start.to_string()..end.to_string()).map(|(_, kv)| kv.clone()).collect()
    }
}

fn lcg(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *seed >> 33
}

/// Random puts, deletes and multi-operation transactions over a small keyspace; then every
/// range at every revision must match the model, before and after compactions.
#[test]
fn every_revision_matches_a_model() {
    let mut seed = 12345;
    let mut kv = Kv::new();
    let mut model = Model::new();
    let key = |n: u64| format!("k{}", n % 12);
    for step in 0..150 {
        let ops: Vec<(String, Option<String>)> = match lcg(&mut seed) % 4 {
            0 | 1 => vec![(key(lcg(&mut seed)), Some(format!("v{step}")))],
            2 => vec![(key(lcg(&mut seed)), None)],
            _ => (0..1 + lcg(&mut seed) % 4)
                .map(|i| {
                    (
                        key(lcg(&mut seed)),
                        if lcg(&mut seed).is_multiple_of(3) { None } else { Some(format!("t{step}.{i}")) },
                    )
                })
                .collect(),
        };
        if ops.len() == 1 {
            match &ops[0] {
                (k, Some(v)) => {
                    kv.put(k, v);
                }
                (k, None) => {
                    kv.delete(k, "");
                }
            }
        } else {
            let success = ops.iter().map(|(k, v)| match v {
                Some(v) => op_put(k, v),
                None => op_delete(k, "", false),
            });
            kv.txn(TxnRequest { success: success.collect(), ..Default::default() }).unwrap();
        }
        model.write(&ops);
        assert_eq!(kv.rev(), model.current(), "step {step}");
    }

    let spans = [("k", "l"), ("k1", "k2"), ("k3", "k3\0"), ("k10", "k5"), ("a", "z")];
    let check = |kv: &Kv, from: i64| {
        for rev in from..=model.current() {
            for (start, end) in spans {
                let resp = kv.range(RangeRequest { revision: rev, ..range_req(start, end) }).unwrap();
                assert_eq!(resp.kvs, model.range(rev, start, end), "rev {rev} [{start}, {end})");
                assert_eq!(resp.count as usize, resp.kvs.len());
            }
            for n in 0..12 {
                let k = format!("k{n}");
                assert_eq!(kv.get_at(&k, rev).unwrap(), model.range(rev, &k, &format!("{k}\0")).pop(), "rev {rev} {k}");
            }
        }
    };
    check(&kv, 1);

    let current = model.current();
    for c in [current / 4, current / 2, current - 3, current] {
        kv.compact(c).unwrap();
        check(&kv, c);
        assert_eq!(kv.get_at("k1", c - 1).unwrap_err(), COMPACTED);
    }
}
