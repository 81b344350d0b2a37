//! The guards: one hold of a lock each, released on drop. `LockGuard` (a thread's,
//! re-entrant, `!Send`) and `SendLockGuard` (movable, never re-entrant).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::local::{Entry, HolderKey};
use crate::manager::ScanLockManager;
use crate::{LockError, LockType};

/// One hold of a named lock, taken by a thread through the blocking API. Dropping it
/// releases the hold (errors are logged); [`release`](Self::release) does the same and
/// reports errors.
///
/// Re-entrancy is keyed by the acquiring thread (or, with the `tokio` feature, by the
/// tokio task), so the guard is `!Send`, as std's and lock_api's re-entrant guards are:
/// a guard moved to another thread would leave its first thread "inside" and let it
/// re-enter while the guard lives elsewhere. To hold a lock across threads or across
/// `.await`, take a [`SendLockGuard`] ([`ScanLockManager::acquire_lock_send`] or
/// [`ScanLockManager::acquire_lock_async`]), which is never re-entrant.
///
/// A guard inherited by a forked child is inert there: dropping it in the child never
/// releases the parent's lock.
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
///
/// ```compile_fail,E0277
/// # use scanlock::{LockType, ScanLockManager};
/// # let dir = tempfile::tempdir().unwrap();
/// let m = ScanLockManager::new(dir.path()).unwrap();
/// let g = m.acquire_lock("scan001", LockType::Exclusive, "writer", None).unwrap();
/// std::thread::spawn(move || drop(g)); // error: `LockGuard` cannot be sent between threads
/// ```
#[must_use = "if unused the lock is released immediately"]
pub struct LockGuard {
    hold: Hold,
    /// `!Send`, still `Sync` (as `std::sync::MutexGuard`).
    _not_send: PhantomData<std::sync::MutexGuard<'static, ()>>,
}

/// One hold of a named lock that may move between threads: from
/// [`ScanLockManager::acquire_lock_async`] (so it can live across `.await` in a task
/// that changes threads) or [`ScanLockManager::acquire_lock_send`]. Never re-entrant:
/// its holder is the guard itself, so a second acquisition of the same name waits for
/// it, whatever thread or task asks.
///
/// ```
/// # use scanlock::{LockType, ScanLockManager, Wait};
/// # let dir = tempfile::tempdir().unwrap();
/// let m = ScanLockManager::new(dir.path())?;
/// let g = m.acquire_lock_send("scan001", LockType::Exclusive, "mover", Wait::Default)?;
/// std::thread::spawn(move || g.release()).join().unwrap()?;
/// # Ok::<(), scanlock::LockError>(())
/// ```
#[must_use = "if unused the lock is released immediately"]
pub struct SendLockGuard {
    hold: Hold,
}

/// What both guards hold and release.
struct Hold {
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
            hold: Hold::new(manager, entry, key, lock_type),
            _not_send: PhantomData,
        }
    }
}

impl SendLockGuard {
    pub(crate) fn new(
        manager: ScanLockManager,
        entry: Arc<Entry>,
        key: HolderKey,
        lock_type: LockType,
    ) -> SendLockGuard {
        SendLockGuard {
            hold: Hold::new(manager, entry, key, lock_type),
        }
    }
}

impl Hold {
    fn new(
        manager: ScanLockManager,
        entry: Arc<Entry>,
        key: HolderKey,
        lock_type: LockType,
    ) -> Hold {
        Hold {
            manager,
            entry: Some(entry),
            key,
            lock_type,
            pid: crate::info::current_pid(),
        }
    }

    fn fencing_token(&self) -> u64 {
        self.entry.as_ref().map_or(0, |e| e.fencing_token())
    }

    fn is_held(&self) -> bool {
        self.pid == crate::info::current_pid()
            && self.entry.as_ref().is_some_and(|e| e.os_is_held())
    }

    fn name(&self) -> &str {
        self.entry.as_ref().map_or("", |e| e.name.as_str())
    }

    fn release(&mut self) -> Result<(), LockError> {
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

impl Drop for Hold {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            tracing::warn!(error = %e, "error while releasing a lock");
        }
    }
}

/// The methods of both guards, written once.
macro_rules! guard_methods {
    ($guard:ident) => {
        impl $guard {
            /// The fencing token of this hold: every exclusive acquisition of a name gets
            /// a token greater than all earlier ones for that name; a shared one sees the
            /// current token. Pass it to the storage you write to, so that it can refuse
            /// a writer whose lock was lost (e.g. with its database connection) after a
            /// newer writer came.
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
            /// The file back end assigns the token on the first call during the hold (so
            /// that holders who never ask pay nothing); all guards of one hold see the
            /// same token.
            pub fn fencing_token(&self) -> u64 {
                self.hold.fencing_token()
            }

            /// Whether the lock is still held. Always true on the file back end while
            /// the guard lives; a distributed back end reports `false` once it lost the
            /// lock (connection gone), after which the protected work must stop.
            pub fn is_held(&self) -> bool {
                self.hold.is_held()
            }

            /// The lock's name.
            pub fn name(&self) -> &str {
                self.hold.name()
            }

            /// The mode this guard was granted (a re-entrant shared request inside an
            /// exclusive hold reports `Shared`, though the thread holds exclusively).
            pub fn lock_type(&self) -> LockType {
                self.hold.lock_type
            }

            /// Releases the hold now, reporting any error.
            ///
            /// # Errors
            ///
            /// [`LockError::Io`] when the back end could not release (the lock is then
            /// released when the process exits or its connection ends).
            pub fn release(mut self) -> Result<(), LockError> {
                self.hold.release()
            }
        }

        impl fmt::Debug for $guard {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($guard))
                    .field("name", &self.name())
                    .field("lock_type", &self.hold.lock_type)
                    .finish_non_exhaustive()
            }
        }
    };
}

guard_methods!(LockGuard);
guard_methods!(SendLockGuard);
