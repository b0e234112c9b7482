//! A member in-process, driven through its handle with the hostile test guest: the whole path
//! (propose → raft log → apply thread → guest → state database → waiter) and restart.

use std::sync::Arc;

use clap::Parser;

use super::{Node, NodeError, NodeHandle};
use crate::config::{Config, MemberFlags};
use crate::guest::{EngineConfig, Guest, GuestEngine, GuestLimits};

static HOSTILE: &[u8] = include_bytes!(env!("WASMRAFT_HOSTILE_GUEST"));

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    flags: MemberFlags,
}

fn config(dir: &std::path::Path) -> Config {
    let data_dir = dir.to_str().expect("utf-8 temp dir");
    Cli::try_parse_from(["wasmraft", "--data-dir", data_dir]).expect("flags parse").flags.validate().expect("flags are valid")
}

fn guest() -> Arc<Guest> {
    let engine = GuestEngine::new(EngineConfig { max_instances: 8, pooling: true }).expect("engine");
    Arc::new(Guest::load(&engine, HOSTILE, GuestLimits { fuel_per_entry: 200_000_000, memory_bytes: 64 << 20 }).expect("hostile guest loads"))
}

async fn ready(h: &NodeHandle) {
    for _ in 0..200 {
        if h.read_barrier().await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the member never became ready");
}

async fn keyspace(h: &NodeHandle) -> String {
    String::from_utf8(h.query(b"script:scan - - 0 fwd".to_vec()).await.expect("query")).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_entry_changes_nothing_and_the_log_goes_on_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let guest = guest();

    let node = Node::start(&cfg, guest.clone()).expect("node starts");
    let h = node.handle();
    ready(&h).await;
    assert_eq!(h.propose(b"ok:a=1".to_vec()).await, Ok(b"ok".to_vec()));
    let before = keyspace(&h).await;
    assert_eq!(before, "a=1");

    // The guest writes b, then traps: the client gets the trap, the store keeps nothing of it.
    match h.propose(b"put-then-trap:b=2".to_vec()).await {
        Err(NodeError::Guest(text)) => assert!(text.starts_with("wasmraft: guest trapped:"), "{text}"),
        other => panic!("expected a guest trap, got {other:?}"),
    }
    assert_eq!(keyspace(&h).await, before);
    match h.propose(b"loop".to_vec()).await {
        Err(NodeError::Guest(text)) => assert!(text.contains("ran out of fuel"), "{text}"),
        other => panic!("expected out of fuel, got {other:?}"),
    }
    // Each entry runs in a fresh instance: a global never counts past 1.
    assert_eq!(h.propose(b"global-inc".to_vec()).await, Ok(b"1".to_vec()));
    assert_eq!(h.propose(b"global-inc".to_vec()).await, Ok(b"1".to_vec()));
    assert_eq!(h.propose(b"ok:c=3".to_vec()).await, Ok(b"ok".to_vec()));
    assert_eq!(keyspace(&h).await, "a=1,c=3");
    let applied = h.status().raft_applied_index;
    // The handle shares the member's databases; release it so the restart can open them.
    drop(h);
    node.stop();

    // A restart resumes at exactly the applied index: nothing re-applied, nothing lost.
    let node = Node::start(&cfg, guest).expect("node restarts");
    let h = node.handle();
    ready(&h).await;
    assert_eq!(keyspace(&h).await, "a=1,c=3");
    assert!(h.status().raft_applied_index > applied, "the new leader's entry follows the old ones");
    assert_eq!(h.propose(b"ok:d=4".to_vec()).await, Ok(b"ok".to_vec()));
    assert_eq!(keyspace(&h).await, "a=1,c=3,d=4");
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_commands_are_refused_before_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let node = Node::start(&cfg, guest()).expect("node starts");
    let h = node.handle();
    ready(&h).await;
    let index = h.status().raft_index;
    let big = vec![b'x'; cfg.max_request_bytes + 1];
    assert_eq!(h.propose(big).await, Err(NodeError::RequestTooLarge));
    assert_eq!(h.status().raft_index, index, "nothing was proposed");
    node.stop();
}
