//! Watch history: the events of past revisions for watchers that start behind the current
//! revision (etcd's unsynced watchers read them from the backend the same way). Being written
//! in the watch work of this issue.

use wasmraft_guest_sdk::ReadStore;
use wasmraft_proto::wasmraft::v1::{WatchHistoryRequest, WatchHistoryResponse};

pub fn watch_history(_store: &dyn ReadStore, _req: &WatchHistoryRequest) -> Result<WatchHistoryResponse, String> {
    Err("wasmraft: the etcd-kv guest does not answer watch history yet".to_string())
}
