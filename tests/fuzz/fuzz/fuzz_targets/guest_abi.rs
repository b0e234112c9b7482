#![no_main]

// The body and what it checks: wasmraft_fuzz::guest_abi::guest_abi.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmraft_fuzz::guest_abi::guest_abi(data));
