//! `bench range`: the read path. Linearizable reads go through ReadIndex (a round of heartbeats
//! on the leader); serializable ones are answered from the member's own state, so the two
//! measure different things and `--consistency` picks one.

use clap::Args;
use serde_json::json;
use wasmraft_proto::etcdserverpb::{PutRequest, RangeRequest};

use super::kv::{self, Kv};
use super::runner::{self, Plan};
use super::{Finished, KeyFlags, KvArgs, key, merged, seed};
use wasmraft_client::{CliError, ConsistencyArg, EXIT_SERVER_ERROR};

#[derive(Args, Debug, Clone)]
pub struct RangeArgs {
    #[command(flatten)]
    pub kv: KvArgs,
    /// l: linearizable (ReadIndex), s: serializable (the member's own state).
    #[arg(long, value_enum, default_value = "l")]
    pub consistency: ConsistencyArg,
    /// Read this key (with RANGE_END: the range [KEY, RANGE_END)) in every request, instead
    /// of single keys of a key space written first.
    pub key: Option<String>,
    /// The end of the range (exclusive).
    pub range_end: Option<String>,
}

pub async fn run(a: &RangeArgs) -> Result<Finished, CliError> {
    a.kv.load.check()?;
    let plan = Plan::from_flags(&a.kv.load, &a.kv.common)?;
    let clients = kv::clients(&a.kv, a.kv.load.clients).await?;
    let serializable = a.consistency == ConsistencyArg::Serializable;
    let consistency = if serializable { "s" } else { "l" };
    let (outcome, params) = if let Some(k) = &a.key {
        let request = RangeRequest {
            key: k.as_bytes().to_vec(),
            range_end: a.range_end.as_deref().unwrap_or_default().as_bytes().to_vec(),
            serializable,
            ..Default::default()
        };
        let outcome = runner::run(&plan, clients, move |kv, _| kv.range(request.clone())).await;
        (outcome, json!({ "key": k, "range_end": a.range_end }))
    } else {
        let space = a.kv.keys.space(1000)?;
        fill(&a.kv.keys, space, clients.clone()).await?;
        let (keys, seed) = (a.kv.keys.clone(), seed());
        let outcome = runner::run(&plan, clients, move |kv, i| {
            let request = RangeRequest {
                key: key(keys.index(i, space, seed), keys.key_size),
                serializable,
                ..Default::default()
            };
            kv.range(request)
        })
        .await;
        (outcome, a.kv.keys.params(space))
    };
    let params = merged(merged(a.kv.load.params(&plan), json!({ "consistency": consistency })), params);
    Ok(Finished::new(outcome, params).over(a.kv.transport()))
}

/// Writes every key of the key space once (untimed), so every read finds a value of
/// `--val-size` bytes.
async fn fill(keys: &KeyFlags, space: u64, clients: Vec<Kv>) -> Result<(), CliError> {
    let (key_size, value) = (keys.key_size, vec![b'v'; keys.val_size]);
    let plan = Plan::untimed(space);
    let out = runner::run(&plan, clients, move |kv, i| {
        kv.put(PutRequest { key: key(i, key_size), value: value.clone(), ..Default::default() })
    })
    .await;
    match out.errors.iter().next() {
        Some((text, _)) => Err(CliError::new(
            EXIT_SERVER_ERROR,
            format!("writing the {space} keys to read failed ({} errors): {text}", out.error_count()),
        )),
        None => Ok(()),
    }
}
