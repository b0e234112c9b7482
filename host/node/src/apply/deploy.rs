//! Guest modules arriving through the log, and the swap to one of them.

use std::sync::Arc;
use std::time::Instant;

use prost::Message as _;
use redb::WriteTransaction;
use wasmraft_proto::wasmraft::v1 as pb;

use super::super::NodeError;
use super::super::wait::Outcome;
use super::batch::Batch;
use super::failure::ApplyFailure;
use crate::deployment::{self, Deployed};
use wasmraft_runtime::ApplyError;

/// Stores a piece of a module; when it is the last piece, compiles the module ahead of the swap
/// that is likely next, off this thread.
pub(super) fn store_chunk(
    b: &mut Batch,
    txn: &WriteTransaction,
    chunk: &pb::GuestModuleChunk,
    index: u64,
) -> Result<Outcome, ApplyFailure> {
    Ok(match deployment::apply_chunk(txn, chunk, index)? {
        Ok(stored) => {
            if let Some(module) = stored {
                let stack = b
                    .staged
                    .guest
                    .active
                    .as_ref()
                    .map_or(wasmraft_runtime::limits::DEFAULT_STACK_BYTES, |a| a.guest.limits().stack_bytes);
                b.shared.registry.prepare(module, stack);
            }
            Ok(Vec::new())
        }
        Err(refused) => Err(NodeError::DeployRefused(refused.to_string())),
    })
}

/// Swaps to the guest a deploy entry names: the entries after it in this batch run in the new
/// guest, and readers see it once the batch commits.
pub(super) fn swap(
    b: &mut Batch,
    txn: WriteTransaction,
    deploy: &pb::GuestDeploy,
    index: u64,
) -> Result<(WriteTransaction, Outcome), ApplyFailure> {
    let started = Instant::now();
    let active = b.staged.guest.active.clone();
    let (txn, result) = deployment::apply_deploy(txn, deploy, index, active.as_deref(), &b.shared.registry);
    let outcome = match result {
        Ok(Deployed::Switched(a, events, metrics)) => {
            // Another guest's numbers mean nothing for this one (a forced swap to another
            // name); a new version of the same guest keeps counting where the old one stopped,
            // and the first guest of a restored data dir where the restore left them.
            if active.as_ref().is_some_and(|old| old.record.name != a.record.name) {
                b.metrics.clear();
                crate::guest_metrics::clear(&txn)?;
            }
            for (name, update) in metrics {
                wasmraft_runtime::MetricUpdate::merge(&mut b.metrics, name, update);
            }
            // The migration's writes are the entry's: watchers get their events.
            if !events.is_empty() {
                b.observe(index, Vec::new(), Ok(Vec::new()), events);
            }
            tracing::info!(
                "wasmraft: switched to guest {} {} (sha256 {}) at index {}; the swap entry took {:.1} ms to apply",
                a.record.name,
                a.record.version,
                a.hash_hex(),
                index,
                started.elapsed().as_secs_f64() * 1000.0
            );
            wasmraft_metrics::metrics().guest_swaps.inc();
            let out = a.record.encode_to_vec();
            b.staged.guest.active = Some(Arc::new(a));
            b.staged.guest.switched = true;
            // The migration may have rewritten the keyspace.
            b.staged.kv_size.recount(&txn)?;
            Ok(out)
        }
        Ok(Deployed::Unchanged(record)) => Ok(record.encode_to_vec()),
        Err(ApplyError::Guest(text)) => {
            tracing::warn!("wasmraft: guest swap at index {index} refused: {text}");
            Err(NodeError::DeployRefused(text))
        }
        Err(source) => return Err(ApplyFailure::Swap { index, source }),
    };
    Ok((txn, outcome))
}
