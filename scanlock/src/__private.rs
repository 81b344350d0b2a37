//! What the attribute macros' expansions call. Not a public API: names here may change
//! in any release.

use std::future::Future;
use std::time::Duration;

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

/// `timeout = <expr>`: the expansion passes the user's expression through this
/// function, spanned on it, so a value that is not a `Duration` is reported on
/// the user's tokens with the message below instead of as a type error inside
/// scanlock.
pub fn timeout_arg<T: TimeoutArg>(timeout: T) -> Duration {
    timeout.into_duration()
}

/// What `timeout = ..` accepts: a [`Duration`].
#[diagnostic::on_unimplemented(
    message = "`timeout` takes a `Duration`, not `{Self}`",
    label = "not a `Duration`",
    note = "write e.g. `timeout = std::time::Duration::from_secs(10)`"
)]
pub trait TimeoutArg {
    /// The wait.
    fn into_duration(self) -> Duration;
}

impl TimeoutArg for Duration {
    fn into_duration(self) -> Duration {
        self
    }
}
