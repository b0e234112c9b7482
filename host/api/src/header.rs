//! Response headers and request ids, as etcd's server makes them.

use wasmraft_proto::etcdserverpb::ResponseHeader;

use wasmraft_node::NodeHandle;

/// etcd's `header.fill` (v3rpc/header.go): cluster id, member id and raft term come from the
/// member answering; the revision is the one the guest put in (the host knows no revisions).
///
/// Only the top-level header is filled. The responses nested in a txn carry the header the guest
/// gave them, which for etcd's semantics is a header holding only the revision, as etcd's apply
/// code leaves them.
pub fn fill(node: &NodeHandle, header: &mut Option<ResponseHeader>) {
    let h = header.get_or_insert_with(ResponseHeader::default);
    h.cluster_id = node.cluster_id();
    h.member_id = node.member_id();
    h.raft_term = node.status().raft_term();
}

/// A filled header at `revision`, for responses the host builds itself (Watch, Maintenance).
pub fn at(node: &NodeHandle, revision: i64) -> Option<ResponseHeader> {
    let mut h = Some(ResponseHeader { revision, ..Default::default() });
    fill(node, &mut h);
    h
}
