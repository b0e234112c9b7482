//! The walls between the host's crates, as `cargo tree` sees them: the crates at the bottom of
//! the data path must not grow a dependency on what sits above them. The compiler keeps a crate
//! from using what it does not depend on; this test keeps the dependencies themselves honest.
//!
//! - `wasmraft-storage` knows bytes, indexes and terms: no raft, no gRPC/HTTP stack, no Wasm
//!   runtime, and not the guest runtime crate.
//! - `wasmraft-runtime` knows Wasm and the store interface: no raft, no gRPC/HTTP stack, and
//!   not the storage crate (nor redb, which is storage's business).
//! - `wasmraft-metrics` is a leaf of counters: of ours it may know only the contract constants
//!   (`wasmraft-proto`), never the node.
//! - `wasmraft-node` is the member core: raft, storage, the runtime and the peer transport; not
//!   the client API's gRPC server, not the command line, and none of the crates above it (the
//!   API, the client, the bench tool, the binary).
//! - `wasmraft-api` serves etcd's API from a node handle: not the command line, the client
//!   crate, the bench tool or the binary.
//! - Neither `wasmraft-node` nor `wasmraft-api` depends on `anyhow`: their errors are typed, and
//!   `anyhow` is the binary's and the tests'.
//! - Nothing in the binary turns prost's recursion limit off.

use std::collections::BTreeSet;
use std::process::Command;

/// The package names in `package`'s normal (non-dev, non-build) dependency closure.
fn closure(package: &str) -> BTreeSet<String> {
    tree(package, &[])
}

/// The package names among `package`'s own normal dependencies (not theirs).
fn direct(package: &str) -> BTreeSet<String> {
    tree(package, &["--depth", "1"])
}

fn tree(package: &str, extra: &[&str]) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--locked", "--offline", "-e", "normal", "--prefix", "none", "--format", "{p}", "-p", package])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo tree");
    assert!(out.status.success(), "cargo tree -p {package} failed: {}", String::from_utf8_lossy(&out.stderr));
    let names: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != package)
        .map(str::to_string)
        .collect();
    assert!(!names.is_empty() || package == "wasmraft-metrics", "cargo tree -p {package} listed nothing");
    names
}

fn assert_none_of(package: &str, forbidden: &[&str]) {
    let deps = closure(package);
    let found: Vec<&&str> = forbidden.iter().filter(|f| deps.contains(**f)).collect();
    assert!(found.is_empty(), "{package} must not depend on {found:?} (directly or through another crate)");
}

const NETWORK_STACK: &[&str] = &["tonic", "hyper", "h2", "axum", "tower"];
const CONSENSUS: &[&str] = &["raft", "raft-proto", "protobuf"];

#[test]
fn storage_knows_no_consensus_network_or_wasm() {
    assert_none_of("wasmraft-storage", CONSENSUS);
    assert_none_of("wasmraft-storage", NETWORK_STACK);
    assert_none_of("wasmraft-storage", &["wasmtime", "wasmraft-runtime", "wasmraft-proto"]);
}

#[test]
fn runtime_knows_no_consensus_network_or_storage() {
    assert_none_of("wasmraft-runtime", CONSENSUS);
    assert_none_of("wasmraft-runtime", NETWORK_STACK);
    assert_none_of("wasmraft-runtime", &["wasmraft-storage", "redb"]);
}

#[test]
fn metrics_is_a_leaf() {
    let deps = closure("wasmraft-metrics");
    let ours: Vec<&String> = deps.iter().filter(|d| d.starts_with("wasmraft") && *d != "wasmraft-proto").collect();
    assert!(ours.is_empty(), "wasmraft-metrics depends on {ours:?}");
}

/// Our crates that sit above the member core on the data path, or beside it for users.
const ABOVE_NODE: &[&str] = &["wasmraft-api", "wasmraft-client", "wasmraft-bench", "wasmraft"];

#[test]
fn node_knows_no_client_api_or_command_line() {
    assert_none_of("wasmraft-node", ABOVE_NODE);
    assert_none_of("wasmraft-node", &["tonic", "h2", "axum", "clap"]);
}

#[test]
fn api_knows_no_command_line_or_client_tools() {
    assert_none_of("wasmraft-api", &["wasmraft-client", "wasmraft-bench", "wasmraft", "clap", "indicatif"]);
}

/// Errors at these crates' boundaries are thiserror enums a caller can match; `anyhow` stays in
/// the binary and the tests. Only the crates' own dependencies are checked: `cargo tree -e
/// normal` lists `anyhow` in both closures anyway, as a dependency of proc-macros they expand
/// (`prost-derive`, wasmtime's and wit-bindgen's macros), which no error of theirs can reach.
#[test]
fn node_and_api_do_not_use_anyhow() {
    for package in ["wasmraft-node", "wasmraft-api"] {
        let deps = direct(package);
        assert!(
            deps.contains("thiserror"),
            "cargo tree --depth 1 -p {package} did not list its dependencies: {deps:?}"
        );
        assert!(!deps.contains("anyhow"), "{package} must not depend on anyhow: its errors are typed");
    }
}

/// prost's nesting limit is what makes a deeply nested request from a client (a txn of txns)
/// an error instead of a stack overflow, and a cargo feature is global to the build: no
/// dependency may switch it off (pprof_util, under jemalloc_pprof, does; docs/decisions.md).
#[test]
fn prost_keeps_its_recursion_limit() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--locked", "--offline", "-e", "features", "-i", "prost", "-p", "wasmraft"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo tree");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("prost"), "cargo tree -i prost listed nothing");
    assert!(!tree.contains("no-recursion-limit"), "a dependency turns prost's recursion limit off:\n{tree}");
}
