//! The one error type of scanlock.

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

use crate::LockType;
use crate::info::LockInfo;

/// Everything that can go wrong when taking, inspecting or releasing a lock.
///
/// Every message names the lock and, where scanlock could find out, who holds it
/// (user, pid, host), and says what to do next.
///
/// ```
/// use scanlock::{LockError, LockType, ScanLockManager};
/// # let dir = tempfile::tempdir().unwrap();
/// let m = ScanLockManager::new(dir.path())?;
/// let _writer = m.acquire_lock("scan001", LockType::Exclusive, "writer", None)?;
/// // A second thread asking for the same scan cannot get in.
/// let err = std::thread::scope(|s| {
///     s.spawn(|| m.try_acquire_lock("scan001", LockType::Shared, "reader").unwrap_err())
///         .join()
///         .unwrap()
/// });
/// assert!(matches!(err, LockError::WouldBlock { .. }));
/// assert!(err.to_string().contains("\"scan001\""));
/// assert!(err.to_string().contains("writer"));
/// # Ok::<(), LockError>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum LockError {
    /// The lock stayed held for the whole allowed wait.
    Timeout {
        /// The lock's name.
        name: String,
        /// The mode that was asked for.
        lock_type: LockType,
        /// How long the caller waited.
        waited: Duration,
        /// A holder seen when the wait ended, if scanlock could tell.
        holder: Option<Box<LockInfo>>,
    },
    /// A single attempt (`try_acquire_lock`, or a zero timeout) found the lock held.
    WouldBlock {
        /// The lock's name.
        name: String,
        /// The mode that was asked for.
        lock_type: LockType,
        /// A holder seen at that moment, if scanlock could tell.
        holder: Option<Box<LockInfo>>,
    },
    /// The request can never succeed because the calling thread itself stands in the
    /// way, e.g. it holds the lock shared and asks for it exclusively.
    WouldDeadlock {
        /// The lock's name.
        name: String,
        /// The mode that was asked for.
        requested: LockType,
        /// The mode the calling thread already holds.
        held: LockType,
    },
    /// The name cannot be used as a lock name (empty, or contains NUL).
    InvalidName {
        /// The rejected name (NUL bytes shown escaped).
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A file-system or back-end I/O error; the message names the lock and the file.
    Io(io::Error),
    /// A `#[synchronized]`-style function ran before [`init_lock_root`](crate::init_lock_root).
    NotInitialized,
    /// A back-end URL that scanlock cannot use (bad syntax, unknown scheme, or a back end
    /// whose cargo feature is not enabled).
    InvalidUrl {
        /// The URL, with any password hidden.
        url: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// [`init_lock_root`](crate::init_lock_root) was called again with a different root.
    AlreadyInitialized {
        /// The root the global manager already uses.
        current: String,
        /// The root of the rejected call.
        requested: String,
    },
    /// A lock root that cannot be used: the empty path, or one whose absolute form
    /// cannot be found (no working directory).
    InvalidRoot {
        /// The root as given.
        root: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl LockError {
    /// The lock's name, for the variants that concern one lock.
    pub fn lock_name(&self) -> Option<&str> {
        match self {
            LockError::Timeout { name, .. }
            | LockError::WouldBlock { name, .. }
            | LockError::WouldDeadlock { name, .. }
            | LockError::InvalidName { name, .. } => Some(name),
            _ => None,
        }
    }

    /// Wraps an I/O error with the lock name, the operation and the path, keeping its kind.
    pub(crate) fn io(name: &str, op: &str, path: &Path, err: io::Error) -> LockError {
        let kind = err.kind();
        let hint = match kind {
            io::ErrorKind::PermissionDenied => {
                "; check that this user may write the lock directory"
            }
            io::ErrorKind::NotFound => "; does the lock root still exist?",
            _ if matches!(err.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                "; too many open files: raise the limit (ulimit -n) or hold fewer locks at once"
            }
            _ if err.raw_os_error() == Some(libc::EROFS) => {
                "; the lock directory is on a read-only file system"
            }
            _ if err.raw_os_error() == Some(libc::ENOSPC) => "; the file system is full",
            _ => "",
        };
        LockError::Io(io::Error::new(
            kind,
            IoContext {
                message: format!(
                    "lock \"{name}\": cannot {op} {}: {err}{hint}",
                    path.display()
                ),
                source: err,
            },
        ))
    }
}

/// Keeps the original I/O error as `source()` behind a message that names the lock.
#[derive(Debug)]
struct IoContext {
    message: String,
    source: io::Error,
}

impl fmt::Display for IoContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for IoContext {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn fmt_holder(f: &mut fmt::Formatter<'_>, holder: &Option<Box<LockInfo>>) -> fmt::Result {
    match holder {
        Some(h) => write!(
            f,
            " (held {} by user \"{}\", pid {} on host \"{}\", thread \"{}\")",
            h.lock_type, h.user, h.pid, h.hostname, h.thread
        ),
        None => Ok(()),
    }
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Timeout {
                name,
                lock_type,
                waited,
                holder,
            } => {
                write!(
                    f,
                    "timed out after {:.3}s waiting for {lock_type} lock \"{name}\"",
                    waited.as_secs_f64()
                )?;
                fmt_holder(f, holder)?;
                write!(
                    f,
                    "; retry later, raise the timeout, or inspect get_lock_status(\"{name}\")"
                )
            }
            LockError::WouldBlock {
                name,
                lock_type,
                holder,
            } => {
                write!(f, "{lock_type} lock \"{name}\" is busy")?;
                fmt_holder(f, holder)?;
                write!(f, "; retry later or wait with a timeout")
            }
            LockError::WouldDeadlock {
                name,
                requested,
                held,
            } => write!(
                f,
                "this thread already holds lock \"{name}\" {held} and asked for it {requested}: \
                 that can never succeed; release the {held} guard first (scanlock does not upgrade locks)"
            ),
            LockError::InvalidName { name, reason } => {
                write!(f, "invalid lock name \"{name}\": {reason}")
            }
            LockError::Io(e) => fmt::Display::fmt(e, f),
            LockError::InvalidUrl { url, reason } => {
                write!(f, "cannot use lock back end {url}: {reason}")
            }
            LockError::NotInitialized => f.write_str(
                "no global lock manager: call scanlock::init_lock_root(path) or \
                 scanlock::init_lock_url(url) once at start-up (or set SCANLOCK_URL) before \
                 calling lock-annotated functions, or pass `manager = ...` to the attribute",
            ),
            LockError::AlreadyInitialized { current, requested } => write!(
                f,
                "the global lock manager already uses root {current}; cannot switch to {requested} \
                 (init_lock_root may be called again only with the same root)"
            ),
            LockError::InvalidRoot { root, reason } => {
                write!(f, "invalid lock root {root:?}: {reason}")
            }
        }
    }
}

impl std::error::Error for LockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LockError::Io(e) => e.get_ref().map(|e| e as &(dyn std::error::Error + 'static)),
            _ => None,
        }
    }
}

impl From<LockError> for io::Error {
    fn from(err: LockError) -> io::Error {
        let kind = match &err {
            LockError::Io(e) => e.kind(),
            LockError::Timeout { .. } => io::ErrorKind::TimedOut,
            LockError::WouldBlock { .. } => io::ErrorKind::WouldBlock,
            LockError::WouldDeadlock { .. } => io::ErrorKind::Deadlock,
            LockError::InvalidName { .. } | LockError::InvalidUrl { .. } => {
                io::ErrorKind::InvalidInput
            }
            LockError::InvalidRoot { .. } => io::ErrorKind::InvalidInput,
            LockError::NotInitialized | LockError::AlreadyInitialized { .. } => {
                io::ErrorKind::Other
            }
        };
        match err {
            LockError::Io(e) => e,
            other => io::Error::new(kind, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_conversion_keeps_kind_and_message() {
        let e = LockError::Timeout {
            name: "scan9".into(),
            lock_type: LockType::Exclusive,
            waited: Duration::from_millis(1500),
            holder: None,
        };
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::TimedOut);
        assert!(io.to_string().contains("\"scan9\""), "{io}");
        assert!(io.to_string().contains("1.500s"), "{io}");
    }

    #[test]
    fn io_errors_name_lock_and_path() {
        let e = LockError::io(
            "scan1",
            "open",
            Path::new("/x/.locks/scan1.lock"),
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        let msg = e.to_string();
        assert!(
            msg.contains("\"scan1\"") && msg.contains("/x/.locks/scan1.lock"),
            "{msg}"
        );
        assert!(std::error::Error::source(&e).is_some());
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn error_is_send_sync_static() {
        fn check<T: std::error::Error + Send + Sync + 'static>() {}
        check::<LockError>();
    }
}
