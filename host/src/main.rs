//! `wasmraft`: run one member of a wasmraft cluster. With no flags it behaves like `etcd` with no
//! flags: a single member named "default" serving etcd's v3 API on localhost:2379, with the
//! bundled KV guest. With a subcommand it is a client instead (see `wasmraft::cli`): `propose`,
//! `query` and `info` of a member's generic API, `guest` (build, deploy, rollback, status, list),
//! `bench` (the load tool, `wasmraft-bench`) and `snapshot restore` (a new data dir from a backup).

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};

use wasmraft::config::{Invocation, LoadError, MemberFlags};

/// See host/Cargo.toml for why not the system allocator.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options, read once before its first allocation (the symbol carries the
/// `_rjem_` prefix of the Rust build's jemalloc). The heap profiler is built in and inactive:
/// `--enable-pprof` activates it (`wasmraft_api::activate_heap_profile`), and it then samples an allocation
/// every 512 KiB on average (2^19), Go's `runtime.MemProfileRate`, which etcd's heap profile
/// uses. Inactive, it costs a branch per allocation. A `&[u8; N]` is a thin pointer: C's
/// `const char *malloc_conf`.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8; 46] = b"prof:true,prof_active:false,lg_prof_sample:19\0";

#[derive(Parser)]
#[command(
    name = "wasmraft",
    about = "A replicated state machine host: raft, etcd's v3 API, and a WebAssembly apply function."
)]
struct Cli {
    #[command(flatten)]
    member: MemberFlags,
    /// Without a subcommand, `wasmraft` runs a member with etcd's flags.
    #[command(subcommand)]
    command: Option<wasmraft::cli::Command>,
}

fn main() -> ExitCode {
    let thp = disable_transparent_huge_pages();
    let nofile = raise_open_files_limit();
    let args: Vec<std::ffi::OsString> = wasmraft::config::go_flag::normalize_single_dash(
        std::env::args_os().collect(),
        &wasmraft::config::long_names(),
    );
    // The subcommands first; the member's settings are loaded below as etcd loads them (which
    // decides whether the environment counts), so this parse reads no environment.
    let cli = wasmraft::config::strip_env(wasmraft::config::with_extras(Cli::command()));
    let matches = match cli.try_get_matches_from(&args) {
        Ok(m) => m,
        // Help from the full command, which lists each flag's variable.
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            let full = wasmraft::config::with_extras(Cli::command());
            match full.try_get_matches_from(&args) {
                Err(help) => help.exit(),
                Ok(_) => e.exit(),
            }
        }
        Err(e) => e.exit(),
    };
    if matches.subcommand().is_some() {
        return match Cli::from_arg_matches(&matches) {
            Ok(Cli { command: Some(command), .. }) => wasmraft::cli::run(command),
            Ok(_) => ExitCode::from(2),
            Err(e) => e.exit(),
        };
    }
    let env: Vec<_> = std::env::vars_os().collect();
    let (cfg, notes) = match wasmraft::config::load(args, &env) {
        Ok(Invocation::Version) => return print_out(&wasmraft::version::text()),
        Ok(Invocation::PrintFlags { json, notes }) => {
            for note in notes {
                eprintln!("{} {}", note.level, note.text);
            }
            return print_out(&format!("{json}\n"));
        }
        Ok(Invocation::Run { config, notes }) => (*config, notes),
        Err(LoadError::Usage(e)) => e.exit(),
        Err(LoadError::Invalid(e)) => {
            eprintln!("wasmraft: error verifying flags, {e:#}. See 'wasmraft --help'.");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = wasmraft::logging::init(cfg.logger, cfg.log_level, &cfg.log_outputs) {
        eprintln!("wasmraft: error verifying flags, {e:#}. See 'wasmraft --help'.");
        return ExitCode::from(1);
    }
    for note in &notes {
        note.log();
    }
    match nofile {
        Ok((from, to)) if from < to => tracing::info!("raised the open files limit from {from} to {to}"),
        Ok(_) => {}
        Err(e) => tracing::warn!("the open files limit stays as it is ({e}): connections may run out of descriptors"),
    }
    if let Err(e) = thp {
        tracing::info!("transparent huge pages stay as the system has them ({e}): expect a longer put latency tail");
    }
    // Before the member allocates its caches and tables, so the heap profile sees them.
    if cfg.enable_pprof
        && let Err(e) = wasmraft_api::activate_heap_profile()
    {
        tracing::warn!("pprof: {e}");
    }
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
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(wasmraft::server::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("wasmraft: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Prints to stdout; a closed stdout (`| head`) is an exit code, not a panic.
fn print_out(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(1),
    }
}

/// Turns transparent huge pages off for this process, as Redis and MongoDB advise for theirs.
/// Allocators `madvise` their arenas for huge pages (mimalloc did; jemalloc may), so memory the member grows into (redb's page
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

/// Raises this process's soft limit on open files to its hard limit, as Go's runtime does for
/// etcd (since Go 1.19): systems start services with a soft limit of 1024, which a member with
/// many clients, watchers and peers exceeds, while the hard limit (the administrator's choice)
/// is usually far higher. Returns the soft limit before and after.
fn raise_open_files_limit() -> std::io::Result<(u64, u64)> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes one rlimit into the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let before = limit.rlim_cur;
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            // SAFETY: setrlimit reads the struct; raising the soft limit up to the hard one needs
            // no privilege.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok((before, limit.rlim_cur))
    }
    #[cfg(not(unix))]
    Ok((0, 0))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_open_files_soft_limit_is_raised_to_the_hard_limit() {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as in raise_open_files_limit.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        let hard = limit.rlim_max;
        // Lowered first, as a service manager's default would have it.
        limit.rlim_cur = 256.min(hard);
        // SAFETY: as above; lowering the soft limit needs no privilege.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
        let (before, after) = super::raise_open_files_limit().expect("raising the limit");
        assert_eq!((before, after), (256.min(hard), hard));
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        assert_eq!(limit.rlim_cur, hard);
    }

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
