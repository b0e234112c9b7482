//! etcd's message codec (`msg_codec.go`): each message is a u64 big-endian length followed by
//! the protobuf bytes. Used on the `message` stream and for the head of a snapshot upload.
//! The decoder refuses lengths above its limit (etcd's 512 MB `readBytesLimit` by default) and,
//! unlike etcd, grows its buffer only as bytes arrive, so a lying length prefix costs nothing.

use std::io;

use bytes::Bytes;
use http_body::Body;
use raft::eraftpb::Message;

use crate::body::BodyReader;
use crate::pb;

/// etcd's `readBytesLimit`.
pub const READ_BYTES_LIMIT: u64 = 512 * 1024 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("rafthttp: error limit exceeded")]
    ExceedSizeLimit,
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Decode(#[from] pb::DecodeError),
    #[error("failed to parse type {0} in msgappv2 stream")]
    UnknownType(u8),
}

/// Appends one frame (length + message) to `out`.
pub fn encode_frame(m: &Message, out: &mut Vec<u8>) {
    let b = pb::encode_message(m);
    out.extend_from_slice(&(b.len() as u64).to_be_bytes());
    out.extend_from_slice(&b);
}

/// Reads one frame; lengths above `limit` are `ExceedSizeLimit`.
pub async fn decode_frame<B>(r: &mut BodyReader<B>, limit: u64) -> Result<Message, CodecError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    // Go's `io.ReadFull` errors, which etcd's snapshot handler puts in its 400 body: "EOF" when
    // the body ended before any byte of the part, "unexpected EOF" when it ended inside it.
    if r.at_eof().await? {
        return Err(go_eof(false));
    }
    let len = r.read_u64().await.map_err(|e| eof_as_go(e, true))?;
    if len > limit {
        return Err(CodecError::ExceedSizeLimit);
    }
    if len > 0 && r.at_eof().await? {
        return Err(go_eof(false));
    }
    let buf = r.read_vec(len).await.map_err(|e| eof_as_go(e, true))?;
    Ok(pb::decode_message(&buf)?)
}

/// An `UnexpectedEof` I/O error that reads as Go's `io.EOF` / `io.ErrUnexpectedEOF`.
fn go_eof(partial: bool) -> CodecError {
    let msg = if partial { "unexpected EOF" } else { "EOF" };
    CodecError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, msg))
}

fn eof_as_go(e: io::Error, partial: bool) -> CodecError {
    if e.kind() == io::ErrorKind::UnexpectedEof { go_eof(partial) } else { CodecError::Io(e) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use raft::eraftpb::MessageType;

    fn reader(b: Vec<u8>) -> BodyReader<Full<Bytes>> {
        BodyReader::new(Full::new(Bytes::from(b)), None)
    }

    #[tokio::test]
    async fn frames_round_trip_and_match_etcd_layout() {
        let mut m = Message::default();
        m.msg_type = MessageType::MsgHeartbeat; // etcd's linkHeartbeatMessage
        let mut out = Vec::new();
        encode_frame(&m, &mut out);
        // length 30, then the gogo layout of Message{Type: MsgHeartbeat}
        let mut want = 30u64.to_be_bytes().to_vec();
        want.extend_from_slice(&[
            0x08, 8, 0x10, 0, 0x18, 0, 0x20, 0, 0x28, 0, 0x30, 0, 0x40, 0, 0x4a, 0x0a, 0x12, 0x08, 0x0a, 0x02, 0x28,
            0x00, 0x10, 0x00, 0x18, 0x00, 0x50, 0, 0x58, 0,
        ]);
        assert_eq!(out, want);
        let mut m2 = m.clone();
        m2.to = 3;
        encode_frame(&m2, &mut out);
        let mut r = reader(out);
        assert_eq!(decode_frame(&mut r, READ_BYTES_LIMIT).await.ok(), Some(m));
        assert_eq!(decode_frame(&mut r, READ_BYTES_LIMIT).await.ok(), Some(m2));
        assert!(matches!(decode_frame(&mut r, READ_BYTES_LIMIT).await, Err(CodecError::Io(_))));
    }

    #[tokio::test]
    async fn hostile_frames_are_errors() {
        // A length beyond the limit.
        let mut r = reader(u64::MAX.to_be_bytes().to_vec());
        assert!(matches!(decode_frame(&mut r, READ_BYTES_LIMIT).await, Err(CodecError::ExceedSizeLimit)));
        // A length of 500 MB with 3 bytes behind it: EOF, without allocating 500 MB.
        let mut b = (500u64 << 20).to_be_bytes().to_vec();
        b.extend_from_slice(&[1, 2, 3]);
        assert!(matches!(decode_frame(&mut reader(b), READ_BYTES_LIMIT).await, Err(CodecError::Io(_))));
        // A truncated length, a missing or truncated message: Go's io.ReadFull errors.
        let err = |b: Vec<u8>| async move {
            match decode_frame(&mut reader(b), READ_BYTES_LIMIT).await {
                Err(e @ CodecError::Io(_)) => e.to_string(),
                other => format!("{other:?}"),
            }
        };
        assert_eq!(err(vec![0, 0, 1]).await, "unexpected EOF");
        assert_eq!(err(vec![]).await, "EOF");
        assert_eq!(err(5u64.to_be_bytes().to_vec()).await, "EOF");
        let mut b = 5u64.to_be_bytes().to_vec();
        b.push(0x08);
        assert_eq!(err(b).await, "unexpected EOF");
        // Nested groups inside a well-formed frame.
        let body: Vec<u8> = std::iter::repeat_n(0x0bu8, 4096).collect();
        let mut b = (body.len() as u64).to_be_bytes().to_vec();
        b.extend_from_slice(&body);
        assert!(matches!(decode_frame(&mut reader(b), READ_BYTES_LIMIT).await, Err(CodecError::Decode(_))));
    }
}
