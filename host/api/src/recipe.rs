//! etcd's concurrency recipes — the mutex and the election of `clientv3/concurrency` — run
//! inside the member, for the Lock and Election services.
//!
//! etcd serves those services by running the client-side recipes over an in-process client; here
//! they run over the same paths the KV, Lease and Watch services use: transactions and lease
//! grants go through the log, reads take a ReadIndex barrier, and waiting for a key's deletion is
//! a watcher on this member's hub. The recipes are the protocol (which keys, which compares,
//! which order) that etcdctl's `lock`/`elect` and every clientv3 program follow, so they must
//! match etcd's step for step: a server-side lock and a client-side one contend on the same keys.

use std::sync::Arc;

use tokio::sync::mpsc;
use tonic::Status;
use wasmraft_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use wasmraft_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use wasmraft_proto::etcdserverpb::request_op::Request as Op;
use wasmraft_proto::etcdserverpb::response_op::Response as OpResponse;
use wasmraft_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, InternalRaftRequest, LeaseGrantRequest, LeaseGrantResponse,
    PutRequest, RangeRequest, RangeResponse, RequestOp, ResponseHeader, TxnRequest, TxnResponse,
};
use wasmraft_proto::mvccpb::{KeyValue, event::EventType};

use super::errors::OrStatus as _;
use super::{Api, errors};
use crate::watch_hub::{Delivery, KeyRange, STREAM_BUFFER, WatchHub, WatchSpec};

/// clientv3/concurrency's `defaultSessionTTL`: the lease a session grants when given none.
/// etcd's lock and election servers orphan that session, so such a lease is never kept alive and
/// lapses after this long.
const SESSION_TTL: i64 = 60;

/// The recipes' access to the member: its API layer and its watch hub.
#[derive(Clone)]
pub(super) struct Recipes {
    api: Arc<Api>,
    hub: WatchHub,
    /// Whose permissions the recipe's reads and writes are checked with (the client's, as
    /// etcd's lock and election servers call the KV API with the client's context).
    caller: super::authz::Caller,
}

/// An election's leadership as etcd's servers hand it out (`v3electionpb.LeaderKey`'s fields).
pub(super) struct Leadership {
    pub key: Vec<u8>,
    pub rev: i64,
    pub lease: i64,
    pub header: Option<ResponseHeader>,
}

impl Recipes {
    pub(super) fn new(api: Arc<Api>, hub: WatchHub) -> Self {
        Self { api, hub, caller: super::authz::Caller::default() }
    }

    /// [`Recipes::check_request`], then [`Recipes::acting_for`] the request's caller.
    pub(super) fn for_request<T>(&self, request: &tonic::Request<T>) -> Result<Recipes, Status> {
        self.check_request(request)?;
        self.acting_for(request)
    }

    /// The checks every Lock and Election call starts with: a voting member (etcd's
    /// interceptor), the KV guest.
    pub(super) fn check_request<T>(&self, request: &tonic::Request<T>) -> Result<(), Status> {
        self.api.check_member(request, false)?;
        self.api.require_kv_guest()
    }

    /// The recipes acting for the request's caller. etcd's servers pass the caller's token on
    /// to each KV call, so one that is not live fails as those calls fail
    /// ([`inner_client_error`]).
    pub(super) fn acting_for<T>(&self, request: &tonic::Request<T>) -> Result<Recipes, Status> {
        let caller = self.api.caller(request).map_err(inner_client_error)?;
        Ok(Recipes { caller, ..self.clone() })
    }

    pub(super) fn api(&self) -> &Api {
        &self.api
    }

    /// etcd's session: the given lease, or a fresh one of [`SESSION_TTL`] seconds for 0.
    pub(super) async fn session_lease(&self, lease: i64) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let mut id = 0;
        while id == 0 {
            id = (self.api.request_ids.next() & (i64::MAX as u64)) as i64;
        }
        let grant = LeaseGrantRequest { ttl: SESSION_TTL, id };
        let resp: LeaseGrantResponse = self
            .api
            .propose(
                &self.caller,
                InternalRaftRequest { lease_grant: Some(grant), ..Default::default() },
                "LeaseGrantResponse",
            )
            .await
            .map_err(inner_client_error)?;
        if !resp.error.is_empty() {
            return Err(Status::unknown(resp.error));
        }
        Ok(resp.id)
    }

    /// `Mutex.Lock`: queue under `name/` with the session's lease and wait until every older
    /// waiter's key is gone, then make sure the own key is still there. Returns the key held and
    /// the header of that last read. If the wait fails (or the caller goes away) the key is
    /// deleted again, as etcd does.
    pub(super) async fn lock(&self, name: &[u8], lease: i64) -> Result<(Vec<u8>, Option<ResponseHeader>), Status> {
        let prefix = [name, b"/"].concat();
        let my_key = lease_key(&prefix, lease);
        let txn = TxnRequest {
            compare: vec![created_at(&my_key, 0)],
            success: vec![put(&my_key, b"", lease), op_range(first_created(&prefix))],
            failure: vec![op_range(plain_get(&my_key)), op_range(first_created(&prefix))],
        };
        let resp = self.txn(txn).await?;
        let mut my_rev = resp.header.as_ref().map_or(0, |h| h.revision);
        if !resp.succeeded {
            my_rev = range_at(&resp, 0).and_then(|r| r.kvs.first()).map_or(my_rev, |kv| kv.create_revision);
        }
        let owner = range_at(&resp, 1).and_then(|r| r.kvs.first());
        if owner.is_none_or(|kv| kv.create_revision == my_rev) {
            return Ok((my_key, resp.header));
        }
        let release = Release::new(self.clone(), my_key.clone());
        self.wait_deletes(&prefix, my_rev - 1).await?;
        let mine = self.range(plain_get(&my_key)).await?;
        // Nothing left to delete if the key is gone, as etcd leaves it.
        release.disarm();
        Ok((my_key, key_kept(mine)?))
    }

    /// `Election.Campaign`: like the lock, and a campaigner whose key exists with another value
    /// proclaims the new one first.
    pub(super) async fn campaign(&self, name: &[u8], lease: i64, value: &[u8]) -> Result<Leadership, Status> {
        let prefix = [name, b"/"].concat();
        let key = lease_key(&prefix, lease);
        let txn = TxnRequest {
            compare: vec![created_at(&key, 0)],
            success: vec![put(&key, value, lease)],
            failure: vec![op_range(plain_get(&key))],
        };
        let resp = self.txn(txn).await?;
        let mut me =
            Leadership { key, rev: resp.header.as_ref().map_or(0, |h| h.revision), lease, header: resp.header };
        if !resp.succeeded {
            let existing = range_at(&resp, 0).and_then(|r| r.kvs.first()).cloned();
            if let Some(kv) = existing {
                me.rev = kv.create_revision;
                if kv.value != value
                    && let Err(e) = self.proclaim(&me, value).await
                {
                    let _ = self.resign(&me).await;
                    return Err(e);
                }
            }
        }
        let release = Release::new(self.clone(), me.key.clone());
        self.wait_deletes(&prefix, me.rev - 1).await?;
        release.disarm();
        Ok(me)
    }

    /// `Election.Proclaim`: a new value, only while the key is still the one created at `rev`.
    pub(super) async fn proclaim(&self, me: &Leadership, value: &[u8]) -> Result<Option<ResponseHeader>, Status> {
        let txn = TxnRequest {
            compare: vec![created_at(&me.key, me.rev)],
            success: vec![put(&me.key, value, me.lease)],
            failure: vec![],
        };
        let resp = self.txn(txn).await?;
        if !resp.succeeded {
            return Err(Status::unknown(ERR_NOT_LEADER));
        }
        Ok(resp.header)
    }

    /// `Election.Resign`: deletes the key if it is still the leadership's.
    pub(super) async fn resign(&self, me: &Leadership) -> Result<Option<ResponseHeader>, Status> {
        let delete = RequestOp {
            request: Some(Op::RequestDeleteRange(DeleteRangeRequest { key: me.key.clone(), ..Default::default() })),
        };
        let txn = TxnRequest { compare: vec![created_at(&me.key, me.rev)], success: vec![delete], failure: vec![] };
        Ok(self.txn(txn).await?.header)
    }

    /// `Election.Leader`: the oldest campaigner's key under `name/`.
    pub(super) async fn leader(&self, name: &[u8]) -> Result<(Option<ResponseHeader>, KeyValue), Status> {
        let prefix = [name, b"/"].concat();
        let resp = self.range(first_created(&prefix)).await?;
        match resp.kvs.into_iter().next() {
            Some(kv) => Ok((resp.header, kv)),
            None => Err(Status::unknown(ERR_NO_LEADER)),
        }
    }

    /// `Election.Observe`: every value the election's leaders proclaim, in order, sent to `out`
    /// until it closes (the client went away) or a watch fails.
    pub(super) async fn observe(
        &self,
        name: &[u8],
        out: mpsc::Sender<(ResponseHeader, KeyValue)>,
    ) -> Result<(), Status> {
        let prefix = [name, b"/"].concat();
        loop {
            let resp = self.range(first_created(&prefix)).await?;
            let (mut header, kv) = match resp.kvs.into_iter().next() {
                Some(kv) => (resp.header.unwrap_or_default(), kv),
                None => {
                    // No leader yet: the first put under the prefix is the first leader.
                    let from = resp.header.map_or(0, |h| h.revision);
                    let mut w = self.watch(KeyRange::new(&prefix, &wasmraft_guest_sdk::prefix_end(&prefix)), from)?;
                    loop {
                        let d = w.next().await?;
                        if let Some(kv) =
                            d.events.into_iter().find(|e| e.r#type == EventType::Put as i32).and_then(|e| e.kv)
                        {
                            let header = ResponseHeader { revision: kv.mod_revision, ..Default::default() };
                            break (header, kv);
                        }
                    }
                }
            };
            let from = header.revision + 1;
            if out.send((header, kv.clone())).await.is_err() {
                return Ok(());
            }
            // The leader's later proclamations, until its key is deleted.
            let mut w = self.watch(KeyRange::new(&kv.key, &[]), from)?;
            'leader: loop {
                let d = w.next().await?;
                for e in d.events {
                    if e.r#type == EventType::Delete as i32 {
                        break 'leader;
                    }
                    header.revision = d.revision;
                    if let Some(kv) = e.kv
                        && out.send((header, kv)).await.is_err()
                    {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// `waitDeletes`: until no key under `prefix` created at or before `max_create_rev` is left,
    /// wait for the newest such key's deletion.
    async fn wait_deletes(&self, prefix: &[u8], max_create_rev: i64) -> Result<(), Status> {
        loop {
            let mut get = last_created(prefix);
            get.max_create_revision = max_create_rev;
            let resp = self.range(get).await?;
            let header = resp.header.unwrap_or_default();
            let Some(last) = resp.kvs.into_iter().next() else {
                return Ok(());
            };
            let mut w = self.watch(KeyRange::new(&last.key, &[]), header.revision)?;
            'deleted: loop {
                let d = w.next().await?;
                if d.events.iter().any(|e| e.r#type == EventType::Delete as i32) {
                    break 'deleted;
                }
            }
        }
    }

    /// `Mutex.Unlock` (and etcd's Unlock call): deletes the key.
    pub(super) async fn unlock(&self, key: Vec<u8>) -> Result<DeleteRangeResponse, Status> {
        let delete = DeleteRangeRequest { key, ..Default::default() };
        self.api
            .propose(
                &self.caller,
                InternalRaftRequest { delete_range: Some(delete), ..Default::default() },
                "DeleteRangeResponse",
            )
            .await
            .map_err(inner_client_error)
    }

    async fn txn(&self, txn: TxnRequest) -> Result<TxnResponse, Status> {
        self.api
            .propose(&self.caller, InternalRaftRequest { txn: Some(txn), ..Default::default() }, "TxnResponse")
            .await
            .map_err(inner_client_error)
    }

    /// A linearizable read, as clientv3's Get.
    async fn range(&self, r: RangeRequest) -> Result<RangeResponse, Status> {
        let read = async {
            self.api.node.reads().read_barrier().await.or_status()?;
            let checked_at = self.api.check_read(&self.caller, &r.key, &r.range_end)?;
            let answer = self.api.node.reads().query(prost::Message::encode_to_vec(&r)).await.or_status()?;
            self.api.finish_read(&self.caller, checked_at)?;
            <RangeResponse as prost::Message>::decode(answer.as_slice())
                .map_err(|e| errors::bad_guest_response("RangeResponse", e))
        };
        read.await.map_err(inner_client_error)
    }

    fn watch(&self, keys: KeyRange, start_revision: i64) -> Result<Watching, Status> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let spec = WatchSpec { keys, start_revision, no_put: false, no_delete: false, prev_kv: false };
        let (id, _) = self.hub.watch(spec, tx);
        Ok(Watching { hub: self.hub.clone(), id, rx })
    }
}

/// An error of the KV or Lease API as the recipes' callers get it. etcd's lock and election
/// servers make those calls through an in-process clientv3, which turns each of etcd's error
/// statuses into a plain error (`rpctypes.EtcdError`); gRPC sends that with code Unknown and the
/// same text. Other statuses (not etcd's) pass through as they are.
fn inner_client_error(s: Status) -> Status {
    if s.message().starts_with("etcdserver: ") { Status::unknown(s.message()) } else { s }
}

/// clientv3/concurrency's `ErrElectionNotLeader` and `ErrElectionNoLeader`; etcd's servers
/// return them as plain errors, which gRPC sends with code Unknown.
const ERR_NOT_LEADER: &str = "election: not leader";
const ERR_NO_LEADER: &str = "election: no leader";

/// clientv3/concurrency's `ErrSessionExpired` (etcd 3.5), the same way.
const ERR_SESSION_EXPIRED: &str = "mutex: session is expired";

/// etcd 3.5's check after a lock's wait (etcd-io/etcd#11456), on the read of the caller's own
/// key: the session's lease may have expired while it waited, deleting the key, and then the
/// next waiter goes ahead too; answering "locked" would give two callers the lock. The read's
/// header if the key is there; etcd's error if it is gone.
fn key_kept(mine: RangeResponse) -> Result<Option<ResponseHeader>, Status> {
    if mine.kvs.is_empty() {
        return Err(Status::unknown(ERR_SESSION_EXPIRED));
    }
    Ok(mine.header)
}

/// A watcher on the hub, canceled when dropped.
struct Watching {
    hub: WatchHub,
    id: u64,
    rx: mpsc::Receiver<Delivery>,
}

impl Watching {
    /// The next delivery; a compacted start or a closed hub is clientv3's watch error.
    async fn next(&mut self) -> Result<Delivery, Status> {
        match self.rx.recv().await {
            Some(d) if d.compact_revision != 0 => Err(errors::COMPACTED.into()),
            Some(d) => Ok(d),
            None => Err(Status::unknown("lost watcher waiting for delete")),
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.hub.cancel(self.id);
    }
}

/// Deletes a queued key unless disarmed: a lock or campaign that fails or is abandoned while
/// waiting (the client canceled the call, which drops its future) must leave the queue, as
/// etcd's recipe unlocks or resigns when its wait returns an error.
struct Release {
    recipes: Option<Recipes>,
    key: Vec<u8>,
}

impl Release {
    fn new(recipes: Recipes, key: Vec<u8>) -> Self {
        Self { recipes: Some(recipes), key }
    }

    fn disarm(mut self) {
        self.recipes = None;
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let (Some(recipes), Ok(rt)) = (self.recipes.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let key = std::mem::take(&mut self.key);
        rt.spawn(async move {
            let delete = DeleteRangeRequest { key, ..Default::default() };
            let r: Result<wasmraft_proto::etcdserverpb::DeleteRangeResponse, Status> = recipes
                .api
                .propose(
                    &super::authz::Caller::system(),
                    InternalRaftRequest { delete_range: Some(delete), ..Default::default() },
                    "DeleteRangeResponse",
                )
                .await;
            if let Err(e) = r {
                tracing::warn!("could not remove an abandoned lock or campaign key: {e}");
            }
        });
    }
}

/// `<prefix><lease id in lower-case hex>`, the recipes' key for a session.
fn lease_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    [prefix, format!("{lease:x}").as_bytes()].concat()
}

/// `CreateRevision(key) == rev`.
fn created_at(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(TargetUnion::CreateRevision(rev)),
    }
}

fn put(key: &[u8], value: &[u8], lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..Default::default()
        })),
    }
}

fn op_range(r: RangeRequest) -> RequestOp {
    RequestOp { request: Some(Op::RequestRange(r)) }
}

fn plain_get(key: &[u8]) -> RangeRequest {
    RangeRequest { key: key.to_vec(), ..Default::default() }
}

/// clientv3's `WithFirstCreate`: the key under the prefix created first.
fn first_created(prefix: &[u8]) -> RangeRequest {
    by_create(prefix, SortOrder::Ascend)
}

/// clientv3's `WithLastCreate`: the key under the prefix created last.
fn last_created(prefix: &[u8]) -> RangeRequest {
    by_create(prefix, SortOrder::Descend)
}

fn by_create(prefix: &[u8], order: SortOrder) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: wasmraft_guest_sdk::prefix_end(prefix),
        limit: 1,
        sort_order: order as i32,
        sort_target: SortTarget::Create as i32,
        ..Default::default()
    }
}

fn range_at(resp: &TxnResponse, i: usize) -> Option<&RangeResponse> {
    match resp.responses.get(i)?.response.as_ref()? {
        OpResponse::ResponseRange(r) => Some(r),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_recipes() {
        assert_eq!(lease_key(b"L/", 0x3ceea1fd7b464605), b"L/3ceea1fd7b464605".to_vec());
        let r = first_created(b"E/");
        assert_eq!((r.range_end.as_slice(), r.limit, r.sort_target), (&b"E0"[..], 1, SortTarget::Create as i32));
        assert_eq!(last_created(b"E/").sort_order, SortOrder::Descend as i32);
    }
}
