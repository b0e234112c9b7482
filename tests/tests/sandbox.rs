//! The sandbox no guest can break, against real 3-member clusters: a guest that asks for more
//! than the host's size limits, one that tries to keep state in a global while members batch and
//! replay entries differently, one that imports something the world does not offer, and files
//! that are not state-machine components at all.
//!
//! Every failing entry must come back as a clear error (naming the limit it broke), leave none of
//! its writes behind, and leave the cluster serving with identical state on every member. A guest
//! that cannot be a state machine must be refused when the member starts, before it serves
//! anything. (tests/custom_guests.rs covers traps, panics, `Err`, fuel, memory and a global that
//! never counts past 1.)

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use wasmraft_tests::binaries::wasmraft_bin;
use wasmraft_tests::cluster::{Cluster, ClusterConfig};
use wasmraft_tests::guest::DeployOptions;
use wasmraft_tests::member::{Flavor, MemberConfig, READY_LINE};

const HOSTILE: &str = env!("WASMRAFT_TEST_HOSTILE_GUEST");
const OVERREACH: &str = env!("WASMRAFT_TEST_OVERREACH_GUEST");

// The host's per-call size limits (host/runtime/src/limits.rs). They are part of the host's
// protocol; the error texts name them, so a change there fails here with both numbers shown.
const MAX_KEY_BYTES: usize = 4 << 20;
const MAX_VALUE_BYTES: usize = 64 << 20;
const MAX_EVENT_BYTES: usize = 2 * (MAX_KEY_BYTES + MAX_VALUE_BYTES) + (64 << 10);
const MAX_RESULT_BYTES: usize = 128 << 20;

/// Room for the largest case (a result of MAX_RESULT_BYTES built as one line and then joined: two
/// copies in guest memory), so the memory cap never stops a size case first.
const GUEST_MEMORY_BYTES: u64 = 512 << 20;
/// Far more than filling a few hundred MiB costs, so fuel never stops a size case first.
const GUEST_FUEL: u64 = 20_000_000_000;
/// Small, so the request-size cases stay cheap.
const MAX_REQUEST_BYTES: usize = 64 << 10;

/// How long a member given an unusable guest may take to give up.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(30);

/// The whole keyspace as one scan page (the host's page holds up to 1024 pairs).
const SCAN_ALL: &str = "script:scan - - 0 fwd";
const SCAN_PAGE_PAIRS: usize = 1024;

/// Taken exclusively by the test whose entries copy hundreds of MiB, shared by the others, so
/// that one never competes with another test's cluster for the CPU.
static HEAVY: RwLock<()> = RwLock::new(());

/// What a `wasmraft propose|query` run ended with: stdout on exit 0, else the exit code and
/// stderr.
type CliResult = Result<String, (i32, String)>;

/// Runs `wasmraft <sub> --endpoints=<endpoint> <args…>`.
fn wasmraft(sub: &str, endpoint: &str, args: &[&str]) -> CliResult {
    let out = Command::new(wasmraft_bin())
        .arg(sub)
        .arg(format!("--endpoints={endpoint}"))
        .arg("--command-timeout=60")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running wasmraft {sub}: {e}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    match out.status.code() {
        Some(0) => Ok(text(&out.stdout)),
        code => Err((code.unwrap_or(-1), text(&out.stderr))),
    }
}

/// Proposes `command` through `endpoint`; the guest's answer, or the failure.
fn propose(endpoint: &str, command: &str) -> CliResult {
    wasmraft("propose", endpoint, &[command])
}

fn must_propose(endpoint: &str, command: &str) -> String {
    propose(endpoint, command)
        .unwrap_or_else(|(code, err)| panic!("propose {command:?} via {endpoint}: exit {code}: {err}"))
}

/// Asserts that the member answered `what` with exit code 1 (an error from the member) and a
/// message containing `expected`.
fn assert_refused(what: &str, result: CliResult, expected: &str) {
    match result {
        Ok(out) => panic!("{what} succeeded (answer of {} bytes) but must be refused with {expected:?}", out.len()),
        Err((code, err)) => {
            assert_eq!(code, 1, "{what}: exit code (1 = the member answered with an error): {err}");
            assert!(err.contains(expected), "{what}: the error must say {expected:?}, got: {err}");
        }
    }
}

/// Every member's whole keyspace, read locally (serializable) after the members converged;
/// asserts that they are identical and returns it.
fn converged_state(cluster: &mut Cluster) -> String {
    cluster.wait_converged(Duration::from_secs(30));
    let scans: Vec<(String, String)> = cluster
        .endpoints()
        .into_iter()
        .map(|e| {
            let scan = wasmraft("query", &e, &["--consistency=s", SCAN_ALL])
                .unwrap_or_else(|(code, err)| panic!("serializable scan on {e}: exit {code}: {err}"));
            (e, scan)
        })
        .collect();
    let (first_endpoint, first) = &scans[0];
    for (endpoint, scan) in &scans[1..] {
        assert!(
            scan == first,
            "members diverged: {endpoint} holds {} pairs, {first_endpoint} holds {}:\n{endpoint}: {scan:.2000}\n{first_endpoint}: {first:.2000}",
            pairs(scan).len(),
            pairs(first).len()
        );
    }
    let n = pairs(first).len();
    assert!(n < SCAN_PAGE_PAIRS, "the state ({n} pairs) must fit one scan page to be compared whole");
    first.clone()
}

/// `k=v,k=v` (a hostile scan line) as a map.
fn pairs(scan: &str) -> BTreeMap<String, String> {
    scan.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or_else(|| panic!("bad scan pair {p:?} in {scan:.200}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn hostile_cluster(extra: &[String]) -> Cluster {
    let mut config = ClusterConfig::new(Flavor::Wasmraft, 3).arg(format!("--guest={HOSTILE}"));
    for arg in extra {
        config = config.arg(arg.clone());
    }
    config.start()
}

/// A key, a value, an event and a result each one byte over the host's limit, built by the guest
/// from a few bytes of command after it wrote a marker in the same entry; then commands just over
/// `--max-request-bytes`. Each is refused with an error that names its limit, its marker is
/// nowhere, the cluster keeps serving, and the members end identical.
#[test]
fn oversized_keys_values_events_results_and_requests_are_refused_without_a_trace() {
    let mut cluster = hostile_cluster(&[
        format!("--guest-memory-bytes={GUEST_MEMORY_BYTES}"),
        format!("--guest-fuel={GUEST_FUEL}"),
        format!("--max-request-bytes={MAX_REQUEST_BYTES}"),
        // A debug-built member takes seconds to lift a 136 MiB event or a 128 MiB result out of
        // the guest before it can check its size, and all three apply each entry at once: etcd's
        // request timeout (5 s plus two election timeouts, here 15 s) must outlast that, or the
        // proposer sees "request timed out" instead of the error.
        "--heartbeat-interval=500".to_string(),
        "--election-timeout=5000".to_string(),
    ]);
    // The size cases run alone: three members copying hundreds of MiB each, next to another
    // test's cluster on two cores, could outlast even that timeout.
    let _alone = HEAVY.write().unwrap_or_else(|e| e.into_inner());
    let e = cluster.endpoints();
    let mut written = vec![("a".to_string(), "1".to_string())];
    must_propose(&e[0], "ok:a=1");

    // The script's output is one line per op: "put\n" and then the padding.
    let pad = MAX_RESULT_BYTES + 1 - "put\n".len();
    let cases = [
        (
            "a key over MAX_KEY_BYTES",
            format!("script:put marker-key 1;bigput {} 1", MAX_KEY_BYTES + 1),
            format!(
                "wasmraft: guest passed a {} byte key to put (the limit is {MAX_KEY_BYTES} bytes)",
                MAX_KEY_BYTES + 1
            ),
        ),
        (
            "a value over MAX_VALUE_BYTES",
            format!("script:put marker-value 1;bigput 1 {}", MAX_VALUE_BYTES + 1),
            format!("wasmraft: guest put a {} byte value (the limit is {MAX_VALUE_BYTES} bytes)", MAX_VALUE_BYTES + 1),
        ),
        (
            "an event over MAX_EVENT_BYTES",
            format!("script:put marker-event 1;emit {}", MAX_EVENT_BYTES + 1),
            format!(
                "wasmraft: guest emitted a {} byte event (the limit is {MAX_EVENT_BYTES} bytes)",
                MAX_EVENT_BYTES + 1
            ),
        ),
        (
            "a result over MAX_RESULT_BYTES",
            format!("script:put marker-result 1;pad {pad}"),
            format!("wasmraft: guest returned {} bytes (the limit is {MAX_RESULT_BYTES} bytes)", MAX_RESULT_BYTES + 1),
        ),
    ];
    for (i, (what, command, expected)) in cases.iter().enumerate() {
        let endpoint = &e[i % 3];
        assert_refused(&format!("{what} via {endpoint}"), propose(endpoint, command), expected);
        // The cluster keeps serving, through every member.
        let key = format!("after-{i}");
        assert_eq!(must_propose(&e[(i + 1) % 3], &format!("ok:{key}=1")), "ok", "a good entry after {what}");
        written.push((key, "1".into()));
    }
    // A query's answer has the same limit.
    assert_refused(
        "a query result over MAX_RESULT_BYTES",
        wasmraft("query", &e[1], &["--consistency=s", &format!("huge-result:{}", MAX_RESULT_BYTES + 1)]),
        &format!("wasmraft: guest returned {} bytes (the limit is {MAX_RESULT_BYTES} bytes)", MAX_RESULT_BYTES + 1),
    );

    // The request side: exactly --max-request-bytes is accepted, one byte more is etcd's error,
    // for proposals and queries alike, through any member.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = |name: &str, bytes: String| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("write request file");
        p
    };
    let at_limit = file("at-limit", format!("ok:edge={}", "v".repeat(MAX_REQUEST_BYTES - "ok:edge=".len())));
    let over_limit =
        file("over-limit", format!("ok:too-large={}", "v".repeat(MAX_REQUEST_BYTES + 1 - "ok:too-large=".len())));
    let query_over =
        file("query-over", format!("script:get {}", "q".repeat(MAX_REQUEST_BYTES + 1 - "script:get ".len())));
    for (p, len) in
        [(&at_limit, MAX_REQUEST_BYTES), (&over_limit, MAX_REQUEST_BYTES + 1), (&query_over, MAX_REQUEST_BYTES + 1)]
    {
        assert_eq!(std::fs::metadata(p).map(|m| m.len() as usize).ok(), Some(len), "{}", p.display());
    }
    let arg = |p: &Path| format!("--file={}", p.display());
    assert_eq!(
        wasmraft("propose", &e[2], &[&arg(&at_limit)])
            .unwrap_or_else(|(c, err)| panic!("a command of exactly --max-request-bytes: exit {c}: {err}")),
        "ok"
    );
    must_propose(&e[2], "script:del edge");
    for (endpoint, sub, p) in
        [(&e[2], "propose", &over_limit), (&e[0], "propose", &over_limit), (&e[1], "query", &query_over)]
    {
        assert_refused(
            &format!("a {sub} one byte over --max-request-bytes via {endpoint}"),
            wasmraft(sub, endpoint, &[&arg(p)]),
            "etcdserver: request is too large",
        );
    }

    // Nothing of the refused entries (their markers, the too-large put, the oversized key) is on
    // any member, and the members are identical.
    let state = converged_state(&mut cluster);
    let expected: BTreeMap<String, String> = written.into_iter().collect();
    assert_eq!(pairs(&state), expected, "the state after the refused entries: only the good writes");
}

/// A guest that counts commands in a static and stores the count (`global-put:<key>`). An
/// entry's commands share one instance (proposal batching), so within an entry the count runs
/// 1, 2, 3…; it must never carry into the next entry, nor depend on how a member batched its
/// applies or replayed its log. Six clients write through all three members at once, so the
/// proposers pack commands and members see different apply batch boundaries, and one member is
/// killed with SIGKILL and restarted in the middle, so it replays part of its log in batches of
/// its own. Every member must store, for every key, exactly the count its client was answered,
/// and a lone command afterwards counts 1.
#[test]
fn a_global_never_carries_state_across_entries_batches_or_restarts() {
    let _shared = HEAVY.read().unwrap_or_else(|e| e.into_inner());
    const CLIENTS: usize = 6;
    const PER_CLIENT: usize = 30;
    const TOTAL: usize = CLIENTS * PER_CLIENT;
    let mut cluster = hostile_cluster(&["--guest-fuel=200000000".to_string()]);
    let endpoints = cluster.endpoints();
    let leader = cluster.wait_leader(Duration::from_secs(30));
    // A follower, so the others keep a leader and the only interruption is this member's.
    let victim = (leader + 1) % 3;

    let acked = Arc::new(AtomicUsize::new(0));
    let answers: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let endpoint = endpoints[c % 3].clone();
            let (acked, answers) = (acked.clone(), answers.clone());
            std::thread::spawn(move || {
                let mut retries = 0;
                for i in 0..PER_CLIENT {
                    let key = format!("g{c}-{i:03}");
                    // Retried until acknowledged (while its member is down, or around a leader
                    // change): a repeated entry is harmless, it stores the same "1" again.
                    let answer = loop {
                        match propose(&endpoint, &format!("global-put:{key}")) {
                            Ok(answer) => break answer,
                            Err((code, err)) => {
                                assert!(
                                    Instant::now() < deadline,
                                    "client {c}: {key} via {endpoint} still failing: exit {code}: {err}"
                                );
                                retries += 1;
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                    };
                    answers.lock().unwrap().push((key, answer));
                    acked.fetch_add(1, Ordering::SeqCst);
                }
                retries
            })
        })
        .collect();

    let wait_acked = |n: usize| {
        while acked.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "only {} of {TOTAL} entries acknowledged", acked.load(Ordering::SeqCst));
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_acked(TOTAL / 3);
    cluster.kill9(victim);
    let at_kill = acked.load(Ordering::SeqCst);
    // The other members' clients go on while the victim is down.
    wait_acked(at_kill + TOTAL / 4);
    cluster.restart(victim);
    let retries: Vec<usize> = clients.into_iter().map(|t| t.join().expect("client thread")).collect();
    eprintln!("global-put: {TOTAL} entries, victim m{victim} killed after {at_kill}, retries per client {retries:?}");

    let answers = std::mem::take(&mut *answers.lock().unwrap());
    assert_eq!(answers.len(), TOTAL);
    let counts: Vec<usize> = answers.iter().map(|(_, a)| a.parse().expect("a count")).collect();
    // One command in flight per client, plus (rarely) an abandoned attempt of a retried one.
    assert!(counts.iter().all(|&c| (1..=2 * CLIENTS).contains(&c)), "an entry's commands per client: {counts:?}");
    eprintln!("counts answered: {} above 1 of {TOTAL}", counts.iter().filter(|&&c| c > 1).count());
    // A client retried after its member went down may have been answered by a later copy of
    // its command, which stored the count of its own entry: the state keeps the last copy's,
    // so compare keys that were never retried only by their presence.
    let state = pairs(&converged_state(&mut cluster));
    assert_eq!(state.len(), TOTAL, "every acknowledged key is stored, and nothing else");
    let expected: BTreeMap<String, String> = answers.into_iter().collect();
    assert_eq!(state.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    let same = expected.iter().filter(|(k, v)| state.get(*k) == Some(*v)).count();
    assert!(same + retries.iter().sum::<usize>() >= TOTAL, "stored counts differ from the answers beyond the retries");

    // Alone in its entry, a command starts from a fresh instance whatever came before.
    for (i, endpoint) in endpoints.iter().enumerate() {
        assert_eq!(must_propose(endpoint, &format!("global-put:alone{i}")), "1", "a lone command via member {i}");
    }
}

/// Starts a new member (the command line of tests/src/member.rs, a cluster of its own) with
/// `--guest=<guest>` and asserts that it exits with an error at startup whose text contains each of
/// `expected`, without ever serving clients.
fn assert_refused_at_startup(what: &str, guest: &Path, expected: &[&str]) {
    let config = MemberConfig::new(Flavor::Wasmraft).arg(format!("--guest={}", guest.display()));
    let dir = tempfile::tempdir().expect("temp dir");
    let args = config.args(&dir.path().join("data"));
    let who = format!("{what}: a new member with --guest={}", guest.display());
    let started = Instant::now();
    let mut child = Command::new(wasmraft_bin())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning wasmraft {}: {e}", args.join(" ")));
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > REFUSAL_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{who} was still running after {REFUSAL_DEADLINE:?}: an unusable guest must stop it at startup");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().expect("piped stderr"), &mut stderr).expect("read stderr");
    assert!(
        matches!(status.code(), Some(c) if c != 0),
        "{who} must exit with a non-zero code, got {status}; stderr:\n{stderr}"
    );
    for text in expected {
        assert!(stderr.contains(text), "{who}: stderr must say {text:?}, got:\n{stderr}");
    }
    assert!(!stderr.contains(READY_LINE), "{who} must never serve clients, but logged {READY_LINE:?}:\n{stderr}");
    let addr = config.client_url().trim_start_matches("http://").to_string();
    assert!(TcpStream::connect(&addr).is_err(), "{who}: something still accepts connections on its client URL {addr}");
    eprintln!("{who}: refused after {took:?} ({status})");
}

/// Puts `--guest=<guest>` on member `i`'s command line for its next start.
fn set_guest(cluster: &mut Cluster, i: usize, guest: &Path) {
    let args = &mut cluster.member_mut(i).config_mut().extra_args;
    args.retain(|a| !a.starts_with("--guest="));
    args.push(format!("--guest={}", guest.display()));
}

/// In a running hostile-guest cluster, kills one member at a time and restarts it with each `bad`
/// guest: it must exit with status 1 before it serves, its log saying each of the expected texts,
/// while the other two go on serving writes. Back on the cluster's guest it catches up, and at the
/// end all three hold the same state.
fn running_cluster_refuses(bad: &[(&str, PathBuf, Vec<&str>)]) {
    let mut cluster = hostile_cluster(&[]);
    let e = cluster.endpoints();
    let mut expected = BTreeMap::new();
    for (n, (what, guest, texts)) in bad.iter().enumerate() {
        let i = n % 3;
        cluster.kill9(i);
        set_guest(&mut cluster, i, guest);
        cluster.restart_no_wait(i);
        match cluster.member_mut(i).try_wait_ready(REFUSAL_DEADLINE) {
            Ok(()) => panic!("{what}: m{i} restarted with --guest={} and served clients", guest.display()),
            Err(err) => assert!(
                err.contains("exited (exit status: 1)"),
                "{what}: m{i} must exit with status 1 at startup: {err}"
            ),
        }
        let log = cluster.member(i).current_log();
        for text in texts {
            assert!(log.contains(text), "{what}: m{i}'s log must say {text:?}:\n{log}");
        }
        // The other two serve while m{i} is refused (once they agree on a leader: m{i} may have
        // been it, and a proposal forwarded to a dead leader is lost, as in etcd).
        cluster.wait_leader(Duration::from_secs(30));
        let key = format!("k{n}");
        assert_eq!(must_propose(&e[(i + 1) % 3], &format!("ok:{key}=v{n}")), "ok", "a write while m{i} is down");
        expected.insert(key, format!("v{n}"));
        set_guest(&mut cluster, i, Path::new(HOSTILE));
        cluster.restart(i);
    }
    assert_eq!(
        pairs(&converged_state(&mut cluster)),
        expected,
        "every member holds the writes made while one member was refused"
    );
}

/// A real guest (compiled from tests/guests/overreach with wit-bindgen) whose world is
/// `state-machine` plus an import of a made-up `evil:net/socket`.
#[test]
fn a_guest_importing_what_the_world_does_not_offer_is_refused_at_load() {
    let _shared = HEAVY.read().unwrap_or_else(|e| e.into_inner());
    let guest = PathBuf::from(OVERREACH);
    let expected = ["imports something wasmraft does not provide", "evil:net/socket"];
    assert_refused_at_startup("a guest importing evil:net/socket", &guest, &expected);
    running_cluster_refuses(&[("a guest importing evil:net/socket", guest.clone(), expected.to_vec())]);
}

/// Files that are not state-machine components: a core module, random bytes, an empty file, a
/// component cut short, and a valid but empty component.
#[test]
fn files_that_are_not_state_machine_components_are_refused_at_load() {
    let _shared = HEAVY.read().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, bytes: &[u8]| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("write guest file");
        p
    };
    // A core module that exports a function `apply`: (module (func (export "apply"))).
    let core = write(
        "core-module.wasm",
        &[
            0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1 (a core module)
            0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // types: [] -> []
            0x03, 0x02, 0x01, 0x00, // functions: one of type 0
            0x07, 0x09, 0x01, 0x05, b'a', b'p', b'p', b'l', b'y', 0x00, 0x00, // export "apply"
            0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code: no locals, end
        ],
    );
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let random: Vec<u8> = (0..64 << 10)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    assert_ne!(&random[..4], b"\0asm", "the random bytes must not look like Wasm");
    let random = write("random.wasm", &random);
    let empty = write("empty.wasm", b"");
    let hostile = std::fs::read(HOSTILE).expect("read the hostile component");
    let truncated = write("truncated.wasm", &hostile[..hostile.len() / 2]);
    // magic, version 0x0d, layer 1: a component with nothing in it, so no state-machine exports.
    let empty_component = write("empty-component.wasm", &[0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]);

    let not_wasm = "failed to parse WebAssembly module";
    let cases: Vec<(&str, PathBuf, Vec<&str>)> = vec![
        ("a core module", core, vec![not_wasm, "wasm module with a component parser"]),
        ("random bytes", random, vec![not_wasm]),
        ("an empty file", empty, vec![not_wasm]),
        ("half a component", truncated, vec![not_wasm]),
        ("an empty component", empty_component, vec!["does not export the wasmraft:guest state-machine world"]),
    ];
    for (what, guest, expected) in &cases {
        assert_refused_at_startup(what, guest, expected);
    }
    running_cluster_refuses(&cases);
}

/// The deepest `recurse-to` that applies through `endpoint`, by bisection (deeper ones trap on
/// the stack limit).
fn max_recursion(endpoint: &str, limit: u64) -> u64 {
    let (mut ok, mut trapped) = (0u64, 1u64 << 22);
    while trapped - ok > 1 {
        let mid = ok + (trapped - ok) / 2;
        match propose(endpoint, &format!("recurse-to:{mid}")) {
            Ok(answer) => {
                assert_eq!(answer, mid.to_string());
                ok = mid;
            }
            Err((_, err)) => {
                assert!(
                    err.contains(&format!("wasmraft: guest exhausted its stack (limit {limit} bytes)")),
                    "recurse-to:{mid}: {err}"
                );
                trapped = mid;
            }
        }
    }
    ok
}

/// Every running member's deployment has this stack limit, as `guest status` shows it, within
/// a while: a member applies the deploy entry at its own pace, and one that had not compiled
/// the module for this limit (the code counts the limit itself) compiles it then.
fn assert_stack_limit(cluster: &mut Cluster, limit: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let status = cluster.guest_status().expect("guest status");
        if status.iter().all(|s| s.stack_bytes == limit) {
            return;
        }
        if std::time::Instant::now() > deadline {
            for s in status {
                assert_eq!(s.stack_bytes, limit, "member {}", s.member_name);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The Wasm stack limit is the replicated deployment's: a recursion traps at the same depth on
/// every member (each holds exactly the probes that returned, the deepest one included), a
/// member restarted with another `--guest-stack-bytes` still traps where the record says, and
/// a deploy with twice the limit lets it go about twice as deep.
#[test]
fn the_deployments_stack_limit_decides_where_recursion_traps_on_every_member() {
    let _shared = HEAVY.read().unwrap_or_else(|e| e.into_inner());
    let mut cluster = hostile_cluster(&["--guest-stack-bytes=65536".to_string()]);
    let e = cluster.endpoints();
    assert_stack_limit(&mut cluster, 64 << 10);
    let depth = max_recursion(&e[0], 64 << 10);
    let state = pairs(&converged_state(&mut cluster));
    assert!(state.contains_key(&format!("recursed/{depth}")), "{state:?}");
    assert!(!state.contains_key(&format!("recursed/{}", depth + 1)), "{state:?}");

    // The flag only proposes the first deployment: a member restarted with another value runs
    // the recorded one.
    let member = cluster.member_mut(1).config_mut();
    for arg in member.extra_args.iter_mut().filter(|a| a.starts_with("--guest-stack-bytes=")) {
        *arg = "--guest-stack-bytes=1048576".to_string();
    }
    cluster.restart(1);
    assert_eq!(must_propose(&e[1], &format!("recurse-to:{depth}")), depth.to_string());
    assert_refused(
        "one call deeper on the restarted member",
        propose(&e[1], &format!("recurse-to:{}", depth + 1)),
        "wasmraft: guest exhausted its stack (limit 65536 bytes)",
    );

    let refused = cluster.deploy_with(HOSTILE, &DeployOptions::default().stack_bytes(100_000));
    let err = refused.expect_err("a stack limit off the list");
    assert!(err.contains("stack limit 100000 is not a power of two from 65536 to 8388608 bytes"), "{err}");
    let deployed = cluster.deploy_with(HOSTILE, &DeployOptions::default().stack_bytes(128 << 10)).expect("deploy");
    assert_eq!(deployed.stack_bytes, 128 << 10);
    assert_stack_limit(&mut cluster, 128 << 10);
    let deeper = max_recursion(&e[2], 128 << 10);
    assert!(deeper * 10 > depth * 19 && deeper * 10 < depth * 21, "64 KiB: {depth} calls, 128 KiB: {deeper}");
    let state = pairs(&converged_state(&mut cluster));
    assert!(
        state.contains_key(&format!("recursed/{deeper}")) && !state.contains_key(&format!("recursed/{}", deeper + 1))
    );
    eprintln!("recursion depth on real members: {depth} calls at 64 KiB, {deeper} at 128 KiB");
}
