#![no_main]

// The body and what it checks: wasmraft_fuzz::raft_codecs::msgappv2.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmraft_fuzz::raft_codecs::msgappv2(data));
