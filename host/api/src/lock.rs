//! The Lock service: etcd's `v3lock` server — the concurrency mutex ([`super::recipe`]) over
//! gRPC, for clients that want a lock without running the recipe themselves (etcd-client's
//! `lock`/`unlock`).

use tonic::{Request, Response, Status};
use wasmraft_proto::v3lockpb::lock_server::Lock;
use wasmraft_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};

use super::header;
use super::recipe::Recipes;

pub struct LockService {
    recipes: Recipes,
}

impl LockService {
    pub(super) fn new(recipes: Recipes) -> Self {
        Self { recipes }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    /// Waits until the lock is this caller's. With lease 0, a session lease is granted and never
    /// kept alive, as etcd's server does (the lock then lapses after the session TTL).
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let recipes = self.recipes.for_request(&request)?;
        let api = recipes.api();
        let r = request.into_inner();
        let lease = recipes.session_lease(r.lease).await?;
        let (key, mut hdr) = recipes.lock(&r.name, lease).await?;
        header::fill(&api.node, &mut hdr);
        Ok(Response::new(LockResponse { header: hdr, key }))
    }

    async fn unlock(&self, request: Request<UnlockRequest>) -> Result<Response<UnlockResponse>, Status> {
        let recipes = self.recipes.for_request(&request)?;
        let mut hdr = recipes.unlock(request.into_inner().key).await?.header;
        header::fill(&recipes.api().node, &mut hdr);
        Ok(Response::new(UnlockResponse { header: hdr }))
    }
}
