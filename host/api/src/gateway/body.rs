//! Request bodies, bounded: the gateway reads a body into memory only up to a limit derived from
//! `--max-request-bytes`, and gives up on one whose next piece does not arrive within
//! [`IDLE_TIMEOUT`], so neither a huge nor a trickling body can pin a member's memory.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::codec;
use http_body_util::BodyExt as _;

/// How long the gateway waits for the next piece of a request body.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum BodyError {
    /// grpc-go's text for a message over the server's receive limit, which is what etcd's
    /// gateway answers once it has passed such a request on.
    #[error("grpc: received message larger than max ({received} vs. {max})")]
    TooLarge { received: usize, max: usize },
    #[error("wasmraft: no part of the request body arrived for {secs}s", secs = IDLE_TIMEOUT.as_secs())]
    Idle,
    #[error("reading the request body: {0}")]
    Read(#[source] axum::Error),
}

impl BodyError {
    pub(super) fn status(&self) -> tonic::Status {
        match self {
            BodyError::TooLarge { .. } => tonic::Status::resource_exhausted(self.to_string()),
            BodyError::Idle => tonic::Status::cancelled(self.to_string()),
            BodyError::Read(_) => tonic::Status::invalid_argument(self.to_string()),
        }
    }
}

/// The next piece of `body`: `None` at its end.
pub(super) async fn next_piece(body: &mut Body) -> Result<Option<Bytes>, BodyError> {
    loop {
        let frame = match tokio::time::timeout(IDLE_TIMEOUT, body.frame()).await {
            Err(_) => return Err(BodyError::Idle),
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => return Err(BodyError::Read(e)),
            Ok(Some(Ok(frame))) => frame,
        };
        // Trailers carry nothing the gateway uses.
        if let Ok(data) = frame.into_data() {
            return Ok(Some(data));
        }
    }
}

/// How large a request may be: as protobuf (the gRPC server's receive limit) and as JSON.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) max_message: usize,
    pub(super) json: usize,
}

/// The next JSON request in `body` as soon as it is whole (as Go's `json.Decoder` reads one),
/// bounded by `limits`; `None` when the body ends without one. A body's bad JSON is
/// InvalidArgument with the decoder's text.
pub(super) async fn read_value<Req: DeserializeOwned + prost::Message>(
    limits: &Limits,
    body: &mut Body,
    values: &mut codec::Values,
) -> Result<Option<Req>, tonic::Status> {
    let mut at_end = false;
    loop {
        if let Some(v) = values.next::<Req>(at_end) {
            let message = v.map_err(tonic::Status::invalid_argument)?;
            if message.encoded_len() > limits.max_message {
                return Err(BodyError::TooLarge { received: message.encoded_len(), max: limits.max_message }.status());
            }
            return Ok(Some(message));
        }
        if at_end {
            return Ok(None);
        }
        match next_piece(body).await.map_err(|e| e.status())? {
            Some(piece) => {
                if values.pending() + piece.len() > limits.json {
                    return Err(BodyError::TooLarge {
                        received: values.pending() + piece.len(),
                        max: limits.max_message,
                    }
                    .status());
                }
                values.push(&piece);
            }
            None => at_end = true,
        }
    }
}
