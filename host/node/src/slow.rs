//! etcd's slow-request warnings (`warnOfExpensiveRequest`, `warnOfExpensiveReadOnlyRangeRequest`):
//! a client command whose apply (the refusal rules and the guest) or a range read that took
//! longer than `--experimental-warning-apply-duration` is logged with etcd 3.4's text and
//! counted in `etcd_server_slow_apply_total`, so the log lines and alerts operators know from
//! etcd still fire. The apply thread checks commands ([`check`]); the API checks ranges
//! ([`check_range`]).
//!
//! The request is described as etcd describes it (its `InternalRaftStringer`: the header, then
//! the request with a put's value replaced by its size) when the active guest speaks etcd's KV
//! encodings; a custom guest's command is opaque to the host and is described by its size.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use prost::Message as _;

use crate::NodeError;
use wasmraft_proto::etcdserverpb::{InternalRaftRequest, RangeRequest, RequestHeader};

/// Logs and counts the command if it took longer than `threshold` since `started`. `etcd_kv`:
/// whether the command is etcd's `InternalRaftRequest` (the active guest serves etcd's KV API).
pub(crate) fn check(
    threshold: Duration,
    started: Instant,
    etcd_kv: bool,
    command: &[u8],
    result: &Result<Vec<u8>, NodeError>,
) {
    let took = started.elapsed();
    if took <= threshold {
        return;
    }
    wasmraft_metrics::metrics().slow_apply.inc();
    let request = if etcd_kv { describe(command) } else { format!("{} bytes", command.len()) };
    let result = match result {
        Ok(response) => format!("size:{}", response.len()),
        Err(NodeError::Guest(text)) => format!("error:{text}"),
        Err(e) => format!("error:{e}"),
    };
    // etcd 3.4's capnslog line (its default logger); its zap logger says "apply request took
    // too long" with the same parts as fields.
    tracing::warn!(
        "etcdserver: request {} with result {} took too long ({}) to execute",
        go_quote(&request),
        go_quote(&result),
        wasmraft_proto::go::format_duration(took)
    );
}

/// etcd's read-only range warning: a range (its read barrier included, as etcd times it) that
/// took longer than `threshold` since `started`. `result`: the response's count of keys and its
/// encoded size, or the error.
pub fn check_range(
    threshold: Duration,
    started: Instant,
    request: &RangeRequest,
    result: Result<(usize, usize), &str>,
) {
    let took = started.elapsed();
    if took <= threshold {
        return;
    }
    wasmraft_metrics::metrics().slow_apply.inc();
    let mut text = format!("key:{} ", text_bytes(&request.key));
    if !request.range_end.is_empty() {
        let _ = write!(text, "range_end:{} ", text_bytes(&request.range_end));
    }
    if request.limit != 0 {
        let _ = write!(text, "limit:{} ", request.limit);
    }
    if request.revision != 0 {
        let _ = write!(text, "revision:{} ", request.revision);
    }
    if request.serializable {
        text.push_str("serializable:true ");
    }
    if request.keys_only {
        text.push_str("keys_only:true ");
    }
    if request.count_only {
        text.push_str("count_only:true ");
    }
    let result = match result {
        Ok((count, size)) => format!("range_response_count:{count} size:{size}"),
        Err(e) => format!("error:{e}"),
    };
    tracing::warn!(
        "etcdserver: read-only range request {} with result {} took too long ({}) to execute",
        go_quote(&text),
        go_quote(&result),
        wasmraft_proto::go::format_duration(took)
    );
}

/// etcd's `InternalRaftStringer` for the requests a KV guest applies: the header, then the
/// request; a put shows its value's size, not the value, and so does a txn's put (etcd's
/// loggable put). What does not decode is described by its size.
fn describe(command: &[u8]) -> String {
    let Ok(r) = InternalRaftRequest::decode(command) else {
        return format!("{} bytes", command.len());
    };
    let mut s = format!("header:<{}> ", header(r.header.as_ref()));
    if let Some(p) = &r.put {
        let _ = write!(s, "put:<{}>", put(p));
    } else if let Some(d) = &r.delete_range {
        let _ = write!(s, "delete_range:<key:{} ", text_bytes(&d.key));
        if !d.range_end.is_empty() {
            let _ = write!(s, "range_end:{} ", text_bytes(&d.range_end));
        }
        s.push('>');
    } else if let Some(t) = &r.txn {
        // etcd prints every compare and operation; their count says what a slow txn was.
        let _ = write!(s, "txn:<compare:{} success:{} failure:{} >", t.compare.len(), t.success.len(), t.failure.len());
    } else if let Some(c) = &r.compaction {
        let _ = write!(s, "compaction:<revision:{} ", c.revision);
        if c.physical {
            s.push_str("physical:true ");
        }
        s.push('>');
    } else if let Some(g) = &r.lease_grant {
        let _ = write!(s, "lease_grant:<ttl:{}-second id:{:016x}>", g.ttl, g.id);
    } else if let Some(v) = &r.lease_revoke {
        let _ = write!(s, "lease_revoke:<id:{:016x}>", v.id);
    } else if let Some(c) = &r.lease_checkpoint {
        let _ = write!(s, "lease_checkpoint:<checkpoints:{} >", c.checkpoints.len());
    } else if let Some(q) = &r.range {
        let _ = write!(s, "range:<key:{} >", text_bytes(&q.key));
    } else {
        let _ = write!(s, "<{} bytes>", command.len());
    }
    s
}

/// A request header in protobuf's compact text format (`ID:7 username:"root" `).
fn header(h: Option<&RequestHeader>) -> String {
    let Some(h) = h else { return String::new() };
    let mut s = String::new();
    if h.id != 0 {
        let _ = write!(s, "ID:{} ", h.id);
    }
    if !h.username.is_empty() {
        let _ = write!(s, "username:{} ", text_bytes(h.username.as_bytes()));
    }
    if h.auth_revision != 0 {
        let _ = write!(s, "auth_revision:{} ", h.auth_revision);
    }
    s
}

/// etcd's `loggablePutRequest`: the key and the value's size.
fn put(p: &wasmraft_proto::etcdserverpb::PutRequest) -> String {
    let mut s = format!("key:{} value_size:{} ", text_bytes(&p.key), p.value.len());
    if p.lease != 0 {
        let _ = write!(s, "lease:{} ", p.lease);
    }
    if p.prev_kv {
        s.push_str("prev_kv:true ");
    }
    if p.ignore_value {
        s.push_str("ignore_value:true ");
    }
    if p.ignore_lease {
        s.push_str("ignore_lease:true ");
    }
    s
}

/// Bytes as protobuf's text format writes them: quoted, with C escapes and octal for the rest.
fn text_bytes(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in b {
        match c {
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            b'"' => s.push_str("\\\""),
            b'\'' => s.push_str("\\'"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\{c:03o}");
            }
        }
    }
    s.push('"');
    s
}

/// Go's `%q` of a string: double quotes, backslash escapes for quotes, backslashes and
/// control characters.
fn go_quote(text: &str) -> String {
    let mut s = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(s, "\\x{:02x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmraft_proto::etcdserverpb::PutRequest;

    #[test]
    fn a_put_reads_as_etcds_with_its_value_hidden() {
        let r = InternalRaftRequest {
            header: Some(RequestHeader { id: 16870662669151389445, ..Default::default() }),
            put: Some(PutRequest { key: b"foo".to_vec(), value: b"bar".to_vec(), ..Default::default() }),
            ..Default::default()
        };
        let text = describe(&r.encode_to_vec());
        assert_eq!(text, r#"header:<ID:16870662669151389445 > put:<key:"foo" value_size:3 >"#);
        // As etcd 3.4 logs it (`%q`).
        assert_eq!(go_quote(&text), r#""header:<ID:16870662669151389445 > put:<key:\"foo\" value_size:3 >""#);
        assert_eq!(text_bytes(b"a\x01\"b"), r#""a\001\"b""#);
        assert_eq!(describe(&[0xff, 0xff]), "2 bytes");
    }
}
