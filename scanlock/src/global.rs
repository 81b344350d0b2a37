//! The process-wide manager used by the attribute macros.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::{LockError, ScanLockManager};

static GLOBAL: OnceLock<(PathBuf, ScanLockManager)> = OnceLock::new();

/// Sets the global manager that `#[synchronized]`, `#[read_locked]` and `#[write_locked]`
/// use, rooted at `root` (see [`ScanLockManager::new`]).
///
/// Call it once at start-up. Calling it again with the same root is `Ok`; with another
/// root it is [`LockError::AlreadyInitialized`] (a process has one global lock root).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// scanlock::init_lock_root(dir.path())?;
/// scanlock::init_lock_root(dir.path())?; // same root again: fine
/// let other = tempfile::tempdir().unwrap();
/// assert!(matches!(
///     scanlock::init_lock_root(other.path()),
///     Err(scanlock::LockError::AlreadyInitialized { .. })
/// ));
/// # Ok::<(), scanlock::LockError>(())
/// ```
pub fn init_lock_root(root: impl AsRef<Path>) -> Result<(), LockError> {
    let root = root.as_ref();
    let requested = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    if GLOBAL.get().is_none() {
        let manager = ScanLockManager::new(&requested)?;
        // A racing initialiser may win; the comparison below judges both cases alike.
        let _ = GLOBAL.set((canonical(&requested), manager));
    }
    let (current, _) = GLOBAL.get().expect("set above");
    if *current == canonical(&requested) {
        Ok(())
    } else {
        Err(LockError::AlreadyInitialized {
            current: current.display().to_string(),
            requested: requested.display().to_string(),
        })
    }
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The global manager, if [`init_lock_root`] was called.
pub fn global_manager() -> Result<&'static ScanLockManager, LockError> {
    GLOBAL
        .get()
        .map(|(_, m)| m)
        .ok_or(LockError::NotInitialized)
}
