#![no_main]

// The body and what it checks: wasmraft_fuzz::wal_replay::wal_replay.
libfuzzer_sys::fuzz_target!(|data: &[u8]| wasmraft_fuzz::wal_replay::wal_replay(data));
