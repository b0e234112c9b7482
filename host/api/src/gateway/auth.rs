//! What a gateway request carries into the gRPC service it calls: the same metadata and
//! connection facts a gRPC call would, so auth, permissions and the member checks are the gRPC
//! path's. As grpc-gateway's `AnnotateContext` does: the `Authorization` header (etcd's token,
//! with no "Bearer") becomes `authorization` metadata, which etcd reads next to `token`; each
//! `Grpc-Metadata-<name>` header becomes `<name>` metadata (clientv3's `hasleader`, say). The
//! connection's TLS facts (the verified client certificate's CN for `--client-cert-auth`) and
//! the peer address travel as the request extension the gRPC path gets.

use axum::http::request::Parts;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};

use crate::conn::ClientConnInfo;

/// grpc-gateway's prefix for headers passed on as metadata.
const METADATA_HEADER_PREFIX: &str = "grpc-metadata-";

/// `message` as a gRPC request made by the sender of `parts`.
pub(super) fn grpc_request<T>(parts: &Parts, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    for (name, value) in &parts.headers {
        let key = if name == axum::http::header::AUTHORIZATION {
            "authorization"
        } else if let Some(rest) = name.as_str().strip_prefix(METADATA_HEADER_PREFIX) {
            rest
        } else {
            continue;
        };
        // A value that is not valid ASCII metadata (grpc-go would refuse it too) is left out;
        // the service then sees no credentials, or no option, and answers accordingly.
        if let (Ok(key), Ok(value)) = (key.parse::<AsciiMetadataKey>(), AsciiMetadataValue::try_from(value.as_bytes()))
        {
            request.metadata_mut().append(key, value);
        }
    }
    if let Some(conn) = parts.extensions.get::<ClientConnInfo>() {
        request.extensions_mut().insert(conn.clone());
    }
    request
}
