//! Go's `time.ParseDuration` syntax, which etcd's duration flags take; the parser is shared
//! with the member core (`wasmraft_proto::go`).

pub use wasmraft_proto::go::parse_duration as parse;
