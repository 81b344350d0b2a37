//! Named shared/exclusive locks that work across threads and processes, for programs
//! that share a directory of scans (or anything else with a name).
//!
//! ```
//! use std::time::Duration;
//! use scanlock::{LockError, LockType, ScanLockManager};
//!
//! # let dir = tempfile::tempdir().unwrap();
//! # let root = dir.path();
//! let locks = ScanLockManager::new(root)?;      // creates <root>/.locks
//!
//! // Many readers at once...
//! let r1 = locks.acquire_lock("scan001", LockType::Shared, "web-ui", None)?;
//! let status = locks.get_lock_status("scan001")?;
//! assert_eq!(status.lock_type, Some(LockType::Shared));
//! assert_eq!(status.holders[0].user, "web-ui");
//! drop(r1);
//!
//! // ...or one writer.
//! let w = locks.acquire_lock("scan001", LockType::Exclusive, "worker", Some(Duration::from_secs(10)))?;
//! w.release()?;
//! # Ok::<(), LockError>(())
//! ```
//!
//! # What else is here
//!
//! - **Attribute macros**: [`macro@synchronized`], [`macro@read_locked`] and
//!   [`macro@write_locked`] run a function while holding a lock named from its arguments
//!   (`#[scanlock::synchronized("{f_name}-{scan_id}")]`).
//! - **Async**: [`ScanLockManager::acquire_lock_async`] waits without blocking the
//!   executor; the macros use it for an `async fn`.
//! - **Back ends**: lock files under a directory (`flock`, the default) and PostgreSQL
//!   advisory locks (feature `postgres`, [`init_lock_url`] or
//!   [`ScanLockManager::builder`](ScanLockManager) with a `postgres://` URL).
//! - **Fencing tokens**: [`LockGuard::fencing_token`] increases with every exclusive
//!   acquisition of a name, for storage that must reject a stale holder's writes.
//! - **CLI**: the [`scanlock-cli`](https://crates.io/crates/scanlock-cli) crate installs
//!   `scanlock`, to inspect, wait for, run under and clean locks from a shell.
//!
//! # Semantics
//!
//! - **Shared/exclusive, per name.** Shared holders coexist; an exclusive holder excludes
//!   every other holder, whether it is another thread of this process or another process.
//!   Different names never block each other.
//! - **Threads are holders.** Within a process the manager keeps one OS lock per name and
//!   a reader/writer layer on top. The `user` string is metadata only: two threads with
//!   the same `user` still exclude each other.
//! - **Re-entrant per thread.** A thread may take a lock again while it holds it
//!   (shared in shared, anything in exclusive); each guard counts once. Asking for
//!   exclusive while holding shared returns [`LockError::WouldDeadlock`] at once. So a
//!   thread's [`LockGuard`] is `!Send`; a guard that may move between threads is a
//!   [`SendLockGuard`] ([`ScanLockManager::acquire_lock_send`],
//!   [`ScanLockManager::acquire_lock_async`]), which is never re-entrant. With the
//!   `tokio` feature, the blocking API's holder inside a tokio task is the task.
//! - **Writers are not starved**, neither by readers in this process (new readers queue
//!   behind a waiting writer) nor by readers in other processes (a per-name gate file).
//! - **Waiting.** `None` waits the default timeout (30 s), `Some(d)` waits `d`,
//!   `Some(Duration::ZERO)` and [`ScanLockManager::try_acquire_lock`] make one attempt,
//!   [`Wait::Forever`] blocks in the kernel. Timed waits poll the kernel lock with a
//!   back-off capped at 1 ms (a blocked `flock` cannot be cancelled), so they end within
//!   about a millisecond of the deadline or of a release.
//! - **Crashes.** The kernel drops a dead process's locks at once. Its metadata records
//!   are recognised as stale (their own `flock` is gone), ignored by
//!   [`ScanLockManager::get_lock_status`] and removed by [`ScanLockManager::new`] and
//!   [`ScanLockManager::cleanup_stale_locks`].
//! - **Lock files are never deleted** by scanlock, so no waiter can lock a file that is
//!   no longer the lock. After locking, every acquirer also checks that its file is still
//!   the one at the path (other tools do delete lock files) and retries if not.
//! - **Fork.** A child that inherits a manager or a guard never releases the parent's
//!   lock; in the child the manager starts with no locks.
//!
//! # Files
//!
//! For a name such as `scan001`, under `<root>/.locks/`: `scan001.lock` (the lock,
//! compatible with `flock(1)` and plantdb), `scan001.gate` (writer preference) and
//! `scan001.holders/` (one JSON [`LockInfo`] record per holder). Other names are encoded
//! so that every name maps to its own files inside `.locks/` (see the README).
//!
//! # Platform
//!
//! Linux (and other Unix systems with `flock`). Use local file systems: `flock` over NFS
//! is emulated with byte-range locks and is only as reliable as the NFS lock manager.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Everything below is Unix-only (flock, fork, /proc): on another target this one error is
// all the build reports.
#[cfg(not(unix))]
compile_error!(
    "scanlock supports Unix (Linux, macOS, the BSDs: any target with flock) only: \
     its locks are flock(2) locks on files and its holder records use Unix process ids"
);

#[cfg(unix)]
mod async_acquire;
#[cfg(unix)]
mod backend;
#[cfg(unix)]
mod error;
#[cfg(unix)]
mod global;
#[cfg(unix)]
mod guard;
#[cfg(unix)]
mod info;
#[cfg(unix)]
mod local;
#[cfg(unix)]
mod manager;
#[cfg(unix)]
mod name;

#[cfg(unix)]
#[doc(hidden)]
pub mod __fuzz;
#[cfg(unix)]
#[doc(hidden)]
pub mod __private;

#[cfg(unix)]
pub use async_acquire::AcquireFuture;
#[cfg(unix)]
pub use backend::{file_url_root, redact_url};
#[cfg(unix)]
pub use error::LockError;
#[cfg(unix)]
pub use global::{URL_ENV, global_manager, init_lock_root, init_lock_url};
#[cfg(unix)]
pub use guard::{LockGuard, SendLockGuard};
#[cfg(unix)]
pub use info::LockInfo;
#[cfg(unix)]
pub use manager::{
    CleanupReport, DEFAULT_TIMEOUT, LockStatus, ScanLockManager, ScanLockManagerBuilder,
    StaleRecord, Wait,
};
#[cfg(unix)]
pub use scanlock_macros::{read_locked, synchronized, write_locked};

#[cfg(unix)]
use serde::{Deserialize, Serialize};

#[cfg(unix)]
/// The two modes of a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockType {
    /// Read lock: any number of shared holders at once.
    Shared,
    /// Write lock: one holder, and nobody else.
    Exclusive,
}

#[cfg(unix)]
impl std::fmt::Display for LockType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LockType::Shared => "shared",
            LockType::Exclusive => "exclusive",
        })
    }
}
