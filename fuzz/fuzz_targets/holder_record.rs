//! Holder-record decoder: garbage never panics; only complete active records decode.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| scanlock_torture::fuzz::holder_record_target(data));
