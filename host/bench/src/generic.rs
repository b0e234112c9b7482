//! `bench propose` and `bench query`: a custom guest's write and read paths through
//! `wasmraft.v1.Generic`, the same bytes in every request (the guest decides what they mean).
//! A guest's refusal is an error like any other and is counted by its text.

use clap::Args;
use serde_json::json;
use wasmraft_proto::wasmraft::v1::{Consistency, ProposeRequest, QueryRequest, generic_client::GenericClient};

use super::runner::{self, Plan};
use super::{Common, Finished, Load, merged};
use wasmraft_client::{CliError, ConsistencyArg, InputFlags, read_input};

#[derive(Args, Debug, Clone)]
pub struct ProposeArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub load: Load,
    #[command(flatten)]
    pub input: InputFlags,
}

#[derive(Args, Debug, Clone)]
pub struct QueryArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub load: Load,
    /// l: linearizable (ReadIndex), s: serializable (the member's own state).
    #[arg(long, value_enum, default_value = "l")]
    pub consistency: ConsistencyArg,
    #[command(flatten)]
    pub input: InputFlags,
}

pub async fn propose(a: &ProposeArgs) -> Result<Finished, CliError> {
    a.load.check()?;
    let command = read_input(&a.input)?;
    let plan = Plan::from_flags(&a.load, &a.common)?;
    let params = merged(a.load.params(&plan), json!({ "command_bytes": command.len() }));
    let clients = runner::clients(&a.common, a.load.clients, GenericClient::new).await?;
    let outcome = runner::run(&plan, clients, move |mut g, _| {
        let request = ProposeRequest { command: command.clone() };
        async move { g.propose(request).await.map(|_| ()) }
    })
    .await;
    Ok(Finished::new(outcome, params))
}

pub async fn query(a: &QueryArgs) -> Result<Finished, CliError> {
    a.load.check()?;
    let request = read_input(&a.input)?;
    let (consistency, name) = match a.consistency {
        ConsistencyArg::Linearizable => (Consistency::Linearizable, "l"),
        ConsistencyArg::Serializable => (Consistency::Serializable, "s"),
    };
    let plan = Plan::from_flags(&a.load, &a.common)?;
    let params = merged(a.load.params(&plan), json!({ "request_bytes": request.len(), "consistency": name }));
    let clients = runner::clients(&a.common, a.load.clients, GenericClient::new).await?;
    let outcome = runner::run(&plan, clients, move |mut g, _| {
        let request = QueryRequest { request: request.clone(), consistency: consistency as i32 };
        async move { g.query(request).await.map(|_| ()) }
    })
    .await;
    Ok(Finished::new(outcome, params))
}
