//! etcd's msgappv2 codec (`msgappv2_codec.go`), used on the `msgapp` stream, which carries only
//! MsgApp (and link heartbeats). Every frame starts with a type byte:
//! - `0x00` link heartbeat: nothing follows;
//! - `0x01` AppEntries: u64 count, then per entry u64 size + entry bytes, then u64 commit. Sent
//!   when the message continues exactly where the previous one ended (`index` and `term` the
//!   encoder tracked, `log_term == term`); the decoder rebuilds from/to/term/log_term/index from
//!   its own tracked state and advances index once per entry;
//! - `0x02` full MsgApp: u64 size + message bytes; both sides then track `term = m.term` and
//!   `index = last entry's index` (or `m.index` with no entries).
//!
//! Beyond etcd: the encoder also requires the message to carry nothing the compact form would
//! drop (raft-rs's `commit_term`, `context`, ...), so AppEntries never loses information; for
//! etcd-shaped messages the bytes are identical to etcd's. The decoder bounds sizes (per entry
//! and per frame) by the read limit and never pre-allocates from a count the peer sent.

use bytes::Bytes;
use http_body::Body;
use protobuf::RepeatedField;
use raft::eraftpb::{Message, MessageType};

use crate::body::BodyReader;
use crate::msg_codec::CodecError;
use crate::pb;

pub const MSG_TYPE_LINK_HEARTBEAT: u8 = 0;
pub const MSG_TYPE_APP_ENTRIES: u8 = 1;
pub const MSG_TYPE_APP: u8 = 2;

/// etcd's link heartbeat: a MsgHeartbeat with from = to = 0, never handed to raft.
pub fn is_link_heartbeat(m: &Message) -> bool {
    m.msg_type == MessageType::MsgHeartbeat && m.from == 0 && m.to == 0
}

pub fn link_heartbeat() -> Message {
    let mut m = Message::default();
    m.msg_type = MessageType::MsgHeartbeat;
    m
}

fn compact_form_loses_nothing(m: &Message) -> bool {
    m.commit_term == 0
        && m.context.is_empty()
        && !m.reject
        && m.reject_hint == 0
        && m.request_snapshot == 0
        && m.priority == 0
        && m.deprecated_priority == 0
        && m.snapshot.is_none()
}

/// The sending side's state (tracked term/index).
#[derive(Debug, Default)]
pub struct MsgAppV2Encoder {
    term: u64,
    index: u64,
}

impl MsgAppV2Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the encoding of `m` to `out`.
    pub fn encode(&mut self, m: &Message, out: &mut Vec<u8>) {
        if is_link_heartbeat(m) {
            out.push(MSG_TYPE_LINK_HEARTBEAT);
        } else if self.index == m.index
            && self.term == m.log_term
            && m.log_term == m.term
            && compact_form_loses_nothing(m)
        {
            out.push(MSG_TYPE_APP_ENTRIES);
            out.extend_from_slice(&(m.entries.len() as u64).to_be_bytes());
            let mut buf = Vec::new();
            for e in m.entries.iter() {
                buf.clear();
                pb::encode_entry(e, &mut buf);
                out.extend_from_slice(&(buf.len() as u64).to_be_bytes());
                out.extend_from_slice(&buf);
                // Wrapping, as etcd's uint64 does: the decoder must track the same index.
                self.index = self.index.wrapping_add(1);
            }
            out.extend_from_slice(&m.commit.to_be_bytes());
        } else {
            out.push(MSG_TYPE_APP);
            let b = pb::encode_message(m);
            out.extend_from_slice(&(b.len() as u64).to_be_bytes());
            out.extend_from_slice(&b);
            self.term = m.term;
            self.index = m.entries.last().map_or(m.index, |e| e.index);
        }
    }
}

/// The receiving side's state: who the stream is between, and the tracked term/index.
#[derive(Debug)]
pub struct MsgAppV2Decoder {
    local: u64,
    remote: u64,
    term: u64,
    index: u64,
    limit: u64,
}

impl MsgAppV2Decoder {
    /// `limit` bounds a full message, one entry, and the entries of one AppEntries frame.
    pub fn new(local: u64, remote: u64, limit: u64) -> Self {
        MsgAppV2Decoder { local, remote, term: 0, index: 0, limit }
    }

    pub async fn decode<B>(&mut self, r: &mut BodyReader<B>) -> Result<Message, CodecError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        match r.read_u8().await? {
            MSG_TYPE_LINK_HEARTBEAT => Ok(link_heartbeat()),
            MSG_TYPE_APP_ENTRIES => {
                let mut m = Message::default();
                m.msg_type = MessageType::MsgAppend;
                m.from = self.remote;
                m.to = self.local;
                m.term = self.term;
                m.log_term = self.term;
                m.index = self.index;
                let count = r.read_u64().await?;
                let mut entries = Vec::with_capacity(usize::try_from(count.min(1024)).unwrap_or(1024));
                let mut total: u64 = 0;
                let mut index = self.index;
                for _ in 0..count {
                    let size = r.read_u64().await?;
                    total = total.saturating_add(size).saturating_add(8);
                    if size > self.limit || total > self.limit {
                        return Err(CodecError::ExceedSizeLimit);
                    }
                    let buf = r.read_vec(size).await?;
                    entries.push(pb::decode_entry(&buf)?);
                    // The tracked index comes from the peer (the last entry of a full MsgApp
                    // may be at u64::MAX): wrap as etcd's uint64 does rather than panic on
                    // overflow. raft refuses such an append anyway.
                    index = index.wrapping_add(1);
                }
                m.commit = r.read_u64().await?;
                m.entries = RepeatedField::from_vec(entries);
                self.index = index;
                Ok(m)
            }
            MSG_TYPE_APP => {
                let size = r.read_u64().await?;
                if size > self.limit {
                    return Err(CodecError::ExceedSizeLimit);
                }
                let buf = r.read_vec(size).await?;
                let m = pb::decode_message(&buf)?;
                self.term = m.term;
                self.index = m.entries.last().map_or(m.index, |e| e.index);
                Ok(m)
            }
            t => Err(CodecError::UnknownType(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg_codec::READ_BYTES_LIMIT;
    use http_body_util::Full;
    use raft::eraftpb::Entry;

    fn entry(term: u64, index: u64, data: &'static [u8]) -> Entry {
        let mut e = Entry::default();
        e.term = term;
        e.index = index;
        e.data = Bytes::from_static(data);
        e
    }

    fn app(term: u64, log_term: u64, index: u64, entries: Vec<Entry>, commit: u64) -> Message {
        let mut m = Message::default();
        m.msg_type = MessageType::MsgAppend;
        m.from = 1;
        m.to = 2;
        m.term = term;
        m.log_term = log_term;
        m.index = index;
        m.entries = RepeatedField::from_vec(entries);
        m.commit = commit;
        m
    }

    #[tokio::test]
    async fn app_entries_after_full_msgapp_matches_etcd_bytes() {
        let mut enc = MsgAppV2Encoder::new();
        let full = app(1, 1, 0, vec![entry(1, 1, b"a")], 0);
        let linked = app(1, 1, 1, vec![entry(1, 2, b"bc"), entry(1, 3, b"")], 2);
        let mut out = Vec::new();
        enc.encode(&full, &mut out);
        let full_len = out.len();
        enc.encode(&linked, &mut out);
        enc.encode(&link_heartbeat(), &mut out);
        assert_eq!(out[0], MSG_TYPE_APP);
        assert_eq!(&out[1..9], &((full_len - 9) as u64).to_be_bytes());
        // Hand-built AppEntries as etcd writes them.
        let mut want = vec![MSG_TYPE_APP_ENTRIES];
        want.extend_from_slice(&2u64.to_be_bytes());
        let e2: &[u8] = &[0x08, 0, 0x10, 1, 0x18, 2, 0x22, 2, b'b', b'c'];
        want.extend_from_slice(&(e2.len() as u64).to_be_bytes());
        want.extend_from_slice(e2);
        let e3: &[u8] = &[0x08, 0, 0x10, 1, 0x18, 3];
        want.extend_from_slice(&(e3.len() as u64).to_be_bytes());
        want.extend_from_slice(e3);
        want.extend_from_slice(&2u64.to_be_bytes());
        want.push(MSG_TYPE_LINK_HEARTBEAT);
        assert_eq!(&out[full_len..], &want[..]);

        let mut dec = MsgAppV2Decoder::new(2, 1, READ_BYTES_LIMIT);
        let mut r = BodyReader::new(Full::new(Bytes::from(out)), None);
        assert_eq!(dec.decode(&mut r).await.ok(), Some(full));
        assert_eq!(dec.decode(&mut r).await.ok(), Some(linked));
        assert!(dec.decode(&mut r).await.ok().is_some_and(|m| is_link_heartbeat(&m)));
        assert!(r.at_eof().await.unwrap_or(false));
    }

    #[tokio::test]
    async fn a_different_term_or_gap_sends_full_msgapp() {
        let mut enc = MsgAppV2Encoder::new();
        let mut out = Vec::new();
        enc.encode(&app(1, 1, 0, vec![entry(1, 1, b"a")], 0), &mut out);
        let n = out.len();
        enc.encode(&app(2, 1, 1, vec![entry(2, 2, b"a")], 0), &mut out); // term changed
        assert_eq!(out[n], MSG_TYPE_APP);
        let n = out.len();
        let mut with_commit_term = app(2, 2, 2, vec![], 1);
        with_commit_term.commit_term = 2; // raft-rs only field: never dropped
        enc.encode(&with_commit_term, &mut out);
        assert_eq!(out[n], MSG_TYPE_APP);
    }

    #[tokio::test]
    async fn app_entries_after_an_entry_at_u64_max_wrap_the_index() {
        // A full MsgApp whose last entry is at index u64::MAX, then AppEntries with one entry:
        // the decoder's tracked index overflowed (a panic where overflow checks are on; found
        // while writing the msgappv2 fuzz target, tests/fuzz). etcd's uint64 wraps; so do we.
        let mut enc = MsgAppV2Encoder::new();
        let mut out = Vec::new();
        let full = app(1, 1, 0, vec![entry(1, u64::MAX, b"a")], 0);
        enc.encode(&full, &mut out);
        let n = out.len();
        let next = app(1, 1, u64::MAX, vec![entry(1, 0, b"b")], 0);
        enc.encode(&next, &mut out);
        assert_eq!(out[n], MSG_TYPE_APP_ENTRIES);
        let mut dec = MsgAppV2Decoder::new(2, 1, READ_BYTES_LIMIT);
        let mut r = BodyReader::new(Full::new(Bytes::from(out)), None);
        assert_eq!(dec.decode(&mut r).await.ok(), Some(full));
        assert_eq!(dec.decode(&mut r).await.ok(), Some(next));
        assert_eq!(dec.index, 0);
    }

    #[tokio::test]
    async fn hostile_msgappv2_is_an_error() {
        let dec = |b: Vec<u8>| async move {
            let mut d = MsgAppV2Decoder::new(2, 1, 1 << 20);
            d.decode(&mut BodyReader::new(Full::new(Bytes::from(b)), None)).await
        };
        assert!(matches!(dec(vec![7]).await, Err(CodecError::UnknownType(7))));
        // A count of 2^64-1 entries with nothing behind it: EOF, no pre-allocation.
        let mut b = vec![MSG_TYPE_APP_ENTRIES];
        b.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(dec(b).await, Err(CodecError::Io(_))));
        // An entry size over the limit.
        let mut b = vec![MSG_TYPE_APP_ENTRIES];
        b.extend_from_slice(&1u64.to_be_bytes());
        b.extend_from_slice(&(2u64 << 20).to_be_bytes());
        assert!(matches!(dec(b).await, Err(CodecError::ExceedSizeLimit)));
        // A full MsgApp whose body is nested groups.
        let mut b = vec![MSG_TYPE_APP];
        b.extend_from_slice(&64u64.to_be_bytes());
        b.extend(std::iter::repeat_n(0x0bu8, 64));
        assert!(matches!(dec(b).await, Err(CodecError::Decode(_))));
        // Truncated.
        assert!(matches!(dec(vec![MSG_TYPE_APP, 0, 0]).await, Err(CodecError::Io(_))));
    }
}
