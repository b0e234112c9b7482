//! DeleteRange: etcd's `applierV3backend.DeleteRange`.

use wasmraft_proto::etcdserverpb::{DeleteRangeRequest, DeleteRangeResponse};

use crate::layout::Span;
use crate::range::header;
use crate::write::WriteTxn;

/// Deletes the span's live keys. The header revision is the transaction's: unchanged if nothing
/// was deleted and nothing else was written.
pub fn delete_range(txn: &mut WriteTxn<'_>, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse, String> {
    let span = Span::new(&req.key, &req.range_end);
    let (deleted, prev_kvs) = txn.delete_range(&span, req.prev_kv)?;
    Ok(DeleteRangeResponse { header: header(txn.current()), deleted, prev_kvs })
}
