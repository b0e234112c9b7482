//! Accepting etcdctl 3.4's `:authority` of a whole URL on the client listener.
//!
//! `etcdctl endpoint status|hashkv|health` in etcd 3.4 dial each endpoint with the endpoint
//! string as the target, and grpc-go sends that string as the HTTP/2 `:authority`
//! pseudo-header: `http://127.0.0.1:2379`. That is not an RFC 3986 authority; Go's HTTP/2 server
//! accepts it, but the `h2` crate under tonic rejects the stream as malformed (RST_STREAM
//! PROTOCOL_ERROR) and has no option to relax that.
//!
//! [`AuthorityFix`] wraps an accepted connection and rewrites, in the bytes the client sends, an
//! `:authority` of the form `scheme://host:port[/...]` to `host:port` before h2 sees it.
//! Server-to-client bytes pass untouched. Client-to-server bytes: after the connection preface,
//! every frame passes unchanged except header blocks (HEADERS plus its CONTINUATION frames).
//! Those are HPACK-decoded with a decoder that tracks the client's dynamic table, and re-encoded
//! without touching the dynamic table (indexed static entries and literals "without indexing" /
//! "never indexed"), so h2's decoder table stays empty and always consistent, whatever the
//! client's encoder did. The re-encoded block is split into frames of at most 16384 bytes, the
//! SETTINGS_MAX_FRAME_SIZE default that our server (hyper's default) advertises. Padding is
//! dropped, priority fields are kept.
//!
//! Transcoding costs every request a decode and h2 a decode of literals it would otherwise
//! find in its dynamic table, so it is kept to the connections that need it: grpc-go sends one
//! `:authority` for every request of a connection, so when the first header block's is a valid
//! authority, that block and everything after it pass through untouched (h2 and the client then
//! share the dynamic table as usual).
//!
//! A connection that does not start with the HTTP/2 preface passes through untouched. A header
//! block larger than [`MAX_BLOCK_BYTES`] (encoded or decoded), an HPACK error, or a frame
//! sequence RFC 7540 forbids in the middle of a header block closes the connection: h2 would
//! fail the connection for the latter two as well (it answers GOAWAY first; we cannot, as the
//! state it would need is gone once we've failed to decode).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use fluke_hpack::huffman::HuffmanDecoder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// The HTTP/2 client connection preface (RFC 7540 §3.5).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The largest frame payload we emit: the default SETTINGS_MAX_FRAME_SIZE, which is what our
/// server advertises (tonic leaves hyper's 16 KiB default in place).
const MAX_OUT_FRAME: usize = 16_384;
/// The HPACK dynamic table size the server allows the client (SETTINGS_HEADER_TABLE_SIZE is left
/// at its default of 4096).
const MAX_TABLE_SIZE: usize = 4_096;
/// The most a header block may take, encoded or decoded (HPACK size: name + value + 32 per
/// field). hyper refuses header lists over 16 KiB anyway; this only bounds our memory.
pub const MAX_BLOCK_BYTES: usize = 1 << 20;

const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;

/// An accepted client connection whose incoming header blocks are rewritten as described in the
/// module documentation.
pub(crate) struct AuthorityFix<S> {
    inner: S,
    transcoder: Transcoder,
    /// Transcoded bytes not yet handed to the reader.
    out: BytesMut,
    scratch: Box<[u8]>,
    eof: bool,
}

impl<S> AuthorityFix<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            transcoder: Transcoder::new(),
            out: BytesMut::new(),
            scratch: vec![0; 16 * 1024].into_boxed_slice(),
            eof: false,
        }
    }
}

impl<S: Connected> Connected for AuthorityFix<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.out.is_empty() {
                let n = this.out.len().min(buf.remaining());
                buf.put_slice(&this.out[..n]);
                this.out.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let mut rb = ReadBuf::new(&mut this.scratch);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            let data = rb.filled();
            if data.is_empty() {
                this.eof = true;
                continue;
            }
            this.transcoder.feed(data, &mut this.out).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Why a connection was closed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TranscodeError {
    #[error("HTTP/2 header block larger than {MAX_BLOCK_BYTES} bytes")]
    BlockTooLarge,
    #[error("HTTP/2 frame other than CONTINUATION inside a header block")]
    ExpectedContinuation,
    #[error("HTTP/2 HEADERS frame with invalid padding or priority")]
    BadHeadersFrame,
    #[error("HPACK: {0}")]
    Hpack(&'static str),
}

enum State {
    /// Matched this many bytes of the preface so far.
    Preface(usize),
    /// Not HTTP/2 with prior knowledge, or its first request needed no fix: pass everything.
    Transparent,
    /// Reading a frame header.
    FrameHeader,
    /// Passing this many more payload bytes of an ordinary frame.
    Passthrough(usize),
    /// Collecting the payload of a HEADERS or CONTINUATION frame into `frame`.
    Collect(usize),
}

/// A header block being collected.
struct Block {
    stream_id: u32,
    /// END_STREAM of the HEADERS frame.
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

/// The client-to-server byte stream transcoder.
pub struct Transcoder {
    state: State,
    header: [u8; 9],
    header_len: usize,
    /// Type, flags and stream of the frame being collected.
    kind: u8,
    flags: u8,
    stream_id: u32,
    frame: Vec<u8>,
    block: Option<Block>,
    hpack: HpackDecoder,
    /// The frames of the connection's first header block, as received, until it is complete:
    /// they pass unchanged if its `:authority` needs no fix. `None` once that is decided.
    first_block: Option<Vec<u8>>,
}

impl Default for Transcoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Transcoder {
    pub fn new() -> Self {
        Self {
            state: State::Preface(0),
            header: [0; 9],
            header_len: 0,
            kind: 0,
            flags: 0,
            stream_id: 0,
            frame: Vec::new(),
            block: None,
            hpack: HpackDecoder::new(),
            first_block: Some(Vec::new()),
        }
    }

    /// Transcodes the next bytes from the client, appending what h2 should read to `out`.
    pub fn feed(&mut self, mut data: &[u8], out: &mut BytesMut) -> Result<(), TranscodeError> {
        while !data.is_empty() {
            match self.state {
                State::Transparent => {
                    out.extend_from_slice(data);
                    return Ok(());
                }
                State::Preface(matched) => {
                    let n = (PREFACE.len() - matched).min(data.len());
                    if data[..n] != PREFACE[matched..matched + n] {
                        out.extend_from_slice(&PREFACE[..matched]);
                        self.state = State::Transparent;
                        continue;
                    }
                    data = &data[n..];
                    if matched + n == PREFACE.len() {
                        out.extend_from_slice(PREFACE);
                        self.state = State::FrameHeader;
                    } else {
                        self.state = State::Preface(matched + n);
                    }
                }
                State::Passthrough(remaining) => {
                    let n = remaining.min(data.len());
                    out.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    self.state = if n == remaining { State::FrameHeader } else { State::Passthrough(remaining - n) };
                }
                State::FrameHeader => {
                    let n = (9 - self.header_len).min(data.len());
                    self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
                    self.header_len += n;
                    data = &data[n..];
                    if self.header_len == 9 {
                        self.header_len = 0;
                        self.start_frame(out)?;
                    }
                }
                State::Collect(remaining) => {
                    let n = remaining.min(data.len());
                    self.frame.extend_from_slice(&data[..n]);
                    data = &data[n..];
                    if n == remaining {
                        self.state = State::FrameHeader;
                        self.end_frame(out)?;
                    } else {
                        self.state = State::Collect(remaining - n);
                    }
                }
            }
        }
        Ok(())
    }

    /// A frame header has been read.
    fn start_frame(&mut self, out: &mut BytesMut) -> Result<(), TranscodeError> {
        let h = self.header;
        let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        let (kind, flags) = (h[3], h[4]);
        let stream_id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        let header_frame = match (&self.block, kind) {
            (None, TYPE_HEADERS) => true,
            // A CONTINUATION with no header block open: h2 fails the connection for it.
            (None, _) => false,
            (Some(b), TYPE_CONTINUATION) if b.stream_id == stream_id => true,
            (Some(_), _) => return Err(TranscodeError::ExpectedContinuation),
        };
        if !header_frame {
            out.extend_from_slice(&h);
            self.state = if len == 0 { State::FrameHeader } else { State::Passthrough(len) };
            return Ok(());
        }
        let collected = self.block.as_ref().map_or(0, |b| b.fragment.len());
        if collected.saturating_add(len) > MAX_BLOCK_BYTES {
            return Err(TranscodeError::BlockTooLarge);
        }
        if let Some(raw) = &mut self.first_block {
            // Bounded too: empty CONTINUATION frames add nothing to the block but 9 bytes here.
            if raw.len().saturating_add(9 + len) > 2 * MAX_BLOCK_BYTES {
                return Err(TranscodeError::BlockTooLarge);
            }
            raw.extend_from_slice(&h);
        }
        self.kind = kind;
        self.flags = flags;
        self.stream_id = stream_id;
        self.frame.clear();
        if len == 0 {
            self.end_frame(out)
        } else {
            self.state = State::Collect(len);
            Ok(())
        }
    }

    /// The payload of a HEADERS or CONTINUATION frame has been collected in `self.frame`.
    fn end_frame(&mut self, out: &mut BytesMut) -> Result<(), TranscodeError> {
        let payload = std::mem::take(&mut self.frame);
        if let Some(raw) = &mut self.first_block {
            raw.extend_from_slice(&payload);
        }
        let mut block = if self.kind == TYPE_HEADERS {
            let mut rest = &payload[..];
            let mut pad = 0;
            if self.flags & FLAG_PADDED != 0 {
                let (&p, r) = rest.split_first().ok_or(TranscodeError::BadHeadersFrame)?;
                pad = usize::from(p);
                rest = r;
            }
            let priority = if self.flags & FLAG_PRIORITY != 0 {
                let p: [u8; 5] =
                    rest.get(..5).and_then(|p| p.try_into().ok()).ok_or(TranscodeError::BadHeadersFrame)?;
                rest = &rest[5..];
                Some(p)
            } else {
                None
            };
            if pad > rest.len() {
                return Err(TranscodeError::BadHeadersFrame);
            }
            Block {
                stream_id: self.stream_id,
                end_stream: self.flags & FLAG_END_STREAM != 0,
                priority,
                fragment: rest[..rest.len() - pad].to_vec(),
            }
        } else {
            let mut block = self.block.take().ok_or(TranscodeError::ExpectedContinuation)?;
            block.fragment.extend_from_slice(&payload);
            block
        };
        // Reuse the allocation for the next frame.
        self.frame = payload;
        self.frame.clear();
        if self.flags & FLAG_END_HEADERS == 0 {
            self.block = Some(block);
            return Ok(());
        }
        let fields = self.hpack.decode(&block.fragment)?;
        if let Some(raw) = self.first_block.take() {
            let fix = fields.iter().any(|f| f.name == b":authority" && authority_of_url(&f.value).is_some());
            if !fix {
                out.extend_from_slice(&raw);
                self.state = State::Transparent;
                return Ok(());
            }
        }
        let mut encoded = Vec::with_capacity(block.fragment.len() + 64);
        for mut field in fields {
            if field.name == b":authority"
                && let Some(fixed) = authority_of_url(&field.value)
            {
                field.value = fixed.to_vec();
            }
            encode_field(&field, &mut encoded);
        }
        block.fragment.clear();
        write_block(&block, &encoded, out);
        Ok(())
    }
}

/// Writes a header block as a HEADERS frame and as many CONTINUATION frames as it takes.
fn write_block(block: &Block, encoded: &[u8], out: &mut BytesMut) {
    let first_room = MAX_OUT_FRAME - if block.priority.is_some() { 5 } else { 0 };
    let first_len = encoded.len().min(first_room);
    let (first, mut rest) = encoded.split_at(first_len);
    let mut flags = 0;
    if block.end_stream {
        flags |= FLAG_END_STREAM;
    }
    if block.priority.is_some() {
        flags |= FLAG_PRIORITY;
    }
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    let priority: &[u8] = block.priority.as_ref().map_or(&[], |p| &p[..]);
    write_frame_header(out, priority.len() + first.len(), TYPE_HEADERS, flags, block.stream_id);
    out.extend_from_slice(priority);
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let n = rest.len().min(MAX_OUT_FRAME);
        let (chunk, r) = rest.split_at(n);
        rest = r;
        let flags = if rest.is_empty() { FLAG_END_HEADERS } else { 0 };
        write_frame_header(out, n, TYPE_CONTINUATION, flags, block.stream_id);
        out.extend_from_slice(chunk);
    }
}

fn write_frame_header(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream_id: u32) {
    // len <= MAX_OUT_FRAME < 2^24.
    let len = (len as u32).to_be_bytes();
    out.extend_from_slice(&[len[1], len[2], len[3], kind, flags]);
    out.extend_from_slice(&stream_id.to_be_bytes());
}

/// `host:port` of an authority that is a whole URL (`scheme://host:port[/path...]`), as etcdctl
/// 3.4's endpoint commands send it; None for anything else.
fn authority_of_url(value: &[u8]) -> Option<&[u8]> {
    let sep = value.windows(3).position(|w| w == b"://")?;
    let scheme = &value[..sep];
    let valid_scheme = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
    if !valid_scheme {
        return None;
    }
    let rest = &value[sep + 3..];
    let end = rest.iter().position(|&c| matches!(c, b'/' | b'?' | b'#')).unwrap_or(rest.len());
    let host = &rest[..end];
    (!host.is_empty()).then_some(host)
}

/// One decoded header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    pub(crate) name: Vec<u8>,
    pub(crate) value: Vec<u8>,
    /// Sent as "never indexed" (RFC 7541 §6.2.3): re-encoded the same way.
    pub(crate) sensitive: bool,
}

/// Encodes a field without touching the dynamic table: as an index into the static table when it
/// is there whole (and not sensitive), else as a literal without indexing (or never indexed) with
/// a static-table name when there is one.
fn encode_field(field: &Field, out: &mut Vec<u8>) {
    let mut name_index = 0;
    for (i, (name, value)) in STATIC_TABLE.iter().enumerate() {
        if *name == &field.name[..] {
            if !field.sensitive && *value == &field.value[..] {
                encode_integer(out, 0x80, 7, i + 1);
                return;
            }
            if name_index == 0 {
                name_index = i + 1;
            }
        }
    }
    let first = if field.sensitive { 0x10 } else { 0x00 };
    encode_integer(out, first, 4, name_index);
    if name_index == 0 {
        encode_string(out, &field.name);
    }
    encode_string(out, &field.value);
}

fn encode_integer(out: &mut Vec<u8>, first: u8, prefix_bits: u32, mut value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn encode_string(out: &mut Vec<u8>, s: &[u8]) {
    encode_integer(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

/// An HPACK decoder (RFC 7541) that tracks the client's dynamic table.
pub(crate) struct HpackDecoder {
    table: VecDeque<(Vec<u8>, Vec<u8>)>,
    size: usize,
    max_size: usize,
    huffman: Option<HuffmanDecoder>,
}

impl HpackDecoder {
    pub(crate) fn new() -> Self {
        Self { table: VecDeque::new(), size: 0, max_size: MAX_TABLE_SIZE, huffman: None }
    }

    pub(crate) fn decode(&mut self, mut buf: &[u8]) -> Result<Vec<Field>, TranscodeError> {
        let mut fields = Vec::new();
        let mut decoded_size = 0usize;
        let mut size_update_allowed = true;
        while let Some(&first) = buf.first() {
            let field = if first & 0x80 != 0 {
                let index = decode_integer(&mut buf, 7)?;
                let (name, value) = self.get(index)?;
                Field { name: name.to_vec(), value: value.to_vec(), sensitive: false }
            } else if first & 0x40 != 0 {
                let field = self.decode_literal(&mut buf, 6, false)?;
                self.insert(field.name.clone(), field.value.clone());
                field
            } else if first & 0x20 != 0 {
                if !size_update_allowed {
                    return Err(TranscodeError::Hpack("dynamic table size update after a field"));
                }
                let size = decode_integer(&mut buf, 5)?;
                if size > MAX_TABLE_SIZE {
                    return Err(TranscodeError::Hpack("dynamic table size update over the limit"));
                }
                self.max_size = size;
                self.evict(0);
                continue;
            } else {
                self.decode_literal(&mut buf, 4, first & 0x10 != 0)?
            };
            size_update_allowed = false;
            decoded_size =
                decoded_size.saturating_add(field.name.len()).saturating_add(field.value.len()).saturating_add(32);
            if decoded_size > MAX_BLOCK_BYTES {
                return Err(TranscodeError::BlockTooLarge);
            }
            fields.push(field);
        }
        Ok(fields)
    }

    fn decode_literal(&mut self, buf: &mut &[u8], prefix_bits: u32, sensitive: bool) -> Result<Field, TranscodeError> {
        let index = decode_integer(buf, prefix_bits)?;
        let name = if index == 0 { self.decode_string(buf)? } else { self.get(index)?.0.to_vec() };
        let value = self.decode_string(buf)?;
        Ok(Field { name, value, sensitive })
    }

    fn decode_string(&mut self, buf: &mut &[u8]) -> Result<Vec<u8>, TranscodeError> {
        let huffman = buf.first().is_some_and(|&b| b & 0x80 != 0);
        let len = decode_integer(buf, 7)?;
        if len > buf.len() {
            return Err(TranscodeError::Hpack("string longer than the header block"));
        }
        let (raw, rest) = buf.split_at(len);
        *buf = rest;
        if !huffman {
            return Ok(raw.to_vec());
        }
        self.huffman
            .get_or_insert_with(HuffmanDecoder::new)
            .decode(raw)
            .map_err(|_| TranscodeError::Hpack("invalid Huffman code"))
    }

    fn get(&self, index: usize) -> Result<(&[u8], &[u8]), TranscodeError> {
        if index == 0 {
            return Err(TranscodeError::Hpack("index 0"));
        }
        if let Some(&(name, value)) = STATIC_TABLE.get(index - 1) {
            return Ok((name, value));
        }
        self.table
            .get(index - 1 - STATIC_TABLE.len())
            .map(|(n, v)| (&n[..], &v[..]))
            .ok_or(TranscodeError::Hpack("index out of the table"))
    }

    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let size = name.len() + value.len() + 32;
        if size > self.max_size {
            // RFC 7541 §4.4: the table is emptied and the entry not added.
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.table.push_front((name, value));
    }

    /// Evicts entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            match self.table.pop_back() {
                Some((n, v)) => self.size -= n.len() + v.len() + 32,
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }
}

/// Decodes an HPACK integer with a `prefix_bits`-bit prefix (RFC 7541 §5.1), advancing `buf`.
/// Values over 2^28 are refused (no legitimate index, length or size comes near).
fn decode_integer(buf: &mut &[u8], prefix_bits: u32) -> Result<usize, TranscodeError> {
    let (&first, mut rest) = buf.split_first().ok_or(TranscodeError::Hpack("truncated integer"))?;
    let max = (1usize << prefix_bits) - 1;
    let mut value = usize::from(first) & max;
    if value == max {
        let mut shift = 0;
        loop {
            let (&b, r) = rest.split_first().ok_or(TranscodeError::Hpack("truncated integer"))?;
            rest = r;
            value += usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 21 {
                return Err(TranscodeError::Hpack("integer too large"));
            }
        }
    }
    *buf = rest;
    Ok(value)
}

/// RFC 7541 Appendix A.
static STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        write_frame_header(&mut out, payload.len(), kind, flags, stream);
        out.extend_from_slice(payload);
        out.to_vec()
    }

    /// Runs `input` through a transcoder, `chunk` bytes at a time.
    fn transcode(input: &[u8], chunk: usize) -> Result<Vec<u8>, TranscodeError> {
        let mut t = Transcoder::new();
        let mut out = BytesMut::new();
        for c in input.chunks(chunk.max(1)) {
            t.feed(c, &mut out)?;
        }
        Ok(out.to_vec())
    }

    /// Splits frames after the preface: (type, flags, stream, payload).
    fn frames(bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        assert_eq!(&bytes[..24], PREFACE);
        let mut rest = &bytes[24..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
            let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
            out.push((rest[3], rest[4], stream, rest[9..9 + len].to_vec()));
            rest = &rest[9 + len..];
        }
        out
    }

    /// Decodes every header block of the transcoder's output with a fresh reference decoder
    /// per block: this fails if the output referred to the dynamic table.
    fn blocks(bytes: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut block = Vec::new();
        for (kind, flags, _, payload) in frames(bytes) {
            match kind {
                TYPE_HEADERS => {
                    assert!(block.is_empty());
                    let skip = if flags & FLAG_PRIORITY != 0 { 5 } else { 0 };
                    assert_eq!(flags & FLAG_PADDED, 0);
                    block.extend_from_slice(&payload[skip..]);
                }
                TYPE_CONTINUATION => block.extend_from_slice(&payload),
                _ => continue,
            }
            assert!(payload.len() <= MAX_OUT_FRAME);
            if flags & FLAG_END_HEADERS != 0 {
                let mut d = fluke_hpack::Decoder::new();
                out.push(d.decode(&block).expect("valid HPACK without the dynamic table"));
                block.clear();
            }
        }
        assert!(block.is_empty());
        out
    }

    fn h(n: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
        (n.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    fn request(authority: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![
            h(":method", "POST"),
            h(":scheme", "http"),
            h(":path", "/etcdserverpb.Maintenance/Status"),
            h(":authority", authority),
            h("content-type", "application/grpc"),
            h("te", "trailers"),
        ]
    }

    fn encode(enc: &mut fluke_hpack::Encoder, headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        enc.encode(headers.iter().map(|(n, v)| (&n[..], &v[..])))
    }

    #[test]
    fn valid_authorities_and_other_frames_pass_unchanged_in_meaning() {
        // A dynamic-table-using encoder: the second block refers to the first's entries.
        let mut enc = fluke_hpack::Encoder::new();
        let settings = frame(0x4, 0, 0, &[0, 4, 0, 0, 0x10, 0]);
        let data = frame(0x0, 0x1, 1, b"\0\0\0\0\x05hello");
        let mut input = PREFACE.to_vec();
        input.extend(&settings);
        input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &encode(&mut enc, &request("127.0.0.1:2379"))));
        input.extend(&data);
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS | FLAG_END_STREAM,
            3,
            &encode(&mut enc, &request("127.0.0.1:2379")),
        ));
        // The first request's authority is valid: the connection passes byte for byte, its
        // dynamic table references included.
        for chunk in [1, 7, 9, 100, input.len()] {
            assert_eq!(transcode(&input, chunk).unwrap(), input);
        }
    }

    #[test]
    fn a_connection_whose_first_request_needs_a_fix_is_transcoded_throughout() {
        let mut enc = fluke_hpack::Encoder::new();
        let data = frame(0x0, 0x1, 1, b"\0\0\0\0\x05hello");
        let mut input = PREFACE.to_vec();
        input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &encode(&mut enc, &request("https://127.0.0.1:2379"))));
        input.extend(&data);
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_END_HEADERS | FLAG_END_STREAM,
            3,
            &encode(&mut enc, &request("127.0.0.1:2379")),
        ));
        for chunk in [1, 7, 9, 100, input.len()] {
            let out = transcode(&input, chunk).unwrap();
            let fr = frames(&out);
            assert_eq!(fr.len(), 3);
            assert_eq!(frame(fr[1].0, fr[1].1, fr[1].2, &fr[1].3), data);
            assert_eq!((fr[0].0, fr[0].1, fr[0].2), (TYPE_HEADERS, FLAG_END_HEADERS, 1));
            assert_eq!((fr[2].0, fr[2].1, fr[2].2), (TYPE_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 3));
            assert_eq!(blocks(&out), vec![request("127.0.0.1:2379"), request("127.0.0.1:2379")]);
        }
    }

    #[test]
    fn empty_continuations_cannot_grow_the_first_block_without_bound() {
        let mut t = Transcoder::new();
        let mut out = BytesMut::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(TYPE_HEADERS, 0, 1, b""));
        t.feed(&input, &mut out).unwrap();
        let empty = frame(TYPE_CONTINUATION, 0, 1, b"");
        let mut result = Ok(());
        for _ in 0..(2 * MAX_BLOCK_BYTES / 9 + 2) {
            result = t.feed(&empty, &mut out);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(TranscodeError::BlockTooLarge));
    }

    #[test]
    fn url_authority_is_rewritten_even_from_the_dynamic_table() {
        let mut enc = fluke_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        for stream in [1, 3] {
            let block = encode(&mut enc, &request("http://127.0.0.1:2379"));
            input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, stream, &block));
        }
        let out = transcode(&input, 5).unwrap();
        assert_eq!(blocks(&out), vec![request("127.0.0.1:2379"), request("127.0.0.1:2379")]);
    }

    #[test]
    fn rfc7541_huffman_example_decodes() {
        // RFC 7541 C.4.1 and C.4.2 (Huffman, dynamic table).
        let b1 = [0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff];
        let b2 = [0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf];
        // Decoded directly: through the transcoder, a valid first authority would pass the
        // connection untouched.
        let mut d = HpackDecoder::new();
        let fields = |fs: Vec<Field>| fs.into_iter().map(|f| (f.name, f.value)).collect::<Vec<_>>();
        let base = vec![h(":method", "GET"), h(":scheme", "http"), h(":path", "/"), h(":authority", "www.example.com")];
        let mut second = base.clone();
        second.push(h("cache-control", "no-cache"));
        assert_eq!(fields(d.decode(&b1).unwrap()), base);
        assert_eq!(fields(d.decode(&b2).unwrap()), second);
    }

    #[test]
    fn continuation_padding_and_priority() {
        let mut enc = fluke_hpack::Encoder::new();
        let mut headers = request("https://[::1]:2379/some/path");
        // Big enough that the re-encoded block needs CONTINUATION frames.
        headers.push(h("x-big", &"a".repeat(40_000)));
        let block = encode(&mut enc, &headers);
        let (a, rest) = block.split_at(100);
        let (b, c) = rest.split_at(20_000);
        let mut first = vec![3u8]; // pad length
        first.extend([0x80, 0, 0, 7, 15]); // exclusive dependency on 7, weight 15
        first.extend(a);
        first.extend([0, 0, 0]);
        let mut input = PREFACE.to_vec();
        input.extend(frame(TYPE_HEADERS, FLAG_PADDED | FLAG_PRIORITY | FLAG_END_STREAM, 5, &first));
        input.extend(frame(TYPE_CONTINUATION, 0, 5, b));
        input.extend(frame(TYPE_CONTINUATION, 0, 5, &[]));
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 5, c));
        let out = transcode(&input, 4096).unwrap();
        let fr = frames(&out);
        assert!(fr.len() >= 3, "{}", fr.len());
        assert_eq!(fr[0].1, FLAG_PRIORITY | FLAG_END_STREAM);
        assert_eq!(&fr[0].3[..5], &[0x80, 0, 0, 7, 15]);
        assert!(fr[1..].iter().all(|f| f.0 == TYPE_CONTINUATION && f.2 == 5));
        assert_eq!(fr.last().unwrap().1, FLAG_END_HEADERS);
        headers[3] = h(":authority", "[::1]:2379");
        assert_eq!(blocks(&out), vec![headers]);
    }

    #[test]
    fn not_http2_passes_through() {
        let input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for chunk in [1, 3, input.len()] {
            let mut t = Transcoder::new();
            let mut out = BytesMut::new();
            for c in input.chunks(chunk) {
                t.feed(c, &mut out).unwrap();
            }
            assert_eq!(&out[..], &input[..]);
        }
        // Diverging after a matched prefix of the preface.
        let input = b"PRI * HTTP/1.1\r\n";
        assert_eq!(transcode(input, 2).unwrap(), input.to_vec());
    }

    #[test]
    fn authority_of_url_cases() {
        assert_eq!(authority_of_url(b"http://127.0.0.1:2379"), Some(&b"127.0.0.1:2379"[..]));
        assert_eq!(authority_of_url(b"https://h:1/x?y"), Some(&b"h:1"[..]));
        assert_eq!(authority_of_url(b"unix+x://h"), Some(&b"h"[..]));
        assert_eq!(authority_of_url(b"127.0.0.1:2379"), None);
        assert_eq!(authority_of_url(b"http://"), None);
        assert_eq!(authority_of_url(b"://h"), None);
        assert_eq!(authority_of_url(b"1a://h"), None);
    }

    #[test]
    fn hostile_input_errors_without_panicking() {
        let mut cases: Vec<Vec<u8>> = vec![
            vec![0x3f],                                     // truncated size update
            vec![0x3f, 0xe2, 0x1f],                         // size update over 4096
            vec![0x82, 0x20],                               // size update after a field
            vec![0x80],                                     // index 0
            vec![0xff, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], // huge integer
            vec![0xbe],                                     // empty dynamic table
            vec![0x00, 0x05, b'a'],                         // string past the end
            vec![0x00, 0x81, 0xff, 0x00],                   // invalid Huffman (EOS/padding)
            vec![0x40],                                     // truncated literal
        ];
        // Deterministic junk.
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let len = (x % 40) as usize;
            let mut v = Vec::new();
            for _ in 0..len {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                v.push((x >> 16) as u8);
            }
            cases.push(v);
        }
        for (i, block) in cases.iter().enumerate() {
            let mut input = PREFACE.to_vec();
            input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, block));
            let r = transcode(&input, 3);
            if i < 9 {
                assert!(r.is_err(), "case {i} {block:x?}: {r:?}");
            }
            // Raw junk as frames too.
            let mut input = PREFACE.to_vec();
            input.extend(block);
            let _ = transcode(&input, 2);
        }

        // Header-frame level violations.
        let bad = [
            frame(TYPE_HEADERS, FLAG_PADDED | FLAG_END_HEADERS, 1, &[5, 0x82]),
            frame(TYPE_HEADERS, FLAG_PRIORITY | FLAG_END_HEADERS, 1, &[0, 0]),
            frame(TYPE_HEADERS, FLAG_PADDED, 1, &[]),
        ];
        for b in bad {
            let mut input = PREFACE.to_vec();
            input.extend(b);
            assert_eq!(transcode(&input, 1), Err(TranscodeError::BadHeadersFrame));
        }
        // DATA inside a header block; CONTINUATION of another stream.
        for next in [frame(0x0, 0, 1, b"x"), frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 3, &[0x82])] {
            let mut input = PREFACE.to_vec();
            input.extend(frame(TYPE_HEADERS, 0, 1, &[0x82]));
            input.extend(next);
            assert_eq!(transcode(&input, 64), Err(TranscodeError::ExpectedContinuation));
        }
        // An endless header block.
        let mut t = Transcoder::new();
        let mut out = BytesMut::new();
        t.feed(PREFACE, &mut out).unwrap();
        t.feed(&frame(TYPE_HEADERS, 0, 1, &[0x82]), &mut out).unwrap();
        let cont = frame(TYPE_CONTINUATION, 0, 1, &vec![0x82; 16_384]);
        let mut result = Ok(());
        for _ in 0..100 {
            result = t.feed(&cont, &mut out);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(TranscodeError::BlockTooLarge));
        // A small block that decodes to a huge list (indexed references to a 4 KiB entry).
        let mut block = vec![0x40, 0x01, b'a', 0x7f, 0xa1, 0x1e]; // 'a' = 4000 bytes...
        block.extend(vec![b'v'; 4000]);
        block.extend(vec![0xbe; 300]);
        let mut input = PREFACE.to_vec();
        for (i, c) in block.chunks(16_384).enumerate() {
            let last = (i + 1) * 16_384 >= block.len();
            let kind = if i == 0 { TYPE_HEADERS } else { TYPE_CONTINUATION };
            input.extend(frame(kind, if last { FLAG_END_HEADERS } else { 0 }, 1, c));
        }
        assert_eq!(transcode(&input, 1000), Err(TranscodeError::BlockTooLarge));
    }

    #[test]
    fn truncated_input_is_just_pending() {
        let mut enc = fluke_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &encode(&mut enc, &request("http://a:1"))));
        for cut in 0..input.len() {
            assert!(transcode(&input[..cut], 7).is_ok());
        }
    }

    #[tokio::test]
    async fn adapter_reads_transcoded_bytes() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(64);
        let mut fixed = AuthorityFix::new(server);
        let mut enc = fluke_hpack::Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &encode(&mut enc, &request("http://a:1"))));
        let writer = tokio::spawn(async move {
            let mut client = client;
            client.write_all(&input).await.unwrap();
            client.shutdown().await.unwrap();
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            back
        });
        let mut got = Vec::new();
        fixed.read_to_end(&mut got).await.unwrap();
        assert_eq!(blocks(&got), vec![request("a:1")]);
        fixed.write_all(b"reply").await.unwrap();
        fixed.shutdown().await.unwrap();
        drop(fixed);
        assert_eq!(writer.await.unwrap(), b"reply");
    }
}
