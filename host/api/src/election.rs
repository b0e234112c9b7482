//! The Election service: etcd's `v3election` server — the concurrency election
//! ([`super::recipe`]) over gRPC (etcd-client's `campaign`, `proclaim`, `leader`, `observe`,
//! `resign`).

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use wasmraft_proto::v3electionpb::election_server::Election;
use wasmraft_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest, ProclaimResponse,
    ResignRequest, ResignResponse,
};

use super::header;
use super::recipe::{Leadership, Recipes};

/// v3election's `ErrMissingLeaderKey`, a plain error (gRPC code Unknown).
const ERR_MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";

pub struct ElectionService {
    recipes: Recipes,
}

impl ElectionService {
    pub(super) fn new(recipes: Recipes) -> Self {
        Self { recipes }
    }
}

/// The leadership a `LeaderKey` names. etcd resumes an election from it with the key and
/// creation revision the client holds (`ResumeElection`), trusting neither more nor less.
fn resumed(leader: Option<LeaderKey>) -> Result<Leadership, Status> {
    let l = leader.ok_or_else(|| Status::unknown(ERR_MISSING_LEADER_KEY))?;
    Ok(Leadership { key: l.key, rev: l.rev, lease: l.lease, header: None })
}

#[tonic::async_trait]
impl Election for ElectionService {
    type ObserveStream = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<LeaderResponse, Status>> + Send>>;

    async fn campaign(&self, request: Request<CampaignRequest>) -> Result<Response<CampaignResponse>, Status> {
        let recipes = self.recipes.for_request(&request)?;
        let api = recipes.api();
        let r = request.into_inner();
        let lease = recipes.session_lease(r.lease).await?;
        let me = recipes.campaign(&r.name, lease, &r.value).await?;
        let mut hdr = me.header;
        header::fill(&api.node, &mut hdr);
        Ok(Response::new(CampaignResponse {
            header: hdr,
            leader: Some(LeaderKey { name: r.name, key: me.key, rev: me.rev, lease: me.lease }),
        }))
    }

    async fn proclaim(&self, request: Request<ProclaimRequest>) -> Result<Response<ProclaimResponse>, Status> {
        let recipes = self.recipes.for_request(&request)?;
        let api = recipes.api();
        let r = request.into_inner();
        let mut hdr = recipes.proclaim(&resumed(r.leader)?, &r.value).await?;
        header::fill(&api.node, &mut hdr);
        Ok(Response::new(ProclaimResponse { header: hdr }))
    }

    async fn leader(&self, request: Request<LeaderRequest>) -> Result<Response<LeaderResponse>, Status> {
        let recipes = self.recipes.for_request(&request)?;
        let api = recipes.api();
        let (mut hdr, kv) = recipes.leader(&request.into_inner().name).await?;
        header::fill(&api.node, &mut hdr);
        Ok(Response::new(LeaderResponse { header: hdr, kv: Some(kv) }))
    }

    /// Streams the election's proclamations until the client goes away. A read or watch that
    /// fails ends the stream without an error (a caller without read permission included), as
    /// etcd's does: clientv3's `Election.Observe` closes its channel on any error, and etcd's
    /// server then returns.
    async fn observe(&self, request: Request<LeaderRequest>) -> Result<Response<Self::ObserveStream>, Status> {
        self.recipes.check_request(&request)?;
        let ended = || Ok(Response::new(Box::pin(tokio_stream::empty()) as Self::ObserveStream));
        let Ok(recipes) = self.recipes.acting_for(&request) else {
            return ended();
        };
        let name = request.into_inner().name;
        let (out_tx, out_rx) = mpsc::channel(16);
        let (found_tx, mut found_rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let observing = recipes.observe(&name, found_tx);
            let forwarding = async {
                while let Some((h, kv)) = found_rx.recv().await {
                    let mut hdr = Some(h);
                    header::fill(&recipes.api().node, &mut hdr);
                    if out_tx.send(Ok(LeaderResponse { header: hdr, kv: Some(kv) })).await.is_err() {
                        return;
                    }
                }
            };
            tokio::select! {
                result = observing => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "election: observing ended");
                    }
                }
                () = forwarding => {}
            }
        });
        // The call is answered with the current leader, not before: grpc-go sends a stream's
        // headers with its first message, so etcd's Observe completes for the client only once
        // the leader it starts from is known. A client that proclaims right after observe()
        // returns must see the leader before its proclamation, then the proclamation.
        let mut out_rx = out_rx;
        let Some(first) = out_rx.recv().await else {
            return ended();
        };
        let rest = ReceiverStream::new(out_rx);
        Ok(Response::new(Box::pin(tokio_stream::StreamExt::chain(tokio_stream::once(first), rest))))
    }

    async fn resign(&self, request: Request<ResignRequest>) -> Result<Response<ResignResponse>, Status> {
        let recipes = self.recipes.for_request(&request)?;
        let api = recipes.api();
        let mut hdr = recipes.resign(&resumed(request.into_inner().leader)?).await?;
        header::fill(&api.node, &mut hdr);
        Ok(Response::new(ResignResponse { header: hdr }))
    }
}
