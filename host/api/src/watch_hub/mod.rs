//! etcd's watchable store (mvcc/watchable_store.go) for the etcd KV guest's events.
//!
//! The guest emits one `mvccpb.Event` per change as it applies; the node hands them to the
//! [`WatchHub`] (an apply observer) after each batch commits. The hub keeps etcd's two groups:
//!
//! - **synced** watchers have seen everything up to the current revision and get each new
//!   revision's events straight from the apply thread, through their stream's bounded channel
//!   (`try_send`: the apply thread never waits for a client);
//! - **unsynced** watchers are behind: new watchers with a past `start_revision`, watchers whose
//!   channel was full (etcd's *victims*), and every watcher after a snapshot replaced the state.
//!   A sync task (etcd's `syncWatchersLoop`/`syncVictimsLoop`) catches them up off the apply
//!   thread, from the hub's buffer of recent revisions when it reaches back far enough, else from
//!   the guest's watch history (`KvQuery.watch_history`), and moves them back to synced.
//!
//! A slow client therefore costs only its own watchers a detour through the history; writes and
//! other watchers go on at full speed, and the slow watcher still gets every event, in order,
//! once it reads again (or the compacted response, if compaction overtook it, as in etcd).
//!
//! The gRPC side (streams, ids, fragmenting, progress) is `api/watch.rs`.

mod hub;
mod recent;
mod state;
mod sync;
mod watcher;

pub use hub::WatchHub;
pub use watcher::{Delivery, KeyRange, WatchSpec};

/// etcd's `chanBufLen`: responses a stream may have queued before its watchers count as slow.
pub const STREAM_BUFFER: usize = 128;
