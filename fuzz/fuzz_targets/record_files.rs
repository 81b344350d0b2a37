//! The same bytes as a holder record and a plantdb `.info` on disk: status and stale
//! listing never fail or panic, and a record nobody holds locked is never a holder.
#![no_main]

use std::sync::OnceLock;

use scanlock_torture::fuzz::FileTarget;

static TARGET: OnceLock<FileTarget> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    TARGET
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("scanlock-fuzz-{}", std::process::id()));
            FileTarget::new(&dir)
        })
        .run(data)
});
