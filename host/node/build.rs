//! Compiles the guests the node's tests run into Wasm components:
//!
//! - `tests/guests/hostile` → `WASMRAFT_HOSTILE_GUEST`, the misbehaving guest;
//! - `examples/counter` → `WASMRAFT_COUNTER_GUEST`, a second guest to swap to;
//! - `examples/kv` → `WASMRAFT_KV_GUEST`, the bundled etcd KV guest.
//!
//! Each variable holds the absolute path of a component file, for `include_bytes!(env!(...))`.
//! The guest builder keeps its artifacts in the target directory's `guests/`, shared with the
//! other crates' build scripts, so each guest is compiled once.

use std::path::Path;

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let root = Path::new(&manifest_dir).join("../..");
    wasmraft_guest_sdk::builder::export_components(
        &root,
        &[
            ("WASMRAFT_HOSTILE_GUEST", "tests/guests/hostile"),
            ("WASMRAFT_COUNTER_GUEST", "examples/counter"),
            ("WASMRAFT_KV_GUEST", "examples/kv"),
        ],
    );
}
