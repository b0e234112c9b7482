#![no_main]

// The body and what it checks: wasmraft_fuzz::grpc::grpc_requests.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmraft_fuzz::grpc::grpc_requests(data));
