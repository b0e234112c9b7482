//! The error texts clients see. They are etcd's, byte for byte, because clients (etcdctl, the
//! Go and Python clients, Kubernetes) match on them: a compacted watch or range is retried from
//! a newer revision only if the text says so.

/// A read at, or a compaction to, a revision that compaction already removed.
pub const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
/// A read at, or a compaction to, a revision the store has not reached yet.
pub const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";
/// A put that attaches a lease the lease table does not hold.
pub const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
/// A grant of a lease id that is already granted.
pub const LEASE_EXISTS: &str = "etcdserver: lease already exists";
/// A grant asking for more than etcd's `MaxLeaseTTL`.
pub const LEASE_TTL_TOO_LARGE: &str = "etcdserver: too large lease TTL";
/// A put with `ignore_value` or `ignore_lease` on a key that does not exist.
pub const KEY_NOT_FOUND: &str = "etcdserver: key not found";

/// Data the guest itself wrote cannot be read back. This never happens unless the keyspace was
/// changed behind the guest's back; it is an error (rolled back) rather than a panic so that a
/// member never traps on it mid-batch.
pub fn corrupt(what: impl std::fmt::Display) -> String {
    format!("wasmraft: etcd-kv store is corrupt: {what}")
}
