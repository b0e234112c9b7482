//! How a command-line client reaches a member: the connection flags `wasmraft`'s client commands
//! and `wasmraft bench` share (etcdctl's --endpoints, --dial-timeout, --command-timeout, --user
//! and TLS flags), dialing a member over http or https (`tls`, etcd's `TLSInfo.ClientConfig`,
//! which a member dialing its peers uses too), logging in with --user and presenting the token,
//! the request input flags, Go-style durations (`go_duration`, which etcd's flags take), and the
//! error type that carries etcdctl-like exit codes.
//!
//! This crate must not know the server: no storage, raft, guests or member configuration. It
//! speaks to a member only through the gRPC API in `wasmraft-proto`.
//!
//! Exit codes: 0 success; 1 the member answered with an error; 2 bad usage (clap's code); 3
//! invalid input (bad hex, unreadable input file, bad TLS files); 4 no endpoint could be
//! reached; 6 output could not be written.

pub mod go_duration;
pub mod tls;

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tonic::transport::{Channel, Endpoint};

pub const EXIT_SERVER_ERROR: u8 = 1;
pub const EXIT_INVALID_INPUT: u8 = 3;
pub const EXIT_BAD_CONNECTION: u8 = 4;
pub const EXIT_IO: u8 = 6;

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
        let files = tls::DialFiles {
            cert_file: conn.cert.as_deref(),
            key_file: conn.key.as_deref(),
            trusted_ca_file: conn.cacert.as_deref(),
            skip_verify: conn.insecure_skip_tls_verify,
            policy: None,
        };
        let tls = tls::client_config(files, &[b"h2"])
            .map_err(|e| CliError::new(EXIT_INVALID_INPUT, format!("TLS: {e:#}")))?;
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
pub async fn authed(conn: &ConnFlags, channel: Channel) -> Result<AuthedChannel, CliError> {
    let token = login(conn, channel.clone()).await?;
    Ok(tonic::service::interceptor::InterceptedService::new(channel, token))
}

/// The token `--user` gets from etcd's Authenticate on `channel` (none without `--user`): one
/// login that several connections can then present, as `wasmraft bench` does.
pub async fn login(conn: &ConnFlags, channel: Channel) -> Result<TokenInterceptor, CliError> {
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

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsistencyArg {
    #[value(name = "l")]
    Linearizable,
    #[value(name = "s")]
    Serializable,
}

/// A failure with the exit code it ends the process with (etcdctl's codes, above).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
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

pub fn secs(s: f64, what: &str) -> Result<Duration, CliError> {
    Duration::try_from_secs_f64(s).map_err(|e| CliError::new(EXIT_INVALID_INPUT, format!("--{what}: {e}")))
}

/// A channel to the first endpoint that accepts a connection, and its URL.
pub async fn channel(conn: &ConnFlags, call: Duration) -> Result<(Channel, String), CliError> {
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
pub async fn channel_to(ep: &str, dial: &Dial) -> Result<(Channel, String), String> {
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
/// (or hyper's) own text alone ("transport error") does not say what went wrong.
pub fn error_chain(e: &dyn std::error::Error) -> String {
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

pub fn status_error(s: tonic::Status) -> CliError {
    CliError::new(EXIT_SERVER_ERROR, format!("{:?}: {}", s.code(), s.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(data: Option<&str>, hex: bool, file: Option<PathBuf>) -> InputFlags {
        InputFlags { data: data.map(str::to_owned), hex, file }
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
}
