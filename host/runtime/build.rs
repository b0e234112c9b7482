//! Compiles the guests the runtime's tests run into Wasm components:
//!
//! - `tests/guests/hostile` → `WASMRAFT_HOSTILE_GUEST`, the misbehaving guest of the sandbox tests;
//! - `examples/kv` → `WASMRAFT_KV_GUEST`, the bundled etcd KV guest.
//!
//! Each variable holds the absolute path of a component file, for `include_bytes!(env!(...))`.
//! The guest builder keeps its artifacts in the target directory's `guests/`, which the host's
//! build script shares, so each guest is compiled once for both.

use std::path::Path;

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let root = Path::new(&manifest_dir).join("../..");
    // The builder watches each guest's own sources and the SDK; the guests also build against
    // the proto crate and the workspace's profiles and lockfile.
    for path in ["proto/src", "proto/build.rs", "proto/Cargo.toml", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    wasmraft_guest_sdk::builder::export_components(
        &root,
        &[("WASMRAFT_HOSTILE_GUEST", "tests/guests/hostile"), ("WASMRAFT_KV_GUEST", "examples/kv")],
    );
}
