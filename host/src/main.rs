//! `wasmraft`: run one member of a wasmraft cluster. With no flags it behaves like `etcd` with no
//! flags: a single member named "default" serving etcd's v3 API on localhost:2379, with the
//! bundled KV guest. With a subcommand it is a client instead (see `wasmraft::cli`): `propose`,
//! `query` and `info` of a member's generic API, `guest` (build, deploy, rollback, status, list),
//! `bench` (the load tool, `wasmraft-bench`) and `snapshot restore` (a new data dir from a backup).

use clap::Parser;

use wasmraft::config::MemberFlags;

/// See host/Cargo.toml for why not the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "wasmraft",
    version,
    about = "A replicated state machine host: raft, etcd's v3 API, and a WebAssembly apply function."
)]
struct Cli {
    #[command(flatten)]
    member: MemberFlags,
    /// Without a subcommand, `wasmraft` runs a member with etcd's flags.
    #[command(subcommand)]
    command: Option<wasmraft::cli::Command>,
}

fn main() -> std::process::ExitCode {
    let thp = disable_transparent_huge_pages();
    let cli = Cli::parse();
    if let Some(command) = cli.command {
        return wasmraft::cli::run(command);
    }
    // etcd checks --log-outputs with the other flags, before it logs anything.
    let outputs = match wasmraft::logging::LogOutputs::parse(cli.member.logger, &cli.member.log_outputs) {
        Ok(outputs) => outputs,
        Err(e) => {
            eprintln!("wasmraft: error verifying flags, {e:#}. See 'wasmraft --help'.");
            return std::process::ExitCode::from(1);
        }
    };
    wasmraft::logging::init(cli.member.logger, cli.member.log_level, cli.member.debug, outputs);
    if let Err(e) = thp {
        tracing::info!("transparent huge pages stay as the system has them ({e}): expect a longer put latency tail");
    }
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
        // Queries run guest code on these threads, with the deployment's Wasm stack.
        .thread_stack_size(wasmraft_runtime::limits::GUEST_THREAD_STACK_BYTES)
        .on_thread_start(wasmraft_node::priority::lower_client_thread)
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

/// Turns transparent huge pages off for this process, as Redis and MongoDB advise for theirs.
/// mimalloc `madvise`s its arenas for huge pages, so memory the member grows into (redb's page
/// buffers and caches, under write load) arrives 2 MiB at a time, and the kernel zeroes each 2 MiB
/// page in the fault that first touches it. On the benchmark VM that put a 4–6 ms stall into
/// about ten apply batches in every 20,000 puts: half of the put p99 (the workers preempting
/// the apply thread were the other half, `node/priority.rs`). With THP off (one member, 16
/// clients, three alternating runs each), batches over 2 ms went from 7–14 per run to 0–1 and
/// put p99 from 5.7–6.3 ms to 2.0–3.5 ms, at the same CPU per put (docs/benchmarks.md, item 7).
/// Done first, before the member allocates much; where the prctl is refused (a seccomp filter,
/// an old kernel) THP stays as it was and the member still works.
fn disable_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only; it sets a flag on this
        // process's memory map that later page faults consult.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn transparent_huge_pages_are_off_for_the_process_afterwards() {
        super::disable_transparent_huge_pages().expect("prctl(PR_SET_THP_DISABLE)");
        // SAFETY: integer arguments only.
        let disabled = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(disabled, 1);
        let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
        // Kernels that report it (6.x) say so in the status file as well.
        if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
            assert!(line.ends_with('0'), "{line}");
        }
    }
}
