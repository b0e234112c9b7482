//! `bench txn-put`: several puts in one raft entry, which is how a client buys write
//! throughput when it can batch; compare with `put` at the same number of keys.

use clap::Args;
use serde_json::json;
use wasmraft_proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest, request_op};

use super::kv;
use super::runner::{self, Plan};
use super::{Finished, KvArgs, key, merged, seed};
use wasmraft_client::{CliError, EXIT_INVALID_INPUT};

#[derive(Args, Debug, Clone)]
pub struct TxnPutArgs {
    #[command(flatten)]
    pub kv: KvArgs,
    /// Puts per txn, on consecutive keys of the key space (a txn may not put one key twice).
    #[arg(long, default_value_t = 1)]
    pub txn_ops: u64,
}

pub async fn run(a: &TxnPutArgs) -> Result<Finished, CliError> {
    a.kv.load.check()?;
    let space = a.kv.keys.space(1)?;
    let ops = a.txn_ops;
    if ops == 0 || ops > space {
        return Err(CliError::new(
            EXIT_INVALID_INPUT,
            format!("--txn-ops must be between 1 and --key-space-size ({space}), got {ops}"),
        ));
    }
    let plan = Plan::from_flags(&a.kv.load, &a.kv.common)?;
    let clients = kv::clients(&a.kv, a.kv.load.clients).await?;
    let (keys, value, seed) = (a.kv.keys.clone(), vec![b'v'; a.kv.keys.val_size], seed());
    let outcome = runner::run(&plan, clients, move |kv, i| {
        // Sequential keys: txn i writes keys i·ops … i·ops+ops-1, so a run writes each key of
        // the space once before reusing any.
        let first = keys.index(i.wrapping_mul(ops), space, seed);
        let success = (0..ops)
            .map(|j| RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: key(((u128::from(first) + u128::from(j)) % u128::from(space)) as u64, keys.key_size),
                    value: value.clone(),
                    ..Default::default()
                })),
            })
            .collect();
        let request = TxnRequest { success, ..Default::default() };
        kv.txn(request)
    })
    .await;
    let params = merged(merged(a.kv.load.params(&plan), a.kv.keys.params(space)), json!({ "txn_ops": ops }));
    Ok(Finished::new(outcome, params).over(a.kv.transport()))
}
