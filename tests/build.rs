//! Compiles the example guests and the test guests (`tests/guests`: hostile, overreach, and the
//! KV guest variants the swap tests deploy) into components for the tests that run them in real
//! members (`--guest PATH`, `wasmraft guest deploy`), exported as `WASMRAFT_TEST_<NAME>_GUEST`.
//! The guest builds share `target/guests` with the host's build script, so this is quick after it.

use std::path::Path;

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let root = Path::new(&manifest_dir).join("..");
    let guests = [
        ("WASMRAFT_TEST_COUNTER_GUEST", "examples/counter"),
        ("WASMRAFT_TEST_LEDGER_GUEST", "examples/ledger"),
        ("WASMRAFT_TEST_LOCKS_GUEST", "examples/locks"),
        ("WASMRAFT_TEST_HOSTILE_GUEST", "tests/guests/hostile"),
        ("WASMRAFT_TEST_OVERREACH_GUEST", "tests/guests/overreach"),
        ("WASMRAFT_TEST_KV_V2_GUEST", "tests/guests/kv-v2"),
        ("WASMRAFT_TEST_KV_BAD_MIGRATE_GUEST", "tests/guests/kv-bad-migrate"),
    ];
    wasmraft_guest_sdk::builder::export_components(&root, &guests);
}
