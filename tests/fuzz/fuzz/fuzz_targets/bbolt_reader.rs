#![no_main]

// The body and what it checks: wasmraft_fuzz::bbolt::bbolt_reader.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmraft_fuzz::bbolt::bbolt_reader(data));
