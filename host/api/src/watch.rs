//! The Watch service: etcd's `watchServer` (v3rpc/watch.go) over the member's
//! [`WatchHub`](crate::watch_hub::WatchHub).
//!
//! One task per stream does what etcd's `recvLoop` and `sendLoop` do: it reads create, cancel
//! and progress requests, and turns the hub's deliveries into `WatchResponse`s. Being one task,
//! a watcher's "created" response always goes out before its first events (etcd buffers events
//! of not yet announced ids for the same reason). While the client does not read, the task waits
//! on the send, the stream's hub channel fills, and the hub moves its watchers to unsynced:
//! nothing else waits.
//!
//! etcd's details kept: watch ids chosen by the client or allocated from 0 upward per stream,
//! its cancel reasons for a duplicate id and an empty range (a created-and-canceled response
//! with watch id -1), no answer to canceling an unknown id, a compacted response that cancels
//! the watcher, `prev_kv` only when asked and never on a create event (etcd reads it at
//! `rev - 1`, where a created key did not exist), fragments when a response is larger than the
//! max request size plus gRPC overhead, and progress notifications every
//! `--experimental-watch-progress-notify-interval` (at least 100 ms, plus up to 10% jitter),
//! skipped for watchers that got events since the last one.
//!
//! A progress request follows etcd 3.4.25+ (etcd#15220) and 3.4.31 (etcd#17507): it is answered
//! (watch id -1, through the hub, behind every event already queued for the stream) only while
//! every watcher of the stream is synced, so its revision never runs ahead of an event the client
//! has not yet been sent. Otherwise it is deferred, and answered once they all are synced,
//! whether or not catching up brought them any event; etcd 3.4.31 drops such a request instead
//! (its client asks again), see docs/decisions.md. Periodic notifications go per watcher, and
//! only to a synced one, as in etcd.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use wasmraft_proto::etcdserverpb::watch_create_request::FilterType;
use wasmraft_proto::etcdserverpb::watch_request::RequestUnion;
use wasmraft_proto::etcdserverpb::watch_server::Watch;
use wasmraft_proto::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse};
use wasmraft_proto::mvccpb::{Event, event::EventType};

use super::{Api, GRPC_OVERHEAD_BYTES};
use crate::watch_hub::{Delivery, KeyRange, STREAM_BUFFER, WatchHub, WatchSpec};

/// etcd's default progress notification interval.
pub const DEFAULT_PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_secs(600);
/// etcd's `minWatchProgressInterval`: shorter settings are raised to it.
const MIN_PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_millis(100);
/// clientv3's `InvalidWatchID`: responses that belong to no watcher.
const INVALID_WATCH_ID: i64 = -1;
/// clientv3's `AutoWatchID`: "pick an id for me".
const AUTO_WATCH_ID: i64 = 0;
/// etcd's `maxNoLeaderCnt`: election timeouts without a leader before streams that require one
/// are ended.
const MAX_NO_LEADER_COUNT: u32 = 3;
/// Responses queued towards gRPC before the stream task waits for the client.
const OUTBOUND_BUFFER: usize = 16;

// mvcc's errors, which etcd sends as cancel reasons.
const ERR_EMPTY_RANGE: &str = "mvcc: watcher range is empty";
const ERR_DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

pub struct WatchService {
    api: Arc<Api>,
    hub: WatchHub,
    progress_interval: Duration,
}

impl WatchService {
    pub(super) fn new(api: Arc<Api>, hub: WatchHub) -> Self {
        let progress_interval = api.limits.watch_progress_notify_interval;
        if progress_interval < MIN_PROGRESS_NOTIFY_INTERVAL {
            tracing::warn!(
                "adjusting watch progress notify interval to minimum period {:?}",
                MIN_PROGRESS_NOTIFY_INTERVAL
            );
        }
        Self { api, hub, progress_interval: progress_interval.max(MIN_PROGRESS_NOTIFY_INTERVAL) }
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ReceiverStream<Result<WatchResponse, Status>>;

    /// etcd's stream interceptor refuses streams on a learner, and without a leader when the
    /// client requires one.
    async fn watch(&self, request: Request<Streaming<WatchRequest>>) -> Result<Response<Self::WatchStream>, Status> {
        self.api.check_member(&request, false)?;
        self.api.require_kv_guest()?;
        let require_leader =
            request.metadata().get(super::METADATA_REQUIRE_LEADER_KEY).is_some_and(|v| v.as_bytes() == b"true");
        let (out, out_rx) = mpsc::channel(OUTBOUND_BUFFER);
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let stream = Stream {
            credentials: self.api.credentials(&request),
            api: self.api.clone(),
            hub: self.hub.clone(),
            out,
            tx,
            watchers: HashMap::new(),
            by_hub: HashMap::new(),
            next_id: 0,
            deferred_progress: false,
            max_response_bytes: self.api.limits.max_request_bytes.saturating_add(GRPC_OVERHEAD_BYTES),
        };
        let leader_check = require_leader.then_some(self.api.limits.election_timeout);
        tokio::spawn(stream.run(request.into_inner(), rx, jittered(self.progress_interval), leader_check));
        Ok(Response::new(ReceiverStream::new(out_rx)))
    }
}

/// `interval` plus up to a tenth of it, so that watchers created together do not all get
/// their notifications at the same moment (etcd's `GetProgressReportInterval`).
fn jittered(interval: Duration) -> Duration {
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos() as u64);
    let tenth = (interval.as_nanos() / 10).max(1) as u64;
    interval + Duration::from_nanos(seed % tenth)
}

/// One watcher of the stream.
struct Entry {
    hub_id: u64,
    prev_kv: bool,
    fragment: bool,
    progress_notify: bool,
    /// No events went out since the last progress tick (etcd's `progress[id]`).
    idle: bool,
}

struct Stream {
    /// Checked at each watch creation (etcd's `isWatchPermitted`).
    credentials: super::authz::Credentials,
    api: Arc<Api>,
    hub: WatchHub,
    out: mpsc::Sender<Result<WatchResponse, Status>>,
    /// What the hub delivers to this stream's watchers through.
    tx: mpsc::Sender<Delivery>,
    watchers: HashMap<i64, Entry>,
    by_hub: HashMap<u64, i64>,
    next_id: i64,
    /// A progress request waits for the stream's watchers to be synced (etcd's
    /// `deferredProgress`); several requests meanwhile get one answer.
    deferred_progress: bool,
    max_response_bytes: usize,
}

/// The client is gone: the stream ends.
struct Gone;

impl Stream {
    /// Serves the stream until the client goes. With `leader_check` (the client required a
    /// leader), the stream also ends with etcd's "no leader" once the member has had none for
    /// three checks that far apart (etcd's `monitorLeader`).
    async fn run(
        mut self,
        mut inbound: Streaming<WatchRequest>,
        mut rx: mpsc::Receiver<Delivery>,
        interval: Duration,
        leader_check: Option<Duration>,
    ) {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        let check_every = leader_check.unwrap_or(Duration::from_secs(3600));
        let mut leader_ticker = tokio::time::interval_at(tokio::time::Instant::now() + check_every, check_every);
        let mut no_leader = 0;
        let mut reading = true;
        let mut synced = self.hub.synced_changes();
        loop {
            let step = tokio::select! {
                msg = inbound.message(), if reading => match msg {
                    Ok(Some(req)) => self.handle(req).await,
                    // The client closed its side: as in etcd, events keep flowing.
                    Ok(None) => {
                        reading = false;
                        Ok(())
                    }
                    Err(status) => {
                        tracing::debug!(%status, "watch stream receive failed");
                        Err(Gone)
                    }
                },
                Some(d) = rx.recv() => self.deliver(d).await,
                _ = ticker.tick() => {
                    self.progress_tick();
                    Ok(())
                }
                // A watcher somewhere became synced: perhaps the last of this stream's.
                Ok(()) = synced.changed(), if self.deferred_progress => Ok(()),
                _ = leader_ticker.tick(), if leader_check.is_some() => {
                    no_leader = if self.api.node.status().leader() == 0 { no_leader + 1 } else { 0 };
                    if no_leader >= MAX_NO_LEADER_COUNT {
                        let _ = self.out.send(Err(super::errors::NO_LEADER.into())).await;
                        Err(Gone)
                    } else {
                        Ok(())
                    }
                }
                _ = self.out.closed() => Err(Gone),
            };
            if step.is_err() {
                break;
            }
            if self.deferred_progress {
                // Marked seen before looking, so that a watcher synced after the look wakes us.
                synced.mark_unchanged();
                self.request_progress();
            }
        }
        for entry in self.watchers.values() {
            self.hub.cancel(entry.hub_id);
        }
    }

    async fn handle(&mut self, req: WatchRequest) -> Result<(), Gone> {
        match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => self.create(c).await,
            Some(RequestUnion::CancelRequest(c)) => {
                let Some(entry) = self.watchers.remove(&c.watch_id) else { return Ok(()) };
                self.hub.cancel(entry.hub_id);
                self.by_hub.remove(&entry.hub_id);
                let resp = WatchResponse {
                    header: self.header(self.hub.current()),
                    watch_id: c.watch_id,
                    canceled: true,
                    ..Default::default()
                };
                self.send(resp).await
            }
            // Not tied to a watcher: clientv3 hands it to every watcher of the stream. Answered
            // through the hub (see the module's comment); `run` retries a deferred one after
            // every step.
            Some(RequestUnion::ProgressRequest(_)) => {
                self.deferred_progress = true;
                Ok(())
            }
            None => Ok(()),
        }
    }

    async fn create(&mut self, mut c: WatchCreateRequest) -> Result<(), Gone> {
        if c.key.is_empty() {
            // "\0" is the smallest key (etcd's recvLoop).
            c.key = vec![0];
        }
        let keys = KeyRange::new(&c.key, &c.range_end);
        self.hub.ready().await;
        let refused = self.permission(&c).err().or_else(|| match &keys {
            KeyRange::Range(k, e) if k >= e => Some(ERR_EMPTY_RANGE.to_string()),
            _ if c.watch_id != AUTO_WATCH_ID && self.watchers.contains_key(&c.watch_id) => {
                Some(ERR_DUPLICATE_ID.to_string())
            }
            _ => None,
        });
        if let Some(reason) = refused {
            let resp = WatchResponse {
                header: self.header(self.hub.current()),
                watch_id: INVALID_WATCH_ID,
                created: true,
                canceled: true,
                cancel_reason: reason,
                ..Default::default()
            };
            return self.send(resp).await;
        }
        let id = if c.watch_id == AUTO_WATCH_ID {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id += 1;
            self.next_id - 1
        } else {
            c.watch_id
        };
        let spec = WatchSpec {
            keys,
            start_revision: c.start_revision,
            no_put: c.filters.contains(&(FilterType::Noput as i32)),
            no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
            prev_kv: c.prev_kv,
        };
        let (hub_id, revision) = self.hub.watch(spec, self.tx.clone());
        self.watchers.insert(
            id,
            Entry { hub_id, prev_kv: c.prev_kv, fragment: c.fragment, progress_notify: c.progress_notify, idle: true },
        );
        self.by_hub.insert(hub_id, id);
        let resp = WatchResponse { header: self.header(revision), watch_id: id, created: true, ..Default::default() };
        self.send(resp).await
    }

    /// etcd's `isWatchPermitted`, with its cancel reasons. Like etcd, a watch of everything from
    /// a key (`range_end` "\0") is checked as a watch of that key alone.
    fn permission(&self, c: &WatchCreateRequest) -> Result<(), String> {
        use wasmraft_node::auth::{Access, AuthError};
        let range_end: &[u8] = if c.range_end == [0] { b"" } else { &c.range_end };
        let checked = self
            .api
            .resolve(&self.credentials)
            .and_then(|caller| self.api.node.auth().state().check(caller.info(), Access::Read, &c.key, range_end));
        // etcd sends the Go `Error()` of its gRPC status errors as the reason.
        checked.map_err(|e| match e {
            AuthError::InvalidAuthToken => format!("rpc error: code = Unauthenticated desc = {e}"),
            AuthError::AuthOldRevision | AuthError::UserEmpty => {
                format!("rpc error: code = InvalidArgument desc = {e}")
            }
            _ => format!("rpc error: code = PermissionDenied desc = {}", AuthError::PermissionDenied),
        })
    }

    async fn deliver(&mut self, d: Delivery) -> Result<(), Gone> {
        let Some(hub_id) = d.watcher else {
            let resp =
                WatchResponse { header: self.header(d.revision), watch_id: INVALID_WATCH_ID, ..Default::default() };
            return self.send(resp).await;
        };
        // A delivery queued before its watcher was canceled.
        let Some(&id) = self.by_hub.get(&hub_id) else { return Ok(()) };
        let Some(entry) = self.watchers.get_mut(&id) else { return Ok(()) };
        let mut events = d.events;
        for e in &mut events {
            if !entry.prev_kv || is_create(e) {
                e.prev_kv = None;
            }
        }
        if !events.is_empty() {
            entry.idle = false;
        }
        let fragment = entry.fragment;
        let resp = WatchResponse {
            header: self.header(d.revision),
            watch_id: id,
            events,
            compact_revision: d.compact_revision,
            canceled: d.compact_revision != 0,
            ..Default::default()
        };
        if fragment {
            for piece in fragments(resp, self.max_response_bytes) {
                self.send(piece).await?;
            }
            Ok(())
        } else {
            self.send(resp).await
        }
    }

    /// etcd's `RequestProgressAll`, kept pending until it could be answered.
    fn request_progress(&mut self) {
        let ids: Vec<u64> = self.watchers.values().map(|e| e.hub_id).collect();
        if self.hub.progress_all(ids, &self.tx) {
            self.deferred_progress = false;
        }
    }

    fn progress_tick(&mut self) {
        for entry in self.watchers.values_mut().filter(|e| e.progress_notify) {
            if entry.idle {
                self.hub.progress(entry.hub_id);
            }
            entry.idle = true;
        }
    }

    async fn send(&self, resp: WatchResponse) -> Result<(), Gone> {
        self.out.send(Ok(resp)).await.map_err(|_| Gone)
    }

    fn header(&self, revision: i64) -> Option<ResponseHeader> {
        super::header::at(&self.api.node, revision)
    }
}

/// etcd's `isCreateEvent`.
fn is_create(e: &Event) -> bool {
    e.r#type == EventType::Put as i32 && e.kv.as_ref().is_some_and(|kv| kv.create_revision == kv.mod_revision)
}

/// etcd's `sendFragments`: a response of at least `max` bytes with two or more events is split
/// into pieces under `max` (each with at least one event); all but the last say `fragment`.
fn fragments(resp: WatchResponse, max: usize) -> Vec<WatchResponse> {
    if resp.encoded_len() < max || resp.events.len() < 2 {
        return vec![resp];
    }
    let mut template = resp.clone();
    template.events = Vec::new();
    template.fragment = true;
    let mut pieces = Vec::new();
    let mut cur = template.clone();
    for e in resp.events {
        cur.events.push(e);
        if cur.events.len() > 1 && cur.encoded_len() >= max {
            let overflow = cur.events.pop();
            pieces.push(std::mem::replace(&mut cur, template.clone()));
            cur.events.extend(overflow);
        }
    }
    cur.fragment = false;
    pieces.push(cur);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmraft_proto::mvccpb::KeyValue;

    fn put(key: &str, value_len: usize) -> Event {
        Event {
            r#type: EventType::Put as i32,
            kv: Some(KeyValue {
                key: key.into(),
                value: vec![b'x'; value_len],
                mod_revision: 5,
                create_revision: 2,
                ..Default::default()
            }),
            prev_kv: None,
        }
    }

    #[test]
    fn fragments_split_like_etcd() {
        let resp = WatchResponse {
            watch_id: 3,
            events: (0..10).map(|i| put(&format!("k{i}"), 100)).collect(),
            ..Default::default()
        };
        // Small enough: one piece, not marked.
        let whole = fragments(resp.clone(), 1 << 20);
        assert_eq!(whole.len(), 1);
        assert!(!whole[0].fragment);
        // ~110 bytes per event, limit 350: three events per piece (the fourth would pass it).
        let pieces = fragments(resp.clone(), 350);
        assert!(pieces.len() > 1);
        assert!(pieces[..pieces.len() - 1].iter().all(|p| p.fragment && p.encoded_len() < 350));
        assert!(!pieces.last().unwrap().fragment);
        let events: Vec<Event> = pieces.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(events, resp.events);
        // One event larger than the limit still goes, alone.
        let big = WatchResponse { events: vec![put("a", 1000), put("b", 1000)], ..Default::default() };
        let pieces = fragments(big, 500);
        assert_eq!(pieces.iter().map(|p| p.events.len()).collect::<Vec<_>>(), vec![1, 1]);
    }
}
