#![no_main]

// The body and what it checks: wasmraft_fuzz::client_h2::client_h2.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmraft_fuzz::client_h2::client_h2(data));
