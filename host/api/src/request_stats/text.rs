//! The "request content" of etcd's request stats: the KV requests in Go protobuf's compact text
//! form (`String()`), each field `name:value ` in declaration order, proto3 zero values left out
//! (a oneof's member is written even when zero), bytes quoted with Go's escapes, enums by name,
//! messages as `name:<...> `; a txn in etcd's own form. Values are replaced by their size, as
//! etcd's `LoggablePutRequest` and `LoggableTxnRequest` do (etcd PR #9821: values stay out of
//! logs).

use std::fmt::Write as _;

use wasmraft_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, compare, range_request, request_op,
};

/// A message's fields being written.
struct Fields(String);

impl Fields {
    fn new() -> Self {
        Fields(String::new())
    }

    fn bytes(&mut self, name: &str, v: &[u8]) -> &mut Self {
        if !v.is_empty() {
            self.bytes_always(name, v);
        }
        self
    }

    fn bytes_always(&mut self, name: &str, v: &[u8]) -> &mut Self {
        let _ = write!(self.0, "{name}:\"");
        for &b in v {
            match b {
                b'\n' => self.0.push_str("\\n"),
                b'\r' => self.0.push_str("\\r"),
                b'\t' => self.0.push_str("\\t"),
                b'"' => self.0.push_str("\\\""),
                b'\\' => self.0.push_str("\\\\"),
                0x20..=0x7e => self.0.push(char::from(b)),
                _ => {
                    let _ = write!(self.0, "\\{b:03o}");
                }
            }
        }
        self.0.push_str("\" ");
        self
    }

    fn int(&mut self, name: &str, v: i64) -> &mut Self {
        if v != 0 {
            self.int_always(name, v);
        }
        self
    }

    fn int_always(&mut self, name: &str, v: i64) -> &mut Self {
        let _ = write!(self.0, "{name}:{v} ");
        self
    }

    fn bool(&mut self, name: &str, v: bool) -> &mut Self {
        if v {
            let _ = write!(self.0, "{name}:true ");
        }
        self
    }

    /// An enum field: its name, or its number when the value is not one the proto knows.
    fn enumeration(&mut self, name: &str, v: i32, known: Option<&str>) -> &mut Self {
        if v != 0 {
            match known {
                Some(n) => {
                    let _ = write!(self.0, "{name}:{n} ");
                }
                None => {
                    let _ = write!(self.0, "{name}:{v} ");
                }
            }
        }
        self
    }

    fn message(&mut self, name: &str, inner: String) -> &mut Self {
        let _ = write!(self.0, "{name}:<{inner}> ");
        self
    }

    fn done(&mut self) -> String {
        std::mem::take(&mut self.0)
    }
}

pub(super) fn range(r: &RangeRequest) -> String {
    let sort_order = range_request::SortOrder::try_from(r.sort_order).ok().map(|o| o.as_str_name());
    let sort_target = range_request::SortTarget::try_from(r.sort_target).ok().map(|t| t.as_str_name());
    Fields::new()
        .bytes("key", &r.key)
        .bytes("range_end", &r.range_end)
        .int("limit", r.limit)
        .int("revision", r.revision)
        .enumeration("sort_order", r.sort_order, sort_order)
        .enumeration("sort_target", r.sort_target, sort_target)
        .bool("serializable", r.serializable)
        .bool("keys_only", r.keys_only)
        .bool("count_only", r.count_only)
        .int("min_mod_revision", r.min_mod_revision)
        .int("max_mod_revision", r.max_mod_revision)
        .int("min_create_revision", r.min_create_revision)
        .int("max_create_revision", r.max_create_revision)
        .done()
}

/// etcd's `LoggablePutRequest`: the value's size instead of the value.
pub(super) fn put(r: &PutRequest) -> String {
    Fields::new()
        .bytes("key", &r.key)
        .int("value_size", i64::try_from(r.value.len()).unwrap_or(i64::MAX))
        .int("lease", r.lease)
        .bool("prev_kv", r.prev_kv)
        .bool("ignore_value", r.ignore_value)
        .bool("ignore_lease", r.ignore_lease)
        .done()
}

pub(super) fn delete_range(r: &DeleteRangeRequest) -> String {
    Fields::new().bytes("key", &r.key).bytes("range_end", &r.range_end).bool("prev_kv", r.prev_kv).done()
}

/// etcd's `txnRequestStringer`, a hand-made form rather than Go's: each list inside one
/// `<...>`, its items joined by a space (each already ending in one), value compares and puts by
/// value size.
pub(super) fn txn(r: &TxnRequest) -> String {
    let join = |items: Vec<String>| items.join(" ");
    format!(
        "compare:<{}> success:<{}> failure:<{}>",
        join(r.compare.iter().map(compare).collect()),
        join(r.success.iter().map(request_op).collect()),
        join(r.failure.iter().map(request_op).collect())
    )
}

fn compare(c: &Compare) -> String {
    let result = compare::CompareResult::try_from(c.result).ok().map(|r| r.as_str_name());
    let target = compare::CompareTarget::try_from(c.target).ok().map(|t| t.as_str_name());
    let mut f = Fields::new();
    f.enumeration("result", c.result, result).enumeration("target", c.target, target).bytes("key", &c.key);
    match &c.target_union {
        Some(compare::TargetUnion::Version(v)) => f.int_always("version", *v),
        Some(compare::TargetUnion::CreateRevision(v)) => f.int_always("create_revision", *v),
        Some(compare::TargetUnion::ModRevision(v)) => f.int_always("mod_revision", *v),
        // etcd's `loggableValueCompare`: an ordinary field, so a zero size is left out.
        Some(compare::TargetUnion::Value(v)) => f.int("value_size", i64::try_from(v.len()).unwrap_or(i64::MAX)),
        Some(compare::TargetUnion::Lease(v)) => f.int_always("lease", *v),
        None => &mut f,
    };
    f.bytes("range_end", &c.range_end).done()
}

/// etcd's `requestOpStringer`: puts and txns by hand (no trailing space), the others as Go
/// prints a `RequestOp`.
fn request_op(op: &RequestOp) -> String {
    match &op.request {
        Some(request_op::Request::RequestPut(r)) => format!("request_put:<{}>", put(r)),
        Some(request_op::Request::RequestTxn(r)) => format!("request_txn:<{}>", txn(r)),
        Some(request_op::Request::RequestRange(r)) => Fields::new().message("request_range", range(r)).done(),
        Some(request_op::Request::RequestDeleteRange(r)) => {
            Fields::new().message("request_delete_range", delete_range(r)).done()
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_go_prints_them() {
        let put_a = PutRequest { key: b"a".to_vec(), value: b"b".to_vec(), ..Default::default() };
        assert_eq!(put(&put_a), "key:\"a\" value_size:1 ");
        let get = RangeRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            limit: 1,
            sort_order: 2,
            ..Default::default()
        };
        assert_eq!(range(&get), "key:\"a\" range_end:\"b\" limit:1 sort_order:DESCEND ");
        let odd = DeleteRangeRequest { key: vec![0, b'"', b'\\', 0xff, b'\n'], prev_kv: true, ..Default::default() };
        assert_eq!(delete_range(&odd), "key:\"\\000\\\"\\\\\\377\\n\" prev_kv:true ");
        // What etcd 3.4.23 logged for the same txn (etcdctl txn: two compares, two ops, one).
        let t = TxnRequest {
            compare: vec![
                Compare {
                    target: 3,
                    key: b"a".to_vec(),
                    target_union: Some(compare::TargetUnion::Value(b"b".to_vec())),
                    ..Default::default()
                },
                Compare {
                    result: 1,
                    target: 2,
                    key: b"a".to_vec(),
                    target_union: Some(compare::TargetUnion::ModRevision(1)),
                    ..Default::default()
                },
            ],
            success: vec![
                RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key: b"x".to_vec(),
                        value: b"y\n".to_vec(),
                        ..Default::default()
                    })),
                },
                RequestOp {
                    request: Some(request_op::Request::RequestRange(RangeRequest {
                        key: b"a".to_vec(),
                        ..Default::default()
                    })),
                },
            ],
            failure: vec![RequestOp {
                request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
                    key: b"q".to_vec(),
                    ..Default::default()
                })),
            }],
        };
        assert_eq!(
            txn(&t),
            "compare:<target:VALUE key:\"a\" value_size:1  result:GREATER target:MOD key:\"a\" mod_revision:1 > \
             success:<request_put:<key:\"x\" value_size:2 > request_range:<key:\"a\" > > \
             failure:<request_delete_range:<key:\"q\" > >"
        );
        assert_eq!(txn(&TxnRequest::default()), "compare:<> success:<> failure:<>");
    }
}
