//! grpc-go's keepalive enforcement policy on the client listener (`--grpc-keepalive-min-time`):
//! a client that pings too often is sent GOAWAY `ENHANCE_YOUR_CALM` with debug data
//! `too_many_pings`, and the connection is closed.
//!
//! Why here: etcd sets `keepalive.EnforcementPolicy{MinTime, PermitWithoutStream: false}` on its
//! gRPC server, and clientv3's keepalive settings are tuned against it; h2 (under hyper and
//! tonic) answers every PING and has no such policy, so a client misconfigured to ping every
//! second would be told off by etcd and not by wasmraft. [`PingEnforced`] wraps an accepted
//! connection below h2 and follows the frames both ways, only their 9-byte headers, never
//! copying or changing a byte: grpc-go's rule (`http2_server.go`, `handlePing`) needs the
//! client's PINGs, whether a stream is open, and whether the server sent HEADERS or DATA since
//! the last ping.
//!
//! The rule, as grpc-go 1.26 (etcd 3.4.23's) applies it: a PING that comes sooner than
//! `min_time` after the previous one (two hours, with no stream open) is a strike, unless the
//! server has sent HEADERS or DATA since the last PING, which forgives and clears the strikes;
//! the third strike (more than [`MAX_PING_STRIKES`]) ends the connection. An ACK is never
//! counted. As in grpc-go, the offending PING is still answered: h2 gets it and writes its ACK,
//! then the GOAWAY follows, between two of h2's frames, and the connection is shut down. If h2
//! does not get there within a few turns (its writes stuck behind a slow reader), the connection
//! is closed without the GOAWAY.
//!
//! A connection that does not start with the HTTP/2 preface (HTTP/1.1 for `/health`) passes
//! through untouched.

use std::collections::HashSet;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// grpc-go's `maxPingStrikes`.
pub const MAX_PING_STRIKES: u8 = 2;
/// grpc-go's `defaultPingTimeout`: the least time between pings while no stream is open
/// (`PermitWithoutStream: false`).
pub const PING_INTERVAL_WITHOUT_STREAM: Duration = Duration::from_secs(2 * 60 * 60);
/// grpc-go's `defaultKeepalivePolicyMinTime`, which applies when etcd's flag is 0.
pub const DEFAULT_MIN_TIME: Duration = Duration::from_secs(5 * 60);

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const TYPE_DATA: u8 = 0x0;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_RST_STREAM: u8 = 0x3;
const TYPE_PING: u8 = 0x6;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_ACK: u8 = 0x1;
/// HTTP/2's ENHANCE_YOUR_CALM error code.
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// The header of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FrameHead {
    kind: u8,
    flags: u8,
    stream: u32,
}

/// Finds frame headers in a byte stream handed over in pieces.
#[derive(Debug, Default)]
struct FrameScanner {
    head: [u8; FRAME_HEADER],
    have: usize,
    /// Payload bytes of the current frame still to pass.
    skip: usize,
}

impl FrameScanner {
    fn at_frame_boundary(&self) -> bool {
        self.have == 0 && self.skip == 0
    }

    fn scan(&mut self, mut data: &[u8], mut on_frame: impl FnMut(FrameHead)) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            let n = (FRAME_HEADER - self.have).min(data.len());
            self.head[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == FRAME_HEADER {
                let h = &self.head;
                self.skip = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                self.have = 0;
                on_frame(FrameHead {
                    kind: h[3],
                    flags: h[4],
                    stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                });
            }
        }
    }
}

/// grpc-go's ping accounting for one connection.
#[derive(Debug)]
struct Policy {
    min_time: Duration,
    last_ping: Option<Instant>,
    strikes: u8,
    /// The server sent HEADERS or DATA since the last ping (grpc-go's `resetPingStrikes`).
    reset_strikes: bool,
    /// Streams the client opened that neither side has ended or reset.
    active: HashSet<u32>,
    max_stream: u32,
    /// The server sent a PING ACK (since the policy was broken, when it matters).
    acked: bool,
}

impl Policy {
    /// A frame from the client; true when it breaks the policy.
    fn client_frame(&mut self, f: FrameHead, now: Instant) -> bool {
        match f.kind {
            TYPE_HEADERS if f.stream % 2 == 1 && f.stream > self.max_stream => {
                self.max_stream = f.stream;
                self.active.insert(f.stream);
            }
            TYPE_RST_STREAM => {
                self.active.remove(&f.stream);
            }
            TYPE_PING if f.flags & FLAG_ACK == 0 => return self.ping(now),
            _ => {}
        }
        false
    }

    fn server_frame(&mut self, f: FrameHead) {
        match f.kind {
            TYPE_PING if f.flags & FLAG_ACK != 0 => self.acked = true,
            TYPE_HEADERS | TYPE_DATA => {
                self.reset_strikes = true;
                if f.flags & FLAG_END_STREAM != 0 {
                    self.active.remove(&f.stream);
                }
            }
            TYPE_RST_STREAM => {
                self.active.remove(&f.stream);
            }
            _ => {}
        }
    }

    fn ping(&mut self, now: Instant) -> bool {
        let last = self.last_ping.replace(now);
        if std::mem::take(&mut self.reset_strikes) {
            self.strikes = 0;
            return false;
        }
        let least = if self.active.is_empty() { PING_INTERVAL_WITHOUT_STREAM } else { self.min_time };
        if last.is_some_and(|last| now < last + least) {
            self.strikes = self.strikes.saturating_add(1);
        }
        self.strikes > MAX_PING_STRIKES
    }

    /// grpc-go's GOAWAY for this case.
    fn goaway(&self) -> Vec<u8> {
        const DEBUG: &[u8] = b"too_many_pings";
        let len = 8 + DEBUG.len();
        let mut f = Vec::with_capacity(FRAME_HEADER + len);
        f.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        f.extend_from_slice(&[0x7, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&self.max_stream.to_be_bytes());
        f.extend_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
        f.extend_from_slice(DEBUG);
        f
    }
}

/// How many turns h2 gets to write the offending PING's ACK before the GOAWAY goes anyway.
const DRAIN_TURNS: u32 = 64;

#[derive(Debug)]
enum Phase {
    /// Reading the first bytes: the HTTP/2 preface, or something else (then pass through).
    Preface {
        seen: usize,
    },
    Serving,
    /// The policy is broken: h2 answers the last PING (reads wait) before the GOAWAY.
    Draining {
        turns: u32,
    },
    /// Writing our GOAWAY (bytes, how many are out), then flushing and shutting down.
    GoingAway(Vec<u8>, usize),
    /// Closed by the policy: reads see EOF, writes fail.
    Closed,
    /// Not HTTP/2, or no policy: untouched.
    PassThrough,
}

/// An accepted connection under the policy (see the module documentation).
pub(crate) struct PingEnforced<S> {
    inner: S,
    phase: Phase,
    policy: Policy,
    read: FrameScanner,
    write: FrameScanner,
}

impl<S> PingEnforced<S> {
    /// `min_time`: etcd's --grpc-keepalive-min-time; 0 means grpc-go's default (5 minutes).
    pub(crate) fn new(inner: S, min_time: Duration) -> Self {
        let min_time = if min_time.is_zero() { DEFAULT_MIN_TIME } else { min_time };
        PingEnforced {
            inner,
            phase: Phase::Preface { seen: 0 },
            policy: Policy {
                min_time,
                last_ping: None,
                strikes: 0,
                reset_strikes: false,
                active: HashSet::new(),
                max_stream: 0,
                acked: false,
            },
            read: FrameScanner::default(),
            write: FrameScanner::default(),
        }
    }

    /// Follows the bytes the client sent; true when they break the policy.
    fn client_bytes(&mut self, mut data: &[u8]) -> bool {
        if let Phase::Preface { seen } = &mut self.phase {
            let n = (PREFACE.len() - *seen).min(data.len());
            if data[..n] != PREFACE[*seen..*seen + n] {
                self.phase = Phase::PassThrough;
                return false;
            }
            *seen += n;
            data = &data[n..];
            if *seen < PREFACE.len() {
                return false;
            }
            self.phase = Phase::Serving;
        }
        if !matches!(self.phase, Phase::Serving) {
            return false;
        }
        let now = Instant::now();
        let mut broken = false;
        let policy = &mut self.policy;
        self.read.scan(data, |f| broken |= policy.client_frame(f, now));
        broken
    }

    fn server_bytes(&mut self, data: &[u8]) {
        if matches!(self.phase, Phase::Preface { .. } | Phase::Serving | Phase::Draining { .. }) {
            let policy = &mut self.policy;
            self.write.scan(data, |f| policy.server_frame(f));
        }
    }
}

impl<S: Connected> Connected for PingEnforced<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PingEnforced<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.phase {
                Phase::Closed => return Poll::Ready(Ok(())),
                Phase::Draining { turns } => {
                    let boundary = this.write.at_frame_boundary();
                    if boundary && (this.policy.acked || *turns >= DRAIN_TURNS) {
                        this.phase = Phase::GoingAway(this.policy.goaway(), 0);
                    } else if *turns >= DRAIN_TURNS {
                        tracing::warn!("closing the connection without its GOAWAY: a frame is half written");
                        this.phase = Phase::Closed;
                    } else {
                        // Reads wait while h2 writes its ACK; this task runs again right after.
                        *turns += 1;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                Phase::GoingAway(frame, sent) => {
                    while *sent < frame.len() {
                        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &frame[*sent..]))?;
                        if n == 0 {
                            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                        }
                        *sent += n;
                    }
                    ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
                    let _ = ready!(Pin::new(&mut this.inner).poll_shutdown(cx));
                    this.phase = Phase::Closed;
                }
                _ => {
                    let before = buf.filled().len();
                    ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                    let broken = this.client_bytes(&buf.filled()[before..]);
                    if broken {
                        tracing::warn!("transport: Got too many pings from the client, closing the connection.");
                        // What was read still reaches h2, which answers the last PING; then
                        // the GOAWAY, and the end of the connection.
                        this.policy.acked = false;
                        this.phase = Phase::Draining { turns: 0 };
                    }
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PingEnforced<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if matches!(this.phase, Phase::GoingAway(..) | Phase::Closed) {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.server_bytes(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if matches!(this.phase, Phase::GoingAway(..) | Phase::Closed) {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for b in bufs {
            if left == 0 {
                break;
            }
            let take = left.min(b.len());
            this.server_bytes(&b[..take]);
            left -= take;
        }
        Poll::Ready(Ok(n))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: usize) -> Vec<u8> {
        let mut f = (payload as u32).to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[kind, flags]);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend(std::iter::repeat_n(0u8, payload));
        f
    }

    fn ping() -> Vec<u8> {
        frame(TYPE_PING, 0, 0, 8)
    }

    #[test]
    fn frames_found_across_pieces() {
        let mut bytes = frame(TYPE_HEADERS, 0x4, 1, 20);
        bytes.extend(ping());
        bytes.extend(frame(TYPE_DATA, 1, 1, 3));
        let mut seen = Vec::new();
        let mut s = FrameScanner::default();
        for piece in bytes.chunks(5) {
            s.scan(piece, |f| seen.push((f.kind, f.stream)));
        }
        assert_eq!(seen, vec![(TYPE_HEADERS, 1), (TYPE_PING, 0), (TYPE_DATA, 1)]);
        assert!(s.at_frame_boundary());
    }

    #[test]
    fn third_strike_without_a_stream_breaks_the_policy() {
        let mut c = PingEnforced::new((), Duration::from_secs(5));
        assert!(!c.client_bytes(PREFACE));
        assert!(!c.client_bytes(&ping()), "the first ping is never a strike");
        assert!(!c.client_bytes(&ping()));
        assert!(!c.client_bytes(&ping()));
        assert!(c.client_bytes(&ping()), "strike 3 > maxPingStrikes");
        let g = c.policy.goaway();
        assert_eq!(&g[3..5], &[0x7, 0]);
        assert_eq!(&g[13..17], &ENHANCE_YOUR_CALM.to_be_bytes());
        assert_eq!(&g[17..], b"too_many_pings");
    }

    #[test]
    fn server_frames_forgive_and_streams_use_min_time() {
        let mut c = PingEnforced::new((), Duration::from_millis(1));
        c.client_bytes(PREFACE);
        c.client_bytes(&frame(TYPE_HEADERS, 0x4, 1, 10));
        std::thread::sleep(Duration::from_millis(3));
        for _ in 0..10 {
            assert!(!c.client_bytes(&ping()), "a stream is open and pings come slower than min_time");
            std::thread::sleep(Duration::from_millis(3));
        }
        // The server ends the stream: from now on the two-hour rule applies, unless it writes.
        c.server_bytes(&frame(TYPE_HEADERS, 0x5, 1, 4));
        assert!(!c.client_bytes(&ping()), "forgiven: the server wrote since the last ping");
        assert!(!c.client_bytes(&ping()));
        assert!(!c.client_bytes(&ping()));
        assert!(c.client_bytes(&ping()));
    }

    #[test]
    fn http1_passes_through() {
        let mut c = PingEnforced::new((), Duration::from_secs(5));
        assert!(!c.client_bytes(b"GET /health HTTP/1.1\r\n\r\n"));
        assert!(matches!(c.phase, Phase::PassThrough));
        for _ in 0..10 {
            assert!(!c.client_bytes(&ping()));
        }
    }
}
