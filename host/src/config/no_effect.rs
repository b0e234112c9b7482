//! etcd flags wasmraft accepts but that change nothing, because what they tune does not exist
//! here. Each is logged once at start when set to anything but etcd's default (a deployment that
//! sets one keeps starting; its operator learns it does nothing), with the reason, which README
//! ("Flags") and docs/decisions.md repeat.

use super::MemberFlags;
use super::load::Note;

/// Flag, why it has no effect.
pub const NO_EFFECT: &[(&str, &str)] = &[
    (
        "--experimental-backend-bbolt-freelist-type",
        "it tunes bbolt's free-page list; wasmraft's state database is redb, whose allocator has no such choice",
    ),
    (
        "--experimental-compaction-batch-limit",
        "it splits etcd's compaction into bbolt transactions of this many deletions; wasmraft's KV guest compacts \
         inside the compaction's one log entry, in one state-database transaction",
    ),
    (
        "--log-package-levels",
        "it sets levels of capnslog packages (etcdmain, etcdserver, ...), which wasmraft's logger does not have; \
         use --log-level (or RUST_LOG for wasmraft's own modules)",
    ),
];

/// One warning per no-effect flag that was set to something else than etcd's default.
pub fn notes(flags: &MemberFlags) -> Vec<Note> {
    let set = [
        flags.experimental_backend_bbolt_freelist_type != "array"
            && !flags.experimental_backend_bbolt_freelist_type.is_empty(),
        flags.experimental_compaction_batch_limit != 1000 && flags.experimental_compaction_batch_limit > 0,
        !flags.log_package_levels.is_empty(),
    ];
    NO_EFFECT
        .iter()
        .zip(set)
        .filter(|(_, set)| *set)
        .map(|((flag, why), _)| Note::warn(format!("etcdmain: {flag} has no effect on wasmraft: {why}")))
        .collect()
}
