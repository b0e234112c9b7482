//! Fault injection, for tests only: network partitions cut inside the transport.
//!
//! A fault-injection harness has to cut real traffic between members running as separate
//! processes on one loopback interface, without root (no iptables, no network namespaces on CI).
//! The transport is where every byte between two members passes, so the cut is made here: when
//! the host enables it ([`crate::TransportConfig::fault_injection`], wasmraft's
//! `--wasmraft-fault-injection` flag) a member can be told, through `PUT /wasmraft/faults` on its
//! *peer* URL, which other members it is cut off from. For each of them, at this member:
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
//! The peer prober (`/raft/probing`) is left alone: it carries no raft message and an incoming
//! probe does not say who sent it; only the peer health metrics see it.
//!
//! Why the peer URL rather than the client URL: the fault is a peer-network condition and lives
//! entirely in this crate (the host only passes the flag), and the client port stays exactly
//! etcd's API. Without the flag the path answers 404 like any unknown path, as etcd's does.
//!
//! The endpoint speaks plain text: `GET` answers the cut member ids (etcd's lowercase hex, one
//! comma-separated line, empty when healed); `PUT` (or `POST`) with a body of ids separated by
//! commas or whitespace replaces the set (an empty body heals) and answers the new set.

use std::collections::BTreeSet;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::sync::watch;

use crate::body::{BodyReader, ChannelBody};
use crate::util::{id_str, method_not_allowed, parse_id, text_error};

/// The admin path on the peer URL.
pub const FAULTS_PATH: &str = "/wasmraft/faults";

/// The body of every refusal of a cut member's request.
pub const CUT_REFUSAL: &str = "cut off by fault injection";

/// Largest accepted `PUT` body (a few hundred member ids).
const MAX_BODY: usize = 16 * 1024;

/// The set of members this member is cut off from, watched by the stream tasks so that a new cut
/// closes connections that are already open.
pub(crate) struct Faults {
    enabled: bool,
    cut: watch::Sender<Arc<BTreeSet<u64>>>,
}

impl Faults {
    pub(crate) fn new(enabled: bool) -> Faults {
        Faults { enabled, cut: watch::Sender::new(Arc::new(BTreeSet::new())) }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether traffic with `id` is cut (always false when fault injection is off).
    pub(crate) fn is_cut(&self, id: u64) -> bool {
        self.enabled && self.cut.borrow().contains(&id)
    }

    /// The cut member ids, in order.
    pub(crate) fn cut_ids(&self) -> Vec<u64> {
        self.cut.borrow().iter().copied().collect()
    }

    /// Replaces the cut set. `false` (nothing changed) when fault injection is off.
    pub(crate) fn set_cut(&self, ids: impl IntoIterator<Item = u64>) -> bool {
        if !self.enabled {
            return false;
        }
        let ids: BTreeSet<u64> = ids.into_iter().collect();
        tracing::warn!(cut = ?ids.iter().map(|&i| id_str(i)).collect::<Vec<_>>(), "fault injection: peers cut off");
        self.cut.send_replace(Arc::new(ids));
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
        let mut rx = self.cut.subscribe();
        // The sender lives as long as `self`, so `wait_for` only ends when the condition holds.
        let _ = rx.wait_for(|s| s.contains(&id) == cut).await;
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
                match parse_ids(&String::from_utf8_lossy(&body)) {
                    Ok(ids) => {
                        self.set_cut(ids);
                        self.answer()
                    }
                    Err(bad) => text_error(StatusCode::BAD_REQUEST, &format!("not a member id: {bad:?}")),
                }
            }
            _ => method_not_allowed("GET, PUT, POST"),
        }
    }

    fn answer(&self) -> Response<ChannelBody> {
        let ids: Vec<String> = self.cut_ids().into_iter().map(id_str).collect();
        let mut r = Response::new(ChannelBody::full(format!("{}\n", ids.join(","))));
        r.headers_mut().insert("Content-Type", http::HeaderValue::from_static("text/plain; charset=utf-8"));
        r
    }
}

/// Member ids (etcd's hex) separated by commas or whitespace; `Err` names the first bad one.
pub(crate) fn parse_ids(s: &str) -> Result<Vec<u64>, String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| parse_id(t).ok_or_else(|| t.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_member_ids() {
        assert_eq!(parse_ids("").unwrap(), Vec::<u64>::new());
        assert_eq!(parse_ids(" a,1f \n 8e9e05c52164694d\n").unwrap(), vec![0xa, 0x1f, 0x8e9e05c52164694d]);
        assert_eq!(parse_ids("a,zz").unwrap_err(), "zz");
        assert_eq!(parse_ids("0x1").unwrap_err(), "0x1");
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
