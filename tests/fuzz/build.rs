//! With feature "host": compiles `tests/guests/hostile` into a component for the guest-ABI
//! target (`WASMRAFT_FUZZ_HOSTILE_GUEST`). The guest-SDK builder strips the outer build's
//! RUSTFLAGS, so cargo-fuzz's instrumentation flags never reach the Wasm build.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_HOST").is_none() {
        return;
    }
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let root = Path::new(&manifest_dir).join("../..");
    wasmraft_guest_sdk::builder::export_components(&root, &[("WASMRAFT_FUZZ_HOSTILE_GUEST", "tests/guests/hostile")]);
}
