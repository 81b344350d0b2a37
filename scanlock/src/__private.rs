//! What the attribute macros' expansions call. Not a public API: names here may change
//! in any release.

use std::future::Future;

pub use crate::{LockError, LockGuard, LockType, ScanLockManager, SendLockGuard, Wait};

/// The global manager set by [`init_lock_root`](crate::init_lock_root).
pub fn global() -> Result<&'static ScanLockManager, LockError> {
    crate::global::global_manager()
}

/// Blocking acquisition for a locked function.
pub fn acquire(
    manager: &ScanLockManager,
    name: &str,
    lock_type: LockType,
    user: &str,
    wait: Wait,
) -> Result<LockGuard, LockError> {
    manager.acquire_lock_with(name, lock_type, user, wait)
}

/// Acquisition for a locked `async fn`.
pub fn acquire_async(
    manager: &ScanLockManager,
    name: &str,
    lock_type: LockType,
    user: &str,
    wait: Wait,
) -> impl Future<Output = Result<SendLockGuard, LockError>> + Send + 'static {
    manager.acquire_lock_async(name, lock_type, user, wait)
}

/// `on_error = panic`: a locked function that cannot return an error.
#[track_caller]
pub fn lock_failed(err: LockError) -> ! {
    panic!("{err}")
}
