//! `wasmraft`: run one member of a wasmraft cluster. With no flags it behaves like `etcd` with no
//! flags: a single member named "default" serving etcd's v3 API on localhost:2379, with the
//! bundled KV guest. With a subcommand (`propose`, `query`, `info`) it is a client of a member's
//! generic API instead (see `wasmraft::cli`).

use clap::Parser;

use wasmraft::config::MemberFlags;

/// See host/Cargo.toml for why not the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "wasmraft", version, about = "A replicated state machine host: raft, etcd's v3 API, and a WebAssembly apply function.")]
struct Cli {
    #[command(flatten)]
    member: MemberFlags,
    /// Without a subcommand, `wasmraft` runs a member with etcd's flags.
    #[command(subcommand)]
    command: Option<wasmraft::cli::Command>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(command) = cli.command {
        return wasmraft::cli::run(command);
    }
    wasmraft::logging::init(cli.member.logger, cli.member.log_level, cli.member.debug);
    let cfg = match cli.member.validate() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("wasmraft: error verifying flags, {e:#}. See 'wasmraft --help'.");
            return std::process::ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("wasmraft")
        .on_thread_start(wasmraft::node::priority::lower_client_thread)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wasmraft: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(wasmraft::server::run(cfg)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("wasmraft: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
