//! This member's side of the peer port's `/members/hashkv` (etcd's `hashKVHandler`): the hash
//! of its keyspace at the revision a peer's corruption check asks for.

use wasmraft_node::WeakNodeHandle;
use wasmraft_transport::{HashKvFuture, PeerHashKv};

/// Answers `/members/hashkv` for a member (held weakly: the transport outlives it briefly).
pub struct PeerHashSource {
    node: WeakNodeHandle,
    /// The guest whose HashKV runs natively (`ApiLimits::etcd_backend_guest`).
    native: Option<[u8; 32]>,
}

impl PeerHashSource {
    pub fn new(node: &wasmraft_node::NodeHandle, native: Option<[u8; 32]>) -> PeerHashSource {
        PeerHashSource { node: node.downgrade(), native }
    }
}

impl PeerHashKv for PeerHashSource {
    fn hash_kv(&self, revision: i64) -> HashKvFuture<'_> {
        Box::pin(async move {
            let node = self.node.upgrade().ok_or_else(|| "etcdserver: server stopped".to_string())?;
            // etcd's handler answers the mvcc error itself, without the gRPC layer's prefix.
            super::local_hash(&node, self.native, revision)
                .await
                .map_err(|e| e.strip_prefix("etcdserver: ").map_or(e.clone(), str::to_string))
        })
    }
}
