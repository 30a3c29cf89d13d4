//! Arbitrary API Gateway HTTP API events through each function's full adapter: see
//! `conformance::check` for what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| conformance::check(data));
