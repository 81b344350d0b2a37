//! The process-wide manager used by the attribute macros.

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use crate::backend::Target;
use crate::{LockError, ScanLockManager};

/// Environment variable naming the back end of the global manager when neither
/// [`init_lock_root`] nor [`init_lock_url`] was called.
pub const URL_ENV: &str = "SCANLOCK_URL";

static GLOBAL: OnceLock<ScanLockManager> = OnceLock::new();
/// Serialises initialisation, so that two racing initialisers never build two managers
/// (building one runs a cleanup sweep and may connect to a database).
static INIT: Mutex<()> = Mutex::new(());

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
    let abs = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    init(Target::File(abs))
}

/// Sets the global manager from a back-end URL (`file:///var/lib/scans`, or with the
/// `postgres` feature `postgres://user@host/db`); the same rules as [`init_lock_root`].
pub fn init_lock_url(url: &str) -> Result<(), LockError> {
    init(Target::parse_url(url)?)
}

fn init(target: Target) -> Result<(), LockError> {
    let _serial = INIT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let current = match GLOBAL.get() {
        Some(m) => m,
        None => {
            let manager = match &target {
                Target::File(root) => ScanLockManager::new(root)?,
                Target::Postgres(url) => ScanLockManager::from_url(url)?,
            };
            GLOBAL.get_or_init(|| manager)
        }
    };
    if same_target(current.target(), &target) {
        Ok(())
    } else {
        Err(LockError::AlreadyInitialized {
            current: current.url(),
            requested: target.describe(),
        })
    }
}

fn same_target(a: &Target, b: &Target) -> bool {
    match (a, b) {
        (Target::File(a), Target::File(b)) => canonical(a) == canonical(b),
        (a, b) => a == b,
    }
}

fn canonical(p: &Path) -> std::path::PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The global manager: the one set by [`init_lock_root`] or [`init_lock_url`], else one
/// built from the `SCANLOCK_URL` environment variable, else
/// [`LockError::NotInitialized`].
pub fn global_manager() -> Result<&'static ScanLockManager, LockError> {
    if let Some(m) = GLOBAL.get() {
        return Ok(m);
    }
    match std::env::var(URL_ENV) {
        Ok(url) if !url.is_empty() => {
            init_lock_url(&url)?;
            GLOBAL.get().ok_or(LockError::NotInitialized)
        }
        _ => Err(LockError::NotInitialized),
    }
}
