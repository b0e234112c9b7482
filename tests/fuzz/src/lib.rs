//! # wasmraft-fuzz
//!
//! The bodies of wasmraft's fuzz targets, as plain functions of `&[u8]`. The cargo-fuzz
//! binaries in `fuzz/fuzz_targets/` only call them, and `tests/corpus.rs` replays the committed
//! seed corpus (`corpus/<target>/`) through them on stable Rust, so CI notices when a seed stops
//! running clean. See README.md for what each target checks and how to run them.
//!
//! A target panics when a property is violated: that is how libFuzzer learns of a finding.
//! Inputs the target cannot use (an invalid header name, say) are simply returned from.

pub mod bbolt;
pub mod peer_http;
pub mod raft_codecs;
pub mod snapshot_file;
pub mod wal_replay;

#[cfg(feature = "host")]
pub mod client_h2;
#[cfg(feature = "host")]
pub mod grpc;
#[cfg(feature = "host")]
pub mod guest_abi;
#[cfg(feature = "host")]
pub mod guest_load;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};

/// One fuzz target: its name (the cargo-fuzz binary and the corpus directory) and its body.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target this build has (the host-dependent ones need feature "host").
pub const TARGETS: &[Target] = &[
    Target { name: "raft_pb", run: raft_codecs::raft_pb },
    Target { name: "msg_codec", run: raft_codecs::msg_codec },
    Target { name: "msgappv2", run: raft_codecs::msgappv2 },
    Target { name: "snapshot_body", run: raft_codecs::snapshot_body },
    Target { name: "peer_http", run: peer_http::peer_http },
    Target { name: "bbolt_reader", run: bbolt::bbolt_reader },
    Target { name: "wal_replay", run: wal_replay::wal_replay },
    Target { name: "snapshot_file", run: snapshot_file::snapshot_file },
    #[cfg(feature = "host")]
    Target { name: "grpc_requests", run: grpc::grpc_requests },
    #[cfg(feature = "host")]
    Target { name: "client_h2", run: client_h2::client_h2 },
    #[cfg(feature = "host")]
    Target { name: "guest_abi", run: guest_abi::guest_abi },
    #[cfg(feature = "host")]
    Target { name: "guest_load", run: guest_load::guest_load },
];

/// The targets that exist only with feature "host" (so the corpus test can tell a missing
/// target from one compiled out).
pub const HOST_TARGETS: &[&str] = &["grpc_requests", "client_h2", "guest_abi", "guest_load"];

/// A request/stream body that hands out `data` in chunks of a fuzz-chosen size, optionally with
/// empty data frames in between, so the codecs' readers see every way a byte stream can be cut.
///
/// `shape`: the low 7 bits are the chunk size (0: everything in one chunk), the high bit puts an
/// empty frame before every chunk.
pub struct Chunked {
    data: Bytes,
    size: usize,
    empties: bool,
    empty_next: bool,
}

impl Chunked {
    pub fn new(data: &[u8], shape: u8) -> Chunked {
        let size = match shape & 0x7f {
            0 => usize::MAX,
            n => usize::from(n),
        };
        let empties = shape & 0x80 != 0;
        Chunked { data: Bytes::copy_from_slice(data), size, empties, empty_next: empties }
    }
}

impl Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.data.is_empty() {
            return Poll::Ready(None);
        }
        if self.empty_next {
            self.empty_next = false;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::new()))));
        }
        self.empty_next = self.empties;
        let n = self.size.min(self.data.len());
        let chunk = self.data.split_to(n);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        // Exact only for a single chunk: hyper then sends Content-Length, otherwise chunked
        // transfer encoding, so the peer handler sees both framings.
        if self.size == usize::MAX {
            http_body::SizeHint::with_exact(self.data.len() as u64)
        } else {
            http_body::SizeHint::default()
        }
    }
}

/// Runs `f` to completion on a fresh current-thread runtime. Fresh per input so that nothing an
/// input spawned (peer tasks, connections) outlives it: a finding must reproduce from its input
/// alone.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    rt.block_on(f)
}

/// Splits off the first byte (the targets' "shape" byte), or None for an empty input.
pub fn split_shape(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(s, rest)| (*s, rest))
}
