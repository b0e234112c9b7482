//! Sort ties fall exactly where etcd 3.4.23 (Debian's build, Go 1.19) puts them. The fixtures
//! are `etcdctl get <prefix> --prefix --sort-by=... --order=... --keys-only` from a real etcd
//! loaded with the same data.

use wasmraft_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use wasmraft_proto::etcdserverpb::{RangeRequest, TxnRequest};

use crate::common::*;

fn load() -> Kv {
    let mut kv = Kv::new();
    let mut ops = Vec::new();
    for i in 0..300 {
        ops.push(op_put(&format!("a/{i:03}"), &((i * i * 31 + 7) % 3).to_string()));
    }
    for i in 0..300 {
        ops.push(op_put(&format!("b/{i:03}"), if i % 7 == 0 { "1" } else { "0" }));
    }
    for i in 0..100 {
        ops.push(op_put(&format!("c/{i:03}"), &format!("{:03}", i.min(100 - i))));
    }
    for i in 0..150 {
        for _ in 0..(i * 13) % 4 + 1 {
            ops.push(op_put(&format!("d/{i:03}"), "x"));
        }
    }
    kv.txn(TxnRequest { success: ops, ..Default::default() }).unwrap();
    kv
}

fn fixture(name: &str) -> Vec<String> {
    let path = format!("{}/tests/kv/fixtures/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

#[test]
fn tie_order_matches_etcd() {
    let kv = load();
    let cases = [
        ("a", SortTarget::Value, SortOrder::Ascend),
        ("a", SortTarget::Value, SortOrder::Descend),
        ("b", SortTarget::Value, SortOrder::Ascend),
        ("b", SortTarget::Value, SortOrder::Descend),
        ("c", SortTarget::Value, SortOrder::Ascend),
        ("c", SortTarget::Value, SortOrder::Descend),
        ("d", SortTarget::Version, SortOrder::Ascend),
        ("d", SortTarget::Version, SortOrder::Descend),
    ];
    for (prefix, target, order) in cases {
        let req = RangeRequest {
            sort_target: target as i32,
            sort_order: order as i32,
            keys_only: true,
            ..range_req(&format!("{prefix}/"), &format!("{prefix}0"))
        };
        let got: Vec<String> = kv.keys(req).into_iter().map(|k| k[2..].to_string()).collect();
        let name = format!("sort_{prefix}_{}_{}", target.as_str_name(), order.as_str_name());
        assert_eq!(got, fixture(&name), "{name}");
    }
}
