//! Client subcommands of `wasmraft` for the generic API (`wasmraft.v1.Generic`):
//! `wasmraft propose`, `wasmraft query` and `wasmraft info`; and for guest administration
//! (`wasmraft.v1.GuestAdmin`): `wasmraft guest deploy|rollback|status|list` (see [`guest`]).
//!
//! Input is DATA as text (its UTF-8 bytes), DATA as hex (`--hex`), or a file's bytes
//! (`--file PATH`, `-` for stdin). Output is the answer as text (lossy UTF-8, then a newline),
//! as hex (`--output hex`, then a newline), or written unchanged to `--output-file PATH`.
//!
//! Exit codes: 0 success; 1 the member answered with an error (printed as `code: message`; a
//! guest's refusal is `Aborted` with the guest's text); 2 bad usage (clap's code); 3 invalid input
//! (bad hex, unreadable input file); 4 no endpoint could be reached; 6 the output could not be
//! written.

mod guest;
mod snapshot;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
// How these commands reach a member is shared with `wasmraft bench` (host/client).
use wasmraft_client::{
    AuthedChannel, CliError, ConnFlags, ConsistencyArg, Dial, EXIT_INVALID_INPUT, EXIT_IO, EXIT_SERVER_ERROR,
    InputFlags, authed, channel, channel_to, read_input, secs, status_error,
};
use wasmraft_proto::wasmraft::v1::{
    Consistency, InfoRequest, ProposeRequest, QueryRequest, generic_client::GenericClient,
};

/// The client subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Propose a command through the raft log; print the guest's apply result.
    Propose {
        #[command(flatten)]
        conn: ConnFlags,
        #[command(flatten)]
        input: InputFlags,
        #[command(flatten)]
        output: OutputFlags,
    },
    /// Run the guest's read-only query; print its answer.
    Query {
        #[command(flatten)]
        conn: ConnFlags,
        /// l: linearizable (ReadIndex), s: serializable (this member's state, possibly stale).
        #[arg(long, value_enum, default_value = "l")]
        consistency: ConsistencyArg,
        #[command(flatten)]
        input: InputFlags,
        #[command(flatten)]
        output: OutputFlags,
    },
    /// Print the active guest (name, version, APIs, hash) of a member.
    Info {
        #[command(flatten)]
        conn: ConnFlags,
    },
    /// Deploy, roll back and inspect guests in a running cluster.
    Guest {
        #[command(subcommand)]
        command: guest::GuestCommand,
    },
    /// Restore a member's data dir from a snapshot (`etcdctl snapshot save`).
    Snapshot {
        #[command(subcommand)]
        command: snapshot::SnapshotCommand,
    },
    /// Load any etcd v3 endpoint (etcd or wasmraft) or a custom guest and report throughput and
    /// latency, as etcd's benchmark tool does.
    Bench {
        #[command(subcommand)]
        command: wasmraft_bench::BenchCommand,
    },
}

#[derive(Args, Debug, Clone)]
pub struct OutputFlags {
    /// How to print the answer.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// Write the answer's bytes unchanged to this file instead of printing it.
    #[arg(long)]
    pub output_file: Option<PathBuf>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Hex,
}

/// Prints or writes the answer as the output flags say.
pub fn write_output(output: &OutputFlags, bytes: &[u8]) -> Result<(), CliError> {
    if let Some(path) = &output.output_file {
        return std::fs::write(path, bytes)
            .map_err(|e| CliError::new(EXIT_IO, format!("writing {}: {e}", path.display())));
    }
    let text = match output.output {
        OutputFormat::Text => String::from_utf8_lossy(bytes).into_owned(),
        OutputFormat::Hex => hex::encode(bytes),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| CliError::new(EXIT_IO, format!("writing to stdout: {e}")))
}

async fn connect(conn: &ConnFlags) -> Result<GenericClient<AuthedChannel>, CliError> {
    let (channel, _) = channel(conn, secs(conn.command_timeout, "command-timeout")?).await?;
    Ok(GenericClient::new(authed(conn, channel).await?)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX))
}

fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| CliError::new(EXIT_IO, format!("writing to stdout: {e}")))
}

async fn run_async(cmd: Command) -> Result<(), CliError> {
    match cmd {
        Command::Propose { conn, input, output } => {
            let command = read_input(&input)?;
            let mut client = connect(&conn).await?;
            let resp = client.propose(ProposeRequest { command }).await.map_err(status_error)?;
            write_output(&output, &resp.into_inner().result)
        }
        Command::Query { conn, consistency, input, output } => {
            let request = read_input(&input)?;
            let consistency = match consistency {
                ConsistencyArg::Linearizable => Consistency::Linearizable,
                ConsistencyArg::Serializable => Consistency::Serializable,
            };
            let mut client = connect(&conn).await?;
            let resp =
                client.query(QueryRequest { request, consistency: consistency as i32 }).await.map_err(status_error)?;
            write_output(&output, &resp.into_inner().result)
        }
        Command::Info { conn } => {
            let mut client = connect(&conn).await?;
            let info = client.info(InfoRequest {}).await.map_err(status_error)?.into_inner();
            let text = format!(
                "name: {}\nversion: {}\napis: {}\nhash: {}\nmember_id: {:x}\ncluster_id: {:x}\n",
                info.guest_name,
                info.guest_version,
                info.guest_apis.join(","),
                info.guest_hash,
                info.member_id,
                info.cluster_id
            );
            print(&text)
        }
        Command::Guest { command } => guest::run(command).await,
        Command::Snapshot { .. } | Command::Bench { .. } => Ok(()),
    }
}

/// Runs a client subcommand to completion; errors are printed to stderr.
pub fn run(cmd: Command) -> ExitCode {
    let name = match &cmd {
        Command::Propose { .. } => "propose",
        Command::Query { .. } => "query",
        Command::Info { .. } => "info",
        Command::Guest { command } => command.name(),
        // A load generator wants every core: its own multi-threaded runtime.
        Command::Bench { command } => return wasmraft_bench::run(command.clone()),
        Command::Snapshot { command } => {
            // Local files only: no runtime needed.
            return match snapshot::run(command.clone()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("Error: {}", e.message);
                    ExitCode::from(e.code)
                }
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wasmraft {name}: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_IO);
        }
    };
    match runtime.block_on(run_async(cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wasmraft {name}: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap checks a command's arguments (unique ids, valid `requires`) only when that command is
    /// built, at run time: a clash in one subcommand would break only it. Check them all here.
    #[test]
    fn every_subcommand_is_well_formed() {
        use clap::{CommandFactory, Parser};
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            command: Command,
        }
        Cli::command().debug_assert();
    }

    #[test]
    fn output_file_gets_the_bytes_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.bin");
        let flags = OutputFlags { output: OutputFormat::Text, output_file: Some(p.clone()) };
        write_output(&flags, &[0xff, 0, 1]).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), vec![0xff, 0, 1]);
    }
}
