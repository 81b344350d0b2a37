//! `LockGuard`: one hold of a lock, released on drop.

use std::fmt;
use std::sync::Arc;

use crate::local::{Entry, HolderKey};
use crate::manager::ScanLockManager;
use crate::{LockError, LockType};

/// One hold of a named lock. Dropping it releases the hold (errors are logged);
/// [`release`](Self::release) does the same and reports errors.
///
/// A guard is `Send`: it may be dropped on another thread, and it may live across
/// `.await`. A guard inherited by a forked child is inert there: dropping it in the child
/// never releases the parent's lock.
///
/// ```
/// # use scanlock::{LockType, ScanLockManager};
/// # let dir = tempfile::tempdir().unwrap();
/// let m = ScanLockManager::new(dir.path())?;
/// let g = m.acquire_lock("scan001", LockType::Exclusive, "writer", None)?;
/// assert_eq!(g.name(), "scan001");
/// assert_eq!(g.lock_type(), LockType::Exclusive);
/// g.release()?;
/// # Ok::<(), scanlock::LockError>(())
/// ```
#[must_use = "if unused the lock is released immediately"]
pub struct LockGuard {
    manager: ScanLockManager,
    entry: Option<Arc<Entry>>,
    key: HolderKey,
    lock_type: LockType,
    pid: u32,
}

impl LockGuard {
    pub(crate) fn new(
        manager: ScanLockManager,
        entry: Arc<Entry>,
        key: HolderKey,
        lock_type: LockType,
    ) -> LockGuard {
        LockGuard {
            manager,
            entry: Some(entry),
            key,
            lock_type,
            pid: crate::info::current_pid(),
        }
    }

    /// The fencing token of this hold: every exclusive acquisition of a name gets a
    /// token greater than all earlier ones for that name; a shared one sees the current
    /// token. Pass it to the storage you write to, so that it can refuse a writer whose
    /// lock was lost (e.g. with its database connection) after a newer writer came.
    ///
    /// ```
    /// # use scanlock::{LockType, ScanLockManager};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let m = ScanLockManager::new(dir.path())?;
    /// let t1 = m.acquire_lock("scan001", LockType::Exclusive, "w", None)?.fencing_token();
    /// let r = m.acquire_lock("scan001", LockType::Shared, "r", None)?;
    /// assert_eq!(r.fencing_token(), t1);
    /// drop(r);
    /// let t2 = m.acquire_lock("scan001", LockType::Exclusive, "w", None)?.fencing_token();
    /// assert!(t2 > t1);
    /// # Ok::<(), scanlock::LockError>(())
    /// ```
    ///
    /// The file back end assigns the token on the first call during the hold (so that
    /// holders who never ask pay nothing); all guards of one hold see the same token.
    pub fn fencing_token(&self) -> u64 {
        self.entry.as_ref().map_or(0, |e| e.fencing_token())
    }

    /// Whether the lock is still held. Always true on the file back end while the guard
    /// lives; a distributed back end reports `false` once it lost the lock (connection
    /// gone), after which the protected work must stop.
    pub fn is_held(&self) -> bool {
        self.pid == crate::info::current_pid()
            && self.entry.as_ref().is_some_and(|e| e.os_is_held())
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        self.entry.as_ref().map_or("", |e| e.name.as_str())
    }

    /// The mode this guard was granted (a re-entrant shared request inside an exclusive
    /// hold reports `Shared`, though the thread holds exclusively).
    pub fn lock_type(&self) -> LockType {
        self.lock_type
    }

    /// Releases the hold now, reporting any error.
    pub fn release(mut self) -> Result<(), LockError> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<(), LockError> {
        let Some(entry) = self.entry.take() else {
            return Ok(());
        };
        if self.pid != crate::info::current_pid() {
            return Ok(());
        }
        let result = entry.release(self.key);
        tracing::debug!(lock = entry.name.as_str(), lock_type = ?self.lock_type, "released");
        let name = entry.name.clone();
        drop(entry);
        self.manager.forget_if_idle(&name);
        result
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Err(e) = self.release_inner() {
            tracing::warn!(error = %e, "error while releasing a lock");
        }
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("name", &self.name())
            .field("lock_type", &self.lock_type)
            .finish_non_exhaustive()
    }
}
