//! Replacing the state wholesale with a snapshot raft accepted from the leader.

use redb::Durability;
use wasmraft_storage::SnapshotError;

use super::super::{RaftMsg, Shared};
use crate::error_chain::Chain;

/// Installs the snapshot raft accepted at `index` unless the state is already newer; returns
/// the applied index of the state, or None after recording a fatal error.
pub(super) fn swap_in_snapshot(shared: &Shared, index: u64, path: &std::path::Path, applied: u64) -> Option<u64> {
    // Two snapshots can arrive back to back, the first carrying state newer than the second:
    // the state we have is then already consistent with the log after the second snapshot's
    // index, and installing the older one would only rewind it.
    match wasmraft_storage::snapshot::applied_index_of(path) {
        Ok(file_index) if file_index <= applied => {
            tracing::info!(
                "snapshot {index} carries state at {file_index}; the state is already at {applied}, keeping it"
            );
            let _ = shared.to_raft.send(RaftMsg::Applied(applied));
            return Some(applied);
        }
        Ok(_) => {}
        Err(e) => {
            shared.fail(format!("reading snapshot {}: {}{}", path.display(), Chain(&e), drop_if_damaged(path)));
            return None;
        }
    }
    let state_index = match install_snapshot(&shared.state_db.db(), path) {
        Ok(i) => i,
        Err(e) => {
            shared.fail(format!("installing snapshot {}: {}{}", path.display(), Chain(&e), drop_if_damaged(path)));
            return None;
        }
    };
    // The snapshot carries membership, the deployment record and its modules, the auth store
    // and the alarms: each subsystem reads its part anew (the guest it says is active runs).
    if let Err(e) = shared.replicated.reload(&shared.state_db.db()) {
        shared.fail(format!("after snapshot {index}: {}", Chain(&e)));
        return None;
    }
    tracing::info!("applied snapshot {index}: the state is now at index {state_index}");
    for o in shared.observers.read().unwrap_or_else(|p| p.into_inner()).iter() {
        o.state_replaced();
    }
    remove_older_snapshots(shared, index);
    shared.progress.applied.send_replace(state_index);
    let _ = shared.to_raft.send(RaftMsg::Applied(state_index));
    let _ = shared.to_raft.send(RaftMsg::Durable(state_index));
    Some(state_index)
}

/// After a snapshot failed to install: removes its file if the file itself is damaged (it can
/// never install; the member needs the cluster's help), and keeps it otherwise (a full disk,
/// say: the log already says the snapshot replaced it, and a restart installs the file again).
/// Says which, for the error.
fn drop_if_damaged(path: &std::path::Path) -> String {
    match wasmraft_storage::snapshot::verify(path) {
        Ok(()) => "; the file is intact and kept, a restart installs it again".into(),
        Err(damage) => {
            let damage = Chain(&damage);
            match std::fs::remove_file(path) {
                Ok(()) => format!("; the file is damaged ({damage}) and was removed"),
                Err(e) => format!("; the file is damaged ({damage}), and removing it failed: {e}"),
            }
        }
    }
}

/// Replaces the state database's tables with a snapshot file's, durably, and returns the
/// applied index the snapshot's state reflects.
pub(crate) fn install_snapshot(db: &redb::Database, path: &std::path::Path) -> Result<u64, SnapshotError> {
    let mut txn = db.begin_write().map_err(|e| SnapshotError::Db(e.into()))?;
    txn.set_durability(Durability::Immediate).map_err(|e| SnapshotError::Db(e.into()))?;
    let index = wasmraft_storage::snapshot::install(&txn, path)?;
    // A snapshot from a member that predates the count (or from etcd's bbolt file) has none.
    crate::kv_size::ensure(&txn).map_err(SnapshotError::Db)?;
    txn.commit().map_err(|e| SnapshotError::Db(e.into()))?;
    Ok(index)
}

/// Removes received snapshot files older than the one just installed, beyond the newest
/// `--max-snapshots` (etcd's snapshot purge; 0 keeps them all). Newer ones always stay: raft may
/// already have accepted one that the apply thread has yet to install.
fn remove_older_snapshots(shared: &Shared, installed: u64) {
    let keep = shared.limits.max_snapshots as usize;
    if keep == 0 {
        return;
    }
    let dir = match std::fs::read_dir(&shared.snap_dir) {
        Ok(dir) => dir,
        Err(e) => {
            tracing::warn!("failed to list {} to remove old snapshot files: {e}", shared.snap_dir.display());
            return;
        }
    };
    let mut older: Vec<(u64, std::path::PathBuf)> = dir
        .flatten()
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|e| e == "snap"))
        .filter_map(|p| {
            let index = p.file_stem().and_then(|s| s.to_str()).and_then(|s| u64::from_str_radix(s, 16).ok())?;
            Some((index, p))
        })
        .filter(|(index, _)| *index <= installed)
        .collect();
    // Newest first; the installed one counts among those kept.
    older.sort_unstable_by_key(|(index, _)| std::cmp::Reverse(*index));
    for (_, path) in older.into_iter().skip(keep) {
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!("failed to remove old snapshot file {}: {e}", path.display());
        }
    }
}
