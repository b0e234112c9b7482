//! The client listener's HTTP/2 rewriter (`host/api/src/authority.rs`): every byte a gRPC
//! client sends passes through its `Transcoder` (frame parsing and HPACK decoding of header
//! blocks) before tonic sees it, authenticated or not.
//!
//! Input: one shape byte (bit 7: do not send the connection preface first; the low bits: the
//! chunk size the bytes are fed in), then the client's bytes after the preface. Checks: no
//! panic; the same output and outcome however the bytes are cut into reads; and either the
//! bytes unchanged (a connection whose first request needs no fix passes through untouched) or,
//! as far as the bytes were transcoded, output h2 can read: frames intact, each header block's
//! frames within 16 KiB, unpadded, and decodable by a fresh HPACK decoder (no reference to a
//! dynamic table).

use bytes::BytesMut;
use wasmraft_api::authority::{MAX_BLOCK_BYTES, TranscodeError, Transcoder};

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

fn transcode(input: &[u8], chunk: usize) -> (Vec<u8>, Result<(), TranscodeError>) {
    let mut t = Transcoder::new();
    let mut out = BytesMut::new();
    for c in input.chunks(chunk.max(1)) {
        if let Err(e) = t.feed(c, &mut out) {
            return (out.to_vec(), Err(e));
        }
    }
    (out.to_vec(), Ok(()))
}

pub fn client_h2(data: &[u8]) {
    let Some((&shape, rest)) = data.split_first() else { return };
    let mut input = Vec::with_capacity(rest.len() + PREFACE.len());
    if shape & 0x80 == 0 {
        input.extend_from_slice(PREFACE);
    }
    input.extend_from_slice(rest);
    let (whole, whole_result) = transcode(&input, input.len());
    let (cut, cut_result) = transcode(&input, usize::from(shape & 0x7f));
    assert_eq!(whole_result, cut_result, "the outcome depends on how the bytes were read");
    if whole_result.is_ok() {
        assert_eq!(whole, cut, "the output depends on how the bytes were read");
    }
    if input.len() < PREFACE.len() && PREFACE.starts_with(&input) {
        // Still matching the preface: held back until the next bytes decide (and dropped if the
        // client closes here; h2 would refuse so short a stream either way).
        assert!(whole.is_empty(), "a partial preface was passed on");
        return;
    }
    if !input.starts_with(PREFACE) {
        // Not HTTP/2 with prior knowledge: passed through untouched.
        assert_eq!(whole, input, "a non-HTTP/2 stream was changed");
        return;
    }
    if whole_result.is_ok() && whole == input {
        // Passed through: the first header block's :authority needed no fix (or there was
        // none yet, and every frame so far passes unchanged anyway).
        return;
    }
    check_frames(&whole);
}

/// Walks the transcoded frames (the last may be cut off where the input ended) and decodes
/// every complete header block with a fresh reference decoder.
fn check_frames(out: &[u8]) {
    assert!(out.starts_with(PREFACE), "the preface was not passed on");
    let mut rest = &out[PREFACE.len()..];
    let mut block: Option<Vec<u8>> = None;
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        let (kind, flags) = (rest[3], rest[4]);
        if rest.len() < 9 + len {
            // The transcoder emits header blocks whole, so only a passed-through frame can be
            // cut off.
            let header_frame = kind == HEADERS || (kind == CONTINUATION && block.is_some());
            assert!(!header_frame, "a header frame was cut off");
            return;
        }
        let payload = &rest[9..9 + len];
        rest = &rest[9 + len..];
        match kind {
            // A CONTINUATION with no block open is passed on as it came, for h2 to refuse.
            CONTINUATION if block.is_none() => {}
            HEADERS | CONTINUATION => {
                assert!(len <= 16_384, "a header frame of {len} bytes");
                let fragment = if kind == HEADERS {
                    assert!(block.is_none(), "HEADERS inside a header block");
                    assert_eq!(flags & PADDED, 0, "padding was not dropped");
                    let skip = if flags & PRIORITY != 0 { 5 } else { 0 };
                    &payload[skip..]
                } else {
                    payload
                };
                let b = block.get_or_insert_with(Vec::new);
                b.extend_from_slice(fragment);
                assert!(b.len() <= MAX_BLOCK_BYTES + 16_384, "a rewritten block past the limit");
                if flags & END_HEADERS != 0 {
                    let b = block.take().unwrap_or_default();
                    let mut d = fluke_hpack::Decoder::new();
                    if let Err(e) = d.decode(&b) {
                        panic!("a rewritten header block does not decode on its own: {e:?}");
                    }
                }
            }
            _ => assert!(block.is_none(), "frame type {kind} inside a header block"),
        }
    }
}
