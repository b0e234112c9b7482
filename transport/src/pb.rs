//! The raft message protobuf encoding, written by hand.
//!
//! Why not protobuf 2's generated code: its parser recurses without a bound on hostile input
//! (RUSTSEC-2024-0437, nested groups / deeply nested messages), and peer traffic is hostile input.
//! This module decodes the network bytes itself, so protobuf 2's parser never sees them:
//! - the nesting is fixed by the eraftpb schema (Message → Entry, Message → Snapshot →
//!   SnapshotMetadata → ConfState); each level is its own function, so the decoder's depth is
//!   at most four no matter what the bytes say, and unknown length-delimited fields are skipped
//!   as opaque bytes, never parsed;
//! - group wire types (3, 4) are refused outright; lengths are checked against what is left;
//!   varints longer than 10 bytes, field number 0 and unknown enum values are errors.
//!
//! Why a hand-written encoder too: etcd's raftpb is gogoproto proto2 with non-nullable fields,
//! so etcd always writes `type, to, from, term, logTerm, index, commit, snapshot, reject,
//! rejectHint` (zero or not) in field order; protobuf 2's proto3 code would omit zeros. Writing
//! etcd's layout makes our frames byte-identical to etcd's. Fields raft-rs has and etcd does
//! not (`commit_term`, `request_snapshot`, priorities, `Entry.context`/`sync_log`) are appended
//! only when set, where etcd keeps unknown fields (`XXX_unrecognized`), so etcd ignores them.

use bytes::Bytes;
use protobuf::{ProtobufEnum, RepeatedField, SingularPtrField};
use raft::eraftpb::{ConfState, Entry, EntryType, Message, MessageType, Snapshot, SnapshotMetadata};

/// Why bytes could not be decoded as a raft message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unexpected end of protobuf data")]
    Truncated,
    #[error("varint overflows 64 bits")]
    VarintOverflow,
    #[error("invalid field number 0")]
    FieldZero,
    #[error("group wire types are not accepted")]
    Group,
    #[error("invalid wire type {0}")]
    WireType(u8),
    #[error("field {field} has wire type {wire}, which its schema does not allow")]
    WrongWireType { field: u32, wire: u8 },
    #[error("unknown enum value {0}")]
    UnknownEnum(u64),
}

// ---------------------------------------------------------------- encoding

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn put_uint(out: &mut Vec<u8>, field: u32, v: u64) {
    put_key(out, field, 0);
    put_varint(out, v);
}

fn put_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Encodes one entry the way etcd's `Entry.Marshal` does.
pub fn encode_entry(e: &Entry, out: &mut Vec<u8>) {
    put_uint(out, 1, e.entry_type.value() as u64);
    put_uint(out, 2, e.term);
    put_uint(out, 3, e.index);
    if !e.data.is_empty() {
        put_bytes(out, 4, &e.data);
    }
    // raft-rs only fields, unknown (and kept aside) to etcd.
    if e.sync_log {
        put_uint(out, 5, 1);
    }
    if !e.context.is_empty() {
        put_bytes(out, 6, &e.context);
    }
}

fn encode_conf_state(c: &ConfState, out: &mut Vec<u8>) {
    for &v in &c.voters {
        put_uint(out, 1, v);
    }
    for &v in &c.learners {
        put_uint(out, 2, v);
    }
    for &v in &c.voters_outgoing {
        put_uint(out, 3, v);
    }
    for &v in &c.learners_next {
        put_uint(out, 4, v);
    }
    put_uint(out, 5, c.auto_leave as u64);
}

fn encode_snapshot(s: Option<&Snapshot>, out: &mut Vec<u8>) {
    let default_snap = Snapshot::default();
    let s = s.unwrap_or(&default_snap);
    if !s.data.is_empty() {
        put_bytes(out, 1, &s.data);
    }
    let default_meta = SnapshotMetadata::default();
    let md = s.metadata.as_ref().unwrap_or(&default_meta);
    let mut meta = Vec::new();
    let default_cs = ConfState::default();
    let mut cs = Vec::new();
    encode_conf_state(md.conf_state.as_ref().unwrap_or(&default_cs), &mut cs);
    put_bytes(&mut meta, 1, &cs);
    put_uint(&mut meta, 2, md.index);
    put_uint(&mut meta, 3, md.term);
    put_bytes(out, 2, &meta);
}

/// Encodes a message the way etcd's `Message.Marshal` does (see the module docs).
pub fn encode_message(m: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    put_uint(&mut out, 1, m.msg_type.value() as u64);
    put_uint(&mut out, 2, m.to);
    put_uint(&mut out, 3, m.from);
    put_uint(&mut out, 4, m.term);
    put_uint(&mut out, 5, m.log_term);
    put_uint(&mut out, 6, m.index);
    let mut buf = Vec::new();
    for e in m.entries.iter() {
        buf.clear();
        encode_entry(e, &mut buf);
        put_bytes(&mut out, 7, &buf);
    }
    put_uint(&mut out, 8, m.commit);
    buf.clear();
    encode_snapshot(m.snapshot.as_ref(), &mut buf);
    put_bytes(&mut out, 9, &buf);
    put_uint(&mut out, 10, m.reject as u64);
    put_uint(&mut out, 11, m.reject_hint);
    if !m.context.is_empty() {
        put_bytes(&mut out, 12, &m.context);
    }
    // raft-rs only fields.
    if m.request_snapshot != 0 {
        put_uint(&mut out, 13, m.request_snapshot);
    }
    if m.deprecated_priority != 0 {
        put_uint(&mut out, 14, m.deprecated_priority);
    }
    if m.commit_term != 0 {
        put_uint(&mut out, 15, m.commit_term);
    }
    if m.priority != 0 {
        put_uint(&mut out, 16, m.priority as u64);
    }
    out
}

// ---------------------------------------------------------------- decoding

struct Reader<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Reader { b, p: 0 }
    }
    fn done(&self) -> bool {
        self.p >= self.b.len()
    }
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let byte = *self.b.get(self.p).ok_or(DecodeError::Truncated)?;
            self.p += 1;
            if i == 9 && byte > 1 {
                return Err(DecodeError::VarintOverflow);
            }
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err(DecodeError::VarintOverflow)
    }
    fn key(&mut self) -> Result<(u32, u8), DecodeError> {
        let k = self.varint()?;
        let wire = (k & 7) as u8;
        let field = k >> 3;
        if field == 0 {
            return Err(DecodeError::FieldZero);
        }
        if field > u64::from(u32::MAX >> 3) {
            return Err(DecodeError::WireType(wire));
        }
        match wire {
            0 | 1 | 2 | 5 => Ok((field as u32, wire)),
            3 | 4 => Err(DecodeError::Group),
            w => Err(DecodeError::WireType(w)),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.p.checked_add(n).ok_or(DecodeError::Truncated)?;
        if end > self.b.len() {
            return Err(DecodeError::Truncated);
        }
        let s = &self.b[self.p..end];
        self.p = end;
        Ok(s)
    }
    fn len_delimited(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| DecodeError::Truncated)?;
        self.take(n)
    }
    /// Skips an unknown field without looking inside it.
    fn skip(&mut self, wire: u8) -> Result<(), DecodeError> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.take(8).map(|_| ()),
            2 => self.len_delimited().map(|_| ()),
            5 => self.take(4).map(|_| ()),
            3 | 4 => Err(DecodeError::Group),
            w => Err(DecodeError::WireType(w)),
        }
    }
}

fn want(field: u32, wire: u8, expected: u8) -> Result<(), DecodeError> {
    if wire == expected { Ok(()) } else { Err(DecodeError::WrongWireType { field, wire }) }
}

/// Decodes (merges into `e`) one entry.
pub fn decode_entry_into(e: &mut Entry, b: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(b);
    while !r.done() {
        let (f, w) = r.key()?;
        match f {
            1 => {
                want(f, w, 0)?;
                let v = r.varint()?;
                e.entry_type =
                    i32::try_from(v).ok().and_then(EntryType::from_i32).ok_or(DecodeError::UnknownEnum(v))?;
            }
            2 => {
                want(f, w, 0)?;
                e.term = r.varint()?;
            }
            3 => {
                want(f, w, 0)?;
                e.index = r.varint()?;
            }
            4 => {
                want(f, w, 2)?;
                e.data = Bytes::copy_from_slice(r.len_delimited()?);
            }
            5 => {
                want(f, w, 0)?;
                e.sync_log = r.varint()? != 0;
            }
            6 => {
                want(f, w, 2)?;
                e.context = Bytes::copy_from_slice(r.len_delimited()?);
            }
            _ => r.skip(w)?,
        }
    }
    Ok(())
}

/// Decodes one entry.
pub fn decode_entry(b: &[u8]) -> Result<Entry, DecodeError> {
    let mut e = Entry::default();
    decode_entry_into(&mut e, b)?;
    Ok(e)
}

fn decode_u64s(r: &mut Reader<'_>, wire: u8, field: u32, out: &mut Vec<u64>) -> Result<(), DecodeError> {
    match wire {
        0 => out.push(r.varint()?),
        2 => {
            let mut packed = Reader::new(r.len_delimited()?);
            while !packed.done() {
                out.push(packed.varint()?);
            }
        }
        w => return Err(DecodeError::WrongWireType { field, wire: w }),
    }
    Ok(())
}

fn decode_conf_state_into(c: &mut ConfState, b: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(b);
    while !r.done() {
        let (f, w) = r.key()?;
        match f {
            1 => decode_u64s(&mut r, w, f, &mut c.voters)?,
            2 => decode_u64s(&mut r, w, f, &mut c.learners)?,
            3 => decode_u64s(&mut r, w, f, &mut c.voters_outgoing)?,
            4 => decode_u64s(&mut r, w, f, &mut c.learners_next)?,
            5 => {
                want(f, w, 0)?;
                c.auto_leave = r.varint()? != 0;
            }
            _ => r.skip(w)?,
        }
    }
    Ok(())
}

fn decode_metadata_into(md: &mut SnapshotMetadata, b: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(b);
    while !r.done() {
        let (f, w) = r.key()?;
        match f {
            1 => {
                want(f, w, 2)?;
                let body = r.len_delimited()?;
                decode_conf_state_into(md.mut_conf_state(), body)?;
            }
            2 => {
                want(f, w, 0)?;
                md.index = r.varint()?;
            }
            3 => {
                want(f, w, 0)?;
                md.term = r.varint()?;
            }
            _ => r.skip(w)?,
        }
    }
    Ok(())
}

fn decode_snapshot_into(s: &mut Snapshot, b: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(b);
    while !r.done() {
        let (f, w) = r.key()?;
        match f {
            1 => {
                want(f, w, 2)?;
                s.data = Bytes::copy_from_slice(r.len_delimited()?);
            }
            2 => {
                want(f, w, 2)?;
                let body = r.len_delimited()?;
                decode_metadata_into(s.mut_metadata(), body)?;
            }
            _ => r.skip(w)?,
        }
    }
    Ok(())
}

/// Decodes a raft message from untrusted bytes (see the module docs for the guarantees).
pub fn decode_message(b: &[u8]) -> Result<Message, DecodeError> {
    let mut m = Message::default();
    let mut entries = Vec::new();
    let mut snapshot: Option<Snapshot> = None;
    let mut r = Reader::new(b);
    while !r.done() {
        let (f, w) = r.key()?;
        match f {
            1 => {
                want(f, w, 0)?;
                let v = r.varint()?;
                m.msg_type =
                    i32::try_from(v).ok().and_then(MessageType::from_i32).ok_or(DecodeError::UnknownEnum(v))?;
            }
            2 => {
                want(f, w, 0)?;
                m.to = r.varint()?;
            }
            3 => {
                want(f, w, 0)?;
                m.from = r.varint()?;
            }
            4 => {
                want(f, w, 0)?;
                m.term = r.varint()?;
            }
            5 => {
                want(f, w, 0)?;
                m.log_term = r.varint()?;
            }
            6 => {
                want(f, w, 0)?;
                m.index = r.varint()?;
            }
            7 => {
                want(f, w, 2)?;
                entries.push(decode_entry(r.len_delimited()?)?);
            }
            8 => {
                want(f, w, 0)?;
                m.commit = r.varint()?;
            }
            9 => {
                want(f, w, 2)?;
                let body = r.len_delimited()?;
                decode_snapshot_into(snapshot.get_or_insert_with(Snapshot::default), body)?;
            }
            10 => {
                want(f, w, 0)?;
                m.reject = r.varint()? != 0;
            }
            11 => {
                want(f, w, 0)?;
                m.reject_hint = r.varint()?;
            }
            12 => {
                want(f, w, 2)?;
                m.context = Bytes::copy_from_slice(r.len_delimited()?);
            }
            13 => {
                want(f, w, 0)?;
                m.request_snapshot = r.varint()?;
            }
            14 => {
                want(f, w, 0)?;
                m.deprecated_priority = r.varint()?;
            }
            15 => {
                want(f, w, 0)?;
                m.commit_term = r.varint()?;
            }
            16 => {
                want(f, w, 0)?;
                m.priority = r.varint()? as i64;
            }
            _ => r.skip(w)?,
        }
    }
    m.entries = RepeatedField::from_vec(entries);
    m.snapshot = match snapshot {
        // etcd always sends an (often empty) snapshot; keep raft-rs's "absent" for empty ones.
        Some(mut s) if !is_empty_snapshot(&s) => {
            // etcd's metadata and conf state are non-nullable, and `encode_message` always
            // writes them: present here too, so that decoding what we encoded from a decoded
            // message gives the same message (a snapshot without metadata would come back
            // with an empty one).
            s.mut_metadata().mut_conf_state();
            SingularPtrField::some(s)
        }
        _ => SingularPtrField::none(),
    };
    Ok(m)
}

fn is_empty_snapshot(s: &Snapshot) -> bool {
    let md = s.get_metadata();
    s.data.is_empty() && md.index == 0 && md.term == 0 && *md.get_conf_state() == ConfState::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_layout_of_a_heartbeat() {
        // etcd: raftpb.Message{Type: MsgHeartbeat, To: 2, From: 1, Term: 3, Commit: 4}.Marshal()
        let mut m = Message::default();
        m.msg_type = MessageType::MsgHeartbeat;
        m.to = 2;
        m.from = 1;
        m.term = 3;
        m.commit = 4;
        let want: &[u8] = &[
            0x08, 8, 0x10, 2, 0x18, 1, 0x20, 3, 0x28, 0, 0x30, 0, 0x40, 4, // scalars
            0x4a, 0x0a, 0x12, 0x08, 0x0a, 0x02, 0x28, 0x00, 0x10, 0x00, 0x18, 0x00, // snapshot
            0x50, 0, 0x58, 0,
        ];
        assert_eq!(encode_message(&m), want);
        assert_eq!(decode_message(want), Ok(m));
    }

    #[test]
    fn round_trip_with_everything() {
        let mut m = Message::default();
        m.msg_type = MessageType::MsgSnapshot;
        m.to = u64::MAX;
        m.from = 7;
        m.term = 300;
        m.reject = true;
        m.reject_hint = 9;
        m.context = Bytes::from_static(b"ctx");
        m.commit_term = 5;
        m.request_snapshot = 6;
        m.priority = -3;
        let mut e = Entry::default();
        e.entry_type = EntryType::EntryConfChange;
        e.index = 1;
        e.term = 2;
        e.data = Bytes::from_static(b"hello");
        e.context = Bytes::from_static(b"c");
        e.sync_log = true;
        m.entries = RepeatedField::from_vec(vec![e.clone(), Entry::default()]);
        let s = m.mut_snapshot();
        s.data = Bytes::from_static(b"snapdata");
        let md = s.mut_metadata();
        md.index = 10;
        md.term = 11;
        md.mut_conf_state().voters = vec![1, 2, 3];
        md.mut_conf_state().learners = vec![4];
        md.mut_conf_state().auto_leave = true;
        let b = encode_message(&m);
        assert_eq!(decode_message(&b), Ok(m));
    }

    #[test]
    fn snapshot_without_metadata_decodes_as_its_re_encoding_does() {
        // Found by the raft_pb / msgappv2 fuzz targets: a snapshot with data and no metadata
        // decoded with metadata absent, but re-encoded (metadata always written, as etcd does)
        // it decoded with metadata present: decode(encode(m)) != m.
        let msg: &[u8] = &[0x08, 7, 0x4a, 3, 0x0a, 1, b'x'];
        let m = decode_message(msg).expect("decodes");
        assert!(m.get_snapshot().has_metadata());
        assert!(m.get_snapshot().get_metadata().has_conf_state());
        assert_eq!(decode_message(&encode_message(&m)), Ok(m));
    }

    #[test]
    fn packed_repeated_voters_are_accepted() {
        // ConfState{voters: [1, 2, 300]} packed (proto3 style) inside metadata inside snapshot.
        let cs: &[u8] = &[0x0a, 4, 1, 2, 0xac, 0x02];
        let mut md = vec![0x0a, cs.len() as u8];
        md.extend_from_slice(cs);
        let mut snap = vec![0x12, md.len() as u8];
        snap.extend_from_slice(&md);
        let mut msg = vec![0x08, 7, 0x4a, snap.len() as u8];
        msg.extend_from_slice(&snap);
        let m = decode_message(&msg).map_err(|e| e.to_string());
        assert_eq!(m.map(|m| m.get_snapshot().get_metadata().get_conf_state().voters.clone()), Ok(vec![1, 2, 300]));
    }

    #[test]
    fn hostile_bytes_are_errors() {
        // Start group (wire type 3) as field 1000, and nested groups.
        assert_eq!(decode_message(&[0xc3, 0x3e]), Err(DecodeError::Group));
        let deep: Vec<u8> = std::iter::repeat_n(0x0bu8, 100_000).collect(); // field 1, start group
        assert_eq!(decode_message(&deep), Err(DecodeError::Group));
        // Unknown length-delimited field holding deeply nested junk is skipped, not parsed.
        let mut nested = Vec::new();
        for _ in 0..10_000 {
            let mut outer = vec![0xa2, 0x06]; // field 100, wire 2
            put_varint(&mut outer, nested.len() as u64);
            outer.extend_from_slice(&nested);
            nested = outer;
        }
        assert!(decode_message(&nested).is_ok());
        // Entries nested as far as the bytes want are refused at the schema's depth:
        // an Entry field 4 (data) is opaque, an Entry with wrong wire types is an error.
        assert!(matches!(decode_message(&[0x3a, 0x02, 0x08, 0x80]), Err(DecodeError::Truncated)));
        assert_eq!(decode_message(&[0x3a, 0x02, 0x0a, 0x00]), Err(DecodeError::WrongWireType { field: 1, wire: 2 }));
        // Huge lengths, truncation, overflowing varints, field 0, unknown enum.
        assert_eq!(decode_message(&[0x62, 0xff, 0xff, 0xff, 0xff, 0x0f]), Err(DecodeError::Truncated));
        assert_eq!(decode_message(&[0x10]), Err(DecodeError::Truncated));
        assert_eq!(
            decode_message(&[0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            Err(DecodeError::VarintOverflow)
        );
        assert_eq!(decode_message(&[0x00, 0x00]), Err(DecodeError::FieldZero));
        assert_eq!(decode_message(&[0x08, 99]), Err(DecodeError::UnknownEnum(99)));
        assert_eq!(decode_message(&[0x0f]), Err(DecodeError::WireType(7)));
    }
}
