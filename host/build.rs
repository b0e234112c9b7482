//! Compiles the guests the host embeds or tests against into Wasm components:
//!
//! - `examples/kv` → `WASMRAFT_KV_GUEST`, the bundled etcd KV guest (embedded in the binary);
//! - `tests/guests/hostile` → `WASMRAFT_HOSTILE_GUEST`, the misbehaving guest of the sandbox tests;
//! - `examples/counter`, `examples/locks`, `examples/ledger` → `WASMRAFT_COUNTER_GUEST`,
//!   `WASMRAFT_LOCKS_GUEST`, `WASMRAFT_LEDGER_GUEST`, the custom example guests (built with
//!   every host build so they never rot).
//!
//! Each variable holds the absolute path of a component file in OUT_DIR, for
//! `include_bytes!(env!(...))`. A guest that does not build fails the host build: a host without
//! its guest is not a useful artifact, and a silent fallback would hide the guest's error.

use std::path::Path;

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let root = Path::new(&manifest_dir).join("..");
    let guests = [
        ("WASMRAFT_KV_GUEST", "examples/kv"),
        ("WASMRAFT_HOSTILE_GUEST", "tests/guests/hostile"),
        ("WASMRAFT_COUNTER_GUEST", "examples/counter"),
        ("WASMRAFT_LOCKS_GUEST", "examples/locks"),
        ("WASMRAFT_LEDGER_GUEST", "examples/ledger"),
    ];
    // A host without its guests is not a useful artifact: a guest that does not build fails
    // the host build rather than falling back silently.
    wasmraft_guest_sdk::builder::export_components(&root, &guests);
}
