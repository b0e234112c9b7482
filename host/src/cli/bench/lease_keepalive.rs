//! `bench lease-keepalive`: each client grants a lease (untimed), then renews it on its own
//! LeaseKeepAlive stream, one request in flight at a time (ping-pong, as etcd's benchmark):
//! a keep-alive never enters the raft log, so this measures the leader's lessor and, through
//! a follower, the forwarding to it. The leases are revoked afterwards.

use std::sync::Arc;

use clap::Args;
use serde_json::json;
use tokio::sync::{Mutex, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::codec::Streaming;
use wasmraft_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseRevokeRequest, lease_client::LeaseClient,
};

use super::runner::{self, Plan};
use super::{Common, Finished, Load, merged};
use crate::cli::{AuthedChannel, CliError, EXIT_INVALID_INPUT, status_error};

#[derive(Args, Debug, Clone)]
pub struct LeaseKeepaliveArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub load: Load,
    /// The leases' TTL in seconds (long enough that a slow renewal does not expire one).
    #[arg(long, default_value_t = 60)]
    pub ttl: i64,
}

/// One client's lease and the two ends of its keep-alive stream.
struct KeepAlive {
    id: i64,
    send: mpsc::Sender<LeaseKeepAliveRequest>,
    answers: Streaming<LeaseKeepAliveResponse>,
}

impl KeepAlive {
    /// Grants a lease and opens its stream with a first renewal, so the stream is set up
    /// before anything is timed (a server may not answer the call until the first request).
    async fn open(mut lease: LeaseClient<AuthedChannel>, ttl: i64) -> Result<KeepAlive, Status> {
        let id = lease.lease_grant(LeaseGrantRequest { ttl, id: 0 }).await?.into_inner().id;
        let (send, rx) = mpsc::channel(1);
        send.send(LeaseKeepAliveRequest { id }).await.map_err(|_| Status::internal("keep-alive stream closed"))?;
        let answers = lease.lease_keep_alive(ReceiverStream::new(rx)).await?.into_inner();
        let mut ka = KeepAlive { id, send, answers };
        ka.answer().await?;
        Ok(ka)
    }

    async fn renew(&mut self) -> Result<(), Status> {
        self.send
            .send(LeaseKeepAliveRequest { id: self.id })
            .await
            .map_err(|_| Status::unavailable("keep-alive stream closed by the client"))?;
        self.answer().await
    }

    async fn answer(&mut self) -> Result<(), Status> {
        match self.answers.message().await? {
            Some(r) if r.ttl > 0 => Ok(()),
            Some(_) => Err(Status::not_found("lease expired (keep-alive answered with TTL 0)")),
            None => Err(Status::unavailable("keep-alive stream ended by the server")),
        }
    }
}

pub async fn run(a: &LeaseKeepaliveArgs) -> Result<Finished, CliError> {
    a.load.check()?;
    if a.ttl <= 0 {
        return Err(CliError::new(EXIT_INVALID_INPUT, "--ttl must be at least 1 second"));
    }
    let plan = Plan::from_flags(&a.load, &a.common)?;
    let leases = runner::clients(&a.common, a.load.clients, LeaseClient::new).await?;
    let mut streams = Vec::with_capacity(leases.len());
    for lease in &leases {
        let ka = KeepAlive::open(lease.clone(), a.ttl).await.map_err(status_error)?;
        streams.push(Arc::new(Mutex::new(ka)));
    }
    let ids: Vec<i64> = {
        let mut ids = Vec::with_capacity(streams.len());
        for s in &streams {
            ids.push(s.lock().await.id);
        }
        ids
    };
    let outcome =
        runner::run(&plan, streams, |ka: Arc<Mutex<KeepAlive>>, _| async move { ka.lock().await.renew().await }).await;
    // Best effort: a lease left behind expires after --ttl anyway.
    for (mut lease, id) in leases.into_iter().zip(ids) {
        let _ = lease.lease_revoke(LeaseRevokeRequest { id }).await;
    }
    let params = merged(a.load.params(&plan), json!({ "ttl": a.ttl }));
    Ok(Finished::new(outcome, params))
}
