#![no_main]

// The body and what it checks: wasmraft_fuzz::raft_codecs::msg_codec.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmraft_fuzz::raft_codecs::msg_codec(data));
