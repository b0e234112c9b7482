#![no_main]

// The body and what it checks: wasmraft_fuzz::snapshot_file::snapshot_file.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmraft_fuzz::snapshot_file::snapshot_file(data));
