//! The seam between the manager's in-process layer and the store that makes a lock
//! visible to other processes (and, for distributed back ends, other hosts).
//!
//! The in-process layer guarantees that a back end sees at most one acquisition per
//! (process, name) at a time: threads are queued above this seam. A back end therefore
//! only has to exclude *processes*.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::info::LockInfo;
use crate::name::LockName;
use crate::{LockError, LockStatus, LockType, StaleRecord};

pub(crate) mod file;
mod plantdb;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod records;

/// Settings of the PostgreSQL back end (kept in every build, so that the builder's
/// `pg_*` options exist with or without the `postgres` feature).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PgOptions {
    /// Most connections one process keeps to the server for locks (one per name held
    /// or awaited), besides one for status queries.
    pub(crate) pool_size: usize,
    /// Mixed into every advisory-lock key and stored with every row, so that scanlock's
    /// locks never collide with other applications' advisory locks in the database.
    pub(crate) namespace: String,
}

/// Default of [`PgOptions::pool_size`].
pub(crate) const PG_DEFAULT_POOL_SIZE: usize = 16;
/// Default of [`PgOptions::namespace`].
pub(crate) const PG_DEFAULT_NAMESPACE: &str = "scanlock";

impl Default for PgOptions {
    fn default() -> PgOptions {
        PgOptions {
            pool_size: PG_DEFAULT_POOL_SIZE,
            namespace: PG_DEFAULT_NAMESPACE.to_owned(),
        }
    }
}

/// Where a manager keeps its locks, from a path or a URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// `<root>/.locks` on a file system (`file:///root`).
    File(std::path::PathBuf),
    /// A PostgreSQL database (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl Target {
    /// Parses a back-end URL: `file:///abs/path`, `file://localhost/abs/path`,
    /// `postgres://...`, `postgresql://...`.
    pub(crate) fn parse_url(url: &str) -> Result<Target, LockError> {
        let bad = |reason: &str| LockError::InvalidUrl {
            url: redact(url),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://..., e.g. file:///var/lib/scans"))?;
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                let path = rest.strip_prefix("localhost").unwrap_or(rest);
                if !path.starts_with('/') {
                    return Err(bad(
                        "a file URL needs an absolute path: file:///var/lib/scans (three slashes)",
                    ));
                }
                let path = percent_decode(path).ok_or_else(|| bad("bad %-escape in the path"))?;
                Ok(Target::File(std::path::PathBuf::from(path)))
            }
            "postgres" | "postgresql" => Ok(Target::Postgres(url.to_owned())),
            other => Err(bad(&format!(
                "unknown back end `{other}://`; use file:///path or postgres://user@host/db"
            ))),
        }
    }

    /// A printable form with any password hidden.
    pub(crate) fn describe(&self) -> String {
        match self {
            Target::File(root) => format!("file://{}", root.display()),
            Target::Postgres(url) => redact(url),
        }
    }
}

/// The directory a `file://` URL names, or `None` for a URL of another back end.
///
/// Tools use it to check that a lock root exists before they open a manager, which
/// would create `<root>/.locks/`. It parses exactly as
/// [`ScanLockManager::from_url`](crate::ScanLockManager::from_url) does.
///
/// ```
/// # use std::path::PathBuf;
/// let root = scanlock::file_url_root("file:///var/lib/my%20scans")?;
/// assert_eq!(root, Some(PathBuf::from("/var/lib/my scans")));
/// assert_eq!(scanlock::file_url_root("postgres://u@db/locks")?, None);
/// assert!(scanlock::file_url_root("file://relative/path").is_err());
/// # Ok::<(), scanlock::LockError>(())
/// ```
pub fn file_url_root(url: &str) -> Result<Option<std::path::PathBuf>, LockError> {
    Ok(match Target::parse_url(url)? {
        Target::File(root) => Some(root),
        Target::Postgres(_) => None,
    })
}

/// `url` with its password (in the user part or a `password=` parameter) replaced by
/// `***`, for messages and logs.
///
/// ```
/// assert_eq!(
///     scanlock::redact_url("postgres://app:hunter2@db/locks"),
///     "postgres://app:***@db/locks"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    redact(url)
}

fn percent_decode(s: &str) -> Option<std::ffi::OsString> {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(std::ffi::OsString::from_vec(out))
}

/// Hides the password of `scheme://user:password@host/...` and of a `password=`
/// query parameter (`postgres://u@h/db?password=...`).
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let path = match path.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => path.to_owned(),
    };
    format!("{scheme}://{authority}{path}")
}

/// How long an acquisition may wait, resolved to an absolute deadline.
#[derive(Clone, Debug)]
pub(crate) struct WaitCtx {
    pub(crate) deadline: Deadline,
    pub(crate) started: Instant,
    /// Set when the caller gave up (an async acquisition's future was dropped).
    pub(crate) cancel: Option<Arc<AtomicBool>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// Exactly one attempt, never sleeping.
    Try,
    /// Until this instant (monotonic clock).
    At(Instant),
    /// No limit.
    Forever,
}

/// Longest sleep between attempts of a timed wait: bounds both the lateness of the
/// timeout and the hand-over latency after a release.
pub(crate) const MAX_POLL: Duration = Duration::from_millis(1);
const FIRST_POLL: Duration = Duration::from_micros(50);

impl WaitCtx {
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Acquire))
    }

    /// True when blocking in the kernel without a limit is allowed: only for `Forever`
    /// waits that nobody can cancel (flock cannot be interrupted safely from a library).
    pub(crate) fn may_block_in_kernel(&self) -> bool {
        self.deadline == Deadline::Forever && self.cancel.is_none()
    }

    /// The error to return when the wait ends unsuccessfully now.
    pub(crate) fn give_up(&self, name: &LockName, lock_type: LockType) -> LockError {
        match self.deadline {
            Deadline::Try => LockError::WouldBlock {
                name: name.as_str().to_owned(),
                lock_type,
                holder: None,
            },
            _ => LockError::Timeout {
                name: name.as_str().to_owned(),
                lock_type,
                waited: self.started.elapsed(),
                holder: None,
            },
        }
    }

    /// Runs `attempt` until it yields `Some`, sleeping with capped exponential back-off
    /// between attempts; `Err(None)` when the deadline passed or the wait was cancelled.
    pub(crate) fn poll<T, E>(
        &self,
        mut attempt: impl FnMut() -> Result<Option<T>, E>,
    ) -> Result<T, Option<E>> {
        let mut pause = FIRST_POLL;
        loop {
            if let Some(v) = attempt().map_err(Some)? {
                return Ok(v);
            }
            if !self.pause(&mut pause) {
                return Err(None);
            }
        }
    }

    /// Sleeps before the next attempt and grows `pause`; `false` (without sleeping) when
    /// the wait is over: one-attempt mode, deadline passed, or cancelled.
    pub(crate) fn pause(&self, pause: &mut Duration) -> bool {
        let sleep = match self.deadline {
            Deadline::Try => return false,
            Deadline::Forever => *pause,
            Deadline::At(t) => {
                let now = Instant::now();
                if now >= t {
                    return false;
                }
                (*pause).min(t - now)
            }
        };
        if self.cancelled() {
            return false;
        }
        std::thread::sleep(sleep);
        *pause = (*pause * 2).min(MAX_POLL);
        true
    }

    /// The first pause of a back-off sequence.
    pub(crate) fn first_pause() -> Duration {
        FIRST_POLL
    }
}

/// A store that excludes processes (and hosts). Object safe: the manager holds the one
/// chosen at construction.
pub(crate) trait Backend: Send + Sync + fmt::Debug {
    /// Takes the process-level lock on `name` in `mode`, waiting as `wait` allows.
    /// Returns `Timeout`/`WouldBlock` without holder details (the manager adds them).
    fn acquire(
        &self,
        name: &LockName,
        mode: LockType,
        wait: &WaitCtx,
    ) -> Result<Box<dyn BackendLock>, LockError>;

    /// [`acquire`](Backend::acquire), then publishes `info` (the acquiring holder's
    /// metadata, `None` when metadata is off) as with [`BackendLock::add_holder`]. A back
    /// end that can write the record in the same round trip as the lock overrides this.
    /// Failing to publish the record never fails the acquisition: it is logged, and the
    /// holder has no record.
    fn acquire_with_holder(
        &self,
        name: &LockName,
        mode: LockType,
        wait: &WaitCtx,
        info: Option<&LockInfo>,
    ) -> Result<Held, LockError> {
        let lock = self.acquire(name, mode, wait)?;
        let record = info.and_then(|info| publish_holder(&*lock, name, info));
        Ok((lock, record))
    }

    /// The lock's current state as other processes see it. Never changes any state.
    fn status(&self, name: &LockName) -> Result<LockStatus, LockError>;

    /// Finds (and with `remove`, deletes) metadata left by holders that are gone. Never
    /// touches a lock (except to delete a dead plantdb holder's `.info` under it).
    fn stale(&self, remove: bool) -> Result<Vec<StaleRecord>, LockError>;

    /// Names that have lock state in the store (held or not).
    fn names(&self) -> Result<Vec<String>, LockError>;
}

/// A lock just acquired, with the acquiring holder's record (if it has one).
pub(crate) type Held = (Box<dyn BackendLock>, Option<Box<dyn HolderRecord>>);

/// A process-level lock held through a back end.
pub(crate) trait BackendLock: Send + fmt::Debug {
    /// Publishes one in-process holder's metadata; the record is withdrawn when the
    /// returned value is dropped.
    fn add_holder(&self, info: &LockInfo) -> Result<Box<dyn HolderRecord>, LockError>;

    /// Releases the lock. Dropping without calling this also releases it.
    fn release(self: Box<Self>) -> Result<(), LockError>;

    /// Withdraws `last`, the record of the last holder (if it has one), then releases
    /// the lock. A back end that can do both in one round trip overrides this; either
    /// way the record must be gone no later than the lock.
    fn release_with_holder(
        self: Box<Self>,
        last: Option<Box<dyn HolderRecord>>,
    ) -> Result<(), LockError> {
        drop(last);
        self.release()
    }

    /// The fencing token of this acquisition: for an exclusive one, a number greater
    /// than every token handed out before for the name; for a shared one, the current
    /// token. Only called while the lock is held; a back end may assign it lazily on the
    /// first call (the file back end does), but must return the same value after that.
    fn fencing_token(&self) -> u64;

    /// Whether the in-process layer may keep this lock across exclusive holders of the
    /// process (an in-process hand-over) rather than release and take it again. Worth it
    /// where the lock is local system calls; not on PostgreSQL, where checking the
    /// session and moving the holder row would cost as many round trips as it saves.
    fn hands_over_in_process(&self) -> bool {
        false
    }

    /// A new hold begins on this lock without releasing it (an in-process hand-over from
    /// one exclusive holder to the next): the next [`fencing_token`](Self::fencing_token)
    /// must be a new one.
    fn renew_hold(&mut self);

    /// Whether a writer of another process waits for this lock (held shared by this
    /// process): the in-process layer then stops letting new reader threads join the
    /// hold, so that it ends. A back end that cannot tell returns `false` (its writers
    /// then rely on reader holds ending by themselves).
    fn writer_waits_elsewhere(&self) -> bool {
        false
    }

    /// Whether the lock is still held (a distributed back end can lose it with its
    /// connection). Free on files; PostgreSQL asks the server (one round trip).
    fn is_held(&self) -> bool {
        true
    }
}

/// One holder's published metadata; dropping it withdraws the record. `Any`, so that a
/// back end can recognise its own records in
/// [`release_with_holder`](BackendLock::release_with_holder).
pub(crate) trait HolderRecord: Send + fmt::Debug + std::any::Any {}

/// Publishes `info` on `lock`; a failure is logged and gives `None`: metadata is for
/// people, and failing to write it must not fail the lock.
pub(crate) fn publish_holder(
    lock: &dyn BackendLock,
    name: &LockName,
    info: &LockInfo,
) -> Option<Box<dyn HolderRecord>> {
    match lock.add_holder(info) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(lock = name.as_str(), error = %e, "could not publish holder metadata");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_to_targets() {
        assert_eq!(
            Target::parse_url("file:///var/lib/scans").unwrap(),
            Target::File("/var/lib/scans".into())
        );
        assert_eq!(
            Target::parse_url("FILE://localhost/a%20b").unwrap(),
            Target::File("/a b".into())
        );
        assert!(matches!(
            Target::parse_url("postgresql://u@h/db").unwrap(),
            Target::Postgres(_)
        ));
        for bad in [
            "file://relative",
            "/just/a/path",
            "redis://h",
            "file:///a%zz",
        ] {
            let e = Target::parse_url(bad).unwrap_err();
            assert!(matches!(e, LockError::InvalidUrl { .. }), "{bad}: {e:?}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("postgresql://u@h/db?sslmode=disable&password=pw&x=1"),
            "postgresql://u@h/db?sslmode=disable&password=***&x=1"
        );
        assert_eq!(
            redact("postgres://u:pw@h?password=pw"),
            "postgres://u:***@h?password=***"
        );
        let e = Target::parse_url("redis://u:pw@h").unwrap_err();
        assert!(!e.to_string().contains("pw"), "{e}");
    }
}
