//! Case 3: a `#[synchronized]` function against the code a user would write by hand
//! (format the name, `acquire_lock`, run the body, drop the guard).

use std::hint::black_box;

use scanlock::{LockError, LockType, ScanLockManager};

/// Locks `"process-<scan_id>"` exclusively around a trivial body, through the macro.
#[scanlock::synchronized("{f_name}-{scan_id}", manager = locks)]
pub fn process(locks: &ScanLockManager, scan_id: &str) -> Result<usize, LockError> {
    Ok(black_box(scan_id.len()))
}

/// The same by hand: what the macro saves a user from writing.
pub fn process_manual(locks: &ScanLockManager, scan_id: &str) -> Result<usize, LockError> {
    let name = format!("process-{scan_id}");
    let _guard = locks.acquire_lock(
        &name,
        LockType::Exclusive,
        concat!(module_path!(), "::process"),
        None,
    )?;
    Ok(black_box(scan_id.len()))
}
