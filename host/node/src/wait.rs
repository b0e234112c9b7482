//! The wait registry: a client's proposal waits here, keyed by its request id, until the apply
//! loop reaches its entry and hands over that entry's result.
//!
//! Sharded so concurrent proposers and the apply loop rarely meet on the same lock.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use super::NodeError;
use crate::ids::RequestIds;

pub type Outcome = Result<Vec<u8>, NodeError>;

const SHARDS: usize = 16;

pub struct WaitRegistry {
    shards: [Mutex<HashMap<u64, oneshot::Sender<Outcome>>>; SHARDS],
    ids: RequestIds,
}

impl WaitRegistry {
    /// Request ids are etcd's (see [`RequestIds`]): unique across members and restarts.
    pub fn new(member_id: u64) -> Self {
        WaitRegistry {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            ids: RequestIds::from_clock(member_id),
        }
    }

    fn shard(&self, id: u64) -> &Mutex<HashMap<u64, oneshot::Sender<Outcome>>> {
        &self.shards[(id as usize) % SHARDS]
    }

    /// Allocates an id and registers a waiter for it.
    pub fn register(&self) -> (u64, oneshot::Receiver<Outcome>) {
        let id = self.ids.next();
        let (tx, rx) = oneshot::channel();
        self.shard(id).lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
        (id, rx)
    }

    /// Delivers an outcome; a no-op when nobody waits (another member proposed the entry, or
    /// the client gave up).
    pub fn trigger(&self, id: u64, outcome: Outcome) {
        let waiter = self.shard(id).lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        if let Some(tx) = waiter {
            let _ = tx.send(outcome);
        }
    }

    /// Whether someone still waits for `id`.
    pub fn is_waiting(&self, id: u64) -> bool {
        self.shard(id).lock().unwrap_or_else(|p| p.into_inner()).contains_key(&id)
    }

    /// Forgets a waiter (its client timed out).
    pub fn cancel(&self, id: u64) {
        self.shard(id).lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    /// Fails every waiter, at shutdown.
    pub fn fail_all(&self, err: NodeError) {
        for shard in &self.shards {
            let drained: Vec<_> = shard.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
            for (_, tx) in drained {
                let _ = tx.send(Err(err.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_reaches_only_its_waiter() {
        let w = WaitRegistry::new(0x1234_5678_9abc_def0);
        let (a, ra) = w.register();
        let (b, rb) = w.register();
        assert_ne!(a, b);
        assert_eq!(a >> 48, 0xdef0);
        w.trigger(b, Ok(b"b".to_vec()));
        w.trigger(a, Err(NodeError::Timeout));
        assert_eq!(rb.await.unwrap(), Ok(b"b".to_vec()));
        assert_eq!(ra.await.unwrap(), Err(NodeError::Timeout));
        // Unknown and repeated ids are ignored.
        w.trigger(a, Ok(vec![]));
        let (c, rc) = w.register();
        w.cancel(c);
        assert!(rc.await.is_err());
    }
}
