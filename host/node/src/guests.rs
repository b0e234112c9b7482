//! Guest deployment as a member's client sees it: validate a module here, move it through the
//! log in pieces, propose the swap, and report what is active.
//!
//! Validation on the receiving member is for clear, early errors; the same rules run again at
//! apply on every member (see `crate::deployment`), which is what makes them binding.

use std::time::{Duration, Instant};

use prost::Message as _;
use wasmraft_proto::wasmraft::v1 as pb;
use wasmraft_runtime::deployment::{check_limits, check_transition, requested_limits};
use wasmraft_runtime::{GuestLimits, GuestRegistry};

use super::{Guests, NodeError, NodeHandle};
use crate::deployment::{self, MAX_MODULE_BYTES, MODULE_CHUNK_BYTES};
use crate::error_chain::Chain;
use pb::guest_deploy::Mode;

/// The most a deploy waits, after its module's pieces are applied, for the other members to
/// compile the module in the background (see `deploy_module`).
const MAX_COMPILE_GRACE: Duration = Duration::from_secs(10);

/// What a deploy asks for besides the module.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeployOptions {
    /// Allow another guest name, or a version that is not higher.
    pub force: bool,
    /// 0 keeps the active deployment's value (the default limits for a first deploy).
    pub fuel_per_entry: u64,
    pub memory_bytes: u64,
    pub stack_bytes: u64,
}

/// A member's view of its guest (the admin API's `Status`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuestStatus {
    pub active: Option<pb::GuestDeployment>,
    pub applied_index: u64,
    /// Lower-case hex; empty unless asked for.
    pub state_sha256: String,
}

fn internal(e: impl std::fmt::Display) -> NodeError {
    NodeError::Internal(e.to_string())
}

impl NodeHandle {
    async fn deploy_module(
        &self,
        module: Vec<u8>,
        opts: DeployOptions,
        mode: Mode,
    ) -> Result<pb::GuestDeployment, NodeError> {
        if module.len() as u64 > MAX_MODULE_BYTES {
            return Err(NodeError::DeployRefused(format!(
                "wasmraft: the module is {} bytes; the limit is {MAX_MODULE_BYTES}",
                module.len()
            )));
        }
        let hash = wasmraft_runtime::sha256(&module);
        let (module, stored, compiled_in) = self.validate(module, hash, opts, mode).await?;
        if !stored {
            let total_size = module.len() as u64;
            for (i, piece) in module.chunks(MODULE_CHUNK_BYTES).enumerate() {
                let chunk = pb::GuestModuleChunk {
                    sha256: hash.to_vec(),
                    total_size,
                    offset: (i * MODULE_CHUNK_BYTES) as u64,
                    data: piece.to_vec(),
                };
                self.propose_entry(pb::entry::Kind::GuestModuleChunk(chunk), 0).await?;
            }
            // Every member starts compiling the module when its last piece is applied, off the
            // apply thread; the swap entry then finds it compiled instead of stalling that
            // member's writes while it compiles. Give them about the time this member took.
            tokio::time::sleep(compiled_in.min(MAX_COMPILE_GRACE)).await;
        }
        let deploy = pb::GuestDeploy {
            sha256: hash.to_vec(),
            fuel_per_entry: opts.fuel_per_entry,
            memory_bytes: opts.memory_bytes,
            mode: mode as i32,
            force: opts.force,
            stack_bytes: opts.stack_bytes,
        };
        let out = self.propose_entry(pb::entry::Kind::GuestDeploy(deploy), 0).await?;
        pb::GuestDeployment::decode(out.as_slice())
            .map_err(|e| internal(format!("decoding the deployment record: {e}")))
    }

    /// Loads the module and checks the swap against this member's state. Returns the module,
    /// whether it is already stored (then its pieces need not travel again) and how long this
    /// member took to compile it (zero if it had it compiled).
    async fn validate(
        &self,
        module: Vec<u8>,
        hash: [u8; 32],
        opts: DeployOptions,
        mode: Mode,
    ) -> Result<(Vec<u8>, bool, Duration), NodeError> {
        let s = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let txn = s.state_db.begin_read().map_err(internal)?;
            let record = deployment::record(&txn).map_err(|e| internal(Chain(&e)))?;
            let limits = requested_limits(record.as_ref(), opts.fuel_per_entry, opts.memory_bytes, opts.stack_bytes);
            // Before anything is loaded: an engine is made per stack limit.
            check_limits(limits).map_err(|e| NodeError::DeployRefused(e.to_string()))?;
            let started = Instant::now();
            let guest = s
                .registry
                .load(&module, limits)
                .map_err(|e| NodeError::DeployRefused(format!("wasmraft: the module is not a usable guest: {e:#}")))?;
            let compiled_in = started.elapsed();
            let was_active_before = deployment::was_active(&txn, &hash).map_err(|e| internal(Chain(&e)))?;
            check_transition(record.as_ref(), guest.info(), &hash, limits, mode, opts.force, was_active_before)
                .map_err(|e| NodeError::DeployRefused(e.to_string()))?;
            let stored = deployment::stored_module(&txn, &hash).map_err(internal)?.is_some();
            Ok((module, stored, compiled_in))
        })
        .await
        .map_err(internal)?
    }
}

impl<'a> Guests<'a> {
    pub fn registry(self) -> &'a GuestRegistry {
        &self.h.inner.registry
    }

    /// Validates `module` as the next guest, stores it through the log and swaps it in on every
    /// member; answers with the deployment as this member applied it.
    pub async fn deploy(self, module: Vec<u8>, opts: DeployOptions) -> Result<pb::GuestDeployment, NodeError> {
        self.h.deploy_module(module, opts, Mode::Upgrade).await
    }

    /// Deploys the first guest of a new cluster. When a guest is already active (another member
    /// won the race, or this member restarted), nothing is proposed and that guest's record is
    /// returned.
    pub async fn deploy_initial(self, module: Vec<u8>, limits: GuestLimits) -> Result<pb::GuestDeployment, NodeError> {
        if let Some(record) = self.h.inner.replicated.guest.deployed().borrow().clone() {
            return Ok(record);
        }
        let opts = DeployOptions {
            force: false,
            fuel_per_entry: limits.fuel_per_entry,
            memory_bytes: limits.memory_bytes,
            stack_bytes: limits.stack_bytes,
        };
        self.h.deploy_module(module, opts, Mode::Initial).await
    }

    /// Swaps back to a module that was active before, named by (a prefix of) its sha256 or by
    /// a version of the active guest.
    pub async fn rollback(self, target: &str, opts: DeployOptions) -> Result<pb::GuestDeployment, NodeError> {
        let s = self.h.inner.clone();
        let target = target.to_string();
        let module = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, NodeError> {
            let txn = s.state_db.begin_read().map_err(internal)?;
            let record = deployment::rollback_target(&txn, &target).map_err(NodeError::DeployRefused)?;
            deployment::stored_module(&txn, &record.sha256).map_err(internal)?.ok_or_else(|| {
                internal(format!("module {} is in the history but not stored", hex::encode(&record.sha256)))
            })
        })
        .await
        .map_err(internal)??;
        self.h.deploy_module(module, opts, Mode::Rollback).await
    }

    /// Resolves once a guest is active on this member (at once if one is).
    pub async fn wait_deployed(self) -> Result<pb::GuestDeployment, NodeError> {
        let mut rx = self.h.inner.replicated.guest.deployed().subscribe();
        let r = rx.wait_for(|d| d.is_some()).await.map_err(|_| NodeError::Stopped)?;
        r.clone().ok_or(NodeError::Stopped)
    }

    /// The active deployment, the applied index and, if asked, a hash of the guest keyspace,
    /// all from one consistent read of this member's state.
    pub async fn guest_status(self, with_state_hash: bool) -> Result<GuestStatus, NodeError> {
        let s = self.h.inner.clone();
        // The applied index and the hash are the file's: commit what was applied first.
        s.commit_state().await?;
        tokio::task::spawn_blocking(move || {
            let txn = s.state_db.begin_read().map_err(internal)?;
            let err = |e: &(dyn std::error::Error + 'static)| internal(Chain(e));
            Ok(GuestStatus {
                active: deployment::record(&txn).map_err(|e| err(&e))?,
                applied_index: wasmraft_storage::snapshot::applied_index(&txn).map_err(|e| err(&e))?,
                state_sha256: if with_state_hash {
                    deployment::state_hash(&txn).map_err(|e| err(&e))?
                } else {
                    String::new()
                },
            })
        })
        .await
        .map_err(internal)?
    }

    /// The modules stored in this member's state.
    pub async fn stored_modules(self) -> Result<Vec<pb::StoredModule>, NodeError> {
        let s = self.h.inner.clone();
        tokio::task::spawn_blocking(move || {
            let txn = s.state_db.begin_read().map_err(internal)?;
            deployment::list(&txn).map_err(|e| internal(Chain(&e)))
        })
        .await
        .map_err(internal)?
    }
}
