//! Opening a member: its raft log and state database (bootstrapping them for a new member,
//! from `--initial-cluster` or from what an existing cluster told a joining one), the
//! replicated subsystems as the state database last recorded them, and the raft and apply
//! threads. What can stop a member from starting is [`StartError`]: the binary prints it and
//! exits, as etcd does, so its texts are what an operator reads.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, RwLock, mpsc};

use tokio::sync::{Notify, watch};
use wasmraft_runtime::GuestRegistry;
use wasmraft_storage::{Identity, RaftLog};

use crate::log_store::LogStore;
use crate::membership::{Member, Membership};
use crate::replicated::Subsystems;
use crate::wait::WaitRegistry;

/// The state database's page cache. redb's default is a GiB, which a keyspace of a million keys
/// filled (1.4 GiB peak RSS against etcd 3.5.1's 0.6 GiB, issue 26): the pages it drops stay in
/// the kernel's page cache, as bbolt's mmap'd pages do for etcd, and a read of one costs a
/// `pread` rather than a disk access.
const STATE_CACHE_BYTES: usize = 256 << 20;
use crate::{
    Joined, Lifecycle, Limits, Node, NodeConfig, NodeHandle, Progress, REMOVED_TEXT, Shared, StateError, active, apply,
    deployment, force_new_cluster, raft_logger, ready_loop, tick_advance,
};

/// Why a member could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data directory or the raft log could not be read, created or synced.
    #[error(transparent)]
    Dir(#[from] wasmraft_storage::IoError),
    #[error(transparent)]
    Log(#[from] wasmraft_storage::LogError),
    #[error("opening state database {}: {source}", path.display())]
    StateDb { path: PathBuf, source: redb::DatabaseError },
    #[error("loading {what}: {source}")]
    State { what: &'static str, source: StateError },
    #[error("loading the active guest: {source}")]
    Guest { source: crate::DeploymentError },
    /// A snapshot from the leader replaced the log, but a crash came before its state was
    /// installed, and installing it now failed.
    #[error("reinstalling snapshot {} (the log starts after it): {source}", path.display())]
    Snapshot { path: PathBuf, source: wasmraft_storage::SnapshotError },
    #[error("--initial-cluster-state=existing needs the existing cluster's members")]
    JoinWithoutMembers,
    /// etcd's text for a `--name` missing from `--initial-cluster`.
    #[error("couldn't find local name {name:?} in the initial cluster configuration")]
    NotInInitialCluster { name: String },
    /// The member was removed from the cluster; etcd refuses to restart it from the same data.
    #[error("member {member_id:x}: {REMOVED_TEXT}; the data-dir used by this member must be removed")]
    Removed { member_id: u64 },
    #[error(
        "state database has applied index {applied} beyond the raft log's last index {last}; the data dir is inconsistent"
    )]
    AppliedBeyondLog { applied: u64, last: u64 },
    /// `--force-new-cluster` could not write its conf changes.
    #[error("--force-new-cluster: {0}")]
    ForceNewCluster(String),
    #[error("starting raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("starting the member's threads: {0}")]
    Thread(std::io::Error),
}

/// Names the record set a [`StateError`] came from.
fn state(what: &'static str) -> impl Fn(StateError) -> StartError {
    move |source| StartError::State { what, source }
}

impl Node {
    /// Opens (or bootstraps) the member's storage and starts the raft and apply threads.
    ///
    /// The guest comes from the state database's deployment record (loaded through `registry`);
    /// a new member has none until the first deploy entry is applied (see
    /// [`Guests::deploy_initial`]).
    pub fn start(cfg: &NodeConfig, registry: Arc<GuestRegistry>) -> Result<Node, StartError> {
        Node::start_joining(cfg, registry, None)
    }

    /// Whether the data dir already holds a member (it restarts as that member, whatever the
    /// `--initial-cluster*` flags say).
    pub fn is_bootstrapped(cfg: &NodeConfig) -> Result<bool, StartError> {
        let member_dir = cfg.data_dir.join("member");
        let wal_dir = cfg.wal_dir();
        if !wal_dir.exists() && !member_dir.join("raft.redb").exists() {
            return Ok(false);
        }
        Ok(RaftLog::open(&wal_dir)?.identity().is_some())
    }

    /// [`Node::start`] for a member that may be joining an existing cluster
    /// (`--initial-cluster-state existing`): `join` is what the cluster told it (see
    /// the binary's `join`); it is used only when the data dir is new.
    pub fn start_joining(
        cfg: &NodeConfig,
        registry: Arc<GuestRegistry>,
        join: Option<Joined>,
    ) -> Result<Node, StartError> {
        let member_dir = cfg.data_dir.join("member");
        wasmraft_storage::durable::create_dir_all(&member_dir)?;
        // The guest cache may have created the data dir and `member/` before this, without
        // syncing their parents, and `create_dir_all` syncs only what it creates itself: a power
        // cut then took the whole member dir, acknowledged writes with it (found by the
        // power-loss trials; regression test
        // tests/tests/power_loss.rs::member_dir_made_by_the_guest_cache_survives_a_power_cut).
        wasmraft_storage::durable::sync_ancestors(&member_dir, 2)?;
        let raft_path = cfg.wal_dir();
        if let Some(parent) = raft_path.parent() {
            wasmraft_storage::durable::create_dir_all(parent)?;
        }
        let state_path = member_dir.join("state.redb");
        let mut log = RaftLog::open(&raft_path)?;
        log.set_max_wals(cfg.raft.max_wals)?;

        // The initial members with their peer URLs, recorded in the state database below when
        // this member is new.
        let mut initial_members: Vec<Member> = Vec::new();
        let restarting = log.identity().is_some();
        let identity = match log.identity() {
            Some(id) => {
                tracing::info!(
                    "etcdserver: restarting member {:x} in cluster {:x} at commit index {}",
                    id.member_id,
                    id.cluster_id,
                    log.hard_state().commit
                );
                id
            }
            None if cfg.join_existing => {
                let join = join.ok_or(StartError::JoinWithoutMembers)?;
                let identity = Identity { member_id: join.member_id, cluster_id: join.cluster_id };
                // Raft starts knowing the cluster as it is now; the log it receives (or the
                // snapshot) brings everything else, as etcd's joining members learn it.
                let voters = join.members.iter().filter(|m| !m.is_learner).map(|m| m.id).collect();
                let learners = join.members.iter().filter(|m| m.is_learner).map(|m| m.id).collect();
                tracing::info!(
                    "etcdserver: joining cluster {:x} as member {:x}",
                    identity.cluster_id,
                    identity.member_id
                );
                log.bootstrap(identity, voters, learners)?;
                initial_members = join.members;
                identity
            }
            None => {
                let ids: Vec<(String, u64)> = cfg
                    .initial_cluster
                    .iter()
                    .map(|(name, urls)| (name.clone(), crate::ids::member_id(urls, &cfg.initial_cluster_token)))
                    .collect();
                let voters: Vec<u64> = ids.iter().map(|(_, id)| *id).collect();
                let cluster_id = crate::ids::cluster_id(&voters);
                let member_id = ids
                    .iter()
                    .find(|(n, _)| *n == cfg.name)
                    .map(|(_, id)| *id)
                    .ok_or_else(|| StartError::NotInInitialCluster { name: cfg.name.clone() })?;
                for (name, id) in &ids {
                    let urls = cfg.initial_cluster[name].clone();
                    tracing::info!(
                        "etcdserver/membership: added member {id:x} [{}] to cluster {cluster_id:x}",
                        urls.join(" ")
                    );
                    initial_members.push(Member { id: *id, peer_urls: urls, ..Default::default() });
                }
                let identity = Identity { member_id, cluster_id };
                log.bootstrap(identity, voters, Vec::new())?;
                identity
            }
        };

        let state_db = redb::Builder::new()
            .set_cache_size(STATE_CACHE_BYTES)
            .create(&state_path)
            .map_err(|source| StartError::StateDb { path: state_path.clone(), source })?;
        // The database's own commits sync its data, not its name in the directory: without
        // this a power cut could lose the whole file after the log was compacted behind it.
        wasmraft_storage::durable::sync_dir(&member_dir)?;
        let snap_dir = member_dir.join("snap");
        wasmraft_storage::durable::create_dir_all(&snap_dir)?;
        let (mut applied_index, _applied_term) = apply::load_applied(&state_db).map_err(state("the applied index"))?;
        if applied_index < log.snapshot_index() {
            // A snapshot from the leader replaced the log, but the crash came before its state
            // was installed: install it now, from the file kept for this.
            let path = wasmraft_storage::snapshot::path_for(&snap_dir, log.snapshot_index());
            applied_index = apply::install_snapshot(&state_db, &path)
                .map_err(|source| StartError::Snapshot { path: path.clone(), source })?;
        }
        let membership = Membership::load(&state_db).map_err(state("the members"))?;
        if membership.is_removed(identity.member_id) {
            return Err(StartError::Removed { member_id: identity.member_id });
        }
        membership.bootstrap(&state_db, &initial_members).map_err(state("the initial members"))?;
        if restarting && cfg.raft.force_new_cluster {
            force_new_cluster::rewrite(&mut log, identity.member_id, &membership.list(), applied_index)?;
        }
        let active = deployment::load_active(&state_db, &registry).map_err(|source| StartError::Guest { source })?;
        let alarms = crate::alarms::Alarms::load(&state_db).map_err(state("the alarms"))?;
        let kv_size = crate::kv_size::KvSize::load(&state_db).map_err(state("the keyspace's size"))?;
        let auth = crate::auth::AuthStore::load(
            &state_db,
            crate::auth::TokenProvider::new(&cfg.auth_token, cfg.auth_token_ttl),
        )
        .map_err(state("the auth store"))?;
        let state_db = wasmraft_storage::StateDb::new(state_db, &state_path);
        if let Some(a) = &active {
            tracing::info!(
                "wasmraft: guest {} {} (sha256 {}) active since index {}, fuel {}, memory {} bytes and stack {} bytes per entry",
                a.record.name,
                a.record.version,
                a.hash_hex(),
                a.record.since_index,
                a.record.fuel_per_entry,
                a.record.memory_bytes,
                a.guest.limits().stack_bytes
            );
        }
        // The state database may be ahead of the commit index the log recorded (commit is
        // persisted lazily); what was applied was committed, so raft may start from there.
        if applied_index > log.hard_state().commit {
            if applied_index > log.last_index() {
                return Err(StartError::AppliedBeyondLog { applied: applied_index, last: log.last_index() });
            }
            log.set_commit(applied_index);
        }
        let sole_voter = log.conf_state().voters == [identity.member_id];
        let logged_before_start = log.last_index();
        let commit = log.hard_state().commit;
        let term = log.hard_state().term;

        let raft_cfg = raft::Config {
            id: identity.member_id,
            election_tick: cfg.election_ticks(),
            heartbeat_tick: 1,
            applied: applied_index,
            check_quorum: true,
            pre_vote: cfg.raft.pre_vote,
            // etcd's maxSizePerMsg and maxInflightMsgs.
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 4096 / 8,
            max_committed_size_per_ready: 16 << 20,
            ..Default::default()
        };
        raft_cfg.validate()?;
        let mut raw = raft::RawNode::new(&raft_cfg, LogStore::new(log), &raft_logger::raft_logger())?;
        if sole_voter {
            // A one-member cluster has nobody to wait for: elect at once instead of after an
            // election timeout (etcd fast-forwards its election ticks for the same reason).
            raw.campaign()?;
        }

        let (to_raft, raft_rx) = mpsc::channel();
        let (to_apply, apply_rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            member_id: identity.member_id,
            cluster_id: identity.cluster_id,
            to_raft,
            waits: WaitRegistry::new(identity.member_id),
            progress: Progress {
                term: AtomicU64::new(term),
                leader: AtomicU64::new(0),
                commit_index: AtomicU64::new(commit.max(applied_index)),
                lone_leader: AtomicBool::new(false),
                raft_wants_applied: AtomicBool::new(false),
                applied: watch::channel(applied_index).0,
            },
            uncommitted: Default::default(),
            replicated: Subsystems {
                membership,
                guest: active::ActiveGuestCell::new(active, registry.clone()),
                auth,
                alarms,
                kv_size,
            },
            registry,
            observers: RwLock::new(Vec::new()),
            peers: std::sync::OnceLock::new(),
            dial_tls: std::sync::OnceLock::new(),
            state_db,
            logged_before_start,
            snap_dir,
            limits: Limits {
                quota_bytes: crate::alarms::quota_bytes(cfg.quota_backend_bytes),
                request_timeout: cfg.request_timeout(),
                max_request_bytes: cfg.max_request_bytes,
                snapshot_count: cfg.snapshot_count,
                snapshot_catchup_entries: cfg.snapshot_catchup_entries,
                strict_reconfig_check: cfg.raft.strict_reconfig_check,
                max_snapshots: cfg.raft.max_snapshots,
                apply: cfg.apply,
                proposal_batch_limit: cfg.raft.proposal_batch_limit,
            },
            life: Lifecycle {
                stopped: AtomicBool::new(false),
                removed: AtomicBool::new(false),
                fatal: Mutex::new(None),
                fatal_notify: Notify::new(),
            },
        });

        let tick = cfg.heartbeat_interval;
        let mut threads = Vec::new();
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("raft".into())
                .spawn(move || ready_loop::run(raw, raft_rx, to_apply, s, tick))
                .map_err(StartError::Thread)?,
        );
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("apply".into())
                // Guest code runs here, with up to the largest Wasm stack a deployment may set.
                .stack_size(wasmraft_runtime::limits::GUEST_THREAD_STACK_BYTES)
                .spawn(move || apply::run(apply_rx, s, applied_index))
                .map_err(StartError::Thread)?,
        );
        if !sole_voter && cfg.raft.initial_election_tick_advance {
            tick_advance::spawn(&shared, cfg.election_ticks());
        } else if !sole_voter {
            tracing::info!("skipping initial election tick advance (election ticks {})", cfg.election_ticks());
        }
        Ok(Node { handle: NodeHandle { inner: shared }, threads })
    }
}
