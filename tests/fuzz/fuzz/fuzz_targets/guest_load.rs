#![no_main]

// The body and what it checks: wasmraft_fuzz::guest_load::guest_load.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmraft_fuzz::guest_load::guest_load(data));
