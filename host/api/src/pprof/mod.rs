//! `--enable-pprof`: what etcd serves from Go's `net/http/pprof` under `/debug/pprof/` on the
//! client URLs, in the form Rust can give.
//!
//! - `/debug/pprof/profile?seconds=N` — a CPU profile of the whole process over N seconds (30 when
//!   missing or not a positive number, as Go's), sampled 100 times a second as Go's, as a
//!   gzipped pprof protobuf (`perftools.profiles.Profile`) that `go tool pprof` and other pprof
//!   readers open; one at a time, as Go's ("cpu profiling already in use").
//! - `/debug/pprof/cmdline` — the command line, NUL-separated, as Go's.
//! - `/debug/pprof/` — an index of these, and `/debug/pprof` redirects to it.
//! - `/debug/pprof/heap` — the live heap: jemalloc's (the member's allocator) sampled live
//!   allocations, one sample every 512 KiB allocated on average as Go's `MemProfileRate`,
//!   scaled up as jeprof scales them, symbolized, as a gzipped pprof protobuf with Go's
//!   `inuse_objects/count` and `inuse_space/bytes` (Go's also has `alloc_*`; jemalloc keeps no
//!   counts of freed allocations, so they have nothing to come from). See [`heap`]. The profiler is built into the allocator and
//!   switched on with this flag ([`activate_heap_profile`]) before the member starts. Go's text form (`?debug=1`) and delta profiles (`?seconds=N`) are refused with
//!   a 400 that says so.
//! - `/debug/pprof/allocs` — Go's past-allocations profile: 501 with the reason (above).
//! - Go's goroutine, block, mutex, threadcreate and trace profiles have no counterpart; they
//!   answer 404 "Unknown profile", as Go answers a name it does not know.
//!
//! Off unless `--enable-pprof`: then every path here is 404, as in etcd.

mod heap;

use std::io::Write as _;
use std::time::Duration;

use axum::extract::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Go's `runtime/pprof` CPU sampling rate.
const FREQUENCY: i32 = 100;

/// Go's default profile length.
const DEFAULT_SECONDS: u64 = 30;

/// Unwinding through these while they hold locks could deadlock the sampled thread (pprof-rs's
/// advice): their frames are not sampled.
const BLOCKLIST: &[&str] = &["libc", "libgcc", "pthread", "vdso"];

/// The routes under `/debug/pprof`.
pub(super) fn router() -> axum::Router {
    axum::Router::new()
        .route("/debug/pprof", axum::routing::any(redirect))
        .route("/debug/pprof/", axum::routing::any(index))
        .route("/debug/pprof/profile", axum::routing::any(profile))
        .route("/debug/pprof/cmdline", axum::routing::any(cmdline))
        .route("/debug/pprof/heap", axum::routing::any(heap))
        .route("/debug/pprof/{name}", axum::routing::any(named))
}

/// Go's ServeMux answer for a subtree without its slash.
async fn redirect() -> Response {
    (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/debug/pprof/")]).into_response()
}

async fn index() -> Response {
    let body = "<html>\n<head>\n<title>/debug/pprof/</title>\n</head>\n<body>\n/debug/pprof/<br>\n<br>\n\
        Types of profiles available:\n<table>\n<thead><td>Profile</td><td>Description</td></thead>\n\
        <tr><td><a href='cmdline'>cmdline</a></td><td>The command line invocation of the current program</td></tr>\n\
        <tr><td><a href='heap'>heap</a></td><td>A sampling of memory allocations of live objects.</td></tr>\n\
        <tr><td><a href='profile'>profile</a></td><td>CPU profile. You can specify the duration in the seconds GET parameter. \
        After you get the profile file, use the go tool pprof command to investigate the profile.</td></tr>\n\
        </table>\n</body>\n</html>\n";
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

async fn cmdline() -> Response {
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")],
        args.join("\0"),
    )
        .into_response()
}

async fn named(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "allocs" => error(
            StatusCode::NOT_IMPLEMENTED,
            "allocs profile unavailable: jemalloc samples live allocations only; /debug/pprof/heap has them",
        ),
        _ => error(StatusCode::NOT_FOUND, "Unknown profile"),
    }
}

/// Switches jemalloc's heap profiler on: the binary calls it for `--enable-pprof` first thing,
/// before the member allocates its caches and tables. Fails when the allocator is not jemalloc
/// with its profiler built in (a test binary, say): then `/debug/pprof/heap` answers 501, and
/// the caller logs why.
pub fn activate_heap_profile() -> Result<(), String> {
    heap::activate()
}

/// Go's `/debug/pprof/heap` (binary form): the sampled live heap now.
async fn heap(Query(q): Query<Vec<(String, String)>>) -> Response {
    let param = |name: &str| q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if param("debug").and_then(|d| d.parse::<i64>().ok()).is_some_and(|d| d > 0) {
        return error(StatusCode::BAD_REQUEST, "heap profile: only the binary form (debug=0) is served");
    }
    if param("seconds").is_some() {
        return error(StatusCode::BAD_REQUEST, "heap profile: delta profiles (seconds=N) are not served");
    }
    if !heap::active() {
        return error(StatusCode::NOT_IMPLEMENTED, heap::UNAVAILABLE);
    }
    // One dump at a time: jemalloc's dump holds its profiler's locks while it writes.
    static DUMPING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = DUMPING.lock().await;
    // jemalloc writes its dump to a file, and symbolizing reads debug info: not on the
    // runtime's threads.
    match tokio::task::spawn_blocking(heap::dump).await {
        Ok(Ok(bytes)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"heap\""),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            bytes,
        )
            .into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("Could not write the heap profile: {e}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("Could not write the heap profile: {e}")),
    }
}

/// Go's `pprof.Profile`: samples for `seconds`, then the profile.
async fn profile(Query(q): Query<Vec<(String, String)>>) -> Response {
    let seconds = q
        .iter()
        .find(|(k, _)| k == "seconds")
        .and_then(|(_, v)| v.parse::<i64>().ok())
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_SECONDS);
    let guard = match pprof::ProfilerGuardBuilder::default().frequency(FREQUENCY).blocklist(BLOCKLIST).build() {
        Ok(g) => g,
        Err(pprof::Error::Running) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Could not enable CPU profiling: cpu profiling already in use",
            );
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("Could not enable CPU profiling: {e}")),
    };
    // A client that goes away drops this future, and with it the guard: sampling stops.
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    // Symbolizing walks every sampled frame's debug info: not on the runtime's threads.
    let encoded = tokio::task::spawn_blocking(move || encode(&guard)).await;
    match encoded {
        Ok(Ok(bytes)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"profile\""),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            bytes,
        )
            .into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("Could not write the CPU profile: {e}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("Could not write the CPU profile: {e}")),
    }
}

/// The profile so far, as Go's `runtime/pprof` writes it: a gzipped `perftools.profiles.Profile`.
fn encode(guard: &pprof::ProfilerGuard<'_>) -> Result<Vec<u8>, String> {
    use pprof::protos::Message as _;
    let profile = guard.report().build().and_then(|r| r.pprof()).map_err(|e| e.to_string())?;
    let raw = profile.write_to_bytes().map_err(|e| e.to_string())?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).map_err(|e| e.to_string())?;
    gz.finish().map_err(|e| e.to_string())
}

/// Go's `serveError`.
fn error(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")],
        format!("{text}\n"),
    )
        .into_response()
}
