//! # wasmraft-transport
//!
//! etcd's peer transport (rafthttp), rebuilt on hyper: the pipeline, stream and snapshot roles,
//! their codecs, headers and status codes, byte-compatible with etcd 3.4.
//!
//! Status: not built yet. Until it is, a member runs alone: the raft loop in the host reports
//! every message to another member as unreachable rather than pretending to deliver it. The
//! multi-member issue fills this crate in, one file per role as etcd's rafthttp has them.
