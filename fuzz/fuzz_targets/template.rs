//! Lock-name template parser (scanlock-macros): never panics, errors slice the input,
//! accepted templates round-trip.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| scanlock_torture::fuzz::template_target(data));
