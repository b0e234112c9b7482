//! The JSON codec: etcd's messages to and from grpc-gateway's JSON (`JSONPb{OrigName: true}`),
//! through the serde impls wasmraft-proto generates with pbjson (its `json` feature).
//!
//! Decoding reads one JSON value, as Go's `json.Decoder` does: a unary body's trailing bytes are
//! ignored, an empty body is the empty request (grpc-gateway accepts `io.EOF`), and a stream's
//! body is a sequence of values taken one by one as they arrive ([`Values`]). Unknown fields are
//! ignored (grpc-gateway v1's default). The texts of the commonest syntax errors are Go's, which
//! clients show to users; other decoding errors keep serde's text.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Buf as _, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What grpc-gateway's JSONPb marshaler answers with.
pub(super) const CONTENT_TYPE: &str = "application/json";

/// The header grpc-gateway forwards from the gRPC response's `content-type` metadata.
const GRPC_METADATA_CONTENT_TYPE: &str = "grpc-metadata-content-type";

/// A request body as it arrives: the JSON values in it, one at a time.
#[derive(Default)]
pub(super) struct Values {
    buf: BytesMut,
}

impl Values {
    pub(super) fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received and not yet decoded.
    pub(super) fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole value, or `None` when more bytes are needed (or, `at_end`, when none
    /// is left).
    pub(super) fn next<T: DeserializeOwned>(&mut self, at_end: bool) -> Option<Result<T, String>> {
        let start = self.buf.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(self.buf.len());
        self.buf.advance(start);
        if self.buf.is_empty() {
            return None;
        }
        let mut values = serde_json::Deserializer::from_slice(&self.buf).into_iter::<T>();
        match values.next()? {
            Ok(v) => {
                let used = values.byte_offset();
                self.buf.advance(used);
                Some(Ok(v))
            }
            Err(e) if e.is_eof() && !at_end => None,
            Err(e) => Some(Err(go_text(&e, &self.buf))),
        }
    }
}

/// `msg` as grpc-gateway writes it.
pub(super) fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, tonic::Status> {
    serde_json::to_vec(msg).map_err(|e| tonic::Status::internal(format!("wasmraft: encoding the JSON response: {e}")))
}

/// `{"result": msg}` and the JSONPb delimiter: one object of a stream.
pub(super) fn encode_chunk<T: Serialize>(msg: &T) -> Result<Vec<u8>, tonic::Status> {
    let mut out = b"{\"result\":".to_vec();
    serde_json::to_writer(&mut out, msg)
        .map_err(|e| tonic::Status::internal(format!("wasmraft: encoding the JSON response: {e}")))?;
    out.extend_from_slice(b"}\n");
    Ok(out)
}

/// A unary call's answer.
pub(super) fn ok_response(json: Vec<u8>) -> Response {
    (StatusCode::OK, ok_headers(), json).into_response()
}

/// The headers of a successful answer: the content type and the gRPC response's own
/// content type as grpc-gateway forwards it.
pub(super) fn ok_headers() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)),
        (header::HeaderName::from_static(GRPC_METADATA_CONTENT_TYPE), HeaderValue::from_static("application/grpc")),
    ]
}

/// Go's `encoding/json` text for the syntax errors clients commonly make (not JSON at all, or
/// cut short); serde's text otherwise. `input` starts at the value.
fn go_text(e: &serde_json::Error, input: &[u8]) -> String {
    if e.is_eof() {
        return "unexpected EOF".to_string();
    }
    if let Some(&first) = input.first()
        && !matches!(first, b'{' | b'[' | b'"' | b't' | b'f' | b'n' | b'-' | b'0'..=b'9')
    {
        return format!("invalid character {} looking for beginning of value", go_quote_char(first));
    }
    e.to_string()
}

/// Go's `quoteChar` for a byte.
fn go_quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".to_string(),
        b'"' => "'\"'".to_string(),
        0x20..=0x7e => format!("'{}'", c as char),
        b'\n' => r"'\n'".to_string(),
        b'\t' => r"'\t'".to_string(),
        b'\r' => r"'\r'".to_string(),
        _ => format!("'\\x{c:02x}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmraft_proto::etcdserverpb::{PutRequest, WatchRequest};

    /// The first value of a whole body, or the default for a body without one.
    fn decode_first(body: &[u8]) -> Result<PutRequest, String> {
        let mut values = Values::default();
        values.push(body);
        values.next(true).unwrap_or(Ok(PutRequest::default()))
    }

    #[test]
    fn decodes_as_go_does() {
        let put = decode_first(br#"{"key":"Zm9v","value":"YmFy","lease":"7","bogus":1} trailing"#).unwrap();
        assert_eq!((put.key.as_slice(), put.value.as_slice(), put.lease), (&b"foo"[..], &b"bar"[..], 7));
        let lease = decode_first(br#"{"lease":7}"#).unwrap();
        assert_eq!(lease.lease, 7);
        assert_eq!(decode_first(b"  \n").unwrap(), PutRequest::default());
        assert_eq!(decode_first(b"xx").unwrap_err(), "invalid character 'x' looking for beginning of value");
        assert_eq!(decode_first(br#"{"key":"#).unwrap_err(), "unexpected EOF");
    }

    #[test]
    fn stream_values_arrive_in_pieces() {
        let mut values = Values::default();
        values.push(br#"{"create_request":{"key":"Zm9v"}} {"cancel_req"#);
        assert!(values.next::<WatchRequest>(false).unwrap().is_ok());
        assert!(values.next::<WatchRequest>(false).is_none());
        values.push(br#"uest":{"watch_id":"3"}}"#);
        let cancel = values.next::<WatchRequest>(false).unwrap().unwrap();
        assert!(cancel.request_union.is_some());
        assert!(values.next::<WatchRequest>(true).is_none());
    }

    #[test]
    fn encodes_as_grpc_gateway() {
        let put = PutRequest { key: b"foo".to_vec(), lease: 7, ..Default::default() };
        assert_eq!(String::from_utf8(encode(&put).unwrap()).unwrap(), r#"{"key":"Zm9v","lease":"7"}"#);
        assert_eq!(
            String::from_utf8(encode_chunk(&put).unwrap()).unwrap(),
            "{\"result\":{\"key\":\"Zm9v\",\"lease\":\"7\"}}\n"
        );
    }
}
