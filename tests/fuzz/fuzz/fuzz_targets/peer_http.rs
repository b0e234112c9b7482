#![no_main]

// The body and what it checks: wasmraft_fuzz::peer_http::peer_http.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmraft_fuzz::peer_http::peer_http(data));
