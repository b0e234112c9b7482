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

mod bench;
mod guest;
mod snapshot;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use tonic::transport::{Channel, Endpoint};
use wasmraft_proto::wasmraft::v1::{
    Consistency, InfoRequest, ProposeRequest, QueryRequest, generic_client::GenericClient,
};

pub const EXIT_SERVER_ERROR: u8 = 1;
pub const EXIT_INVALID_INPUT: u8 = 3;
pub const EXIT_BAD_CONNECTION: u8 = 4;
pub const EXIT_IO: u8 = 6;

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
        command: bench::BenchCommand,
    },
}

#[derive(Args, Debug, Clone)]
pub struct ConnFlags {
    /// Comma-separated member client URLs; the first one that accepts a connection is used.
    #[arg(long, default_value = "http://127.0.0.1:2379", value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Timeout for connecting to an endpoint, in seconds.
    #[arg(long, default_value_t = 2.0)]
    pub dial_timeout: f64,
    /// Timeout for the call, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub command_timeout: f64,
    /// username[:password] for authentication (etcdctl's --user), when the cluster has auth on.
    #[arg(long)]
    pub user: Option<String>,
    /// For https endpoints: verify the members' certificates with this CA bundle (PEM) instead of
    /// the system's roots (etcdctl's --cacert).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// For https endpoints: present this client certificate (PEM), with --key (etcdctl's --cert).
    // (ids apart from the long names: `bench range` has a positional KEY.)
    #[arg(long = "cert", id = "tls_cert", value_name = "FILE", requires = "tls_key")]
    pub cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long = "key", id = "tls_key", value_name = "FILE", requires = "tls_cert")]
    pub key: Option<PathBuf>,
    /// For https endpoints: accept any server certificate (etcdctl's --insecure-skip-tls-verify;
    /// a member on --auto-tls has one no CA can verify).
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
}

/// How the client subcommands dial: the timeouts and, for https endpoints, TLS (etcdctl's
/// flags). Plain http endpoints ignore the TLS part.
#[derive(Clone)]
pub struct Dial {
    pub connect: Duration,
    pub call: Duration,
    tls: std::sync::Arc<rustls::ClientConfig>,
}

impl Dial {
    /// From the flags, with `call` as the per-call timeout.
    pub fn new(conn: &ConnFlags, call: Duration) -> Result<Dial, CliError> {
        let info = crate::tls::TlsInfo {
            cert_file: conn.cert.clone(),
            key_file: conn.key.clone(),
            trusted_ca_file: conn.cacert.clone(),
            self_cert: conn.insecure_skip_tls_verify,
            ..Default::default()
        };
        let tls = info.client_config(&[b"h2"]).map_err(|e| CliError::new(EXIT_INVALID_INPUT, format!("TLS: {e:#}")))?;
        Ok(Dial { connect: secs(conn.dial_timeout, "dial-timeout")?, call, tls })
    }
}

/// Adds the auth token (if any) to every call, as clientv3 does.
#[derive(Clone)]
pub struct TokenInterceptor(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert("token", t.clone());
        }
        Ok(req)
    }
}

/// A channel that presents `--user`'s token.
pub type AuthedChannel = tonic::service::interceptor::InterceptedService<Channel, TokenInterceptor>;

/// Logs in as `--user` (etcd's Authenticate) on `channel`; without `--user`, no token.
async fn authed(conn: &ConnFlags, channel: Channel) -> Result<AuthedChannel, CliError> {
    let token = login(conn, channel.clone()).await?;
    Ok(tonic::service::interceptor::InterceptedService::new(channel, token))
}

/// The token `--user` gets from etcd's Authenticate on `channel` (none without `--user`): one
/// login that several connections can then present, as `wasmraft bench` does.
async fn login(conn: &ConnFlags, channel: Channel) -> Result<TokenInterceptor, CliError> {
    let Some(user) = &conn.user else {
        return Ok(TokenInterceptor(None));
    };
    let (name, password) = match user.split_once(':') {
        Some((n, p)) => (n.to_string(), p.to_string()),
        None => {
            let p = rpassword_prompt(&format!("Password for {user}: "))?;
            (user.clone(), p)
        }
    };
    let mut auth = wasmraft_proto::etcdserverpb::auth_client::AuthClient::new(channel);
    let resp = auth
        .authenticate(wasmraft_proto::etcdserverpb::AuthenticateRequest { name, password })
        .await
        .map_err(status_error)?;
    let token = resp
        .into_inner()
        .token
        .parse()
        .map_err(|_| CliError::new(EXIT_SERVER_ERROR, "the member answered with a token that is not ASCII"))?;
    Ok(TokenInterceptor(Some(token)))
}

/// Reads a password from stdin (one line), as etcdctl asks for one when --user has none.
fn rpassword_prompt(prompt: &str) -> Result<String, CliError> {
    eprint!("{prompt}");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| CliError::new(EXIT_IO, format!("reading the password: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

#[derive(Args, Debug, Clone)]
pub struct InputFlags {
    /// The request bytes: text, or hex with --hex. Not with --file.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub data: Option<String>,
    /// DATA is hex.
    #[arg(long, conflicts_with = "file")]
    pub hex: bool,
    /// Read the request bytes from this file (`-`: stdin).
    #[arg(long)]
    pub file: Option<PathBuf>,
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
pub enum ConsistencyArg {
    #[value(name = "l")]
    Linearizable,
    #[value(name = "s")]
    Serializable,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Hex,
}

/// A failure with the exit code it ends the process with.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// The request bytes the input flags name.
pub fn read_input(input: &InputFlags) -> Result<Vec<u8>, CliError> {
    if let Some(path) = &input.file {
        let mut buf = Vec::new();
        let res = if path.as_os_str() == "-" {
            std::io::stdin().read_to_end(&mut buf).map(|_| ())
        } else {
            std::fs::read(path).map(|b| buf = b)
        };
        res.map_err(|e| CliError::new(EXIT_INVALID_INPUT, format!("reading {}: {e}", path.display())))?;
        return Ok(buf);
    }
    let data = input.data.as_deref().unwrap_or_default();
    if input.hex {
        let cleaned: String = data.chars().filter(|c| !c.is_whitespace()).collect();
        hex::decode(&cleaned).map_err(|e| CliError::new(EXIT_INVALID_INPUT, format!("DATA is not valid hex: {e}")))
    } else {
        Ok(data.as_bytes().to_vec())
    }
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

fn secs(s: f64, what: &str) -> Result<Duration, CliError> {
    Duration::try_from_secs_f64(s).map_err(|e| CliError::new(EXIT_INVALID_INPUT, format!("--{what}: {e}")))
}

/// A channel to the first endpoint that accepts a connection, and its URL.
async fn channel(conn: &ConnFlags, call: Duration) -> Result<(Channel, String), CliError> {
    let dial = Dial::new(conn, call)?;
    let mut failures = Vec::new();
    for ep in &conn.endpoints {
        match channel_to(ep, &dial).await {
            Ok(ok) => return Ok(ok),
            Err(e) => failures.push(e),
        }
    }
    Err(CliError::new(EXIT_BAD_CONNECTION, format!("cannot connect to any endpoint ({})", failures.join("; "))))
}

/// A channel to one endpoint (http or https), or why not.
async fn channel_to(ep: &str, dial: &Dial) -> Result<(Channel, String), String> {
    let url = if ep.contains("://") { ep.to_string() } else { format!("http://{ep}") };
    let endpoint = Endpoint::from_shared(url.clone())
        .map_err(|e| format!("{url}: {e}"))?
        .connect_timeout(dial.connect)
        .timeout(dial.call);
    let connector = wasmraft_transport::dial::Dialer::new(Some(dial.tls.clone()), dial.connect).coalescing();
    match tokio::time::timeout(dial.connect, endpoint.connect_with_connector(connector)).await {
        Ok(Ok(channel)) => Ok((channel, url)),
        Ok(Err(e)) => Err(format!("{url}: {}", error_chain(&e))),
        Err(_) => Err(format!("{url}: timed out after {:?}", dial.connect)),
    }
}

/// An error and its causes, `transport error: tcp connect error: Connection refused`: tonic's
/// own text alone ("transport error") does not say what went wrong.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
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

fn status_error(s: tonic::Status) -> CliError {
    CliError::new(EXIT_SERVER_ERROR, format!("{:?}: {}", s.code(), s.message()))
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
        Command::Bench { command } => return bench::run(command.clone()),
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

    fn input(data: Option<&str>, hex: bool, file: Option<PathBuf>) -> InputFlags {
        InputFlags { data: data.map(str::to_owned), hex, file }
    }

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
    fn input_as_text_hex_and_file() {
        assert_eq!(read_input(&input(Some("héllo"), false, None)).unwrap(), "héllo".as_bytes());
        assert_eq!(read_input(&input(Some("00 ff10"), true, None)).unwrap(), vec![0, 0xff, 0x10]);
        let err = read_input(&input(Some("zz"), true, None)).unwrap_err();
        assert_eq!(err.code, EXIT_INVALID_INPUT);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.bin");
        std::fs::write(&p, [1u8, 2, 3]).unwrap();
        assert_eq!(read_input(&input(None, false, Some(p))).unwrap(), vec![1, 2, 3]);
        let err = read_input(&input(None, false, Some(dir.path().join("missing")))).unwrap_err();
        assert_eq!(err.code, EXIT_INVALID_INPUT);
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
