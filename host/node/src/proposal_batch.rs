//! Proposal batching: the guest commands that queue up at the raft thread while it is busy
//! (writing the previous Ready's entries, sending them) go into one raft entry.
//!
//! A raft entry costs the same whatever it carries: a log record, a place in every follower's
//! append, and on apply a guest instance. Packing the commands that arrived in the meantime into
//! one entry shares those costs among them, and never holds a request back: the raft thread
//! packs what is already queued when it gets to it, and a lone command still gets an entry of
//! its own, in the same form as before batching existed. The grouping is in the log, so every
//! member applies the same commands together (`apply/command.rs`), and the outcome of each is
//! what it would have been in an entry of its own.
//!
//! Bounded by `--wasmraft-proposal-batch-limit` commands and by `--max-request-bytes` of
//! commands per entry (a command alone may be that large, so an entry stays within twice it).

use prost::Message as _;
use wasmraft_proto::wasmraft::v1 as pb;

/// The commands gathered for the next entry.
pub(crate) struct Batcher {
    limit: usize,
    max_bytes: usize,
    commands: Vec<pb::BatchedCommand>,
    bytes: usize,
}

/// Commands to propose as one entry.
pub(crate) struct Gathered {
    commands: Vec<pb::BatchedCommand>,
}

impl Batcher {
    pub(crate) fn new(limit: usize, max_bytes: usize) -> Self {
        Batcher { limit: limit.max(1), max_bytes, commands: Vec::new(), bytes: 0 }
    }

    /// Adds `command`; returns the commands gathered before it when it does not fit with them.
    #[must_use]
    pub(crate) fn push(&mut self, command: pb::BatchedCommand) -> Option<Gathered> {
        let size = command.command.len();
        let full = !self.commands.is_empty()
            && (self.commands.len() >= self.limit || self.bytes.saturating_add(size) > self.max_bytes);
        let out = if full { self.take() } else { None };
        self.bytes = self.bytes.saturating_add(size);
        self.commands.push(command);
        out
    }

    /// Whatever was gathered, as one entry's worth.
    pub(crate) fn take(&mut self) -> Option<Gathered> {
        if self.commands.is_empty() {
            return None;
        }
        self.bytes = 0;
        Some(Gathered { commands: std::mem::take(&mut self.commands) })
    }
}

impl Gathered {
    /// The waits of the gathered commands (0: nobody waits).
    pub(crate) fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.commands.iter().map(|c| c.id)
    }

    /// The entry's data: a lone command as an ordinary guest command entry, several as a batch.
    pub(crate) fn encode(self) -> Vec<u8> {
        let mut commands = self.commands;
        if commands.len() == 1
            && let Some(c) = commands.pop()
        {
            return single(c).1;
        }
        pb::Entry {
            id: 0,
            time_unix_ms: 0,
            auth_revision: 0,
            kind: Some(pb::entry::Kind::GuestBatch(pb::GuestBatch { commands })),
        }
        .encode_to_vec()
    }

    /// Each command as an entry of its own, with its wait (for proposals held while there is
    /// no leader, which are released one by one).
    pub(crate) fn into_singles(self) -> impl Iterator<Item = (u64, Vec<u8>)> {
        self.commands.into_iter().map(single)
    }
}

/// `c` as the entry it would be alone.
pub(crate) fn single(c: pb::BatchedCommand) -> (u64, Vec<u8>) {
    let entry = pb::Entry {
        id: c.id,
        time_unix_ms: c.time_unix_ms,
        auth_revision: c.auth_revision,
        kind: Some(pb::entry::Kind::GuestCommand(c.command)),
    };
    (c.id, entry.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(id: u64, len: usize) -> pb::BatchedCommand {
        pb::BatchedCommand { id, time_unix_ms: 1000 + id, auth_revision: id % 2, command: vec![b'x'; len] }
    }

    #[test]
    fn a_lone_command_is_an_ordinary_entry() {
        let mut b = Batcher::new(8, 1 << 20);
        assert!(b.push(cmd(7, 3)).is_none());
        let data = b.take().expect("one gathered").encode();
        let e = pb::Entry::decode(data.as_slice()).expect("decodes");
        assert_eq!((e.id, e.time_unix_ms, e.auth_revision), (7, 1007, 1));
        assert_eq!(e.kind, Some(pb::entry::Kind::GuestCommand(b"xxx".to_vec())));
        assert!(b.take().is_none(), "nothing left");
    }

    #[test]
    fn commands_are_packed_in_order_up_to_the_count_and_byte_limits() {
        let mut b = Batcher::new(3, 100);
        let mut entries = Vec::new();
        for (id, len) in [(1, 10), (2, 10), (3, 10), (4, 10), (5, 90), (6, 5)] {
            entries.extend(b.push(cmd(id, len)));
        }
        entries.extend(b.take());
        let ids: Vec<Vec<u64>> = entries.iter().map(|g| g.ids().collect()).collect();
        // Three by count; then 4 and 5 would be 100 bytes (fits), 6 would pass the byte bound.
        assert_eq!(ids, vec![vec![1, 2, 3], vec![4, 5], vec![6]]);
        let first = pb::Entry::decode(entries.remove(0).encode().as_slice()).expect("decodes");
        let Some(pb::entry::Kind::GuestBatch(batch)) = first.kind else { panic!("a batch: {first:?}") };
        assert_eq!(batch.commands, vec![cmd(1, 10), cmd(2, 10), cmd(3, 10)]);
    }

    #[test]
    fn a_command_larger_than_the_byte_bound_goes_alone() {
        let mut b = Batcher::new(10, 50);
        assert!(b.push(cmd(1, 10)).is_none());
        let before = b.push(cmd(2, 80)).expect("the first goes before the large one");
        assert_eq!(before.ids().collect::<Vec<_>>(), vec![1]);
        let large = b.push(cmd(3, 1)).expect("the large one alone");
        assert_eq!(large.ids().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn a_limit_of_zero_or_one_means_one_command_per_entry() {
        for limit in [0, 1] {
            let mut b = Batcher::new(limit, 1 << 20);
            assert!(b.push(cmd(1, 1)).is_none());
            assert_eq!(b.push(cmd(2, 1)).map(|g| g.ids().collect::<Vec<_>>()), Some(vec![1]));
        }
    }
}
