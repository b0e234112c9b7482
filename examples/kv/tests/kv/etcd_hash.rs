//! HashKV and history reads equal to real etcd 3.4.23's for the same history, compaction
//! included. `fixtures/etcd_hash/recorded.jsonl` is what `fixtures/etcd_hash/record.sh` got
//! from etcd for `history.txt`: `etcdctl endpoint hashkv --rev R` at every revision after the
//! compaction, and `etcdctl get "" --from-key --rev R` at every readable revision, at each
//! `record` line.

use serde_json::Value;
use wasmraft_proto::etcdserverpb::RangeRequest;
use wasmraft_proto::mvccpb::KeyValue;

use crate::common::*;
use crate::script::{Step, parse};

pub fn fixture_dir() -> String {
    format!("{}/tests/kv/fixtures/etcd_hash", env!("CARGO_MANIFEST_DIR"))
}

pub fn history() -> Vec<Step> {
    let path = format!("{}/history.txt", fixture_dir());
    parse(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

/// The recorded answers, each with its `step` (the n-th `record` line, from 1) and `rev`.
pub fn recorded() -> Vec<Value> {
    let path = format!("{}/recorded.jsonl", fixture_dir());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}: {l}: {e}"))).collect()
}

fn int(v: &Value, field: &str) -> i64 {
    v.get(field).map_or(0, |f| f.as_i64().unwrap_or_else(|| panic!("{field} in {v}")))
}

/// Standard base64, as etcdctl's JSON prints bytes.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn kv_json(kv: &KeyValue) -> (String, i64, i64, i64, String, i64) {
    (base64(&kv.key), kv.create_revision, kv.mod_revision, kv.version, base64(&kv.value), kv.lease)
}

fn recorded_kv(v: &Value) -> (String, i64, i64, i64, String, i64) {
    let text = |f: &str| v.get(f).and_then(Value::as_str).unwrap_or_default().to_string();
    (text("key"), int(v, "create_revision"), int(v, "mod_revision"), int(v, "version"), text("value"), int(v, "lease"))
}

/// Compares everything recorded at `step` with what `kv` answers; returns how many answers.
pub fn compare_step(kv: &Kv, step: i64, records: &[Value], what: &str) -> usize {
    let mut n = 0;
    for r in records.iter().filter(|r| int(r, "step") == step) {
        let rev = int(r, "rev");
        if r.get("hash").is_some() {
            let got = kv.hash(rev).unwrap_or_else(|e| panic!("{what}: step {step}: hashkv --rev {rev}: {e}"));
            assert_eq!(i64::from(got.hash), int(r, "hash"), "{what}: step {step}: hashkv --rev {rev}");
            assert_eq!(got.compact_revision, int(r, "compact_revision"), "{what}: step {step}: rev {rev}");
            assert_eq!(revision_of(&got.header), int(r, "current"), "{what}: step {step}: rev {rev}");
        } else {
            let req = RangeRequest { revision: rev, ..range_req("", "\0") };
            let got = kv.range(req).unwrap_or_else(|e| panic!("{what}: step {step}: get --rev {rev}: {e}"));
            let want: Vec<_> = r["kvs"].as_array().expect("kvs").iter().map(recorded_kv).collect();
            let got: Vec<_> = got.kvs.iter().map(kv_json).collect();
            assert_eq!(got, want, "{what}: step {step}: get --from-key --rev {rev}");
        }
        n += 1;
    }
    n
}

#[test]
fn base64_is_standard() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"a"), "YQ==");
    assert_eq!(base64(b"l1"), "bDE=");
    assert_eq!(base64(b"abc\xff"), "YWJj/w==");
}

#[test]
fn hashkv_and_history_match_etcd_3_4_23() {
    let records = recorded();
    let mut kv = Kv::new();
    let (mut step, mut compared) = (0, 0);
    for s in history() {
        match s {
            Step::Command(req) => {
                kv.apply_raw((*req).clone()).unwrap_or_else(|e| panic!("{req:?}: {e}"));
            }
            Step::Record => {
                step += 1;
                compared += compare_step(&kv, step, &records, "guest");
            }
        }
    }
    assert_eq!(compared, records.len(), "every recorded answer is compared");
    assert!(records.iter().filter(|r| r.get("hash").is_some()).count() > 20);
}
