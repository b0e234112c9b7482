//! Proposal batching (issue 26): many clients' commands packed into one raft entry must be
//! indistinguishable, to every client and watcher, from the same commands one per entry.
//!
//! Forty clients write at once through all three members of a cluster (puts, two-put txns,
//! deletes). Then:
//! - the log holds fewer entries than there were commands (the batching happened);
//! - every write got its own revision, and the revisions run without a gap;
//! - a watcher from the first revision sees each write as its own revision, in order, with
//!   exactly the events of that write, a txn's two in one response;
//! - HashKV is the same on every member;
//! - the same writes, replayed one by one in revision order on a member that puts one command
//!   in each entry (`--wasmraft-proposal-batch-limit=1`), give the same revisions, the same
//!   watch history and the same HashKV.

use std::time::Duration;

use etcd_client::{Client, EventType, Txn, TxnOp, WatchOptions};
use wasmraft_tests::cluster::ClusterConfig;
use wasmraft_tests::{Flavor, Member, MemberConfig};

const CLIENTS: usize = 40;
const PER_CLIENT: usize = 15;

/// One write, as a client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Put(String, String),
    /// A txn of two puts: one revision, two events.
    TxnPuts([(String, String); 2]),
    Delete(String),
}

impl Op {
    /// Client `c`'s `i`th write. A delete removes what the txn just before it wrote, so every
    /// write changes something and takes a revision.
    fn of(c: usize, i: usize) -> Op {
        let key = |k: &str| format!("b/{c:02}/{k}");
        match i % 5 {
            3 => Op::TxnPuts([(key("t1"), format!("t{i}")), (key("t2"), format!("t{i}"))]),
            4 => Op::Delete(key("t1")),
            _ => Op::Put(key(&format!("p{}", i % 3)), format!("v{c}-{i}")),
        }
    }

    /// The events the write makes, as (type, key, value).
    fn events(&self) -> Vec<(EventType, String, String)> {
        match self {
            Op::Put(k, v) => vec![(EventType::Put, k.clone(), v.clone())],
            Op::TxnPuts(puts) => puts.iter().map(|(k, v)| (EventType::Put, k.clone(), v.clone())).collect(),
            Op::Delete(k) => vec![(EventType::Delete, k.clone(), String::new())],
        }
    }

    /// Sends the write; returns the revision its response carries.
    async fn send(&self, client: &mut Client) -> Result<i64, etcd_client::Error> {
        let header = match self {
            Op::Put(k, v) => client.put(k.as_str(), v.as_str(), None).await?.header().cloned(),
            Op::TxnPuts(puts) => {
                let ops: Vec<TxnOp> = puts.iter().map(|(k, v)| TxnOp::put(k.as_str(), v.as_str(), None)).collect();
                client.txn(Txn::new().and_then(ops)).await?.header().cloned()
            }
            Op::Delete(k) => {
                let resp = client.delete(k.as_str(), None).await?;
                assert_eq!(resp.deleted(), 1, "{k} was there to delete");
                resp.header().cloned()
            }
        };
        Ok(header.expect("a response header").revision())
    }
}

/// Every event from `from` to `to`, as (revision, type, key, value), checking that no response
/// splits a revision's events.
async fn history(endpoint: &str, from: i64, to: i64) -> Vec<(i64, EventType, String, String)> {
    let mut client = Client::connect([endpoint], None).await.expect("connect");
    let mut stream =
        client.watch("b/", Some(WatchOptions::new().with_prefix().with_start_revision(from))).await.expect("watch");
    let mut out: Vec<(i64, EventType, String, String)> = Vec::new();
    while out.last().is_none_or(|e| e.0 < to) {
        let msg = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("the watch goes on delivering")
            .expect("watch stream")
            .expect("a message");
        if let Some(first) = msg.events().first().and_then(|e| e.kv()) {
            let before = out.last().map(|e| e.0);
            assert!(before < Some(first.mod_revision()), "a revision's events were split across responses");
        }
        for e in msg.events() {
            let kv = e.kv().expect("an event's kv");
            out.push((
                kv.mod_revision(),
                e.event_type(),
                kv.key_str().expect("utf-8").to_string(),
                kv.value_str().expect("utf-8").to_string(),
            ));
        }
    }
    out
}

async fn hash_kv(endpoint: &str, revision: i64) -> u32 {
    let mut client = Client::connect([endpoint], None).await.expect("connect");
    client.hash_kv(revision).await.expect("hash_kv").hash()
}

#[test]
fn batched_entries_give_the_revisions_events_and_hash_of_one_command_per_entry() {
    let _one = wasmraft_tests::one_cluster_at_a_time();
    let mut cluster = ClusterConfig::new(Flavor::Wasmraft, 3).start();
    cluster.wait_leader(Duration::from_secs(30));
    let endpoints = cluster.endpoints();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");

    let before = rt.block_on(async {
        let mut c = Client::connect([endpoints[0].as_str()], None).await.expect("connect");
        c.status().await.expect("status").raft_index()
    });
    let mut written: Vec<(i64, Op)> = rt.block_on(async {
        let mut clients = Vec::new();
        for e in &endpoints {
            clients.push(Client::connect([e.as_str()], None).await.expect("connect"));
        }
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let mut client = clients[c % clients.len()].clone();
                tokio::spawn(async move {
                    let mut done = Vec::new();
                    for i in 0..PER_CLIENT {
                        let op = Op::of(c, i);
                        let rev = op.send(&mut client).await.unwrap_or_else(|e| panic!("client {c}: {op:?}: {e}"));
                        done.push((rev, op));
                    }
                    done
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("client task"));
        }
        all
    });
    written.sort_by_key(|(rev, _)| *rev);
    let total = CLIENTS * PER_CLIENT;
    let revisions: Vec<i64> = written.iter().map(|(r, _)| *r).collect();
    let first = revisions[0];
    assert_eq!(first, 2, "a fresh cluster's first write is revision 2");
    let last = first + total as i64 - 1;
    assert_eq!(revisions, (first..=last).collect::<Vec<_>>(), "one revision per write, without gaps");

    let statuses = cluster.wait_converged(Duration::from_secs(30));
    let entries = statuses.iter().map(|(_, s)| s.raft_index).max().unwrap_or(0) - before;
    eprintln!("{total} writes from {CLIENTS} clients took {entries} raft entries");
    assert!(entries < total as u64, "{total} writes took {entries} entries: nothing was batched");

    // The watch history: each write its own revision, with exactly its events.
    let expected: Vec<(i64, EventType, String, String)> =
        written.iter().flat_map(|(rev, op)| op.events().into_iter().map(move |(t, k, v)| (*rev, t, k, v))).collect();
    let batched_history = rt.block_on(history(&endpoints[1], first, last));
    assert_eq!(batched_history, expected, "the watch history of the batched writes");

    let hashes: Vec<u32> = endpoints.iter().map(|e| rt.block_on(hash_kv(e, last))).collect();
    assert!(hashes.iter().all(|h| *h == hashes[0]), "HashKV at {last} differs between members: {hashes:?}");

    // The same writes one per entry, in revision order, on a member that never batches.
    let lone = Member::start_with(MemberConfig::new(Flavor::Wasmraft).arg("--wasmraft-proposal-batch-limit=1"));
    let lone_endpoint = lone.endpoint();
    let lone_written: Vec<i64> = rt.block_on(async {
        let mut c = Client::connect([lone_endpoint.as_str()], None).await.expect("connect");
        let mut revs = Vec::new();
        for (_, op) in &written {
            revs.push(op.send(&mut c).await.expect("sequential write"));
        }
        revs
    });
    assert_eq!(lone_written, revisions, "the same writes one per entry take the same revisions");
    assert_eq!(rt.block_on(hash_kv(&lone_endpoint, last)), hashes[0], "one command per entry: the same HashKV");
    let lone_history = rt.block_on(history(&lone_endpoint, first, last));
    assert_eq!(lone_history, batched_history, "one command per entry: the same watch history");
}
