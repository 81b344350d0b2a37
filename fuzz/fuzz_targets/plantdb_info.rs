//! plantdb `.info` reader: garbage never panics and is never taken as a record.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| scanlock_torture::fuzz::plantdb_info_target(data));
