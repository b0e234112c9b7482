//! HTTP body plumbing shared by the roles: a body fed from a bounded channel (stream responses,
//! snapshot uploads) and a reader over an incoming body with a per-read timeout (etcd's
//! `ConnReadTimeout` on its peer listener and stream round tripper) and exact reads.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::sync::mpsc;

/// A response/request body whose chunks come from a bounded channel. Dropping every sender ends
/// the body; the peer going away drops the body, which the sender sees as a closed channel.
pub struct ChannelBody {
    rx: Option<mpsc::Receiver<io::Result<Bytes>>>,
    fixed: Option<Bytes>,
}

impl ChannelBody {
    /// A streaming body and the sender that feeds it (`capacity` chunks of buffering). Sending
    /// an `Err` aborts the body (the peer sees a broken transfer, never a clean end).
    pub fn channel(capacity: usize) -> (mpsc::Sender<io::Result<Bytes>>, ChannelBody) {
        let (tx, rx) = mpsc::channel(capacity);
        (tx, ChannelBody { rx: Some(rx), fixed: None })
    }
    /// A body with fixed contents.
    pub fn full(b: impl Into<Bytes>) -> ChannelBody {
        let b = b.into();
        ChannelBody { rx: None, fixed: if b.is_empty() { None } else { Some(b) } }
    }
    pub fn empty() -> ChannelBody {
        ChannelBody { rx: None, fixed: None }
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(b) = self.fixed.take() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        match self.rx.as_mut() {
            None => Poll::Ready(None),
            Some(rx) => match rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
                Poll::Ready(Some(Err(e))) => {
                    self.rx = None;
                    Poll::Ready(Some(Err(e)))
                }
                Poll::Ready(None) => {
                    self.rx = None;
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
    fn is_end_stream(&self) -> bool {
        self.rx.is_none() && self.fixed.is_none()
    }
    /// Exact for fixed bodies, so hyper sends `Content-Length` as Go's server does for small
    /// answers (instead of chunked encoding).
    fn size_hint(&self) -> http_body::SizeHint {
        match (&self.rx, &self.fixed) {
            (None, None) => http_body::SizeHint::with_exact(0),
            (None, Some(b)) => http_body::SizeHint::with_exact(b.len() as u64),
            _ => http_body::SizeHint::default(),
        }
    }
}

/// Reads an incoming body: exact reads for the codecs, raw chunks for snapshot data.
/// Each wait for more bytes is bounded by `read_timeout` (if any).
pub struct BodyReader<B> {
    body: B,
    buf: Bytes,
    read_timeout: Option<Duration>,
    eof: bool,
    /// Data bytes taken from the body so far.
    read: u64,
}

impl<B> BodyReader<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    pub fn new(body: B, read_timeout: Option<Duration>) -> Self {
        BodyReader { body, buf: Bytes::new(), read_timeout, eof: false, read: 0 }
    }

    /// Data bytes received from the body so far (read or buffered).
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    async fn fill(&mut self) -> io::Result<bool> {
        while self.buf.is_empty() {
            if self.eof {
                return Ok(false);
            }
            let next = self.body.frame();
            let frame = match self.read_timeout {
                Some(t) => tokio::time::timeout(t, next)
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "read timeout"))?,
                None => next.await,
            };
            match frame {
                None => self.eof = true,
                Some(Err(e)) => return Err(io::Error::other(e.to_string())),
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        self.read += d.len() as u64;
                        self.buf = d;
                    }
                }
            }
        }
        Ok(true)
    }

    /// Fills `out` completely; a body ending first is `UnexpectedEof`.
    pub async fn read_exact(&mut self, out: &mut [u8]) -> io::Result<()> {
        let mut filled = 0;
        while filled < out.len() {
            if !self.fill().await? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let n = (out.len() - filled).min(self.buf.len());
            out[filled..filled + n].copy_from_slice(&self.buf[..n]);
            self.buf.advance(n);
            filled += n;
        }
        Ok(())
    }

    /// Reads exactly `n` bytes into a vector that grows only as bytes arrive, so a hostile
    /// length prefix cannot make us allocate memory the peer never sends.
    pub async fn read_vec(&mut self, n: u64) -> io::Result<Vec<u8>> {
        const STEP: usize = 1 << 20;
        let n = usize::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "length too large"))?;
        let mut v = Vec::with_capacity(n.min(STEP));
        while v.len() < n {
            if !self.fill().await? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let k = (n - v.len()).min(self.buf.len());
            v.extend_from_slice(&self.buf[..k]);
            self.buf.advance(k);
        }
        Ok(v)
    }

    /// Whether the body has ended at this point (waits for the next chunk if needed).
    pub async fn at_eof(&mut self) -> io::Result<bool> {
        Ok(!self.fill().await?)
    }

    /// The next raw chunk of the body, `None` at its end.
    pub async fn chunk(&mut self) -> io::Result<Option<Bytes>> {
        if !self.fill().await? {
            return Ok(None);
        }
        Ok(Some(std::mem::take(&mut self.buf)))
    }

    pub async fn read_u64(&mut self) -> io::Result<u64> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b).await?;
        Ok(u64::from_be_bytes(b))
    }

    pub async fn read_u8(&mut self) -> io::Result<u8> {
        let mut b = [0u8; 1];
        self.read_exact(&mut b).await?;
        Ok(b[0])
    }
}
