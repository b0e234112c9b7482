//! `bench put`: the write path — every put is a raft entry, an fsync and an apply.

use wasmraft_proto::etcdserverpb::PutRequest;

use super::kv;
use super::runner::{self, Plan};
use super::{Finished, KvArgs, key, merged, seed};
use wasmraft_client::CliError;

pub async fn run(a: &KvArgs) -> Result<Finished, CliError> {
    a.load.check()?;
    let space = a.keys.space(1)?;
    let plan = Plan::from_flags(&a.load, &a.common)?;
    let clients = kv::clients(a, a.load.clients).await?;
    let (keys, value, seed) = (a.keys.clone(), vec![b'v'; a.keys.val_size], seed());
    let outcome = runner::run(&plan, clients, move |kv, i| {
        let request = PutRequest {
            key: key(keys.index(i, space, seed), keys.key_size),
            value: value.clone(),
            ..Default::default()
        };
        kv.put(request)
    })
    .await;
    Ok(Finished::new(outcome, merged(a.load.params(&plan), a.keys.params(space))).over(a.transport()))
}
