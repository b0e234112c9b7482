//! A raw HTTP/2 client, frame by frame, for tests that need what a real client library hides:
//! the server's SETTINGS, its keepalive PINGs left unanswered, PINGs sent faster than a
//! library would, and the GOAWAY that answers them. Plain TCP (h2c prior knowledge), blocking,
//! for tests only.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
/// SETTINGS_MAX_CONCURRENT_STREAMS.
pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A SETTINGS frame's (id, value) pairs.
    pub fn settings(&self) -> Vec<(u16, u32)> {
        self.payload
            .chunks_exact(6)
            .map(|c| (u16::from_be_bytes([c[0], c[1]]), u32::from_be_bytes([c[2], c[3], c[4], c[5]])))
            .collect()
    }

    /// A GOAWAY frame's error code and debug data.
    pub fn goaway(&self) -> (u32, String) {
        let code = u32::from_be_bytes([self.payload[4], self.payload[5], self.payload[6], self.payload[7]]);
        (code, String::from_utf8_lossy(&self.payload[8..]).into_owned())
    }
}

/// How a wait for a frame ended.
#[derive(Debug)]
pub enum Next {
    Frame(Frame),
    /// The server closed the connection (EOF or reset).
    Closed,
    TimedOut,
}

pub struct RawH2 {
    stream: TcpStream,
}

impl RawH2 {
    /// Connects to `addr` (`host:port`) and sends the preface and an empty SETTINGS frame.
    pub fn connect(addr: &str) -> io::Result<RawH2> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let mut h = RawH2 { stream };
        h.stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")?;
        h.send(SETTINGS, 0, 0, &[])?;
        Ok(h)
    }

    pub fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> io::Result<()> {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[kind, flags]);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        self.stream.write_all(&f)
    }

    pub fn ping(&mut self, data: [u8; 8]) -> io::Result<()> {
        self.send(PING, 0, 0, &data)
    }

    /// Opens a gRPC stream to `path` (a HEADERS frame, no body yet): it stays open until the
    /// server ends it.
    pub fn open_grpc_stream(&mut self, id: u32, path: &str, authority: &str) -> io::Result<()> {
        let mut block = Vec::new();
        for (name, value) in [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ] {
            // HPACK literal without indexing, new name; all lengths here are < 127.
            block.push(0x00);
            block.push(name.len() as u8);
            block.extend_from_slice(name.as_bytes());
            block.push(value.len() as u8);
            block.extend_from_slice(value.as_bytes());
        }
        self.send(HEADERS, END_HEADERS, id, &block)
    }

    /// The next frame within `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Next {
        let _ = self.stream.set_read_timeout(Some(timeout));
        let mut head = [0u8; 9];
        match self.stream.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Next::TimedOut;
            }
            Err(_) => return Next::Closed,
        }
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        let _ = self.stream.set_read_timeout(Some(Duration::from_secs(10)));
        if self.stream.read_exact(&mut payload).is_err() {
            return Next::Closed;
        }
        Next::Frame(Frame {
            kind: head[3],
            flags: head[4],
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
            payload,
        })
    }

    /// Reads until a frame `want` accepts; SETTINGS are acknowledged on the way. Err with
    /// what ended the wait otherwise.
    pub fn wait_for(&mut self, timeout: Duration, mut want: impl FnMut(&Frame) -> bool) -> Result<Frame, Next> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Next::TimedOut);
            }
            match self.next(left) {
                Next::Frame(f) => {
                    if f.kind == SETTINGS && f.flags & ACK == 0 {
                        let _ = self.send(SETTINGS, ACK, 0, &[]);
                    }
                    if want(&f) {
                        return Ok(f);
                    }
                }
                other => return Err(other),
            }
        }
    }

    /// The server's first SETTINGS frame.
    pub fn server_settings(&mut self) -> Result<Frame, Next> {
        self.wait_for(Duration::from_secs(10), |f| f.kind == SETTINGS && f.flags & ACK == 0)
    }

    /// Sends a PING and waits for its ACK; a GOAWAY or the end of the connection instead is
    /// returned as Err.
    pub fn ping_pong(&mut self, data: [u8; 8]) -> Result<(), Result<Frame, Next>> {
        self.ping(data).map_err(|_| Err(Next::Closed))?;
        match self.wait_for(Duration::from_secs(10), |f| {
            (f.kind == PING && f.flags & ACK != 0 && f.payload == data) || f.kind == GOAWAY
        }) {
            Ok(f) if f.kind == GOAWAY => Err(Ok(f)),
            Ok(_) => Ok(()),
            Err(e) => Err(Err(e)),
        }
    }
}
