//! A member in-process, driven through its handle with the hostile test guest: the whole path
//! (propose → raft log → apply thread → guest → state database → waiter) and restart.

use std::sync::Arc;

use super::DeployOptions;
use super::NodeConfig;
use super::{Node, NodeError, NodeHandle};
use wasmraft_runtime::{EngineConfig, GuestEngine, GuestLimits, GuestRegistry};

static HOSTILE: &[u8] = include_bytes!(env!("WASMRAFT_HOSTILE_GUEST"));
static COUNTER: &[u8] = include_bytes!(env!("WASMRAFT_COUNTER_GUEST"));
const LIMITS: GuestLimits = GuestLimits {
    fuel_per_entry: 200_000_000,
    memory_bytes: 64 << 20,
    stack_bytes: wasmraft_runtime::limits::DEFAULT_STACK_BYTES,
};

/// A lone member with etcd's defaults (what `wasmraft --data-dir <dir>` resolves to).
fn config(dir: &std::path::Path) -> NodeConfig {
    NodeConfig {
        name: "default".into(),
        data_dir: dir.to_path_buf(),
        initial_cluster: [("default".to_string(), vec!["http://localhost:2380".to_string()])].into(),
        initial_cluster_token: "etcd-cluster".into(),
        join_existing: false,
        heartbeat_interval: std::time::Duration::from_millis(100),
        election_timeout: std::time::Duration::from_millis(1000),
        quota_backend_bytes: 0,
        max_request_bytes: 1572864,
        snapshot_count: 100_000,
        snapshot_catchup_entries: 5000,
        raft: crate::RaftOptions::default(),
        auth_token: crate::auth::TokenOptions::Simple,
        auth_token_ttl: std::time::Duration::from_secs(300),
        apply: crate::ApplyOptions::default(),
    }
}

fn registry(dir: &std::path::Path) -> Arc<GuestRegistry> {
    let engine = GuestEngine::new(EngineConfig { max_instances: 8, pooling: true }).expect("engine");
    Arc::new(GuestRegistry::new(engine, dir.join("guest-cache")))
}

/// Waits for a leader, then deploys the hostile guest as the first guest (a no-op on restart).
async fn ready(h: &NodeHandle) {
    for _ in 0..200 {
        if h.reads().read_barrier().await.is_ok() {
            h.guests().deploy_initial(HOSTILE.to_vec(), LIMITS).await.expect("the first guest deploys");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the member never became ready");
}

/// Starts the member on `dir` and waits until it serves.
async fn start(cfg: &NodeConfig, dir: &std::path::Path) -> (Node, NodeHandle) {
    let node = Node::start(cfg, registry(dir)).expect("the member starts");
    let h = node.handle();
    ready(&h).await;
    (node, h)
}

async fn keyspace(h: &NodeHandle) -> String {
    String::from_utf8(h.reads().query(b"script:scan - - 0 fwd".to_vec()).await.expect("query")).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_entry_changes_nothing_and_the_log_goes_on_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (node, h) = start(&cfg, dir.path()).await;
    assert_eq!(h.proposals().propose(b"ok:a=1".to_vec()).await, Ok(b"ok".to_vec()));
    let before = keyspace(&h).await;
    assert_eq!(before, "a=1");

    // The guest writes b, then traps: the client gets the trap, the store keeps nothing of it.
    match h.proposals().propose(b"put-then-trap:b=2".to_vec()).await {
        Err(NodeError::Guest(text)) => assert!(text.starts_with("wasmraft: guest trapped:"), "{text}"),
        other => panic!("expected a guest trap, got {other:?}"),
    }
    assert_eq!(keyspace(&h).await, before);
    match h.proposals().propose(b"loop".to_vec()).await {
        Err(NodeError::Guest(text)) => assert!(text.contains("ran out of fuel"), "{text}"),
        other => panic!("expected out of fuel, got {other:?}"),
    }
    // Each entry runs in a fresh instance: a global never counts past 1.
    assert_eq!(h.proposals().propose(b"global-inc".to_vec()).await, Ok(b"1".to_vec()));
    assert_eq!(h.proposals().propose(b"global-inc".to_vec()).await, Ok(b"1".to_vec()));
    assert_eq!(h.proposals().propose(b"ok:c=3".to_vec()).await, Ok(b"ok".to_vec()));
    assert_eq!(keyspace(&h).await, "a=1,c=3");
    let applied = h.status().current().raft_applied_index;
    // The handle shares the member's databases; release it so the restart can open them.
    drop(h);
    node.stop();

    // A restart resumes at exactly the applied index: nothing re-applied, nothing lost.
    let (node, h) = start(&cfg, dir.path()).await;
    assert_eq!(keyspace(&h).await, "a=1,c=3");
    assert!(h.status().current().raft_applied_index > applied, "the new leader's entry follows the old ones");
    assert_eq!(h.proposals().propose(b"ok:d=4".to_vec()).await, Ok(b"ok".to_vec()));
    assert_eq!(keyspace(&h).await, "a=1,c=3,d=4");
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_commands_are_refused_before_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (node, h) = start(&cfg, dir.path()).await;
    let index = h.status().current().raft_index;
    let big = vec![b'x'; cfg.max_request_bytes + 1];
    assert_eq!(h.proposals().propose(big).await, Err(NodeError::RequestTooLarge));
    assert_eq!(h.status().current().raft_index, index, "nothing was proposed");
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_takes_effect_at_its_index_survives_restarts_and_rolls_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (node, h) = start(&cfg, dir.path()).await;
    assert_eq!(h.proposals().propose(b"ok:a=1".to_vec()).await, Ok(b"ok".to_vec()));
    let first = h.guests().guest_status(true).await.expect("status");
    let hostile = first.active.clone().expect("a guest is active");

    // Another guest's name needs --force; nothing changes without it.
    match h.guests().deploy(COUNTER.to_vec(), DeployOptions::default()).await {
        Err(NodeError::DeployRefused(text)) => assert!(text.contains("needs --force"), "{text}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A module that is not a component is refused before the log.
    let index = h.status().current().raft_index;
    match h.guests().deploy(b"\0asm\x01\0\0\0".to_vec(), DeployOptions { force: true, ..Default::default() }).await {
        Err(NodeError::DeployRefused(text)) => assert!(text.contains("not a usable guest"), "{text}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(h.status().current().raft_index, index, "a refused deploy proposes nothing");

    let counter = h
        .guests()
        .deploy(COUNTER.to_vec(), DeployOptions { force: true, fuel_per_entry: 5_000_000, ..Default::default() })
        .await
        .expect("forced deploy");
    assert_eq!(counter.name, "counter");
    assert_eq!(counter.fuel_per_entry, 5_000_000);
    assert_eq!(counter.memory_bytes, LIMITS.memory_bytes, "unset limits keep the active deployment's");
    assert!(counter.since_index > hostile.since_index);
    assert_eq!(h.proposals().propose(b"add 5".to_vec()).await, Ok(b"5".to_vec()));
    assert_eq!(h.guests().active_guest().map(|g| g.name), Some("counter".to_string()));
    let stored = h.guests().stored_modules().await.expect("list");
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().any(|m| m.active && m.name == "counter" && m.deployed_at == vec![counter.since_index]));
    drop(h);
    node.stop();

    // After a restart the member runs the guest the state records, not the one it started with.
    let (node, h) = start(&cfg, dir.path()).await;
    assert_eq!(h.guests().guest_status(false).await.expect("status").active, Some(counter.clone()));
    assert_eq!(h.proposals().propose(b"add 1".to_vec()).await, Ok(b"6".to_vec()));

    // Back to the hostile guest by a prefix of its hash: its keyspace is as it left it, plus
    // the counter's key (a rollback does not undo state; migrate decides what to do with it).
    let prefix = hex::encode(&hostile.sha256)[..12].to_string();
    match h.guests().rollback(&prefix, DeployOptions::default()).await {
        Err(NodeError::DeployRefused(text)) => assert!(text.contains("needs --force"), "{text}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let back =
        h.guests().rollback(&prefix, DeployOptions { force: true, ..Default::default() }).await.expect("rollback");
    assert_eq!(back.sha256, hostile.sha256);
    assert_eq!(h.proposals().propose(b"ok:b=2".to_vec()).await, Ok(b"ok".to_vec()));
    assert!(keyspace(&h).await.starts_with("a=1,b=2"), "{}", keyspace(&h).await);
    match h.guests().rollback("deadbeefdeadbeef", DeployOptions::default()).await {
        Err(NodeError::DeployRefused(text)) => assert!(text.contains("no module that was active before"), "{text}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    node.stop();
}

/// raft-rs turns a conf change proposed while another is unapplied into an empty entry; the
/// member must hold the second one back instead of leaving its caller to time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_conf_changes_all_apply() {
    use crate::conf_change::Change;
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, h) = start(&config(dir.path()), dir.path()).await;
    let id = h.member_id();
    let update = |port: u16| Change::Update { id, peer_urls: vec![format!("http://127.0.0.1:{port}")] };
    let started = std::time::Instant::now();
    let (a, b, c) = tokio::join!(
        h.cluster().change_membership(update(1)),
        h.cluster().change_membership(update(2)),
        h.cluster().change_membership(update(3))
    );
    for r in [a, b, c] {
        assert!(r.is_ok(), "{r:?}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "the changes waited {:?}", started.elapsed());
    let members = h.cluster().members();
    assert_eq!(members.len(), 1);
    assert!(members[0].peer_urls.len() == 1 && members[0].peer_urls[0].starts_with("http://127.0.0.1:"), "{members:?}");
    node.stop();
}

/// A command whose permissions were checked against an older auth store is refused at apply
/// once auth is on (etcd's "revision of auth store is old"); with auth off nothing is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_checked_against_an_older_auth_store_are_refused() {
    use wasmraft_proto::etcdserverpb as epb;
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, h) = start(&config(dir.path()), dir.path()).await;
    let auth = |r: epb::InternalRaftRequest| h.proposals().propose_auth(r);
    let before = h.auth().revision();
    auth(epb::InternalRaftRequest {
        auth_user_add: Some(epb::AuthUserAddRequest {
            name: "root".into(),
            hashed_password: b"x".to_vec(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("user add");
    // Auth is off: a stale stamp still applies.
    assert_eq!(h.proposals().propose_checked(b"ok:a=1".to_vec(), before).await, Ok(b"ok".to_vec()));
    auth(epb::InternalRaftRequest {
        auth_user_grant_role: Some(epb::AuthUserGrantRoleRequest { user: "root".into(), role: "root".into() }),
        ..Default::default()
    })
    .await
    .expect("grant");
    auth(epb::InternalRaftRequest { auth_enable: Some(epb::AuthEnableRequest {}), ..Default::default() })
        .await
        .expect("enable");
    assert!(h.auth().enabled());
    let now = h.auth().revision();
    assert!(now > before + 2, "every change bumps the revision, enabling too: {before} → {now}");
    assert_eq!(
        h.proposals().propose_checked(b"ok:b=2".to_vec(), now - 1).await,
        Err(NodeError::Auth(crate::auth::AuthError::AuthOldRevision))
    );
    assert_eq!(h.proposals().propose_checked(b"ok:b=3".to_vec(), now).await, Ok(b"ok".to_vec()));
    assert!(keyspace(&h).await.contains("b=3"), "{}", keyspace(&h).await);
    // Admin requests without a user are refused at apply now.
    let refused =
        auth(epb::InternalRaftRequest { auth_user_list: Some(epb::AuthUserListRequest {}), ..Default::default() })
            .await;
    assert_eq!(refused, Err(NodeError::Auth(crate::auth::AuthError::UserEmpty)));
    node.stop();
}

/// A lone leader answers read barriers itself (`lone_leader`); after a restart, a barrier that
/// returns has every write acknowledged before the restart applied. (The flag also waits for an
/// entry of the new term to be committed, as raft-rs does; a member alone campaigns, wins and
/// commits that entry within one turn of its raft loop, so no test here can see it unset.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_leaders_read_barrier_covers_writes_from_before_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (node, h) = start(&cfg, dir.path()).await;
    for i in 0..20 {
        assert_eq!(h.proposals().propose(format!("ok:k{i}=v{i}").into_bytes()).await, Ok(b"ok".to_vec()));
    }
    let acknowledged = h.status().current().raft_applied_index;
    assert!(h.inner.progress.lone_leader.load(std::sync::atomic::Ordering::Acquire), "a member alone leads alone");
    drop(h);
    node.stop();

    let node = Node::start(&cfg, registry(dir.path())).expect("the member restarts");
    let h = node.handle();
    let mut answered = false;
    for _ in 0..400 {
        if h.reads().read_barrier().await.is_ok() {
            answered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(answered, "the restarted member never answered a read barrier");
    let status = h.status();
    assert!(
        status.current().raft_applied_index > acknowledged,
        "a barrier returned at applied index {} before the new term's entry after {acknowledged} applied",
        status.current().raft_applied_index
    );
    let keys = keyspace(&h).await;
    assert!((0..20).all(|i| keys.contains(&format!("k{i}=v{i}"))), "{keys}");
    assert!(h.inner.progress.lone_leader.load(std::sync::atomic::Ordering::Acquire));
    node.stop();
}

/// Forged module pieces and deploys, proposed through the log as any proposer could: each is
/// refused with an error for its proposer, the member goes on applying, and replaying them from
/// the log after a restart (the state copied from before they were proposed) panics nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_pieces_and_deploys_are_refused_at_apply_and_on_replay() {
    use wasmraft_proto::wasmraft::v1 as pb;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (node, h) = start(&cfg, dir.path()).await;
    assert_eq!(h.proposals().propose(b"ok:a=1".to_vec()).await, Ok(b"ok".to_vec()));
    drop(h);
    node.stop();
    let state = dir.path().join("member/state.redb");
    let before = dir.path().join("state-before.redb");
    std::fs::copy(&state, &before).expect("copy the state");

    let (node, h) = start(&cfg, dir.path()).await;
    let module: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
    let hash = wasmraft_runtime::sha256(&module).to_vec();
    let piece = |offset: usize, len: usize, total: u64| {
        pb::entry::Kind::GuestModuleChunk(pb::GuestModuleChunk {
            sha256: hash.clone(),
            total_size: total,
            offset: offset as u64,
            data: module[offset..offset + len].to_vec(),
        })
    };
    // The pieces that made the old assembly index past the module, then others off the rules.
    let forged = [
        piece(0, 100, 300),
        piece(50, 100, 300),
        piece(100, 100, 300),
        piece(0, 60, 60),
        piece(0, 300, 299),
        pb::entry::Kind::GuestModuleChunk(pb::GuestModuleChunk {
            sha256: vec![1; 5],
            total_size: 1,
            offset: 0,
            data: vec![0],
        }),
        pb::entry::Kind::GuestModuleChunk(pb::GuestModuleChunk {
            sha256: hash.clone(),
            total_size: u64::MAX,
            offset: u64::MAX,
            data: vec![0],
        }),
        pb::entry::Kind::GuestDeploy(pb::GuestDeploy { sha256: hash.clone(), mode: 42, ..Default::default() }),
        pb::entry::Kind::GuestDeploy(pb::GuestDeploy { sha256: hash.clone(), ..Default::default() }),
    ];
    for (i, kind) in forged.iter().enumerate() {
        match h.propose_entry(kind.clone(), 0).await {
            Err(NodeError::DeployRefused(text)) => assert!(text.starts_with("wasmraft: "), "{text}"),
            other => panic!("forged entry {i} was not refused: {other:?}"),
        }
        assert_eq!(
            h.proposals().propose(format!("ok:k{i}=v").into_bytes()).await,
            Ok(b"ok".to_vec()),
            "the member applies on after entry {i}"
        );
    }
    let after = keyspace(&h).await;
    let applied = h.status().current().raft_applied_index;
    drop(h);
    node.stop();

    // Replay: the state from before the forged entries, the log with them.
    std::fs::copy(&before, &state).expect("restore the state");
    let (node, h) = start(&cfg, dir.path()).await;
    assert!(h.status().current().raft_applied_index > applied, "the log was replayed past the forged entries");
    assert_eq!(keyspace(&h).await, after);
    assert_eq!(
        h.guests().guest_status(false).await.expect("status").active.map(|a| a.name),
        Some("hostile".to_string())
    );
    assert_eq!(h.guests().stored_modules().await.expect("list").len(), 1, "no forged module was stored");
    node.stop();
}

/// Many clients' commands at once: the member packs them into fewer entries than commands, and
/// each command still ends as it would in an entry of its own (successes, a guest's `Err`, a
/// trap after a write, fuel, memory), before and after a restart that replays the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_share_entries_and_each_ends_as_it_would_alone() {
    const N: usize = 300;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (node, h) = start(&cfg, dir.path()).await;
    let before = h.status().current().raft_applied_index;

    let command = |i: usize| match i % 6 {
        0 => "put-then-err".to_string(),
        1 => format!("put-then-trap:t{i}=x"),
        2 if i % 4 == 2 => "loop".to_string(),
        3 if i % 4 == 3 => "alloc:100000000".to_string(),
        _ => format!("ok:k{i:03}={i}"),
    };
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let h = h.clone();
            let c = command(i);
            tokio::spawn(async move { (c.clone(), h.proposals().propose(c.into_bytes()).await) })
        })
        .collect();
    let mut oks = Vec::new();
    for t in tasks {
        let (c, outcome) = t.await.expect("task");
        let (verb, arg) = c.split_once(':').unwrap_or((c.as_str(), ""));
        match (verb, outcome) {
            ("ok", Ok(out)) => {
                assert_eq!(out, b"ok");
                oks.push(arg.to_string());
            }
            ("put-then-err", Err(NodeError::Guest(t))) => assert_eq!(t, "hostile: refused after put"),
            ("put-then-trap", Err(NodeError::Guest(t))) => assert!(t.starts_with("wasmraft: guest trapped:"), "{t}"),
            ("loop", Err(NodeError::Guest(t))) => assert!(t.contains("ran out of fuel"), "{t}"),
            ("alloc", Err(NodeError::Guest(t))) => assert!(t.contains("exceeded its memory limit"), "{t}"),
            (verb, other) => panic!("{verb}: unexpected {other:?}"),
        }
    }
    let entries = h.status().current().raft_applied_index - before;
    assert!(entries < N as u64, "{N} concurrent commands took {entries} entries: nothing was batched");
    oks.sort();
    let expected = oks.join(",");
    assert_eq!(keyspace(&h).await, expected, "only the successful commands wrote");

    drop(h);
    node.stop();
    let (node, h) = start(&cfg, dir.path()).await;
    assert_eq!(keyspace(&h).await, expected, "after a restart");
    node.stop();
}
