//! Fault injection, for tests only: network partitions, blackholes and delays made inside the
//! transport.
//!
//! A fault-injection harness has to cut real traffic between members running as separate
//! processes on one loopback interface, without root (no iptables, no network namespaces on CI).
//! The transport is where every byte between two members passes, so the cut is made here: when
//! the host enables it ([`crate::TransportConfig::fault_injection`], wasmraft's
//! `--wasmraft-fault-injection` flag) a member can be told, through `PUT /wasmraft/faults` on its
//! *peer* URL, a rule for each other member it should not talk to normally. Three rules:
//!
//! **cut** (a refused link, what a closed port or a dead host answers at once). At this member:
//!
//! - outgoing raft messages are dropped and reported unreachable to raft (and a MsgSnap's
//!   snapshot as failed), as a dead network would make them; the pipeline and the snapshot
//!   sender refuse to post;
//! - incoming pipeline posts, snapshots and stream requests from them are refused (503);
//! - existing streams in both directions are closed (our writers end the response bodies they
//!   feed, our readers drop the connections they read), and our readers do not redial until the
//!   cut heals.
//!
//! A partition is the harness cutting both sides (A cuts B and B cuts A); a one-sided cut is
//! still a full cut of the pair's raft traffic, since each side's refusals stop the other's.
//!
//! **drop** (a blackhole, one way): this member's raft messages to that member vanish without a
//! word — raft is not told the peer is unreachable, connections stay open, the other member's
//! messages still arrive. Only missing answers tell either side, as with a lost route or a
//! firewall that drops. A two-way blackhole is the harness setting `drop` on both sides; on one
//! side only it is a one-way partition (A hears B, B never hears A). A snapshot to a dropped
//! member fails, as its sender's timeout would make it.
//!
//! **delay** (a slow link, one way): this member's raft messages to that member are held for a
//! fixed time and then sent, in the order they were sent (one queue per peer, see
//! [`DelayLines`]); snapshots are not delayed.
//! The peer prober (`/raft/probing`) is left alone: it carries no raft message and an incoming
//! probe does not say who sent it; only the peer health metrics see it.
//!
//! Why the peer URL rather than the client URL: the fault is a peer-network condition and lives
//! entirely in this crate (the host only passes the flag), and the client port stays exactly
//! etcd's API. Without the flag the path answers 404 like any unknown path, as etcd's does.
//!
//! The endpoint speaks plain text. A rule is written `<id>` (cut), `<id>:drop` or
//! `<id>:delay=<ms>`, the id in etcd's lowercase hex. `GET` answers the rules (one
//! comma-separated line, ordered by id, empty when healed); `PUT` (or `POST`) with a body of
//! rules separated by commas or whitespace replaces them all (an empty body heals) and answers
//! the new set.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use raft::eraftpb::Message;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::body::{BodyReader, ChannelBody};
use crate::shared::Shared;
use crate::util::{id_str, method_not_allowed, parse_id, text_error};

/// The admin path on the peer URL.
pub const FAULTS_PATH: &str = "/wasmraft/faults";

/// The body of every refusal of a cut member's request.
pub const CUT_REFUSAL: &str = "cut off by fault injection";

/// Largest accepted `PUT` body (a few hundred rules).
const MAX_BODY: usize = 16 * 1024;

/// Longest accepted delay: past it a link is as good as dropped, and a held message would pin
/// its memory for longer than any test runs.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// What this member does with its traffic to one other member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultRule {
    /// Refused both ways, and raft told the peer is unreachable.
    Cut,
    /// This member's messages to the peer vanish, silently.
    Drop,
    /// This member's messages to the peer are sent this much later, in order.
    Delay(Duration),
}

/// What [`Faults::outgoing`] says to do with one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outgoing {
    Send,
    Cut,
    Drop,
    Delay(Duration),
}

/// The rules of this member, watched by the stream tasks so that a new cut closes connections
/// that are already open.
pub(crate) struct Faults {
    enabled: bool,
    rules: watch::Sender<Arc<BTreeMap<u64, FaultRule>>>,
}

impl Faults {
    pub(crate) fn new(enabled: bool) -> Faults {
        Faults { enabled, rules: watch::Sender::new(Arc::new(BTreeMap::new())) }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether traffic with `id` is cut (always false when fault injection is off).
    pub(crate) fn is_cut(&self, id: u64) -> bool {
        self.enabled && self.rules.borrow().get(&id) == Some(&FaultRule::Cut)
    }

    /// What to do with a raft message to `to` (always [`Outgoing::Send`] when fault injection
    /// is off).
    pub(crate) fn outgoing(&self, to: u64) -> Outgoing {
        if !self.enabled {
            return Outgoing::Send;
        }
        match self.rules.borrow().get(&to) {
            None => Outgoing::Send,
            Some(FaultRule::Cut) => Outgoing::Cut,
            Some(FaultRule::Drop) => Outgoing::Drop,
            Some(FaultRule::Delay(d)) => Outgoing::Delay(*d),
        }
    }

    /// The cut member ids, in order.
    pub(crate) fn cut_ids(&self) -> Vec<u64> {
        self.rules.borrow().iter().filter(|(_, r)| **r == FaultRule::Cut).map(|(id, _)| *id).collect()
    }

    /// The rules, by member id.
    pub(crate) fn rules(&self) -> BTreeMap<u64, FaultRule> {
        self.rules.borrow().as_ref().clone()
    }

    /// Cuts `ids` off, replacing every rule. `false` (nothing changed) when fault injection is
    /// off.
    pub(crate) fn set_cut(&self, ids: impl IntoIterator<Item = u64>) -> bool {
        self.set_rules(ids.into_iter().map(|id| (id, FaultRule::Cut)).collect())
    }

    /// Replaces every rule. `false` (nothing changed) when fault injection is off.
    pub(crate) fn set_rules(&self, rules: BTreeMap<u64, FaultRule>) -> bool {
        if !self.enabled {
            return false;
        }
        tracing::warn!(rules = %format_rules(&rules), "fault injection: peer rules set");
        self.rules.send_replace(Arc::new(rules));
        true
    }

    /// Completes once `id` is cut (at once if it already is); never when fault injection is off.
    pub(crate) async fn until_cut(&self, id: u64) {
        self.until(id, true).await
    }

    /// Completes once `id` is not cut (at once if it is not).
    pub(crate) async fn until_healed(&self, id: u64) {
        self.until(id, false).await
    }

    async fn until(&self, id: u64, cut: bool) {
        if !self.enabled {
            if cut {
                std::future::pending::<()>().await;
            }
            return;
        }
        let mut rx = self.rules.subscribe();
        // The sender lives as long as `self`, so `wait_for` only ends when the condition holds.
        let _ = rx.wait_for(|s| (s.get(&id) == Some(&FaultRule::Cut)) == cut).await;
    }

    /// The refusal of a request from a cut member, if `from` is one.
    pub(crate) fn refuse(&self, from: u64) -> Option<Response<ChannelBody>> {
        if self.is_cut(from) {
            tracing::debug!(from = %id_str(from), "refused a peer request: {CUT_REFUSAL}");
            Some(text_error(StatusCode::SERVICE_UNAVAILABLE, CUT_REFUSAL))
        } else {
            None
        }
    }

    /// `GET`/`PUT`/`POST` on [`FAULTS_PATH`].
    pub(crate) async fn handle(&self, req: Request<Incoming>) -> Response<ChannelBody> {
        match *req.method() {
            Method::GET => self.answer(),
            Method::PUT | Method::POST => {
                let mut r = BodyReader::new(req.into_body(), Some(std::time::Duration::from_secs(5)));
                let mut body = Vec::new();
                loop {
                    match r.chunk().await {
                        Ok(Some(c)) if body.len() + c.len() <= MAX_BODY => body.extend_from_slice(&c),
                        Ok(Some(_)) => {
                            return text_error(StatusCode::PAYLOAD_TOO_LARGE, "too many member ids");
                        }
                        Ok(None) => break,
                        Err(e) => {
                            return text_error(StatusCode::BAD_REQUEST, &format!("reading the body: {e}"));
                        }
                    }
                }
                match parse_rules(&String::from_utf8_lossy(&body)) {
                    Ok(rules) => {
                        self.set_rules(rules);
                        self.answer()
                    }
                    Err(bad) => text_error(StatusCode::BAD_REQUEST, &bad),
                }
            }
            _ => method_not_allowed("GET, PUT, POST"),
        }
    }

    fn answer(&self) -> Response<ChannelBody> {
        let mut r = Response::new(ChannelBody::full(format!("{}\n", format_rules(&self.rules()))));
        r.headers_mut().insert("Content-Type", http::HeaderValue::from_static("text/plain; charset=utf-8"));
        r
    }
}

/// Rules separated by commas or whitespace (a later rule for the same member wins); `Err` says
/// what the first bad one is.
pub(crate) fn parse_rules(s: &str) -> Result<BTreeMap<u64, FaultRule>, String> {
    let mut rules = BTreeMap::new();
    for t in s.split(|c: char| c == ',' || c.is_whitespace()).filter(|t| !t.is_empty()) {
        let (id, rule) = t.split_once(':').unwrap_or((t, "cut"));
        let id = parse_id(id).ok_or_else(|| format!("not a member id: {id:?}"))?;
        let rule = match rule {
            "cut" => FaultRule::Cut,
            "drop" => FaultRule::Drop,
            _ => {
                let ms = rule
                    .strip_prefix("delay=")
                    .and_then(|ms| ms.parse::<u64>().ok())
                    .ok_or_else(|| format!("not a rule (cut, drop or delay=<ms>): {rule:?}"))?;
                let d = Duration::from_millis(ms);
                if d > MAX_DELAY {
                    return Err(format!("delay {ms} ms is over the limit of {} ms", MAX_DELAY.as_millis()));
                }
                FaultRule::Delay(d)
            }
        };
        rules.insert(id, rule);
    }
    Ok(rules)
}

/// The endpoint's form of `rules`: `<id>`, `<id>:drop`, `<id>:delay=<ms>`, comma-separated.
pub(crate) fn format_rules(rules: &BTreeMap<u64, FaultRule>) -> String {
    let items: Vec<String> = rules
        .iter()
        .map(|(&id, r)| match r {
            FaultRule::Cut => id_str(id),
            FaultRule::Drop => format!("{}:drop", id_str(id)),
            FaultRule::Delay(d) => format!("{}:delay={}", id_str(id), d.as_millis()),
        })
        .collect();
    items.join(",")
}

/// The queues of delayed messages, one per peer, each drained by its own task that sends a
/// message once its time has come. One queue per peer keeps a delayed link's messages in order
/// (raft copes with reordering, but a slow link does not reorder). A queue's task lives until the
/// transport goes away; delays exist in fault-injection runs only.
#[derive(Default)]
pub(crate) struct DelayLines {
    queues: Mutex<HashMap<u64, mpsc::UnboundedSender<(Instant, Message)>>>,
}

impl DelayLines {
    /// Sends `m` after `by`, through [`Shared::deliver`]. Must be called within a tokio runtime
    /// (as every send is).
    pub(crate) fn hold(&self, shared: &Arc<Shared>, m: Message, by: Duration) {
        let due = Instant::now() + by;
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let tx = queues.entry(m.to).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(drain(Arc::downgrade(shared), rx));
            tx
        });
        if let Err(mpsc::error::SendError((_, m))) = tx.send((due, m)) {
            // The task is gone (its transport is going away): the message goes now or never.
            shared.deliver(m);
        }
    }
}

async fn drain(shared: Weak<Shared>, mut rx: mpsc::UnboundedReceiver<(Instant, Message)>) {
    while let Some((due, m)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        let Some(shared) = shared.upgrade() else { return };
        shared.deliver(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_rules() {
        assert!(parse_rules("").unwrap().is_empty());
        let ids: Vec<u64> = parse_rules(" a,1f \n 8e9e05c52164694d\n").unwrap().into_keys().collect();
        assert_eq!(ids, vec![0xa, 0x1f, 0x8e9e05c52164694d]);
        assert_eq!(parse_rules("a,zz").unwrap_err(), "not a member id: \"zz\"");
        assert_eq!(parse_rules("0x1").unwrap_err(), "not a member id: \"0x1\"");
        let rules = parse_rules("b:drop 1f:delay=250,a:cut").unwrap();
        assert_eq!(rules[&0xb], FaultRule::Drop);
        assert_eq!(rules[&0x1f], FaultRule::Delay(Duration::from_millis(250)));
        assert_eq!(rules[&0xa], FaultRule::Cut);
        assert_eq!(format_rules(&rules), "a,b:drop,1f:delay=250");
        assert_eq!(parse_rules(&format_rules(&rules)).unwrap(), rules);
        assert!(parse_rules("a:slow").unwrap_err().contains("not a rule"));
        assert!(parse_rules("a:delay=x").unwrap_err().contains("not a rule"));
        assert!(parse_rules("a:delay=60001").unwrap_err().contains("over the limit"));
    }

    #[test]
    fn outgoing_follows_the_rules() {
        let f = Faults::new(true);
        f.set_rules(parse_rules("1,2:drop,3:delay=5").unwrap());
        assert_eq!(f.outgoing(1), Outgoing::Cut);
        assert_eq!(f.outgoing(2), Outgoing::Drop);
        assert_eq!(f.outgoing(3), Outgoing::Delay(Duration::from_millis(5)));
        assert_eq!(f.outgoing(4), Outgoing::Send);
        // Only a cut refuses incoming traffic and closes streams.
        assert!(f.is_cut(1) && !f.is_cut(2) && !f.is_cut(3));
        assert_eq!(f.cut_ids(), vec![1]);
        let off = Faults::new(false);
        assert!(!off.set_rules(parse_rules("1:drop").unwrap()));
        assert_eq!(off.outgoing(1), Outgoing::Send);
    }

    #[tokio::test]
    async fn disabled_faults_cut_nothing() {
        let f = Faults::new(false);
        assert!(!f.set_cut([1, 2]));
        assert!(!f.is_cut(1) && f.cut_ids().is_empty() && f.refuse(1).is_none());
        // Healed already; a cut never comes.
        f.until_healed(1).await;
        let never = tokio::time::timeout(std::time::Duration::from_millis(20), f.until_cut(1)).await;
        assert!(never.is_err());
    }

    #[tokio::test]
    async fn a_cut_wakes_its_waiters_and_heals() {
        let f = Arc::new(Faults::new(true));
        let waiter = {
            let f = f.clone();
            tokio::spawn(async move { f.until_cut(7).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        // Cutting another member does not wake it.
        f.set_cut([8]);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        f.set_cut([7, 8]);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter).await.expect("woken by the cut").expect("task");
        assert!(f.is_cut(7) && f.is_cut(8) && !f.is_cut(9));
        assert_eq!(f.refuse(7).expect("refused").status(), StatusCode::SERVICE_UNAVAILABLE);
        f.set_cut([]);
        f.until_healed(7).await;
        assert!(f.refuse(7).is_none());
    }
}
